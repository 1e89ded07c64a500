//! The products view: relative symlinks from `products/…/<version>/<format>`
//! into `branches/`, and the job's `.product` link back.

use std::path::{Path, PathBuf};

use super::repo::JobRef;
use crate::io;

/// Resolves a symlink to the canonical path of what it points to.
fn resolve_link(link: &Path) -> Option<PathBuf> {
    io::canonicalize(link).ok()
}

/// Removes the job's contributions to its product version (docs/spec/http-api.md §7.6):
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
    prune_version(&version_dir, &job.repo.products_dir()).await
}

/// When a version holds nothing but `.stamp`, removes it and every empty
/// parent up to and including `products/`.
async fn prune_version(version_dir: &Path, products_dir: &Path) -> std::io::Result<()> {
    let entries = io::read_dir_sorted(version_dir)?;
    if entries.iter().any(|e| e.name != ".stamp") {
        return Ok(());
    }
    // Compare canonical paths: the version folder was reached through links.
    let Ok(products_dir) = io::canonicalize(products_dir) else {
        return Ok(());
    };
    let products_dir = products_dir.as_path();
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

/// The product path components of a job's metadata, when it has all four
/// keys. A value that could not be a folder name (a `/`, a leading `.`) is
/// refused rather than followed outside the products tree.
fn product_path(metadata: &serde_json::Map<String, serde_json::Value>) -> Result<Option<[String; 4]>, String> {
    let mut out: Vec<String> = Vec::with_capacity(4);
    for key in ["product", "product_variant", "product_branch", "version"] {
        match metadata.get(key).and_then(|v| v.as_str()) {
            Some(v) if !v.is_empty() => {
                if !crate::names::is_valid_name(v) {
                    return Err(format!("Invalid {key}: {v}"));
                }
                out.push(v.to_string());
            }
            _ => return Ok(None),
        }
    }
    Ok(Some([out[0].clone(), out[1].clone(), out[2].clone(), out[3].clone()]))
}

/// Links a job into `products/<p>/<v>/<pb>/<ver>/` when its metadata has all
/// four product keys: the version folder and its `.stamp`, the job's
/// `.product` link, and one link per format, in name order. A format name
/// another job already linked there fails with the original's `[Errno 17]`
/// message; links made before it stay.
pub async fn create_product_links(
    job: &JobRef,
    metadata: &serde_json::Map<String, serde_json::Value>,
) -> super::StoreResult<()> {
    let Some([p, v, pb, ver]) = product_path(metadata).map_err(super::StoreError::Refused)? else {
        return Ok(());
    };
    let version_dir = job.repo.products_dir().join(&p).join(&v).join(&pb).join(&ver);
    io::mkdir_all(&version_dir).await?;
    io::create_if_missing(&version_dir.join(".stamp")).await?;
    let job_dir = job.dir();
    let product_target = PathBuf::from(format!("../../../../products/{p}/{v}/{pb}/{ver}"));
    let product_link = job_dir.join(".product");
    let _ = io::unlink_opt(&product_link).await;
    io::symlink(&product_target, &product_link).await?;
    for f in super::tree::list_dirs(&job_dir).await? {
        let target = PathBuf::from(format!(
            "../../../../../branches/{}/{}/{}/{f}",
            job.branch, job.tag, job.job
        ));
        let link = version_dir.join(&f);
        if let Err(e) = io::symlink(&target, &link).await {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                return Err(super::StoreError::Refused(format!(
                    "[Errno 17] File exists: '{}' -> '{}'",
                    target.display(),
                    link.display()
                )));
            }
            return Err(e.into());
        }
    }
    Ok(())
}

/// Flags of a product version, derived from the formats it links to.
#[derive(Debug, Default, Clone, Copy)]
pub struct VersionFlags {
    pub locked: bool,
    pub released: bool,
    pub stable: bool,
}

/// The formats of a version that resolve to existing folders, in name order,
/// with the folders they resolve to.
pub async fn version_formats(version_dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for name in super::tree::list_dirs(version_dir).await.unwrap_or_default() {
        if let Ok(real) = io::canonicalize(&version_dir.join(&name)) {
            out.push((name, real));
        }
    }
    out
}

/// `locked`: a format's tag has `.locked`; `released`: a format's job has
/// `.released`; `stable`: a format's tag has `.stable`.
pub async fn version_flags(version_dir: &Path) -> VersionFlags {
    let mut flags = VersionFlags::default();
    for (_, fmt) in version_formats(version_dir).await {
        let Some(job) = fmt.parent() else { continue };
        let Some(tag) = job.parent() else { continue };
        flags.locked |= super::meta::flag(&tag.join(".locked")).await;
        flags.stable |= super::meta::flag(&tag.join(".stable")).await;
        flags.released |= super::meta::flag(&job.join(".released")).await;
    }
    flags
}
