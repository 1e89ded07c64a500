//! The job endpoint (docs/spec/http-api.md §7.6): information, metadata, the internal
//! flag, lock and unlock, and delete.

use std::rc::Rc;

use hyper::Response;
use serde_json::{json, Map, Value};

use super::jsonbody::{read_json, wrapped_object};
use super::route::JobAddr;
use super::{answer, detached, locate, pages, respond, user_var, Body, Ctx, HttpError, HttpResult, Req};
use crate::cleanup::{RunKind, Trigger};
use crate::io;
use crate::store::{meta, tree};

pub async fn get_job(ctx: &Rc<Ctx>, req: &Req, addr: &JobAddr) -> HttpResult<Response<Body>> {
    let jr = locate::job(ctx, &req.access, addr, false).await?;
    let dir = jr.dir();
    if !io::is_dir(&dir).await {
        return Err(HttpError::NotFound);
    }
    let canonical = jr.url();
    if req.path != canonical {
        return Ok(respond::redirect(&canonical));
    }
    let mut m = tree::job_summary(&jr).await;
    m.insert("internal".into(), Value::Bool(meta::flag(&dir.join(".internal")).await));
    m.insert(
        "timestamp".into(),
        meta::timestamp_value(meta::mtime(&dir.join(".stamp")).await),
    );
    let digest = meta::read_stripped(&dir.join(".digest")).await.unwrap_or_default();
    m.insert("digest".into(), Value::String(digest));
    let formats: Vec<String> = tree::list_dirs(&dir)
        .await?
        .into_iter()
        .filter(|f| req.access.can_read(&format!("{canonical}{f}/")))
        .collect();
    if !req.wants_html() {
        m.insert(
            "artifact_formats".into(),
            Value::Array(formats.into_iter().map(Value::String).collect()),
        );
        return Ok(respond::json(&json!({ "job": m })));
    }
    // The page shows each format with what installs it.
    let mut entries = Vec::with_capacity(formats.len());
    for f in &formats {
        entries.push(pages::views::format_entry(ctx, f, &dir.join(f), &jr.format_url(f), false).await);
    }
    m.insert("artifact_formats".into(), Value::Array(entries));
    let mut vars = user_var(&jr.repo);
    vars.extend([
        ("branch", jr.branch.clone()),
        ("tag", jr.tag.clone()),
        ("job", jr.job.clone()),
    ]);
    if let Some(p) = m.get("product").and_then(Value::as_str) {
        vars.push(("product_icon", crate::http::static_files::product_icon(ctx, p).await));
    }
    answer(ctx, req, "job.html", vars, json!({ "job": m }))
}

/// `PATCH {"job": {…}}`: merges metadata (creating the job if needed).
pub async fn update_job_metadata(ctx: &Rc<Ctx>, req: &mut Req, addr: &JobAddr) -> HttpResult<Response<Body>> {
    let jr = locate::job(ctx, &req.access, addr, true).await?;
    let updates = read_job_params(req).await?;
    let store = ctx.store.clone();
    detached(async move { store.patch_metadata(&jr, &updates).await }).await??;
    Ok(respond::ok_empty())
}

/// `PUT {"job": {"internal": bool, "locked": true}}`.
pub async fn update_job(ctx: &Rc<Ctx>, req: &mut Req, addr: &JobAddr) -> HttpResult<Response<Body>> {
    let jr = locate::job(ctx, &req.access, addr, true).await?;
    let params = read_job_params(req).await?;
    let internal = match params.get("internal") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(invalid()),
    };
    let lock = match params.get("locked") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(true)) => true,
        // Unlocking is POST's job.
        Some(_) => return Err(invalid()),
    };
    let store = ctx.store.clone();
    detached(async move { store.put_job(&jr, internal, lock).await }).await??;
    Ok(respond::ok_empty())
}

/// `POST {"job": {"locked": false}}`.
pub async fn unlock_job(ctx: &Rc<Ctx>, req: &mut Req, addr: &JobAddr) -> HttpResult<Response<Body>> {
    let jr = locate::job(ctx, &req.access, addr, true).await?;
    let params = read_job_params(req).await?;
    if params.get("locked") != Some(&Value::Bool(false)) {
        return Err(invalid());
    }
    ctx.store.unlock_job(&jr).await?;
    Ok(respond::ok_empty())
}

pub async fn delete_job(ctx: &Rc<Ctx>, req: &Req, addr: &JobAddr) -> HttpResult<Response<Body>> {
    let jr = locate::job(ctx, &req.access, addr, true).await?;
    let store = ctx.store.clone();
    detached(async move { store.delete_job(&jr).await }).await??;
    ctx.cleanup.schedule(RunKind::OrphansOnly, Trigger::Delete);
    Ok(respond::ok_empty())
}

fn invalid() -> HttpError {
    HttpError::bad_request("Invalid parameters")
}

/// The object under `job` of the body; anything else is `400 Invalid parameters`.
async fn read_job_params(req: &mut Req) -> HttpResult<Map<String, Value>> {
    let body = read_json(req).await?;
    wrapped_object(body, "job").ok_or_else(invalid)
}
