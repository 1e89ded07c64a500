//! Format directories (http-api.md §7.8–7.9) and format lookup shared with
//! the artifact endpoints.

use std::path::PathBuf;
use std::rc::Rc;

use hyper::header::{HeaderValue, CONTENT_DISPOSITION};
use hyper::{Method, Response};
use serde_json::{json, Value};

use super::route::{FormatAddr, Parent, VersionAddr};
use super::{detached, file, job_ref, name, respond, user_repo, Body, Ctx, HttpError, HttpResult, Req};
use crate::auth::Access;
use crate::cleanup::{RunKind, Trigger};
use crate::io;
use crate::store::digests::Digests;
use crate::store::meta;
use crate::names::Alias;
use crate::store::repo::JobRef;

/// A format found on disk.
pub struct FormatLoc {
    /// The job, for formats addressed under `branches/`.
    pub job: Option<JobRef>,
    pub name: String,
    pub dir: PathBuf,
    /// Canonical URL of the format directory, with its trailing slash.
    pub url: String,
}

impl FormatLoc {
    /// The format's `.digests`. Formats reached through `products/` symlinks
    /// are read from disk: the cache is keyed by the `branches/` path.
    pub async fn digests(&self, ctx: &Ctx) -> Rc<Digests> {
        if self.job.is_some() {
            ctx.store.digests(&self.dir).await
        } else {
            ctx.store.digests_via_link(&self.dir).await
        }
    }
}

/// Resolves the format of a route. `write` requests through an alias get
/// 405 with `Allow: GET`. Returns 404 when the directory does not exist.
pub async fn locate(ctx: &Ctx, access: &Access, addr: &FormatAddr, write: bool) -> HttpResult<FormatLoc> {
    let loc = resolve(ctx, access, addr, write).await?;
    if !io::is_dir(&loc.dir).await {
        return Err(HttpError::not_found());
    }
    Ok(loc)
}

/// Like [`locate`], without checking that the directory exists.
pub async fn resolve(ctx: &Ctx, access: &Access, addr: &FormatAddr, write: bool) -> HttpResult<FormatLoc> {
    let FormatAddr { user, parent, format } = addr;
    let repo = user_repo(ctx, user)?;
    let fname = name(format)?;
    let loc = match parent {
        Parent::Job { branch, tag, job } => {
            let jr = job_ref(access, repo.clone(), branch, tag, job, write).await?;
            FormatLoc {
                dir: jr.repo.format_dir(&jr.branch, &jr.tag, &jr.job, &fname),
                url: jr.format_url(&fname),
                job: Some(jr),
                name: fname,
            }
        }
        Parent::Version {
            product,
            variant,
            pbranch,
            version,
        } => {
            let addr = VersionAddr {
                user: user.clone(),
                product: product.clone(),
                variant: variant.clone(),
                pbranch: pbranch.clone(),
                version: version.clone(),
            };
            let v = super::products::resolve_version_in(access, &repo, &addr, write).await?;
            FormatLoc {
                url: format!("{}{fname}/", v.url),
                dir: v.dir.join(&fname),
                job: None,
                name: fname,
            }
        }
    };
    Ok(loc)
}

/// A version segment, which may be an alias (writes through one get 405).
pub async fn resolve_version(
    access: &Access,
    repo: &crate::store::Repo,
    pbranch_dir: &std::path::Path,
    raw: &str,
    write: bool,
) -> HttpResult<String> {
    let v = crate::names::lower(raw);
    match Alias::parse(&v) {
        Some(_) if write => Err(HttpError::method_not_allowed("GET")),
        Some(alias) => {
            // The URL of a version, from its folder below the repository's products/.
            let rel = pbranch_dir.strip_prefix(repo.products_dir()).unwrap_or(pbranch_dir);
            let prefix = format!("{}/products/{}/", repo.url_prefix(), rel.display());
            let readable = |ver: &str| access.can_read(&format!("{prefix}{ver}/"));
            crate::store::products::resolve_version_alias(pbranch_dir, alias, readable)
                .await?
                .ok_or_else(HttpError::not_found)
        }
        None => name(&v),
    }
}

pub async fn format_dir(ctx: &Rc<Ctx>, req: &mut Req, addr: &FormatAddr) -> HttpResult<Response<Body>> {
    let method = req.method().clone();
    let is_product = matches!(addr.parent, Parent::Version { .. });
    if method == Method::DELETE && is_product {
        locate(ctx, &req.access, addr, false).await?;
        return Err(HttpError::bad_request("Deleting product formats is not supported"));
    }
    if method == Method::PATCH && is_product {
        return Err(HttpError::method_not_allowed("GET"));
    }
    let write = !matches!(method, Method::GET | Method::HEAD);
    let loc = locate(ctx, &req.access, addr, write).await?;
    match method {
        Method::GET => {
            if req.path != loc.url {
                return Ok(respond::redirect(&loc.url));
            }
            if req.wants_html() {
                let index = loc.dir.join("index.html");
                if io::stat_opt(&index).await?.map(|s| s.is_file()).unwrap_or(false) {
                    return file::serve(ctx, req, &index, None, true).await;
                }
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
        Method::HEAD => {
            if meta::flag(&loc.dir.join(".dirty")).await {
                return Err(HttpError::not_found());
            }
            if req.path != loc.url {
                return Ok(respond::redirect(&loc.url));
            }
            // Like the original: no Content-Length on this probe.
            Ok(Response::new(Body::empty()))
        }
        Method::PATCH => {
            let (store, dir) = (ctx.store.clone(), loc.dir.clone());
            detached(async move { store.finalize_format(&dir).await }).await??;
            Ok(respond::ok_empty())
        }
        Method::DELETE => {
            let Some(job) = &loc.job else {
                return Err(HttpError::not_found());
            };
            let (store, job, name, dir) = (ctx.store.clone(), job.clone(), loc.name.clone(), loc.dir.clone());
            detached(async move {
                let _g = store.format_locks.lock(dir).await;
                store.delete_format(&job, &name).await
            })
            .await??;
            ctx.cleanup.schedule(RunKind::OrphansOnly, Trigger::Delete);
            Ok(respond::ok_empty())
        }
        _ => Err(HttpError::method_not_allowed("DELETE,GET,HEAD,PATCH")),
    }
}

/// `GET|HEAD …/<format>` without the slash: a redirect to the only file, or
/// to the format directory.
pub async fn shortcut(ctx: &Rc<Ctx>, req: &mut Req, addr: &FormatAddr) -> HttpResult<Response<Body>> {
    let loc = locate(ctx, &req.access, addr, false).await?;
    if meta::flag(&loc.dir.join(".dirty")).await {
        return Err(HttpError::not_found());
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
