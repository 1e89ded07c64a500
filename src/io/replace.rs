//! Replacing a file atomically: new content (or a new hard link) is made
//! under a temporary name, then renamed over the target, so a crash leaves
//! the old file or the new one, never a torn one.
//!
//! Temporary names live in a scratch folder of the root
//! (`<root>/.dlrepo-rs/tmp`), on the same file system but outside every
//! folder a listing or a download can reach: a `kill -9` between the two
//! steps leaves nothing inside a format, and whatever it leaves in the
//! scratch folder is swept at the next start. A target on another file
//! system (a rename would fail with `EXDEV`) gets its temporary next to it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{copy_file, link, open, random_hex, read_dir_sorted_opt, rename, unlink, write_all_at};

static SCRATCH: OnceLock<PathBuf> = OnceLock::new();

/// Sets the scratch folder, once, at startup.
pub fn set_scratch_dir(dir: PathBuf) {
    let _ = SCRATCH.set(dir);
}

/// Creates the scratch folder if needed and removes what an earlier run
/// left in it. Runs before any request is served. Returns how many
/// leftovers it removed.
pub async fn sweep_scratch() -> io::Result<usize> {
    let Some(dir) = SCRATCH.get() else { return Ok(0) };
    super::mkdir_all(dir).await?;
    let mut removed = 0;
    for e in read_dir_sorted_opt(dir)? {
        let p = dir.join(&e.name);
        match unlink(&p).await {
            Ok(()) => removed += 1,
            Err(err) => tracing::warn!("cannot remove the leftover {}: {err}", p.display()),
        }
    }
    Ok(removed)
}

/// Where a temporary for `target` goes: the scratch folder, or next to the
/// target (`beside`, or when no scratch folder is set).
fn temp_for(target: &Path, beside: bool) -> PathBuf {
    match SCRATCH.get() {
        Some(dir) if !beside => dir.join(random_hex(16)),
        _ => {
            // Starts with `.`, so no listing shows it.
            let name = target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            target.with_file_name(format!(".{}.tmp-{}", name.trim_start_matches('.'), random_hex(8)))
        }
    }
}

fn cross_device(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EXDEV)
}

/// Makes a temporary with `make`, then renames it over `target`; the
/// temporary is removed whatever fails. Retried next to the target when the
/// scratch folder is on another file system.
async fn replace(target: &Path, make: impl AsyncFn(&Path) -> io::Result<()>) -> io::Result<()> {
    let mut beside = false;
    loop {
        let tmp = temp_for(target, beside);
        let res = async {
            make(&tmp).await?;
            rename(&tmp, target).await
        }
        .await;
        match res {
            Ok(()) => {
                // Renaming between two links of one inode does nothing and
                // leaves the temporary name: remove it in every case.
                let _ = unlink(&tmp).await;
                return Ok(());
            }
            Err(e) => {
                let _ = unlink(&tmp).await;
                if cross_device(&e) && !beside {
                    beside = true;
                    continue;
                }
                return Err(e);
            }
        }
    }
}

/// Replaces a small file with `data`; with `durable` the data is synced
/// before the rename (the caller syncs the folder).
pub async fn write_file_atomic(path: &Path, data: Vec<u8>, durable: bool) -> io::Result<()> {
    replace(path, async |tmp: &Path| {
        let file = open(tmp, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o666).await?;
        let res = async {
            if !data.is_empty() {
                write_all_at(&file, data.clone(), 0).await?;
            }
            if durable {
                file.sync_data().await?;
            }
            Ok::<(), io::Error>(())
        }
        .await;
        let closed = file.close().await;
        res.and(closed)
    })
    .await
}

/// Makes `target` a hard link of `src`, replacing what is there.
pub async fn replace_with_link(src: &Path, target: &Path) -> io::Result<()> {
    replace(target, async |tmp: &Path| link(src, tmp).await).await
}

/// Replaces `target` by a private copy of `src` (mode 0644).
pub async fn replace_with_copy(src: &Path, target: &Path, chunk: usize) -> io::Result<()> {
    replace(target, async |tmp: &Path| copy_file(src, tmp, chunk).await).await
}
