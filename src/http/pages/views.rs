//! What the pages show beyond the JSON data: format entries with their
//! install hints, directory listings, the latest releases, the jobs behind
//! a product version.

use std::path::Path;

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Map, Value};

use crate::auth::Access;
use crate::http::Ctx;
use crate::io;
use crate::names;
use crate::store::{meta, tree, Repo};

/// A format as the job and version pages show it: `{name, internal, rpm,
/// deb, url}` (`url`: its folder's URL path).
pub async fn format_entry(ctx: &Ctx, name: &str, dir: &Path, url: &str, via_link: bool) -> Value {
    let digests = if via_link {
        ctx.store.digests_via_link(dir).await
    } else {
        ctx.store.digests(dir).await
    };
    json!({
        "name": name,
        "internal": ctx.cfg.is_internal_format(name),
        "rpm": digests.contains_key("repodata/repomd.xml"),
        "deb": digests.contains_key("Release"),
        "url": url,
    })
}

/// The URL variables of a format's pages, read from its canonical URL
/// (`[/~user]/branches/<b>/<t>/<j>/<fmt>/` or
/// `[/~user]/products/<p>/<v>/<pb>/<ver>/<fmt>/`).
pub fn format_vars(format_url: &str) -> crate::http::Vars {
    let mut segs: Vec<&str> = format_url.trim_matches('/').split('/').collect();
    let mut vars = Vec::new();
    if let Some(u) = segs.first().and_then(|s| s.strip_prefix('~')) {
        vars.push(("user", u.to_string()));
        segs.remove(0);
    }
    let names: &[&'static str] = match segs.first() {
        Some(&"branches") => &["branch", "tag", "job", "format"],
        _ => &["product", "variant", "product_branch", "version", "format"],
    };
    for (k, v) in names.iter().zip(segs.iter().skip(1)) {
        vars.push((*k, v.to_string()));
    }
    vars
}

/// Sizes are looked up this many at a time.
const STAT_WINDOW: usize = 64;

/// A folder of a format as the auto-index shows it: the real listing,
/// folders then files, each in code point order, without the reserved
/// files, with every file's size.
pub async fn autoindex(name: &str, relpath: &str, dir: &Path) -> std::io::Result<Value> {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for e in io::read_dir_sorted(dir)? {
        let Some(n) = e.name.to_str() else { continue };
        if (relpath.is_empty() && (n == ".digests" || n == ".dirty")) || names::is_temporary_name(n) {
            continue;
        }
        let is_dir = match e.kind {
            Some(io::EntryKind::Dir) => true,
            Some(io::EntryKind::Symlink) | None => io::is_dir(&dir.join(n)).await,
            _ => false,
        };
        if is_dir {
            dirs.push(n.to_string());
        } else {
            files.push(n.to_string());
        }
    }
    // From the caches where they have them (no path walk each), the rest
    // many at once through the ring, a bounded window of them.
    let mut sizes = Map::new();
    let cached = io::CachedDir::open(dir);
    let mut missed = Vec::new();
    for f in &files {
        match cached.as_ref().and_then(|d| d.stat(std::ffi::OsStr::new(f))) {
            Some(st) => {
                sizes.insert(f.clone(), st.map(|s| s.size).unwrap_or(0).into());
            }
            None => missed.push(f),
        }
    }
    let mut running = FuturesUnordered::new();
    for f in missed {
        running.push(async move { (f.clone(), io::stat(&dir.join(f)).await.map(|s| s.size).unwrap_or(0)) });
        if running.len() >= STAT_WINDOW {
            if let Some((f, s)) = running.next().await {
                sizes.insert(f, s.into());
            }
        }
    }
    while let Some((f, s)) = running.next().await {
        sizes.insert(f, s.into());
    }
    Ok(json!({
        "name": name,
        "relpath": relpath,
        "dirs": dirs,
        "files": files,
        "sizes": sizes,
    }))
}

/// Up to 10 product versions of `repo` the caller may read, newest
/// `.stamp` first: `{name, product, variant, product_branch, url, href,
/// archive_name}` (`href` relative to the repository's home page).
pub async fn latest_releases(ctx: &Ctx, repo: &Repo, access: &Access) -> Vec<Value> {
    let products = repo.products_dir();
    let mut all = Vec::new();
    for p in tree::list_dirs(&products).await.unwrap_or_default() {
        for v in tree::list_dirs(&products.join(&p)).await.unwrap_or_default() {
            for pb in tree::list_dirs(&products.join(&p).join(&v)).await.unwrap_or_default() {
                let dir = products.join(&p).join(&v).join(&pb);
                for ver in tree::list_dirs(&dir).await.unwrap_or_default() {
                    let stamp = meta::mtime(&dir.join(&ver).join(".stamp")).await.unwrap_or(0.0);
                    all.push((stamp, p.clone(), v.clone(), pb.clone(), ver));
                }
            }
        }
    }
    all.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    let prefix = repo.url_prefix();
    let mut out = Vec::new();
    for (_, p, v, pb, ver) in all {
        let rel = format!("products/{p}/{v}/{pb}/{ver}/");
        let url = format!("{prefix}/{rel}");
        if !access.can_read(&url) {
            continue;
        }
        out.push(json!({
            "name": ver,
            "product": p,
            "variant": v,
            "product_branch": pb,
            "url": url,
            "href": rel,
            "archive_name": format!("{p}-{v}-v{ver}"),
            "icon": crate::http::static_files::product_icon(ctx, &p).await,
        }));
        if out.len() == 10 {
            break;
        }
    }
    out
}

/// The jobs whose formats a version links, that the caller may read: their
/// URL paths, sorted.
pub fn branch_links(repo: &Repo, formats: &[(String, std::path::PathBuf)], access: &Access) -> Vec<Value> {
    let branches = io::canonicalize(&repo.branches_dir()).unwrap_or_else(|_| repo.branches_dir());
    let mut links: Vec<String> = formats
        .iter()
        .filter_map(|(_, real)| {
            let job = real.parent()?.strip_prefix(&branches).ok()?;
            let url = format!("{}/branches/{}/", repo.url_prefix(), job.display());
            access.can_read(&url).then_some(url)
        })
        .collect();
    links.sort();
    links.dedup();
    links.into_iter().map(Value::String).collect()
}
