//! Format directories (docs/spec/http-api.md §7.8–7.9): listing, the "finalised"
//! probe, finalisation, deletion, and the shortcut without the slash.

use std::rc::Rc;

use hyper::header::{HeaderValue, CONTENT_DISPOSITION};
use hyper::Response;
use serde_json::{json, Value};

use super::route::{FormatAddr, Parent};
use super::{detached, file, locate, pages, respond, Body, Ctx, HttpError, HttpResult, Req};
use crate::cleanup::{RunKind, Trigger};
use crate::io;
use crate::store::meta;

fn is_product(addr: &FormatAddr) -> bool {
    matches!(addr.parent, Parent::Version { .. })
}

pub async fn get_format(ctx: &Rc<Ctx>, req: &Req, addr: &FormatAddr) -> HttpResult<Response<Body>> {
    let loc = locate::existing_format(ctx, &req.access, addr, false).await?;
    if req.path != loc.url {
        return Ok(respond::redirect(&loc.url));
    }
    if req.wants_html() {
        // A format with an index.html is a small web site; others list.
        let index = loc.dir.join("index.html");
        if io::stat_opt(&index).await?.map(|s| s.is_file()).unwrap_or(false) {
            return file::serve(ctx, req, &index, None, true).await;
        }
        let listing = pages::views::autoindex(&loc.name, "", &loc.dir).await?;
        let vars = pages::views::format_vars(&loc.url);
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        return ctx
            .pages
            .render("autoindex.html", req, &vars, json!({ "artifact_format": listing }));
    }
    let digests = loc.digests(ctx).await;
    let files: Vec<Value> = digests.keys().cloned().map(Value::String).collect();
    Ok(respond::json(&json!({ "artifact_format": {
        "name": loc.name,
        "internal": ctx.cfg.is_internal_format(&loc.name),
        "dirty": meta::flag(&loc.dir.join(".dirty")).await,
        "files": files,
    }})))
}

/// `HEAD`: 200 once the format exists and is finalised.
pub async fn probe_format(ctx: &Rc<Ctx>, req: &Req, addr: &FormatAddr) -> HttpResult<Response<Body>> {
    let loc = locate::existing_format(ctx, &req.access, addr, false).await?;
    if meta::flag(&loc.dir.join(".dirty")).await {
        return Err(HttpError::NotFound);
    }
    if req.path != loc.url {
        return Ok(respond::redirect(&loc.url));
    }
    // Like the original: no Content-Length on this probe.
    Ok(Response::new(Body::empty()))
}

/// `PATCH`: runs the post-process command and clears the dirty flag.
pub async fn finalize_format(ctx: &Rc<Ctx>, req: &Req, addr: &FormatAddr) -> HttpResult<Response<Body>> {
    if is_product(addr) {
        return Err(HttpError::ReadOnly);
    }
    let loc = locate::existing_format(ctx, &req.access, addr, true).await?;
    let store = ctx.store.clone();
    detached(async move { store.finalize_format(&loc.dir).await }).await??;
    Ok(respond::ok_empty())
}

pub async fn delete_format(ctx: &Rc<Ctx>, req: &Req, addr: &FormatAddr) -> HttpResult<Response<Body>> {
    let loc = locate::existing_format(ctx, &req.access, addr, !is_product(addr)).await?;
    let Some(job) = loc.job else {
        return Err(HttpError::bad_request("Deleting product formats is not supported"));
    };
    let store = ctx.store.clone();
    detached(async move { store.delete_format(&job, &loc.name).await }).await??;
    ctx.cleanup.schedule(RunKind::OrphansOnly, Trigger::Delete);
    Ok(respond::ok_empty())
}

/// `GET|HEAD …/<format>` without the slash: a redirect to the only file, or
/// to the format directory. While the format is dirty, `HEAD` answers 404
/// (the "finalised?" probe of the original) and `GET` goes to the folder,
/// like every other folder URL without its slash.
pub async fn get_format_shortcut(ctx: &Rc<Ctx>, req: &Req, addr: &FormatAddr) -> HttpResult<Response<Body>> {
    let loc = locate::existing_format(ctx, &req.access, addr, false).await?;
    if meta::flag(&loc.dir.join(".dirty")).await {
        if *req.method() == hyper::Method::HEAD {
            return Err(HttpError::NotFound);
        }
        return Ok(respond::redirect(&loc.url));
    }
    let digests = loc.digests(ctx).await;
    if digests.len() == 1 {
        if let Some(key) = digests.keys().next().filter(|k| k.as_str() != "index.html") {
            let mut r = respond::redirect(&format!("{}{}", loc.url, key));
            let base = key.rsplit('/').next().unwrap_or(key);
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename={base}")) {
                r.headers_mut().insert(CONTENT_DISPOSITION, v);
            }
            return Ok(r);
        }
    }
    Ok(respond::redirect(&loc.url))
}
