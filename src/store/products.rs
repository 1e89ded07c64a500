//! The products view: relative symlinks from `products/…/<version>/<format>`
//! into `branches/`, and the job's `.product` link back.

use std::path::{Path, PathBuf};

use super::repo::JobRef;
use crate::io;

/// Resolves a symlink's target against the directory holding the link.
fn resolve_link(link: &Path) -> Option<PathBuf> {
    let target = io::read_link(link).ok()?;
    Some(match link.parent() {
        Some(parent) if target.is_relative() => parent.join(target),
        _ => target,
    })
}

/// Removes the job's contributions to its product version (http-api.md §7.6):
/// links to this job's formats and dangling links go, an emptied version is
/// removed with its empty parents up to `products/`, and `.product` goes.
pub async fn remove_product_links(job: &JobRef) -> std::io::Result<()> {
    let job_dir = job.dir();
    let product_link = job_dir.join(".product");
    let st = match io::lstat(&product_link).await {
        Ok(st) => st,
        Err(e) if io::is_missing(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    if !st.is_symlink() {
        // A real directory (as in shipped fixtures): nothing we can unlink safely.
        return Ok(());
    }
    if let Some(version_dir) = resolve_link(&product_link) {
        if io::is_dir(&version_dir).await {
            for e in io::read_dir_sorted(&version_dir)? {
                let entry = version_dir.join(&e.name);
                let Ok(lst) = io::lstat(&entry).await else {
                    continue;
                };
                if !lst.is_symlink() {
                    continue;
                }
                let remove = match io::canonicalize(&entry) {
                    Err(_) => true, // dangling
                    Ok(resolved) => io::canonicalize(&job_dir.join(&e.name))
                        .map(|own| own == resolved)
                        .unwrap_or(false),
                };
                if remove {
                    io::unlink_opt(&entry).await?;
                }
            }
            prune_version(&version_dir, &job.repo.products_dir()).await?;
        }
    }
    io::unlink_opt(&product_link).await?;
    Ok(())
}

/// Removes dangling links left in the job's version after one of its
/// formats was deleted, then prunes the version if it became empty.
pub async fn remove_dangling_links(job: &JobRef) -> std::io::Result<()> {
    let Some(version_dir) = resolve_link(&job.dir().join(".product")) else {
        return Ok(());
    };
    if !io::is_dir(&version_dir).await {
        return Ok(());
    }
    for e in io::read_dir_sorted(&version_dir)? {
        let entry = version_dir.join(&e.name);
        if matches!(io::lstat(&entry).await, Ok(st) if st.is_symlink()) && io::stat_opt(&entry).await?.is_none() {
            io::unlink_opt(&entry).await?;
        }
    }
    Ok(())
}

/// When a version holds nothing but `.stamp`, removes it and every empty
/// parent up to and including `products/`.
async fn prune_version(version_dir: &Path, products_dir: &Path) -> std::io::Result<()> {
    let entries = io::read_dir_sorted(version_dir)?;
    if entries.iter().any(|e| e.name != ".stamp") {
        return Ok(());
    }
    io::unlink_opt(&version_dir.join(".stamp")).await?;
    let mut dir = version_dir.to_path_buf();
    loop {
        if io::rmdir(&dir).await.is_err() {
            break;
        }
        if dir == products_dir {
            break;
        }
        match dir.parent() {
            Some(p) if p.starts_with(products_dir) => dir = p.to_path_buf(),
            _ => break,
        }
    }
    Ok(())
}
