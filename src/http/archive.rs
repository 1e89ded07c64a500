//! `.tar` archives of jobs, formats and product versions, and a format's
//! `.sha256` digests (docs/spec/http-api.md §7.7, §7.10, §7.11, §7.17).

use std::path::Path;
use std::rc::Rc;

use hyper::header::{HeaderValue, CONTENT_DISPOSITION, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};
use serde_json::{Map, Value};

use super::locate::{self, FormatLoc};
use super::route::{FormatAddr, JobAddr, Parent, VersionAddr};
use super::{respond, Body, Ctx, HttpError, HttpResult, Req};
use crate::io;
use crate::store::archive::{self, Member};
use crate::store::meta;
use crate::store::repo::JobRef;

/// `<product>-<product_variant>-v<version>` for a job with those keys,
/// else `<job>-<tag>`.
async fn job_archive_name(job: &JobRef) -> String {
    let m = meta::read_object(&job.dir().join(".metadata")).await;
    let get = |k: &str| m.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    match (get("product"), get("product_variant"), get("version")) {
        (Some(p), Some(v), Some(ver)) => format!("{p}-{v}-v{ver}"),
        _ => format!("{}-{}", job.job, job.tag),
    }
}

fn members_of(digests: &Map<String, Value>, dir: &Path, key_prefix: &str) -> Vec<Member> {
    digests
        .iter()
        .map(|(k, v)| Member {
            key: format!("{key_prefix}{k}"),
            path: dir.join(k),
            digest: v.as_str().unwrap_or("").to_string(),
        })
        .collect()
}

fn tar_response(ctx: &Ctx, members: Vec<Member>, prefix: String, fallback: f64) -> Response<Body> {
    let disposition = HeaderValue::from_str(&format!("attachment; filename={prefix}.tar"))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    let rx = archive::spawn(members, prefix, fallback, ctx.cfg.chunk_size);
    let mut r = Response::new(Body::Channel(rx));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    r.headers_mut().insert(CONTENT_DISPOSITION, disposition);
    r
}

/// `GET …/<job>.tar`.
pub async fn get_job_tar(ctx: &Rc<Ctx>, req: &Req, addr: &JobAddr) -> HttpResult<Response<Body>> {
    let jr = locate::job(ctx, &req.access, addr, false).await?;
    let dir = jr.dir();
    // Unlike 0.44 (an empty archive), a missing job is a 404.
    if !io::is_dir(&dir).await {
        return Err(HttpError::NotFound);
    }
    if let Some(r) = respond::redirect_unless_suffixed(&req.path, &jr.url(), "tar") {
        return Ok(r);
    }
    let mut members = Vec::new();
    for f in crate::store::tree::list_dirs(&dir).await? {
        if !req.access.can_read(&format!("{}{f}/", jr.url())) {
            continue;
        }
        let fdir = dir.join(&f);
        let digests = ctx.store.digests(&fdir).await;
        members.extend(members_of(&digests, &fdir, &format!("{f}/")));
    }
    let fallback = meta::mtime(&dir.join(".stamp")).await.unwrap_or(0.0);
    Ok(tar_response(ctx, members, job_archive_name(&jr).await, fallback))
}

/// The archive prefix of a format: `archive_name(parent)-<format>`.
async fn format_prefix(loc: &FormatLoc, parent: &Parent) -> String {
    match (&loc.job, parent) {
        (Some(jr), _) => format!("{}-{}", job_archive_name(jr).await, loc.name),
        (
            None,
            Parent::Version {
                product,
                variant,
                version,
                ..
            },
        ) => {
            // The version segment may be an alias: take the resolved name from the URL.
            let ver = loc
                .url
                .trim_end_matches('/')
                .rsplit('/')
                .nth(1)
                .unwrap_or(version)
                .to_string();
            format!(
                "{}-{}-v{ver}-{}",
                product.to_lowercase(),
                variant.to_lowercase(),
                loc.name
            )
        }
        (None, _) => loc.name.clone(),
    }
}

/// `GET|HEAD …/<format>.tar`.
pub async fn get_format_tar(ctx: &Rc<Ctx>, req: &Req, addr: &FormatAddr) -> HttpResult<Response<Body>> {
    let loc = locate::existing_format(ctx, &req.access, addr, false).await?;
    let is_head = *req.method() == Method::HEAD;
    if is_head && meta::flag(&loc.dir.join(".dirty")).await {
        return Err(HttpError::NotFound);
    }
    if let Some(r) = respond::redirect_unless_suffixed(&req.path, &loc.url, "tar") {
        return Ok(r);
    }
    if is_head {
        return Ok(Response::new(Body::empty()));
    }
    let digests = loc.digests(ctx).await;
    let members = members_of(&digests, &loc.dir, "");
    if let Err(e) = ctx.store.flush_format(&loc.dir).await {
        tracing::warn!("cannot write {}/.digests: {e}", loc.dir.display());
    }
    let fallback = match meta::mtime(&loc.dir.join(".digests")).await {
        Some(t) => t,
        None => meta::mtime(&loc.dir).await.unwrap_or(0.0),
    };
    let prefix = format_prefix(&loc, &addr.parent).await;
    Ok(tar_response(ctx, members, prefix, fallback))
}

/// `GET …/<format>.sha256`: `<hex>  <path>` lines for the sha256 entries.
pub async fn get_format_sha256(ctx: &Rc<Ctx>, req: &Req, addr: &FormatAddr) -> HttpResult<Response<Body>> {
    let loc = locate::existing_format(ctx, &req.access, addr, false).await?;
    if let Some(r) = respond::redirect_unless_suffixed(&req.path, &loc.url, "sha256") {
        return Ok(r);
    }
    let digests = loc.digests(ctx).await;
    let mut keys: Vec<&String> = digests.keys().collect();
    keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut body = String::new();
    for k in keys {
        if let Some((algo, hex)) = digests.get(k).and_then(meta::split_digest) {
            if algo == "sha256" {
                body.push_str(&format!("{hex}  {k}\n"));
            }
        }
    }
    Ok(respond::text(StatusCode::OK, body))
}

/// `GET …/products/<p>/<v>/<pb>/<ver>.tar`.
pub async fn get_version_tar(ctx: &Rc<Ctx>, req: &Req, addr: &VersionAddr) -> HttpResult<Response<Body>> {
    let loc = locate::existing_version(ctx, &req.access, addr).await?;
    // Unlike 0.44 (which pointed at the folder), redirect to the archive.
    if let Some(r) = respond::redirect_unless_suffixed(&req.path, &loc.url, "tar") {
        return Ok(r);
    }
    let mut members = Vec::new();
    for (f, real) in loc.readable_formats(&req.access).await {
        let digests = ctx.store.digests_via_link(&real).await;
        members.extend(members_of(&digests, &real, &format!("{f}/")));
    }
    let fallback = meta::mtime(&loc.dir.join(".stamp")).await.unwrap_or(0.0);
    let prefix = format!("{}-{}-v{}", loc.product, loc.variant, loc.version);
    Ok(tar_response(ctx, members, prefix, fallback))
}
