//! The storage layer: the on-disk tree of `layout.md`, the blob store, and
//! the upload and link paths. Nothing here knows about HTTP.

pub mod archive;
pub mod blobs;
pub mod delete;
pub mod digest;
pub mod digests;
pub mod error;
pub mod finalize;
mod hooks;
pub mod joblock;
pub mod jobs;
pub mod link;
pub mod locks;
pub mod meta;
pub mod names;
pub mod pins;
pub mod products;
pub mod pyjson;
pub mod repo;
pub mod staging;
pub mod tree;
pub mod usage;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::config::Config;
use crate::io::{self, DirSyncer};
use digests::Digests;

pub use error::{StoreError, StoreResult};
pub use repo::Repo;

/// How many formats' `.digests` are kept parsed in memory.
const DIGESTS_CACHE_FORMATS: usize = 4096;

/// Shared state of the storage layer, owned by the runtime thread.
pub struct Store {
    pub root: PathBuf,
    pub cfg: Rc<Config>,
    /// Blobs inside a request's check → touch → link/rename sequence, and
    /// the one the orphan GC is deciding about.
    pub pins: pins::PinTable,
    /// Parsed `.digests` of recently used formats. Every write of a
    /// `.digests` goes through [`Store::write_digests`], which keeps this
    /// in step; deletes drop the entries below them.
    digests_cache: RefCell<HashMap<PathBuf, Rc<Digests>>>,
    /// Format directories whose `.digests`/`.dirty` are being rewritten.
    pub format_locks: locks::KeyLocks<PathBuf>,
    /// Job directories whose metadata, flags or lock are changing.
    /// Order: a job, then its formats, then a repository's products.
    pub job_locks: locks::KeyLocks<PathBuf>,
    /// A repository's `products/` tree while links are made or removed.
    pub products_locks: locks::KeyLocks<PathBuf>,
    /// A user's disk usage while it is checked and changed, or recomputed:
    /// a refresh must not overwrite changes made while it walked the tree.
    pub usage_locks: locks::KeyLocks<String>,
    /// Staging file names (uuids) that a request is using.
    pub active_uploads: RefCell<HashSet<String>>,
    pub dir_sync: DirSyncer,
    /// Directories known to exist (`.uploads`, blob shards), to save a mkdir
    /// per request. An ENOENT drops the entry and the caller retries.
    known_dirs: RefCell<HashSet<PathBuf>>,
    /// Format directories whose tag and job `.stamp`, folders and `.dirty`
    /// are known to exist. Deletes and finalisation forget them.
    ready_formats: RefCell<HashSet<PathBuf>>,
    /// Which jobs are known unlocked, being locked, or receiving links.
    pub lock_flags: joblock::JobLocks,
    /// Bumped by every change of a cached `.digests`, so a reader that went
    /// to disk does not cache what it read over a newer version.
    digests_epoch: Cell<u64>,
    pub usage: usage::Usage,
    /// Requests being answered right now; background work yields more
    /// while it is not zero.
    pub requests_in_flight: Rc<std::cell::Cell<usize>>,
}

impl Store {
    pub fn new(cfg: Rc<Config>) -> Rc<Store> {
        Rc::new(Store {
            root: cfg.root_dir.clone(),
            usage: usage::Usage::new(cfg.root_dir.clone(), cfg.user_quota),
            cfg,
            pins: pins::PinTable::new(),
            digests_cache: RefCell::new(HashMap::new()),
            format_locks: locks::KeyLocks::new(),
            job_locks: locks::KeyLocks::new(),
            products_locks: locks::KeyLocks::new(),
            usage_locks: locks::KeyLocks::new(),
            active_uploads: RefCell::new(HashSet::new()),
            dir_sync: DirSyncer::new(),
            known_dirs: RefCell::new(HashSet::new()),
            ready_formats: RefCell::new(HashSet::new()),
            lock_flags: joblock::JobLocks::default(),
            digests_epoch: Cell::new(0),
            requests_in_flight: Rc::new(std::cell::Cell::new(0)),
        })
    }

    pub fn repo(&self, user: Option<&str>) -> Repo {
        Repo::new(&self.root, user)
    }

    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join(".uploads")
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join(".blobs")
    }

    /// Ensures a directory exists, using the cache of known directories.
    /// Returns the directories it had to create.
    pub async fn ensure_dir(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        if self.known_dirs.borrow().contains(dir) {
            return Ok(Vec::new());
        }
        let created = crate::io::mkdir_all(dir).await?;
        self.known_dirs.borrow_mut().insert(dir.to_path_buf());
        Ok(created)
    }

    pub fn forget_dir(&self, dir: &Path) {
        self.known_dirs.borrow_mut().remove(dir);
    }

    pub fn is_format_ready(&self, format_dir: &Path) -> bool {
        self.ready_formats.borrow().contains(format_dir)
    }

    pub fn set_format_ready(&self, format_dir: &Path) {
        self.ready_formats.borrow_mut().insert(format_dir.to_path_buf());
    }

    /// Whether a job is locked (or being locked); see [`joblock::JobLocks`].
    pub async fn job_locked(&self, job: &repo::JobRef) -> bool {
        self.lock_flags.is_locked(&job.dir()).await
    }

    /// Forgets every cached fact about the tree (SIGHUP).
    pub fn forget_everything(&self) {
        self.digests_epoch.set(self.digests_epoch.get() + 1);
        self.lock_flags.forget_tree(None);
        self.ready_formats.borrow_mut().clear();
        self.known_dirs.borrow_mut().clear();
        self.digests_cache.borrow_mut().clear();
    }

    /// Forgets every cached fact about `dir` and everything below it. Called
    /// whenever a delete or a finalisation changes that part of the tree.
    pub fn forget_tree(&self, dir: &Path) {
        self.digests_epoch.set(self.digests_epoch.get() + 1);
        self.lock_flags.forget_tree(Some(dir));
        self.ready_formats.borrow_mut().retain(|p| !p.starts_with(dir));
        self.known_dirs.borrow_mut().retain(|p| !p.starts_with(dir));
        self.digests_cache.borrow_mut().retain(|p, _| !p.starts_with(dir));
    }

    /// The `.digests` of a format, from the cache or from disk.
    pub async fn digests(&self, format_dir: &Path) -> Rc<Digests> {
        if let Some(d) = self.digests_cache.borrow().get(format_dir) {
            return d.clone();
        }
        let epoch = self.digests_epoch.get();
        let d = Rc::new(Digests::from_map(meta::read_digests(format_dir).await));
        // Read without the format lock: a writer may have replaced the file
        // (and cached the newer index) meanwhile.
        if self.digests_epoch.get() == epoch && !self.digests_cache.borrow().contains_key(format_dir) {
            self.cache_digests(format_dir, d.clone());
        }
        d
    }

    /// The `.digests` of a format for modification: taken out of the cache
    /// (no copy when nobody else holds it), to be written back with
    /// [`Store::write_digests`]. The caller holds the format lock.
    pub async fn take_digests(&self, format_dir: &Path) -> std::io::Result<Digests> {
        self.digests_epoch.set(self.digests_epoch.get() + 1);
        let cached = self.digests_cache.borrow_mut().remove(format_dir);
        Ok(match cached {
            Some(rc) => Rc::try_unwrap(rc).unwrap_or_else(|rc| (*rc).clone()),
            None => Digests::from_map(meta::read_digests_checked(format_dir).await?),
        })
    }

    pub(crate) fn cache_digests(&self, format_dir: &Path, d: Rc<Digests>) {
        let mut cache = self.digests_cache.borrow_mut();
        if cache.len() >= DIGESTS_CACHE_FORMATS && !cache.contains_key(format_dir) {
            // Crude but bounded: start over rather than track recency.
            cache.clear();
        }
        cache.insert(format_dir.to_path_buf(), d);
    }

    /// Writes a format's `.digests` (sorted Python JSON, atomically) and
    /// caches it. The caller holds the format lock.
    pub async fn write_digests(&self, format_dir: &Path, mut d: Digests) -> std::io::Result<()> {
        // Drop the entry first: if the write fails, the next reader goes to disk.
        self.digests_epoch.set(self.digests_epoch.get() + 1);
        self.digests_cache.borrow_mut().remove(format_dir);
        io::write_file_atomic(&format_dir.join(".digests"), d.encode(), self.cfg.fsync).await?;
        self.cache_digests(format_dir, Rc::new(d));
        Ok(())
    }

    /// Makes new directory entries durable when `DLREPO_FSYNC=1`.
    pub async fn sync_dirs<'a>(&self, dirs: impl IntoIterator<Item = &'a Path>) -> std::io::Result<()> {
        if !self.cfg.fsync {
            return Ok(());
        }
        let mut seen: Vec<&Path> = Vec::new();
        for d in dirs {
            if !seen.contains(&d) {
                seen.push(d);
            }
        }
        let futs = seen.into_iter().map(|d| self.dir_sync.sync(d));
        for r in futures_util::future::join_all(futs).await {
            r?;
        }
        Ok(())
    }
}
