//! Deleting formats, jobs, tags and branches (docs/spec/http-api.md §7.4–7.8).
//!
//! Trees are removed file by file through the ring, a bounded batch at a
//! time, so a tag with a hundred thousand files never stalls the loop.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::repo::{JobRef, Repo};
use super::{meta, products, tree, Store, StoreError, StoreResult};
use crate::io;

/// How many unlinks are in flight at once while removing a tree.
const UNLINK_BATCH: usize = 32;
/// Directory entries read before the loop is given back.
const LIST_BATCH: usize = 256;

/// Unlinks a file (or symlink); returns its size if `count` and it was a
/// regular file. A file already gone counts as removed.
async fn unlink_counted(p: &Path, count: bool) -> std::io::Result<u64> {
    let size = if count {
        match io::lstat(p).await {
            Ok(st) if st.is_file() => st.size,
            _ => 0,
        }
    } else {
        0
    };
    match io::unlink(p).await {
        Ok(()) => Ok(size),
        Err(e) if io::is_missing(&e) => Ok(0),
        Err(e) => Err(e),
    }
}

/// A tag folder's `.locked` and `.released` flags.
async fn tag_flags(dir: &Path) -> (bool, bool) {
    (
        meta::flag(&dir.join(".locked")).await,
        meta::flag(&dir.join(".released")).await,
    )
}

impl Store {
    /// Removes a directory tree; returns the bytes of the regular files it
    /// removed when `count` is set (for user disk usage). A missing tree
    /// removes nothing.
    ///
    /// Directories are read a bounded batch at a time and their files
    /// unlinked through the ring a batch at a time, giving the loop back in
    /// between, so a tag with a hundred thousand files never stalls requests.
    pub async fn remove_tree(&self, dir: &Path, count: bool) -> StoreResult<u64> {
        self.drop_tree(dir).await;
        let mut total = 0u64;
        // Post-order: a folder is removed after everything pushed above it.
        let mut stack: Vec<(PathBuf, bool)> = vec![(dir.to_path_buf(), false)];
        while let Some((d, emptied)) = stack.pop() {
            if emptied {
                match io::rmdir(&d).await {
                    Ok(()) => {}
                    Err(e) if io::is_missing(&e) => {}
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            let mut reader = match io::DirReader::open(&d) {
                Ok(r) => r,
                Err(e) if io::is_missing(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            stack.push((d.clone(), true));
            loop {
                let batch = reader.next_batch(LIST_BATCH)?;
                if batch.is_empty() {
                    break;
                }
                let mut files = Vec::with_capacity(batch.len());
                for e in batch {
                    let p = d.join(&e.name);
                    if e.kind == Some(io::EntryKind::Dir) {
                        stack.push((p, false));
                    } else {
                        files.push(p);
                    }
                }
                for chunk in files.chunks(UNLINK_BATCH) {
                    let sizes = futures_util::future::join_all(chunk.iter().map(|p| unlink_counted(p, count))).await;
                    for s in sizes {
                        total += s?;
                    }
                }
                tokio::task::yield_now().await;
            }
        }
        // Readers and uploads may have cached facts about the tree while it
        // was being removed: forget them again now that it is gone.
        self.drop_tree(dir).await;
        Ok(total)
    }

    /// Removes a tree inside a repository and updates the user's usage.
    async fn remove_accounted(&self, repo: &Repo, dir: &Path) -> StoreResult<()> {
        let _usage = match &repo.user {
            Some(u) => Some(self.usage_mutex.lock(u.clone()).await),
            None => None,
        };
        let size = self.remove_tree(dir, repo.user.is_some()).await?;
        if let Some(user) = &repo.user {
            self.usage.sub(user, size).await;
            self.usage.save(user).await?;
        }
        Ok(())
    }

    /// DELETE of a job: product links first, then the folder. Job locks are
    /// not checked, as in the original.
    pub async fn delete_job(self: &Rc<Self>, job: &JobRef) -> StoreResult<()> {
        let dir = job.dir();
        if !io::is_dir(&dir).await {
            return Err(StoreError::NotFound);
        }
        let _job = self.job_mutex.lock(dir.clone()).await;
        let _removing = self.job_states.begin_removal(&dir).await;
        {
            let _products = self.products_mutex.lock(job.repo.products_dir()).await;
            products::remove_product_links(job).await?;
        }
        self.remove_accounted(&job.repo, &dir).await
    }

    /// DELETE of a format, under the format's mutex (no upload links into
    /// it meanwhile).
    pub async fn delete_format(self: &Rc<Self>, job: &JobRef, format: &str) -> StoreResult<()> {
        let dir = job.dir().join(format);
        let _format = self.format_mutex.lock(dir.clone()).await;
        if !io::is_dir(&dir).await {
            return Err(StoreError::NotFound);
        }
        if tree::job_lock_flag(job).await && !self.cfg.is_internal_format(format) {
            return Err(StoreError::Refused("Cannot delete format: job is locked".into()));
        }
        self.remove_accounted(&job.repo, &dir).await?;
        // Unlike 0.44, do not leave a dangling product link behind.
        let _products = self.products_mutex.lock(job.repo.products_dir()).await;
        products::remove_dangling_links(job).await?;
        Ok(())
    }

    /// Refuses to delete a locked or released tag.
    pub async fn check_tag_deletable(&self, repo: &Repo, branch: &str, tag: &str) -> StoreResult<()> {
        let (locked, released) = tag_flags(&repo.tag_dir(branch, tag)).await;
        if locked {
            return Err(StoreError::Refused(format!("Tag {tag} is locked")));
        }
        if released {
            return Err(StoreError::Refused(format!(
                "Tag {tag} is released, unrelease it first"
            )));
        }
        Ok(())
    }

    /// Deletes a tag's jobs (product links first), then the tag folder.
    /// The caller has checked the tag may be deleted.
    pub async fn delete_tag_unchecked(self: &Rc<Self>, repo: &Repo, branch: &str, tag: &str) -> StoreResult<()> {
        let dir = repo.tag_dir(branch, tag);
        let _removing = self.job_states.begin_removal(&dir).await;
        for job in tree::list_dirs(&dir).await? {
            let jr = JobRef {
                repo: repo.clone(),
                branch: branch.into(),
                tag: tag.into(),
                job,
            };
            let _job = self.job_mutex.lock(jr.dir()).await;
            {
                let _products = self.products_mutex.lock(repo.products_dir()).await;
                products::remove_product_links(&jr).await?;
            }
            self.remove_accounted(repo, &jr.dir()).await?;
        }
        self.remove_accounted(repo, &dir).await
    }

    pub async fn delete_tag(self: &Rc<Self>, repo: &Repo, branch: &str, tag: &str) -> StoreResult<()> {
        let dir = repo.tag_dir(branch, tag);
        let _tag = self.tag_mutex.lock(dir.clone()).await;
        if !io::is_dir(&dir).await {
            return Err(StoreError::NotFound);
        }
        self.check_tag_deletable(repo, branch, tag).await?;
        self.delete_tag_unchecked(repo, branch, tag).await
    }

    /// The cleanup policy's delete: only if the tag is still unlocked and
    /// still `released` or not as it was when the policy counted it.
    /// Returns whether it was deleted.
    pub async fn delete_tag_if_still(
        self: &Rc<Self>,
        repo: &Repo,
        branch: &str,
        tag: &str,
        released: bool,
    ) -> StoreResult<bool> {
        let dir = repo.tag_dir(branch, tag);
        let _tag = self.tag_mutex.lock(dir.clone()).await;
        if !io::is_dir(&dir).await || tag_flags(&dir).await != (false, released) {
            return Ok(false);
        }
        self.delete_tag_unchecked(repo, branch, tag).await?;
        Ok(true)
    }

    /// DELETE of a branch: refused if any tag is locked or released.
    pub async fn delete_branch(self: &Rc<Self>, repo: &Repo, branch: &str) -> StoreResult<()> {
        let dir = repo.branch_dir(branch);
        if !io::is_dir(&dir).await {
            return Err(StoreError::NotFound);
        }
        // Marked first: once the uploads linking into it are done, no new
        // tag can appear in it, so the list below is complete.
        let _removing = self.job_states.begin_removal(&dir).await;
        let tags = tree::list_dirs(&dir).await?;
        // Every tag is held, in name order, from its check to the end.
        let mut _tags = Vec::with_capacity(tags.len());
        for tag in &tags {
            _tags.push(self.tag_mutex.lock(repo.tag_dir(branch, tag)).await);
        }
        for tag in &tags {
            self.check_tag_deletable(repo, branch, tag).await?;
        }
        for tag in &tags {
            self.delete_tag_unchecked(repo, branch, tag).await?;
        }
        self.remove_accounted(repo, &dir).await
    }
}
