//! The `latest`, `stable` and `oldstable` aliases (docs/spec/http-api.md §3), for
//! tags of a branch and versions of a product branch alike.

use std::path::Path;

use super::{meta, products, tree, StoreResult};
use crate::names::Alias;

/// Resolves `alias` among the entries of `dir` that `readable` keeps (the
/// caller's read ACL): newest `.stamp` first, equal times in name order;
/// `stable` is the newest entry `is_stable` accepts, `oldstable` the second.
async fn resolve(
    dir: &Path,
    alias: Alias,
    readable: impl Fn(&str) -> bool,
    is_stable: impl AsyncFn(&Path) -> bool,
) -> StoreResult<Option<String>> {
    let mut entries = Vec::new();
    for name in tree::list_dirs(dir).await? {
        if !readable(&name) {
            continue;
        }
        let ts = meta::mtime(&dir.join(&name).join(".stamp")).await.unwrap_or(0.0);
        entries.push((name, ts));
    }
    // Newest first; the sort is stable, so equal times keep name order.
    entries.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
    let skip = match alias {
        Alias::Latest => return Ok(entries.into_iter().next().map(|e| e.0)),
        Alias::Stable => 0,
        Alias::OldStable => 1,
    };
    let mut stable = Vec::new();
    for (name, _) in entries {
        if is_stable(&dir.join(&name)).await {
            stable.push(name);
            if stable.len() > skip {
                break;
            }
        }
    }
    Ok(stable.into_iter().nth(skip))
}

/// A tag alias of the branch folder `branch_dir`: a tag is stable when it
/// has `.stable`.
pub async fn resolve_tag(
    branch_dir: &Path,
    alias: Alias,
    readable: impl Fn(&str) -> bool,
) -> StoreResult<Option<String>> {
    resolve(branch_dir, alias, readable, async |tag: &Path| {
        meta::flag(&tag.join(".stable")).await
    })
    .await
}

/// A version alias of the product branch folder `pbranch_dir`: a version is
/// stable when any of its formats lives in a stable tag.
pub async fn resolve_version(
    pbranch_dir: &Path,
    alias: Alias,
    readable: impl Fn(&str) -> bool,
) -> StoreResult<Option<String>> {
    resolve(pbranch_dir, alias, readable, async |version: &Path| {
        products::version_flags(version).await.stable
    })
    .await
}
