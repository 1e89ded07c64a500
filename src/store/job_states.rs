//! What the server knows about job locks, so uploads need not look the
//! `.locked` flag up on disk, and lock requests cannot race them.
//!
//! * Jobs seen without `.locked` are remembered: each upload checks the flag
//!   twice, and on tmpfs a missing name is never kept in the kernel's dentry
//!   cache, so every lookup went to an io-wq worker. Only a definite "no such
//!   file" is remembered, and only this server writes `.locked`.
//! * A lock request first marks its job: from then on uploads into it are
//!   refused. It then waits for the uploads already past their check (they
//!   may be creating a format it cannot see yet) before checking formats.
//! * Every change bumps an epoch, so a disk lookup that overlapped a lock
//!   request does not remember a stale "unlocked".
//! * A delete of a job, tag or branch marks its folder the same way: uploads
//!   into a job below it wait until the folder is gone (and then create it
//!   anew), and those already linking finish before anything is removed.

use crate::pathmap::PathSet;
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};

use crate::io;

/// How many unlocked jobs are remembered.
const UNLOCKED_JOBS: usize = 65536;

#[derive(Default)]
pub struct JobStates {
    unlocked: RefCell<PathSet>,
    epoch: Cell<u64>,
    /// Bumped when a lock request begins or ends (rare, unlike `epoch`).
    lock_epoch: Cell<u64>,
    /// Jobs a lock request is working on.
    locking: RefCell<PathSet>,
    /// The jobs with uploads past their check and still linking.
    linking: super::busy::BusyPaths,
    /// Job, tag and branch folders being deleted.
    removing: super::busy::BusyPaths,
}

impl JobStates {
    /// Whether the job folder `dir` is locked or being locked.
    pub async fn is_locked(&self, dir: &Path) -> bool {
        loop {
            if self.locking.borrow().contains(dir) {
                return true;
            }
            if self.unlocked.borrow().contains(dir) {
                return false;
            }
            let (epoch, lock_epoch) = (self.epoch.get(), self.lock_epoch.get());
            let found = io::exists_checked(&dir.join(".locked")).await;
            if self.lock_epoch.get() != lock_epoch {
                // A lock request began or ended during the lookup: its
                // answer may already be stale, so look again.
                continue;
            }
            return match found {
                Ok(true) => true,
                Ok(false) => {
                    // Remembered only if nothing below changed meanwhile.
                    if self.epoch.get() == epoch {
                        let mut set = self.unlocked.borrow_mut();
                        if set.len() >= UNLOCKED_JOBS {
                            set.clear();
                        }
                        set.insert(dir.to_path_buf());
                    }
                    false
                }
                // As without the cache: an unreadable flag does not block uploads.
                Err(_) => false,
            };
        }
    }

    /// A lock request starts on `dir`: uploads into it are refused until
    /// [`JobStates::end_lock`].
    pub fn begin_lock(&self, dir: &Path) {
        self.lock_epoch.set(self.lock_epoch.get() + 1);
        self.forget(dir);
        self.locking.borrow_mut().insert(dir.to_path_buf());
    }

    /// The lock request on `dir` answered (or found the job already locked).
    pub fn end_lock(&self, dir: &Path) {
        self.lock_epoch.set(self.lock_epoch.get() + 1);
        self.forget(dir);
        self.locking.borrow_mut().remove(dir);
    }

    fn forget(&self, dir: &Path) {
        self.epoch.set(self.epoch.get() + 1);
        self.unlocked.borrow_mut().remove(dir);
    }

    /// Counts an upload into the job `dir` as linking until the guard drops.
    pub fn linking_into(&self, dir: PathBuf) -> super::busy::BusyGuard<'_> {
        self.linking.enter(dir)
    }

    /// Waits until no upload is linking into the job `dir`.
    pub async fn linking_drained(&self, dir: &Path) {
        self.linking.wait_until_none(|p| p == dir).await;
    }

    /// A delete of the folder `dir` (a job, tag or branch) starts: uploads
    /// into jobs below it wait until the guard drops, and those already
    /// linking there are waited for before this returns.
    pub async fn begin_removal(&self, dir: &Path) -> super::busy::BusyGuard<'_> {
        let guard = self.removing.enter(dir.to_path_buf());
        tracing::debug!("deleting {}: waiting for uploads still linking", dir.display());
        self.linking.wait_until_none(|p| p.starts_with(dir)).await;
        guard
    }

    /// Whether the job folder `job_dir` lies in a folder being deleted.
    pub fn being_removed(&self, job_dir: &Path) -> bool {
        self.removing.any(|p| job_dir.starts_with(p))
    }

    /// Waits until no folder holding the job folder `job_dir` is being deleted.
    pub async fn removed(&self, job_dir: &Path) {
        self.removing.wait_until_none(|p| job_dir.starts_with(p)).await;
    }

    /// Forgets the jobs at or below `dir`.
    pub fn forget_tree(&self, dir: &Path) {
        self.epoch.set(self.epoch.get() + 1);
        self.unlocked.borrow_mut().retain(|p| !p.starts_with(dir));
    }
}
