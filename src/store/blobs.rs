//! The content-addressed blob store `.blobs/<algo>/<xx>/<hex>`.
//!
//! Every request-side sequence that looks at a blob and then relies on it
//! (check → touch → link, check → rename → link) holds a pin on the blob in
//! the [`PinTable`](super::pins::PinTable), which the orphan GC consults
//! between its statx and its unlink. That restores the atomicity the
//! original got from running synchronously (docs/spec/cleanup.md §6, invariant I1).

use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::digest::Digest;
use super::pins::Pin;
use super::staging::Staging;
use super::{Store, StoreResult};
use crate::io;

/// Staging files idle at least this long get a fresh mtime as blobs.
const BLOB_TOUCH_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// A blob that exists, pinned against the GC until this is dropped.
pub struct HeldBlob {
    pub path: PathBuf,
    pub size: u64,
    _pin: Pin,
}

impl Store {
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        // Allocated once at its final size, as every upload builds one.
        crate::io::join(&self.root, &d.blob_rel_path())
    }

    /// Finds an existing blob, renews its lease (mtime := now) and keeps it
    /// pinned. `None` if there is no such blob. The size is only looked up
    /// when `need_size` (quota accounting); otherwise the touch itself is
    /// the existence check, saving a ring round trip.
    pub async fn hold_blob(&self, d: &Digest, need_size: bool) -> StoreResult<Option<HeldBlob>> {
        let path = self.blob_path(d);
        let pin = self.pins.pin(&path).await;
        let size = if need_size {
            match io::stat_opt(&path).await? {
                Some(st) if st.is_file() => st.size,
                _ => return Ok(None),
            }
        } else {
            0
        };
        match io::touch(&path) {
            Ok(()) => Ok(Some(HeldBlob { path, size, _pin: pin })),
            Err(e) if io::is_missing(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Turns a complete, verified staging file into the blob `d`: drops it
    /// if the blob exists (renewing the blob's lease), renames it into place
    /// otherwise. Existing blobs are never replaced. The blob stays pinned
    /// in the returned value, so it is linked before the GC may take it.
    pub async fn commit_blob(self: &Rc<Self>, staging: &mut Staging, d: &Digest) -> StoreResult<HeldBlob> {
        let path = self.blob_path(d);
        let shard = path.parent().map(Path::to_path_buf).unwrap_or_else(|| self.blobs_dir());
        let pin = self.pins.pin(&path).await;
        // Same digest, same size: the staging length is the blob's size.
        let size = staging.len();
        let mut created = self.ensure_dir(&shard).await?;
        // Blob mode before the rename: whatever happens next, a blob is never 0600.
        staging.set_mode(super::staging::BLOB_MODE)?;
        let mut renamed = staging.move_to(&path).await;
        if matches!(&renamed, Err(e) if e.raw_os_error() == Some(libc::ENOENT)) {
            // The shard vanished since we cached it: create it again.
            self.forget_dir(&shard);
            created = self.ensure_dir(&shard).await?;
            renamed = staging.move_to(&path).await;
        }
        match renamed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Known content: renew the existing blob's lease, drop ours.
                io::touch(&path)?;
                staging.remove_known().await?;
                return Ok(HeldBlob { path, size, _pin: pin });
            }
            Err(e) => return Err(e.into()),
        }
        staging.mark_consumed();
        // A fresh blob gets a full lifetime from now, not from its last
        // write: that differs only for a file that sat idle (a registry
        // session finished later), so only such a file is touched.
        if staging.idle() >= BLOB_TOUCH_IDLE {
            staging.touch()?;
        }
        let mut dirs: Vec<PathBuf> = vec![shard];
        dirs.extend(created.iter().filter_map(|c| c.parent().map(Path::to_path_buf)));
        self.sync_dirs(dirs.iter().map(PathBuf::as_path)).await?;
        Ok(HeldBlob { path, size, _pin: pin })
    }
}
