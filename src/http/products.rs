//! The read-only products view (docs/spec/http-api.md §7.15–7.16).

use std::path::PathBuf;
use std::rc::Rc;

use hyper::Response;
use serde_json::{json, Value};

use super::route::{ProductsAddr, VersionAddr};
use super::{answer, locate, pages, respond, user_var, Body, Ctx, HttpError, HttpResult, Req};
use crate::io;
use crate::store::{meta, products, tree};

fn named(list: Vec<String>) -> Vec<Value> {
    list.into_iter().map(|n| json!({ "name": n })).collect()
}

/// `GET [~u]/products/`, `…/<p>/`, `…/<v>/`, `…/<pb>/`.
pub async fn list_products(ctx: &Rc<Ctx>, req: &Req, addr: &ProductsAddr) -> HttpResult<Response<Body>> {
    let repo = locate::repo(ctx, &addr.user)?;
    let mut parts = Vec::new();
    for raw in &addr.levels {
        parts.push(locate::name(raw)?);
    }
    let mut dir: PathBuf = repo.products_dir();
    for p in &parts {
        dir.push(p);
    }
    if !parts.is_empty() && !io::is_dir(&dir).await {
        return Err(HttpError::NotFound);
    }
    if !addr.slash {
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
    let template = [
        "products.html",
        "product.html",
        "product_variant.html",
        "product_branch.html",
    ][parts.len().min(3)];
    let mut vars = user_var(&repo);
    for (k, v) in ["product", "variant", "product_branch"].into_iter().zip(&parts) {
        vars.push((k, v.clone()));
    }
    let body = match parts.len() {
        0 => {
            let mut products = Vec::new();
            for c in children {
                let icon = if req.wants_html() {
                    crate::http::static_files::product_icon(ctx, &c).await
                } else {
                    String::new()
                };
                products.push(if req.wants_html() {
                    json!({ "name": c, "icon": icon })
                } else {
                    json!({ "name": c })
                });
            }
            json!({ "products": products })
        }
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
    answer(ctx, req, template, vars, body)
}

/// `GET [~u]/products/<p>/<v>/<pb>/<ver>/`.
pub async fn get_version(ctx: &Rc<Ctx>, req: &Req, addr: &VersionAddr) -> HttpResult<Response<Body>> {
    let loc = locate::existing_version(ctx, &req.access, addr).await?;
    if req.path != loc.url {
        return Ok(respond::redirect(&loc.url));
    }
    let formats = loc.readable_formats(&req.access).await;
    if !req.wants_html() {
        let names: Vec<Value> = formats.into_iter().map(|(n, _)| Value::String(n)).collect();
        return Ok(respond::json(
            &json!({ "version": { "name": loc.version, "artifact_formats": names } }),
        ));
    }
    let repo = locate::repo(ctx, &addr.user)?;
    let mut entries = Vec::with_capacity(formats.len());
    for (n, _) in &formats {
        let url = format!("{}{n}/", loc.url);
        entries.push(pages::views::format_entry(ctx, n, &loc.dir.join(n), &url, true).await);
    }
    let links = pages::views::branch_links(&repo, &formats, &req.access);
    let mut vars = user_var(&repo);
    vars.extend([
        ("product", loc.product.clone()),
        ("variant", loc.variant.clone()),
        ("product_branch", locate::name(&addr.pbranch)?),
        ("version", loc.version.clone()),
    ]);
    let data = json!({ "version": {
        "name": loc.version, "artifact_formats": entries, "branch_links": links,
    }});
    answer(ctx, req, "product_version.html", vars, data)
}
