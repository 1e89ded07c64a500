//! The link step shared by uploads and link-only PUTs (docs/spec/http-api.md §8.5).
//!
//! Order matters for "a refused upload creates nothing": the blob is looked
//! up and the quota checked before any folder is created, and folders this
//! request created are removed again, as far as they are empty, if the link
//! itself fails.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::blobs::HeldBlob;
use super::digest::Digest;
use super::repo::JobRef;
use super::{Store, StoreError, StoreResult};
use crate::io;

/// Where an artifact goes.
#[derive(Debug, Clone)]
pub struct ArtifactRef {
    pub job: JobRef,
    pub format: String,
    /// Relative path inside the format, as decoded from the URL.
    pub path: String,
}

impl ArtifactRef {
    pub fn format_dir(&self) -> PathBuf {
        let j = &self.job;
        j.repo.format_dir(&j.branch, &j.tag, &j.job, &self.format)
    }
}

/// What the link step created, to undo it if the link fails.
#[derive(Default)]
struct Created {
    dirs: Vec<PathBuf>,
    files: Vec<PathBuf>,
}

impl Created {
    async fn undo(self) {
        for f in self.files.iter().rev() {
            let _ = io::unlink_opt(f).await;
        }
        for d in self.dirs.iter().rev() {
            let _ = io::rmdir(d).await;
        }
    }
}

impl Store {
    /// Links the blob `d` to the artifact path and records `digest_header`
    /// (verbatim) in `.digests`. Returns `NotFound` if the blob is missing.
    pub async fn link_artifact(self: &Rc<Self>, a: &ArtifactRef, digest_header: &str, d: &Digest) -> StoreResult<()> {
        let need_size = a.job.repo.user.is_some();
        let blob = self.hold_blob(d, need_size).await?.ok_or(StoreError::NotFound)?;
        self.link_held(a, digest_header, blob).await
    }

    /// The link step proper, for a blob the caller holds locked.
    pub async fn link_held(self: &Rc<Self>, a: &ArtifactRef, digest_header: &str, blob: HeldBlob) -> StoreResult<()> {
        // The format folder is the job's plus one name: built from it, not again from the root.
        let job_dir = a.job.dir();
        let format_dir = io::join(&job_dir, &a.format);
        let target = io::join(&format_dir, &a.path);
        let user = a.job.repo.user.clone();
        let internal = self.cfg.is_internal_format(&a.format);
        // Announced before anything is linked, so that a crash between the
        // link and the commit line lets the next start undo the link.
        let _announced = self
            .announce_link(&format_dir, &a.path, digest_header, &blob.path)
            .await?;
        let format_guard = loop {
            let guard = self.format_mutex.lock(format_dir.clone()).await;
            // Checked again under the format lock: the job may have been
            // locked while the body was streaming.
            if !internal && self.job_locked_cached(&a.job).await {
                return Err(StoreError::Refused("Cannot upload files in locked jobs".into()));
            }
            // A delete of the job (or its tag or branch) in progress: link
            // into the folder it leaves behind, not into one it is removing.
            if !self.job_states.being_removed(&job_dir) {
                break guard;
            }
            drop(guard);
            self.job_states.removed(&job_dir).await;
        };
        // No await since the checks: a lock request or a delete that starts
        // from here on waits for this upload.
        let _linking = self.job_states.linking_into(job_dir);
        super::hooks::link_hold().await;
        // Before anything changes: an index that cannot be read fails the
        // upload here rather than after the link. The format lock keeps
        // this version current until the digest is recorded in it.
        let index = self.digests_checked(&format_dir).await?;
        // What a failure after the link puts back.
        let previous = index.get(&a.path).and_then(|v| v.as_str()).map(str::to_string);

        // Quota first: a refused overwrite keeps the old file (and its usage).
        // The usage lock spans the check, the link and the save.
        let usage_guard = match &user {
            Some(u) => Some(self.usage_mutex.lock(u.clone()).await),
            None => None,
        };
        let mut old_size = 0;
        if let Some(user) = &user {
            if let Some(st) = lstat_opt(&target).await? {
                if st.is_dir() {
                    return Err(conflict(&a.path));
                }
                old_size = st.size;
            }
            self.usage
                .try_replace(user, old_size, blob.size)
                .await
                .map_err(StoreError::Refused)?;
        }

        let mut created = Created::default();
        let result = async {
            self.prepare_format(&a.job, &format_dir, &mut created).await?;
            let parent = target
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| format_dir.clone());
            if parent != format_dir {
                created
                    .dirs
                    .extend(io::mkdir_all(&parent).await.map_err(|e| path_error(e, &a.path))?);
            }
            link_replace(&blob.path, &target)
                .await
                .map_err(|e| path_error(e, &a.path))
        }
        .await;
        let (blob_size, blob_path) = (blob.size, blob.path.clone());
        // Linked (or failed): the GC may look at the blob again.
        drop(blob);
        if let Err(e) = result {
            if let Some(user) = &user {
                self.usage.replace(user, blob_size, old_size).await;
            }
            self.forget_tree(&format_dir);
            created.undo().await;
            return Err(e);
        }

        let line = match self
            .record_digest(&format_dir, index, &a.path, digest_header, &blob_path)
            .await
        {
            Ok(line) => line,
            Err(e) => {
                // The index could not be written (no journal, a full disk):
                // the link goes too.
                self.undo_link(&target, &blob_path, previous.as_deref()).await;
                if let Some(user) = &user {
                    self.usage.replace(user, blob_size, old_size).await;
                }
                return Err(e.into());
            }
        };
        // The entry is recorded whatever happens to the usage file, so its
        // journal line goes out either way.
        let saved = match &user {
            Some(user) => self.usage.save(user).await,
            None => Ok(()),
        };
        // No lock is needed from here on, and a journal append that fails
        // takes the format lock again to write the index instead: holding
        // the usage lock then would deadlock with an upload or a delete that
        // holds the format lock and waits for the usage lock. The linking
        // mark stays until the end, so a lock request still waits for this
        // upload's line and folder syncs; it takes no format lock before.
        drop((usage_guard, format_guard));

        let mut dirs: Vec<PathBuf> = vec![format_dir.clone()];
        if let Some(p) = target.parent() {
            dirs.push(p.to_path_buf());
        }
        dirs.extend(created.dirs.iter().filter_map(|c| c.parent().map(Path::to_path_buf)));
        let journaled = async {
            super::hooks::commit_hold().await;
            match line {
                Some(line) => self.append_journal(&format_dir, line).await,
                None => Ok(()),
            }
        };
        // The journal line and the folder syncs do not depend on each other.
        let (journaled, synced) = tokio::join!(journaled, self.sync_dirs(dirs.iter().map(PathBuf::as_path)));
        if let Err(e) = journaled {
            // Not acknowledged, so not kept: the file and its index entry
            // go back to what they were.
            let _format = self.format_mutex.lock(format_dir.clone()).await;
            let _usage = match &user {
                Some(u) => Some(self.usage_mutex.lock(u.clone()).await),
                None => None,
            };
            self.undo_link(&target, &blob_path, previous.as_deref()).await;
            self.undo_record(&format_dir, &a.path, previous).await;
            if let Some(user) = &user {
                self.usage.replace(user, blob_size, old_size).await;
                let _ = self.usage.save(user).await;
            }
            return Err(e.into());
        }
        saved?;
        synced?;
        super::error::note_disk_ok();
        Ok(())
    }

    /// Puts back what was at `target` before an upload linked `blob` there
    /// and then failed: the previously recorded content (`previous`, a
    /// digest) when its blob is still there, or nothing. Leaves alone a
    /// target that is no longer this upload's link.
    async fn undo_link(&self, target: &Path, blob: &Path, previous: Option<&str>) {
        if !super::journal::same_file(target, blob).await {
            return;
        }
        // The previous blob may be an orphan now: keep the GC off it.
        let prev_blob = previous
            .and_then(|p| super::digest::Digest::parse(Some(p)).ok())
            .map(|d| self.blob_path(&d));
        let _pin = match &prev_blob {
            Some(b) => Some(self.pins.pin(b).await),
            None => None,
        };
        if let Err(e) = super::journal::restore_artifact(&self.root, target, previous).await {
            tracing::error!("cannot undo the link of {}: {e}", target.display());
        }
    }

    /// Creates the branch, tag, job and format folders, the tag and job
    /// `.stamp` files and the format's `.dirty`, as far as they are missing.
    ///
    /// A failed link undoes the format folder and `.dirty` only: the job and
    /// tag keep their `.stamp` (docs/spec/http-api.md §8.5 step 5), which another
    /// upload into the same job may already rely on.
    async fn prepare_format(&self, job: &JobRef, format_dir: &Path, created: &mut Created) -> StoreResult<()> {
        if self.is_format_ready(format_dir) {
            return Ok(());
        }
        created.dirs.extend(io::mkdir_all(format_dir).await?);
        for stamp in [job.tag_dir().join(".stamp"), job.dir().join(".stamp")] {
            io::create_if_missing(&stamp).await?;
        }
        self.tag_cache.forget(&job.tag_dir());
        let dirty = format_dir.join(".dirty");
        if io::create_if_missing(&dirty).await? {
            created.files.push(dirty);
        }
        self.set_format_ready(format_dir);
        Ok(())
    }
}

async fn lstat_opt(p: &Path) -> std::io::Result<Option<io::Stat>> {
    match io::lstat(p).await {
        Ok(s) => Ok(Some(s)),
        Err(e) if io::is_missing(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn conflict(path: &str) -> StoreError {
    StoreError::Conflict(format!("{path} is a directory or lies under a file"))
}

fn path_error(e: std::io::Error, path: &str) -> StoreError {
    match e.raw_os_error() {
        Some(libc::EISDIR) | Some(libc::ENOTDIR) | Some(libc::EEXIST) | Some(libc::EPERM) => conflict(path),
        // Not "missing" here: the name cannot be created.
        Some(libc::ENAMETOOLONG) => StoreError::Refused(path.to_string()),
        _ => StoreError::from(e),
    }
}

/// Hard-links `blob` at `target`, atomically replacing a file already
/// there (through a temporary link outside the format).
async fn link_replace(blob: &Path, target: &Path) -> std::io::Result<()> {
    match io::link(blob, target).await {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    if let Ok(st) = io::lstat(target).await {
        if st.is_dir() {
            return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
        }
    }
    io::replace_with_link(blob, target).await
}
