//! The branches listing and the branch endpoint (docs/spec/http-api.md §7.3–7.4).

use std::rc::Rc;

use hyper::Response;
use serde_json::{json, Map, Value};

use super::jsonbody::{read_json, wrapped_object};
use super::route::{BranchAddr, RepoAddr};
use super::{answer, detached, locate, respond, user_var, Body, Ctx, HttpError, HttpResult, Req};
use crate::cleanup::{RunKind, Trigger};
use crate::io;
use crate::store::settings::PolicyUpdate;
use crate::store::{meta, tree, Repo};

pub async fn list_branches(ctx: &Rc<Ctx>, req: &Req, addr: &RepoAddr) -> HttpResult<Response<Body>> {
    let repo = locate::repo(ctx, &addr.user)?;
    if !addr.slash {
        return Ok(respond::redirect(&format!("{}/", req.path)));
    }
    let mut list = Vec::new();
    for b in tree::list_dirs(&repo.branches_dir()).await? {
        if !req.access.can_read(&format!("{}/branches/{b}/", repo.url_prefix())) {
            continue;
        }
        let c = ctx.store.branch_counts(&repo, &b).await?;
        let mut obj = Map::new();
        obj.insert("name".into(), Value::String(b.clone()));
        obj.insert("daily_tags".into(), c.daily.into());
        obj.insert("released_tags".into(), c.released.into());
        obj.insert("locked_tags".into(), c.locked.into());
        obj.insert("stable_tags".into(), c.stable.into());
        for (k, v) in tree::cleanup_policy(&repo, &b).await {
            obj.insert(k, v);
        }
        list.push(Value::Object(obj));
    }
    answer(ctx, req, "branches.html", user_var(&repo), json!({ "branches": list }))
}

/// The branch of a URL, once it is known to exist; every method first
/// redirects a URL without its slash.
async fn existing_branch(
    ctx: &Ctx,
    req: &Req,
    addr: &BranchAddr,
) -> HttpResult<Result<(Repo, String), Response<Body>>> {
    let repo = locate::repo(ctx, &addr.user)?;
    let branch = locate::name(&addr.branch)?;
    if !io::is_dir(&repo.branch_dir(&branch)).await {
        return Err(HttpError::NotFound);
    }
    if !addr.slash {
        return Ok(Err(respond::redirect(&format!("{}/", req.path))));
    }
    Ok(Ok((repo, branch)))
}

pub async fn get_branch(ctx: &Rc<Ctx>, req: &Req, addr: &BranchAddr) -> HttpResult<Response<Body>> {
    let (repo, branch) = match existing_branch(ctx, req, addr).await? {
        Ok(b) => b,
        Err(redirect) => return Ok(redirect),
    };
    let released_only = req.query().iter().any(|(k, v)| k == "released" && !v.is_empty());
    let readable: Vec<String> = tree::list_dirs(&repo.branch_dir(&branch))
        .await?
        .into_iter()
        .filter(|t| {
            req.access
                .can_read(&format!("{}/branches/{branch}/{t}/", repo.url_prefix()))
        })
        .collect();
    let mut tags = Vec::new();
    for info in ctx.store.tag_infos(&repo, &branch, &readable).await {
        if released_only && !info.released {
            continue;
        }
        tags.push(json!({
            "name": info.name,
            "timestamp": meta::timestamp_value(info.timestamp),
            "released": info.released,
            "locked": info.locked,
            "stable": info.stable,
            "publish_status": info.publish_status,
            "description": info.description,
        }));
    }
    let policy = tree::cleanup_policy(&repo, &branch).await;
    let mut vars = user_var(&repo);
    vars.push(("branch", branch.clone()));
    answer(
        ctx,
        req,
        "branch.html",
        vars,
        json!({ "branch": { "name": addr.branch, "cleanup_policy": policy, "tags": tags } }),
    )
}

/// `POST {"branch": {"max_daily_tags": …, "max_released_tags": …}}`.
pub async fn update_branch(ctx: &Rc<Ctx>, req: &mut Req, addr: &BranchAddr) -> HttpResult<Response<Body>> {
    let (repo, branch) = match existing_branch(ctx, req, addr).await? {
        Ok(b) => b,
        Err(redirect) => return Ok(redirect),
    };
    let body = read_json(req).await?;
    let params = wrapped_object(body, "branch").ok_or_else(invalid)?;
    let limit = |key: &str| -> HttpResult<Option<u64>> {
        match params.get(key) {
            None => Ok(None),
            // Booleans are refused, unlike 0.44 where they passed as integers.
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(invalid),
            Some(_) => Err(invalid()),
        }
    };
    let update = PolicyUpdate {
        max_daily_tags: limit("max_daily_tags")?,
        max_released_tags: limit("max_released_tags")?,
    };
    ctx.store.set_cleanup_policy(&repo, &branch, update).await?;
    Ok(respond::ok_empty())
}

pub async fn delete_branch(ctx: &Rc<Ctx>, req: &Req, addr: &BranchAddr) -> HttpResult<Response<Body>> {
    let (repo, branch) = match existing_branch(ctx, req, addr).await? {
        Ok(b) => b,
        Err(redirect) => return Ok(redirect),
    };
    let store = ctx.store.clone();
    detached(async move { store.delete_branch(&repo, &branch).await }).await??;
    ctx.cleanup.schedule(RunKind::OrphansOnly, Trigger::Delete);
    Ok(respond::ok_empty())
}

fn invalid() -> HttpError {
    HttpError::bad_request("invalid parameters")
}
