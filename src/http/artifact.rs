//! Artifact download and probe (docs/spec/http-api.md §7.12–7.13).

use std::rc::Rc;

use hyper::header::{HeaderValue, CONTENT_LENGTH};
use hyper::{Method, Response, StatusCode};

use super::locate::{self, FormatLoc};
use super::route::ArtifactAddr;
use super::{file, pages, respond, Body, Ctx, HttpError, HttpResult, Req};
use crate::io;
use crate::names;
use crate::store::digest::Digest;
use crate::store::meta;

/// `GET|HEAD` of a file, and `HEAD` with `Digest` (does the blob exist?).
pub async fn get_artifact(ctx: &Rc<Ctx>, req: &Req, addr: &ArtifactAddr) -> HttpResult<Response<Body>> {
    let path = addr.path.as_str();
    let is_head = *req.method() == Method::HEAD;
    if is_head {
        if let Some(value) = req.single_header("Digest")?.map(str::to_string) {
            return probe_digest(ctx, &value).await;
        }
    }
    let loc = locate::format(ctx, &req.access, &addr.format, false).await?;
    if !names::is_valid_artifact_path(path) {
        if !io::is_dir(&loc.dir).await {
            return Err(HttpError::NotFound);
        }
        return Err(HttpError::bad_request(path));
    }
    // A temporary an older version left behind is never an artifact.
    if names::is_temporary_name(path.rsplit('/').next().unwrap_or(path)) {
        return Err(HttpError::NotFound);
    }
    let full = io::join(&loc.dir, path);
    // Open first: on the common path (the file exists) this answers the
    // format and file existence checks with one ring operation.
    let file = match io::open_read(&full).await {
        Ok(f) => f,
        Err(e) if io::is_missing(&e) => {
            if !io::is_dir(&loc.dir).await {
                return Err(HttpError::NotFound);
            }
            if !is_head {
                if let Some(resp) = sha256_fallback(ctx, req, &loc, path).await {
                    return Ok(resp);
                }
            }
            return Err(HttpError::NotFound);
        }
        Err(e) => return Err(e.into()),
    };
    let st = io::fstat(&file)?;
    if st.is_dir() {
        drop(file);
        if is_head || !req.wants_html() {
            return Err(HttpError::NotFound);
        }
        if !req.path.ends_with('/') {
            return Ok(respond::redirect(&format!("{}/", req.path)));
        }
        let canonical = format!("{}{}", loc.url, path);
        if req.path != canonical {
            return Ok(respond::redirect(&canonical));
        }
        let index = full.join("index.html");
        return match io::open_read(&index).await {
            Ok(f) => {
                let st = io::fstat(&f)?;
                file::serve_open(ctx, req, &index, f, st, None).await
            }
            Err(e) if io::is_missing(&e) => {
                let listing = pages::views::autoindex(&loc.name, path.trim_end_matches('/'), &full).await?;
                let vars = pages::views::format_vars(&loc.url);
                let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
                ctx.pages.render(
                    "autoindex.html",
                    req,
                    &vars,
                    serde_json::json!({ "artifact_format": listing }),
                )
            }
            Err(e) => Err(e.into()),
        };
    }
    if req.path.strip_prefix(loc.url.as_str()) != Some(path) {
        return Ok(respond::redirect(&format!("{}{}", loc.url, path)));
    }
    let digests = loc.digests(ctx).await;
    let container;
    let digest = match digests.get(path).and_then(|v| v.as_str()) {
        Some(d) => Some(d),
        None => {
            container = container_digest(&loc.name, path);
            container.as_deref()
        }
    };
    // HEAD gets the headers a GET would (type, length, validators,
    // digest), without the body.
    file::serve_open(ctx, req, &full, file, st, digest).await
}

/// `HEAD` with `Digest`: does the blob exist? Renews its lease if so.
async fn probe_digest(ctx: &Ctx, value: &str) -> HttpResult<Response<Body>> {
    let d = Digest::parse(Some(value))?;
    match ctx.store.hold_blob(&d, true).await? {
        None => Err(HttpError::NotFound),
        Some(blob) => {
            let size = blob.size;
            let mut r = respond::ok_empty();
            r.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(size));
            if let Ok(v) = HeaderValue::from_str(value) {
                r.headers_mut().insert("digest", v);
            }
            Ok(r)
        }
    }
}

/// `<file>.sha256` for a file recorded with a `sha256:` digest.
async fn sha256_fallback(ctx: &Ctx, req: &Req, loc: &FormatLoc, path: &str) -> Option<Response<Body>> {
    let base = path.strip_suffix(".sha256")?;
    let url = &loc.url;
    let digests = loc.digests(ctx).await;
    let (algo, hex) = meta::split_digest(digests.get(base)?)?;
    if algo != "sha256" {
        return None;
    }
    let canonical = format!("{url}{path}");
    if req.path != canonical {
        return Some(respond::redirect(&canonical));
    }
    let name = base.rsplit('/').next().unwrap_or(base);
    Some(respond::text(StatusCode::OK, format!("{hex}  {name}\n")))
}

/// For registry-written `container` files: `<grandparent>:<file name>`.
fn container_digest(format: &str, path: &str) -> Option<String> {
    if format != "container" {
        return None;
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() < 3 {
        return None;
    }
    let algo = parts[parts.len() - 3];
    let file = parts[parts.len() - 1];
    Digest::parse(Some(&format!("{algo}:{file}"))).ok()?;
    Some(format!("{algo}:{file}"))
}
