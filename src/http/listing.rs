//! Branches, branch and tag endpoints (http-api.md §7.3–7.5).

use std::rc::Rc;

use hyper::{Method, Response, StatusCode};
use serde_json::{json, Map, Value};

use super::jsonbody::{read_json, wrapped_object};
use super::{detached, name, resolve_tag, respond, user_repo, Body, Ctx, HttpError, HttpResult, Req};
use crate::cleanup::{RunKind, Trigger};
use crate::io;
use crate::store::pyjson::py_str;
use crate::store::repo::JobRef;
use crate::store::{meta, pyjson, tree};

pub async fn branches(ctx: &Rc<Ctx>, req: &Req, user: &Option<String>, slash: bool) -> HttpResult<Response<Body>> {
    let repo = user_repo(ctx, user)?;
    if !slash {
        return Ok(respond::redirect(&format!("{}/", req.path)));
    }
    let mut list = Vec::new();
    for b in tree::list_dirs(&repo.branches_dir()).await? {
        if !req.access.can_read(&format!("{}/branches/{b}/", repo.url_prefix())) {
            continue;
        }
        let c = tree::branch_counts(&repo, &b).await?;
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
    Ok(respond::json(&json!({ "branches": list })))
}

pub async fn branch(
    ctx: &Rc<Ctx>,
    req: &mut Req,
    user: &Option<String>,
    branch_raw: &str,
    slash: bool,
) -> HttpResult<Response<Body>> {
    let repo = user_repo(ctx, user)?;
    let branch = name(branch_raw)?;
    if !io::is_dir(&repo.branch_dir(&branch)).await {
        return Err(HttpError::not_found());
    }
    if !slash {
        return Ok(respond::redirect(&format!("{}/", req.path)));
    }
    match *req.method() {
        Method::GET => {
            let released_only = req.query().iter().any(|(k, v)| k == "released" && !v.is_empty());
            let mut tags = Vec::new();
            for t in tree::list_dirs(&repo.branch_dir(&branch)).await? {
                if !req
                    .access
                    .can_read(&format!("{}/branches/{branch}/{t}/", repo.url_prefix()))
                {
                    continue;
                }
                let info = tree::tag_info(&repo, &branch, &t).await;
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
            Ok(respond::json(&json!({
                "branch": { "name": branch_raw, "cleanup_policy": policy, "tags": tags }
            })))
        }
        Method::POST => {
            let body = read_json(req).await?;
            let params = wrapped_object(body, "branch").ok_or_else(|| HttpError::bad_request("invalid parameters"))?;
            let current = tree::cleanup_policy(&repo, &branch).await;
            let mut out = Map::new();
            for key in ["max_daily_tags", "max_released_tags"] {
                let v = match params.get(key) {
                    None => current.get(key).and_then(Value::as_u64).unwrap_or(0),
                    // Booleans are refused, unlike 0.44 where they passed as integers.
                    Some(Value::Number(n)) => n.as_u64().ok_or_else(|| HttpError::bad_request("invalid parameters"))?,
                    Some(_) => return Err(HttpError::bad_request("invalid parameters")),
                };
                out.insert(key.into(), v.into());
            }
            let bytes = pyjson::dumps(&Value::Object(out)).into_bytes();
            io::write_file_atomic(&repo.branch_dir(&branch).join(".cleanup_policy"), bytes, ctx.cfg.fsync).await?;
            Ok(respond::ok_empty())
        }
        Method::DELETE => {
            let (store, repo, branch) = (ctx.store.clone(), repo.clone(), branch.clone());
            detached(async move { store.delete_branch(&repo, &branch).await }).await??;
            ctx.cleanup.schedule(RunKind::OrphansOnly, Trigger::Delete);
            Ok(respond::ok_empty())
        }
        _ => Err(HttpError::method_not_allowed("DELETE,GET,POST")),
    }
}

pub async fn tag(
    ctx: &Rc<Ctx>,
    req: &mut Req,
    user: &Option<String>,
    branch_raw: &str,
    tag_raw: &str,
    _slash: bool,
) -> HttpResult<Response<Body>> {
    let repo = user_repo(ctx, user)?;
    let branch = name(branch_raw)?;
    let write = !matches!(*req.method(), Method::GET | Method::HEAD);
    let tag = resolve_tag(&req.access, &repo, &branch, tag_raw, write, "GET,HEAD").await?;
    let dir = repo.tag_dir(&branch, &tag);
    if !io::is_dir(&dir).await {
        return Err(HttpError::not_found());
    }
    let canonical = format!("{}/branches/{}/{}/", repo.url_prefix(), branch, tag);
    if req.path != canonical {
        return Ok(respond::redirect(&canonical));
    }
    match *req.method() {
        Method::GET => {
            let info = tree::tag_info(&repo, &branch, &tag).await;
            let filters = req.query();
            let mut jobs = Vec::new();
            for j in tree::list_dirs(&dir).await? {
                if !req.access.can_read(&format!("{canonical}{j}/")) {
                    continue;
                }
                let jr = JobRef {
                    repo: repo.clone(),
                    branch: branch.clone(),
                    tag: tag.clone(),
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
            Ok(respond::json(&json!({ "tag": {
                "name": tag,
                "released": info.released,
                "locked": info.locked,
                "stable": info.stable,
                "publish_status": info.publish_status,
                "description": info.description,
                "jobs": jobs,
            }})))
        }
        Method::POST => {
            let body = read_json(req).await?;
            let params = wrapped_object(body, "tag").ok_or_else(|| HttpError::bad_request("invalid parameters"))?;
            let flag = |k: &str| -> HttpResult<Option<bool>> {
                match params.get(k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::Bool(b)) => Ok(Some(*b)),
                    Some(_) => Err(HttpError::bad_request("invalid parameters")),
                }
            };
            let (released, locked, stable) = (flag("released")?, flag("locked")?, flag("stable")?);
            let description = match params.get("description") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.trim().to_string()),
                Some(_) => return Err(HttpError::bad_request("invalid parameters")),
            };
            if released.is_some() {
                if ctx.cfg.publish_url.is_none() {
                    return Err(HttpError::with_reason(
                        StatusCode::MISDIRECTED_REQUEST,
                        "DLREPO_PUBLISH_URL is undefined",
                    ));
                }
                if ctx.cfg.publish_auth.is_none() {
                    return Err(HttpError::with_reason(
                        StatusCode::MISDIRECTED_REQUEST,
                        "DLREPO_PUBLISH_AUTH is undefined",
                    ));
                }
                return Err(HttpError::not_implemented("Publishing"));
            }
            // Under the tag's lock, which a delete holds from its check of
            // `.locked` to its end; detached, so a client that hangs up does
            // not leave half of its changes made.
            let (store, fsync) = (ctx.store.clone(), ctx.cfg.fsync);
            detached(async move {
                let _tag = store.tag_locks.lock(dir.clone()).await;
                // A delete that held the lock may have removed the tag.
                if !io::is_dir(&dir).await {
                    return Err(crate::store::StoreError::NotFound);
                }
                if let Some(l) = locked {
                    meta::set_flag(&dir.join(".locked"), l).await?;
                }
                if let Some(s) = stable {
                    meta::set_flag(&dir.join(".stable"), s).await?;
                }
                if let Some(d) = description {
                    let path = dir.join(".description");
                    if d.is_empty() {
                        io::unlink_opt(&path).await?;
                    } else {
                        io::write_file_atomic(&path, format!("{d}\n").into_bytes(), fsync).await?;
                    }
                }
                Ok::<(), crate::store::StoreError>(())
            })
            .await??;
            Ok(respond::ok_empty())
        }
        Method::DELETE => {
            let (store, repo, branch, tag) = (ctx.store.clone(), repo.clone(), branch.clone(), tag.clone());
            detached(async move { store.delete_tag(&repo, &branch, &tag).await }).await??;
            ctx.cleanup.schedule(RunKind::OrphansOnly, Trigger::Delete);
            Ok(respond::ok_empty())
        }
        _ => Err(HttpError::method_not_allowed("DELETE,GET,POST")),
    }
}
