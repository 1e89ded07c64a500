//! What the branch listings need of each tag (flags, texts, stamp), kept
//! in memory: a branch of 5 000 tags would otherwise cost a folder listing
//! and a stamp lookup per tag for every listing. Like the other caches it
//! covers what this server writes (docs/design.md, "Caches"): every change
//! of a tag's dotfiles goes through the store, which forgets the tag; a
//! change behind the server's back is seen after SIGHUP.

use crate::pathmap::PathMap;
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};

use super::repo::Repo;
use super::tree::{self, BranchCounts, TagInfo};
use super::Store;
use super::StoreResult;

/// At most this many tags are remembered; beyond, the cache starts over.
const MAX_TAGS: usize = 200_000;

#[derive(Default)]
pub struct TagCache {
    tags: RefCell<PathMap<TagInfo>>,
    /// Bumped by every change, so a read that overlapped one is not kept.
    epoch: Cell<u64>,
}

impl TagCache {
    /// A tag's dotfiles changed.
    pub fn forget(&self, tag_dir: &Path) {
        self.epoch.set(self.epoch.get() + 1);
        self.tags.borrow_mut().remove(tag_dir);
    }

    /// Forgets the tag now and again when the guard drops: a read that
    /// started after the first forget but before the change reached the
    /// disk would otherwise keep the old state.
    pub fn changing(&self, tag_dir: &Path) -> Changing<'_> {
        self.forget(tag_dir);
        Changing {
            cache: self,
            dir: tag_dir.to_path_buf(),
        }
    }

    /// Everything at or below `dir` changed (a delete, SIGHUP).
    pub fn forget_tree(&self, dir: &Path) {
        self.epoch.set(self.epoch.get() + 1);
        self.tags.borrow_mut().retain(|p, _| !p.starts_with(dir));
    }
}

/// See [`TagCache::changing`].
pub struct Changing<'a> {
    cache: &'a TagCache,
    dir: PathBuf,
}

impl Drop for Changing<'_> {
    fn drop(&mut self) {
        self.cache.forget(&self.dir);
    }
}

impl Store {
    /// A tag's flags and texts, from memory when known.
    pub async fn tag_info(&self, repo: &Repo, branch: &str, tag: &str) -> TagInfo {
        let dir = repo.tag_dir(branch, tag);
        if let Some(t) = self.tag_cache.tags.borrow().get(&dir) {
            return t.clone();
        }
        let epoch = self.tag_cache.epoch.get();
        let info = tree::tag_info(repo, branch, tag).await;
        // Only a tag that exists, read while nothing changed.
        if info.timestamp.is_some() && self.tag_cache.epoch.get() == epoch {
            let mut tags = self.tag_cache.tags.borrow_mut();
            if tags.len() >= MAX_TAGS {
                tags.clear();
            }
            tags.insert(dir, info.clone());
        }
        info
    }

    /// The counts the branches listing shows.
    pub async fn branch_counts(&self, repo: &Repo, branch: &str) -> StoreResult<BranchCounts> {
        let tags = tree::list_dirs(&repo.branch_dir(branch)).await?;
        let mut c = BranchCounts::default();
        for t in self.tag_infos(repo, branch, &tags).await {
            if t.released {
                c.released += 1;
            } else {
                c.daily += 1;
            }
            c.locked += u64::from(t.locked);
            c.stable += u64::from(t.stable);
        }
        Ok(c)
    }

    /// [`Store::tag_info`] of many tags, in their order; those not in
    /// memory are read a bounded number at a time, so the ring's latency
    /// overlaps.
    pub async fn tag_infos(&self, repo: &Repo, branch: &str, tags: &[String]) -> Vec<TagInfo> {
        use futures_util::stream::{self, StreamExt};
        stream::iter(tags.iter().map(|t| self.tag_info(repo, branch, t)))
            .buffered(64)
            .collect()
            .await
    }
}
