//! The read-only products view (http-api.md §7.15–7.16).

use std::path::PathBuf;
use std::rc::Rc;

use hyper::Response;
use serde_json::{json, Value};

use super::route::VersionAddr;
use super::{name, respond, user_repo, Body, Ctx, HttpError, HttpResult, Req};
use crate::io;

use crate::store::{meta, products, tree, Repo};

/// The product-tree levels a listing URL names, lowercased.
pub struct Level<'a> {
    pub product: Option<&'a str>,
    pub variant: Option<&'a str>,
    pub pbranch: Option<&'a str>,
}

fn level_dir(repo: &Repo, parts: &[String]) -> PathBuf {
    let mut d = repo.products_dir();
    for p in parts {
        d.push(p);
    }
    d
}

fn named(list: Vec<String>) -> Vec<Value> {
    list.into_iter().map(|n| json!({ "name": n })).collect()
}

/// `GET [~u]/products/`, `…/<p>/`, `…/<v>/`, `…/<pb>/`.
pub async fn listing(
    ctx: &Rc<Ctx>,
    req: &Req,
    user: &Option<String>,
    level: Level<'_>,
    slash: bool,
) -> HttpResult<Response<Body>> {
    let repo = user_repo(ctx, user)?;
    let mut parts = Vec::new();
    for raw in [level.product, level.variant, level.pbranch].into_iter().flatten() {
        parts.push(name(raw)?);
    }
    let dir = level_dir(&repo, &parts);
    if !parts.is_empty() && !io::is_dir(&dir).await {
        return Err(HttpError::not_found());
    }
    if !slash {
        return Ok(respond::redirect(&format!("{}/", req.path)));
    }
    // Only the children the caller may read, by their canonical URLs.
    let base = {
        let mut u = format!("{}/products/", repo.url_prefix());
        for p in &parts {
            u.push_str(p);
            u.push('/');
        }
        u
    };
    let children: Vec<String> = tree::list_dirs(&dir)
        .await?
        .into_iter()
        .filter(|c| req.access.can_read(&format!("{base}{c}/")))
        .collect();
    let body = match parts.len() {
        0 => json!({ "products": named(children) }),
        1 => json!({ "product": { "name": parts[0], "product_variants": named(children) } }),
        2 => json!({ "product_variant": { "name": parts[1], "product_branches": named(children) } }),
        _ => {
            let mut versions = Vec::new();
            for v in children {
                let vdir = dir.join(&v);
                let flags = products::version_flags(&vdir).await;
                versions.push(json!({
                    "name": v,
                    "timestamp": meta::timestamp_value(meta::mtime(&vdir.join(".stamp")).await),
                    "locked": flags.locked,
                    "released": flags.released,
                    "stable": flags.stable,
                }));
            }
            json!({ "product_branch": { "name": parts[2], "versions": versions } })
        }
    };
    Ok(respond::json(&body))
}

/// A version found on disk: its folder and canonical URL (with the slash).
pub struct VersionLoc {
    pub dir: PathBuf,
    pub url: String,
    pub product: String,
    pub variant: String,
    pub version: String,
}

impl VersionLoc {
    /// The version's formats that resolve to folders and that the caller may
    /// read, with the folders they resolve to.
    pub async fn readable_formats(&self, access: &crate::auth::Access) -> Vec<(String, PathBuf)> {
        products::version_formats(&self.dir)
            .await
            .into_iter()
            .filter(|(n, _)| access.can_read(&format!("{}{n}/", self.url)))
            .collect()
    }
}

/// Resolves `<p>/<v>/<pb>/<ver>` (the version may be an alias); 404 if missing.
pub async fn locate_version(ctx: &Ctx, access: &crate::auth::Access, addr: &VersionAddr) -> HttpResult<VersionLoc> {
    let repo = user_repo(ctx, &addr.user)?;
    let loc = resolve_version_in(access, &repo, addr, false).await?;
    if !io::is_dir(&loc.dir).await {
        return Err(HttpError::not_found());
    }
    Ok(loc)
}

/// The names, folder and URL of a version of `repo`, without checking that
/// the folder exists. Writes through a version alias get 405.
pub async fn resolve_version_in(
    access: &crate::auth::Access,
    repo: &Repo,
    addr: &VersionAddr,
    write: bool,
) -> HttpResult<VersionLoc> {
    let (p, v, pb) = (name(&addr.product)?, name(&addr.variant)?, name(&addr.pbranch)?);
    let pbranch_dir = repo.products_dir().join(&p).join(&v).join(&pb);
    let ver = super::format::resolve_version(access, repo, &pbranch_dir, &addr.version, write).await?;
    Ok(VersionLoc {
        url: format!("{}/products/{p}/{v}/{pb}/{ver}/", repo.url_prefix()),
        dir: pbranch_dir.join(&ver),
        product: p,
        variant: v,
        version: ver,
    })
}

/// `GET [~u]/products/<p>/<v>/<pb>/<ver>/`.
pub async fn version(ctx: &Rc<Ctx>, req: &Req, addr: &VersionAddr) -> HttpResult<Response<Body>> {
    let loc = locate_version(ctx, &req.access, addr).await?;
    if req.path != loc.url {
        return Ok(respond::redirect(&loc.url));
    }
    let formats: Vec<Value> = loc
        .readable_formats(&req.access)
        .await
        .into_iter()
        .map(|(n, _)| Value::String(n))
        .collect();
    Ok(respond::json(
        &json!({ "version": { "name": loc.version, "artifact_formats": formats } }),
    ))
}
