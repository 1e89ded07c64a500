//! The tag endpoint (docs/spec/http-api.md §7.5): its jobs, its flags and
//! description, and its deletion.

use std::rc::Rc;

use hyper::Response;
use serde_json::{json, Value};

use super::jsonbody::{read_json, wrapped_object};
use super::route::TagAddr;
use super::{answer, detached, locate, respond, user_var, Body, Ctx, HttpError, HttpResult, Req};
use crate::cleanup::{RunKind, Trigger};
use crate::io;
use crate::publish::queue::Want;
use crate::publish::TagRef;
use crate::store::pyjson::py_str;
use crate::store::repo::JobRef;
use crate::store::settings::TagUpdate;
use crate::store::{tree, Repo};

/// A tag found on disk, for one of its methods.
struct TagLoc {
    repo: Repo,
    branch: String,
    tag: String,
    /// Canonical URL, with the slash.
    url: String,
}

/// Resolves the tag (404 if missing), or the redirect to its canonical URL,
/// which every method gets when the path differs.
async fn existing_tag(ctx: &Ctx, req: &Req, addr: &TagAddr, write: bool) -> HttpResult<Result<TagLoc, Response<Body>>> {
    let repo = locate::repo(ctx, &addr.user)?;
    let branch = locate::name(&addr.branch)?;
    let tag = locate::tag(&req.access, &repo, &branch, &addr.tag, write).await?;
    if !io::is_dir(&repo.tag_dir(&branch, &tag)).await {
        return Err(HttpError::NotFound);
    }
    let url = format!("{}/branches/{}/{}/", repo.url_prefix(), branch, tag);
    if req.path != url {
        return Ok(Err(respond::redirect(&url)));
    }
    Ok(Ok(TagLoc { repo, branch, tag, url }))
}

pub async fn get_tag(ctx: &Rc<Ctx>, req: &Req, addr: &TagAddr) -> HttpResult<Response<Body>> {
    let t = match existing_tag(ctx, req, addr, false).await? {
        Ok(t) => t,
        Err(redirect) => return Ok(redirect),
    };
    let info = ctx.store.tag_info(&t.repo, &t.branch, &t.tag).await;
    let filters = req.query();
    let mut jobs = Vec::new();
    for j in tree::list_dirs(&t.repo.tag_dir(&t.branch, &t.tag)).await? {
        if !req.access.can_read(&format!("{}{j}/", t.url)) {
            continue;
        }
        let jr = JobRef {
            repo: t.repo.clone(),
            branch: t.branch.clone(),
            tag: t.tag.clone(),
            job: j,
        };
        let job = tree::job_summary(&jr).await;
        let keep = filters
            .iter()
            .all(|(k, v)| job.get(k).map(|x| py_str(x) == *v).unwrap_or(false));
        if keep {
            jobs.push(Value::Object(job));
        }
    }
    let mut vars = user_var(&t.repo);
    vars.push(("branch", t.branch.clone()));
    vars.push(("tag", t.tag.clone()));
    let data = json!({ "tag": {
        "name": t.tag,
        "released": info.released,
        "locked": info.locked,
        "stable": info.stable,
        "publish_status": info.publish_status,
        "description": info.description,
        "jobs": jobs,
    }});
    answer(ctx, req, "tag.html", vars, data)
}

/// `POST {"tag": {"released"|"locked"|"stable": bool, "description": str}}`.
pub async fn update_tag(ctx: &Rc<Ctx>, req: &mut Req, addr: &TagAddr) -> HttpResult<Response<Body>> {
    let t = match existing_tag(ctx, req, addr, true).await? {
        Ok(t) => t,
        Err(redirect) => return Ok(redirect),
    };
    let body = read_json(req).await?;
    let params = wrapped_object(body, "tag").ok_or_else(invalid)?;
    let flag = |k: &str| -> HttpResult<Option<bool>> {
        match params.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(invalid()),
        }
    };
    let (released, locked, stable) = (flag("released")?, flag("locked")?, flag("stable")?);
    let description = match params.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(_) => return Err(invalid()),
    };
    if let Some(release) = released {
        if ctx.cfg.publish_url.is_none() {
            return Err(HttpError::Misdirected("DLREPO_PUBLISH_URL is undefined".into()));
        }
        if ctx.cfg.publish_auth.is_none() {
            return Err(HttpError::Misdirected("DLREPO_PUBLISH_AUTH is undefined".into()));
        }
        // Answered at once: the run goes on in the background, and the
        // tag's status says how it is going.
        let want = if release { Want::Release } else { Want::Unrelease };
        let tag = TagRef {
            repo: t.repo.clone(),
            branch: t.branch.clone(),
            tag: t.tag.clone(),
        };
        ctx.publisher.request(tag, want).await;
    }
    let update = TagUpdate {
        locked,
        stable,
        description,
    };
    // Detached, so a client that hangs up does not leave half of it made.
    let store = ctx.store.clone();
    detached(async move { store.update_tag(&t.repo, &t.branch, &t.tag, update).await }).await??;
    Ok(respond::ok_empty())
}

pub async fn delete_tag(ctx: &Rc<Ctx>, req: &Req, addr: &TagAddr) -> HttpResult<Response<Body>> {
    let t = match existing_tag(ctx, req, addr, true).await? {
        Ok(t) => t,
        Err(redirect) => return Ok(redirect),
    };
    let store = ctx.store.clone();
    detached(async move { store.delete_tag(&t.repo, &t.branch, &t.tag).await }).await??;
    ctx.cleanup.schedule(RunKind::OrphansOnly, Trigger::Delete);
    Ok(respond::ok_empty())
}

fn invalid() -> HttpError {
    HttpError::bad_request("invalid parameters")
}
