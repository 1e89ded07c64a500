//! The content-addressed blob store `.blobs/<algo>/<xx>/<hex>`.
//!
//! Every request-side sequence that looks at a blob and then relies on it
//! (check → touch → link, check → rename) runs under the blob's key lock,
//! the same lock the orphan GC holds around its statx → unlink. That
//! restores the atomicity the original got from running synchronously
//! (cleanup.md §6, invariant I1).

use std::path::PathBuf;
use std::rc::Rc;

use super::digest::Digest;
use super::locks::KeyGuard;
use super::staging::Staging;
use super::{Store, StoreError, StoreResult};
use crate::io;

/// Keeps a blob out of the orphan GC's reach while a request needs it
/// between two locked sections (after finalisation, before the link).
pub struct BlobPin {
    store: Rc<Store>,
    path: PathBuf,
}

impl Drop for BlobPin {
    fn drop(&mut self) {
        let mut pins = self.store.blob_pins.borrow_mut();
        if let Some(n) = pins.get_mut(&self.path) {
            *n -= 1;
            if *n == 0 {
                pins.remove(&self.path);
            }
        }
    }
}

impl Store {
    pub fn pin_blob(self: &Rc<Self>, path: &std::path::Path) -> BlobPin {
        *self
            .blob_pins
            .borrow_mut()
            .entry(path.to_path_buf())
            .or_insert(0) += 1;
        BlobPin {
            store: self.clone(),
            path: path.to_path_buf(),
        }
    }

    pub fn is_blob_pinned(&self, path: &std::path::Path) -> bool {
        self.blob_pins.borrow().contains_key(path)
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join(d.blob_rel_path())
    }

    /// Locks a blob path against the GC and other request sequences.
    pub async fn lock_blob(&self, path: &std::path::Path) -> KeyGuard<PathBuf> {
        self.blob_locks.lock(path.to_path_buf()).await
    }

    /// `HEAD` with `Digest`: if the blob exists, renew its lease and return
    /// its size.
    pub async fn probe_blob(&self, d: &Digest) -> StoreResult<Option<u64>> {
        let path = self.blob_path(d);
        let _g = self.lock_blob(&path).await;
        match io::stat_opt(&path).await? {
            Some(st) if st.is_file() => {
                touch_ignoring_races(&path)?;
                Ok(Some(st.size))
            }
            _ => Ok(None),
        }
    }

    /// Turns a complete, verified staging file into the blob `d`: drops it
    /// if the blob exists (renewing the blob's lease), renames it into place
    /// otherwise. Existing blobs are never replaced.
    pub async fn finalize_blob(
        self: &Rc<Self>,
        staging: &mut Staging,
        d: &Digest,
    ) -> StoreResult<()> {
        let path = self.blob_path(d);
        let shard = path
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| self.blobs_dir());
        let _g = self.lock_blob(&path).await;
        if io::stat_opt(&path).await?.is_some() {
            touch_ignoring_races(&path)?;
            io::unlink_opt(staging.path()).await?;
            staging.mark_consumed();
            return Ok(());
        }
        let mut created = self.ensure_dir(&shard).await?;
        if let Err(e) = io::rename(staging.path(), &path).await {
            if e.raw_os_error() != Some(libc::ENOENT) {
                return Err(e.into());
            }
            // The shard vanished since we cached it: create it again.
            self.forget_dir(&shard);
            created = self.ensure_dir(&shard).await?;
            io::rename(staging.path(), &path).await?;
        }
        staging.mark_consumed();
        io::chmod(&path, 0o644)?;
        // A fresh blob gets a full lifetime from now, not from its last write.
        io::touch(&path)?;
        drop(_g);
        let mut dirs: Vec<PathBuf> = vec![shard];
        dirs.extend(
            created
                .iter()
                .filter_map(|c| c.parent().map(|p| p.to_path_buf())),
        );
        self.sync_dirs(dirs.iter().map(|p| p.as_path())).await?;
        Ok(())
    }
}

/// Touches a blob we just saw. ENOENT cannot happen under the blob lock
/// unless something outside the server removed it; report that as missing.
fn touch_ignoring_races(path: &std::path::Path) -> StoreResult<()> {
    io::touch(path).map_err(StoreError::from)
}
