//! The storage layer: the on-disk tree of `docs/spec/layout.md`, the blob store, and
//! the upload and link paths. Nothing here knows about HTTP.

pub mod activity;
pub mod alias;
pub mod archive;
pub mod blobs;
mod busy;
pub mod container;
pub mod delete;
pub mod digest;
pub mod digests;
pub mod error;
pub mod finalize;
pub mod health;
mod hooks;
mod index;
mod job_states;
pub mod jobs;
mod journal;
pub mod link;
pub mod locks;
pub mod manifest;
pub mod meta;
pub mod pins;
pub mod products;
pub mod pyjson;
pub mod repo;
pub mod sessions;
pub mod settings;
pub mod staging;
mod tag_cache;
pub mod tree;
pub mod upload;
pub mod usage;

use crate::pathmap::{PathKey, PathMap, PathSet};
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::config::Config;
use crate::io::DirSyncer;
use digests::Digests;

pub use error::{StoreError, StoreResult};
pub use repo::Repo;

/// Shared state of the storage layer, owned by the runtime thread.
pub struct Store {
    pub root: PathBuf,
    /// The repository at the root, shared by its requests.
    base_repo: Repo,
    pub cfg: Rc<Config>,
    /// Blobs inside a request's check → touch → link/rename sequence, and
    /// the one the orphan GC is deciding about.
    pins: pins::PinTable,
    /// Parsed `.digests` of recently used formats (see `index.rs`). Every
    /// change of an index goes through it; deletes drop the entries below
    /// them.
    digests_cache: RefCell<PathMap<Rc<Digests>>>,
    /// Formats whose cached index is newer than their `.digests` file: never
    /// evicted, written back by the next checkpoint.
    unflushed: RefCell<PathSet>,
    /// The `.digests` journal, unless `DLREPO_DIGESTS_FLUSH_DELAY_MS=0`.
    journal: std::cell::OnceCell<journal::Journal>,
    /// Wakes the checkpoint task when a format becomes unflushed.
    flush_wanted: tokio::sync::Notify,
    /// One checkpoint at a time.
    checkpointing: locks::KeyLocks<()>,
    /// Formats whose `.digests` is being written back, for a delete to
    /// wait for.
    flushing: busy::BusyPaths,
    /// The root with symlinks resolved, to map a format reached through a
    /// `products/` link back to its cache key.
    canonical_root: PathBuf,
    // The mutexes below are taken only inside this module, in the order
    // of docs/design.md ("Lock order"): a tag, a job, the job's formats, a
    // repository's `products/`, then a user's usage.
    /// Format directories whose `.digests`/`.dirty` are being rewritten.
    format_mutex: locks::KeyLocks<PathKey>,
    /// Job directories whose metadata, flags or lock are changing.
    job_mutex: locks::KeyLocks<PathKey>,
    /// A tag's flags change, and a tag is checked and deleted, under its
    /// folder's mutex, so a tag locked meanwhile is never deleted.
    tag_mutex: locks::KeyLocks<PathKey>,
    /// A repository's `products/` tree while links are made or removed.
    products_mutex: locks::KeyLocks<PathKey>,
    /// A user's disk usage while it is checked and changed, or recomputed:
    /// a refresh must not overwrite changes made while it walked the tree.
    usage_mutex: locks::KeyLocks<String>,
    /// Staging file names (uuids) that a request or a registry session is
    /// using.
    active_uploads: RefCell<HashSet<String>>,
    /// Registry upload sessions, and the blobs they committed.
    sessions: sessions::Sessions,
    /// Tags' flags and texts for the branch listings.
    tag_cache: tag_cache::TagCache,
    dir_sync: DirSyncer,
    /// Directories known to exist (`.uploads`, blob shards), to save a mkdir
    /// per request. An ENOENT drops the entry and the caller retries.
    known_dirs: RefCell<PathSet>,
    /// Format directories whose tag and job `.stamp`, folders and `.dirty`
    /// are known to exist. Deletes and finalisation forget them.
    ready_formats: RefCell<PathSet>,
    /// Which jobs are known unlocked, being locked, receiving links or
    /// being removed.
    job_states: job_states::JobStates,
    /// Bumped by every change of a cached `.digests`, so a reader that went
    /// to disk does not cache what it read over a newer version.
    digests_epoch: Cell<u64>,
    usage: usage::Usage,
    /// Request traffic; background work yields more while there is some.
    pub activity: Rc<activity::Activity>,
    /// Whether `.uploads` takes unnamed (`O_TMPFILE`) files that can be
    /// linked by descriptor; probed by the first upload.
    unnamed_staging: Cell<Option<bool>>,
    /// Unnamed staging files open right now (named ones are in
    /// `active_uploads`).
    pub(crate) unnamed_open: Cell<usize>,
}

impl Store {
    pub fn new(cfg: Rc<Config>) -> Rc<Store> {
        let canonical_root = crate::io::canonicalize(&cfg.root_dir).unwrap_or_else(|_| cfg.root_dir.clone());
        // Temporaries go where no listing or download can see them.
        crate::io::set_scratch_dir(cfg.root_dir.join(".dlrepo-rs").join("tmp"));
        Rc::new(Store {
            canonical_root,
            root: cfg.root_dir.clone(),
            base_repo: Repo::new(&cfg.root_dir, None),
            usage: usage::Usage::new(cfg.root_dir.clone(), cfg.user_quota),
            cfg,
            pins: pins::PinTable::new(),
            digests_cache: RefCell::new(Default::default()),
            unflushed: RefCell::new(Default::default()),
            journal: std::cell::OnceCell::new(),
            flush_wanted: tokio::sync::Notify::new(),
            checkpointing: locks::KeyLocks::new(),
            flushing: busy::BusyPaths::default(),
            format_mutex: locks::KeyLocks::new(),
            job_mutex: locks::KeyLocks::new(),
            tag_mutex: locks::KeyLocks::new(),
            products_mutex: locks::KeyLocks::new(),
            usage_mutex: locks::KeyLocks::new(),
            active_uploads: RefCell::new(HashSet::new()),
            sessions: sessions::Sessions::default(),
            tag_cache: tag_cache::TagCache::default(),
            dir_sync: DirSyncer::new(),
            known_dirs: RefCell::new(Default::default()),
            ready_formats: RefCell::new(Default::default()),
            job_states: job_states::JobStates::default(),
            digests_epoch: Cell::new(0),
            activity: Rc::default(),
            unnamed_staging: Cell::new(None),
            unnamed_open: Cell::new(0),
        })
    }

    pub fn repo(&self, user: Option<&str>) -> Repo {
        match user {
            // Every request of the base repository shares this one.
            None => self.base_repo.clone(),
            Some(_) => Repo::new(&self.root, user),
        }
    }

    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join(".uploads")
    }

    /// Whether uploads can stage in unnamed files: the file system must
    /// support `O_TMPFILE` and the kernel must let this process link such a
    /// file by descriptor. Tried with a throwaway file until it answers
    /// yes or a definite no.
    pub async fn unnamed_staging_works(&self) -> bool {
        if let Some(works) = self.unnamed_staging.get() {
            return works;
        }
        let works = match self.probe_unnamed_staging().await {
            Ok(()) => true,
            // A full disk or too many open files says nothing about support:
            // this upload uses a named file, the next one probes again.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOSPC | libc::EMFILE | libc::ENFILE | libc::EIO)
                ) =>
            {
                return false
            }
            Err(e) => {
                tracing::debug!("unnamed staging files unavailable, using named ones: {e}");
                false
            }
        };
        self.unnamed_staging.set(Some(works));
        works
    }

    async fn probe_unnamed_staging(&self) -> std::io::Result<()> {
        let dir = self.uploads_dir();
        self.ensure_dir(&dir).await?;
        let file = Rc::new(crate::io::create_unnamed(&dir, 0o600).await?);
        let name = dir.join(format!("{}.probe", crate::io::random_hex(16)));
        crate::io::link_file(&file, &name).await?;
        crate::io::unlink_opt(&name).await.map(drop)
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

    /// Whether a job refuses uploads because it is locked or being locked,
    /// as far as the server knows (cached; see [`job_states::JobStates`]).
    pub async fn job_locked_cached(&self, job: &repo::JobRef) -> bool {
        self.job_states.is_locked(&job.dir()).await
    }

    /// Starts the orphan GC's watch on a blob or staging file, or `None`
    /// while a request holds it (see [`pins::PinTable::watch`]).
    pub fn gc_watch(&self, path: &Path) -> Option<pins::Watch> {
        self.pins.watch(path)
    }

    /// Staging files being written (`/metrics`): the named ones and the
    /// unnamed ones.
    pub fn staging_in_flight(&self) -> usize {
        self.active_uploads.borrow().len() + self.unnamed_open.get()
    }

    /// Formats whose `.digests` is not yet rewritten from the journal
    /// (`/metrics`).
    pub fn unflushed_indexes(&self) -> usize {
        self.unflushed.borrow().len()
    }

    /// Whether a request is writing the staging file `.uploads/<name>`.
    pub fn upload_in_use(&self, name: &str) -> bool {
        self.active_uploads.borrow().contains(name)
    }

    /// Makes new directory entries durable when `DLREPO_FSYNC=1`.
    pub async fn sync_dirs<'a>(&self, dirs: impl IntoIterator<Item = &'a Path>) -> std::io::Result<()> {
        if !self.cfg.fsync {
            return Ok(());
        }
        // A hash set: a deep new path brings many folders, and comparing
        // each against every other was quadratic in their number.
        let mut seen: HashSet<&Path> = HashSet::new();
        let unique: Vec<&Path> = dirs.into_iter().filter(|d| seen.insert(d)).collect();
        let futs = unique.into_iter().map(|d| self.dir_sync.sync(d));
        for r in futures_util::future::join_all(futs).await {
            r?;
        }
        Ok(())
    }
}
