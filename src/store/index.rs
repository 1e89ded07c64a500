//! The formats' `.digests` as this server sees them: a cache of parsed
//! indexes that every reader and writer goes through, and the write-behind
//! that lets an upload be answered before its format's file is rewritten
//! (the journal in `journal.rs` makes that safe across a crash).
//!
//! An index changed by an upload is *unflushed*: its cache entry is the
//! truth and is never evicted until a checkpoint has written it back.
//! Whatever reads a `.digests` file itself (locking a job, a format's tar
//! timestamp, a SIGHUP, a shutdown) flushes first.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use serde_json::Value;

use super::digests::Digests;
use super::{journal, meta, Store};
use crate::io;

/// A write that failed in the background: a full disk is reported once
/// (until space returns), anything else each time.
fn log_write_error(what: &str, e: &std::io::Error) {
    if super::error::is_no_space(e) {
        super::error::note_disk_full(e);
    } else {
        tracing::error!("{what}: {e}");
    }
}

/// How many formats' indexes are kept parsed in memory (unflushed ones
/// come on top).
const DIGESTS_CACHE_FORMATS: usize = 4096;

impl Store {
    /// Makes the tree consistent before any request is served: removes the
    /// temporaries an earlier run left in the scratch folder, then replays
    /// its journal. Without the journal (`DLREPO_DIGESTS_FLUSH_DELAY_MS=0`)
    /// every upload rewrites `.digests`. Indexes the replay could not write
    /// (a full disk) are served from memory and written by a checkpoint.
    pub async fn recover(&self) -> std::io::Result<()> {
        let swept = io::sweep_scratch().await?;
        if swept > 0 {
            tracing::info!("removed {swept} temporary files left by an unclean stop");
        }
        if self.cfg.digests_flush_delay_ms == 0 {
            return Ok(());
        }
        let (j, unwritten) = journal::Journal::open(&self.root, self.cfg.fsync, &self.dir_sync).await?;
        let _ = self.journal.set(j);
        for (dir, map) in unwritten {
            self.cache_digests(&dir, Rc::new(Digests::from_map(map)));
            self.mark_unflushed(&dir);
        }
        Ok(())
    }

    /// The task that writes unflushed indexes back, at most
    /// `DLREPO_DIGESTS_FLUSH_DELAY_MS` after they changed. A checkpoint that
    /// could not write everything (a full disk) is tried again, every few
    /// seconds, until it can.
    pub fn spawn_checkpoints(self: &Rc<Self>) {
        if self.journal.get().is_none() {
            return;
        }
        let store = self.clone();
        let delay = Duration::from_millis(self.cfg.digests_flush_delay_ms);
        tokio_uring::spawn(async move {
            loop {
                store.flush_wanted.notified().await;
                tokio::time::sleep(delay).await;
                let mut retry = Duration::from_secs(1);
                while !store.checkpoint().await {
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(Duration::from_secs(30));
                }
            }
        });
    }

    /// Writes every unflushed index back, then drops the journal files that
    /// only held their changes. Returns whether everything was written.
    pub async fn checkpoint(&self) -> bool {
        let Some(journal) = self.journal.get() else { return true };
        let _one = self.checkpointing.lock(()).await;
        if journal.is_empty() && self.unflushed.borrow().is_empty() && !journal.has_old() {
            return true;
        }
        // Lines appended from here on go to the new file; every line in the
        // old ones belongs to a format already marked unflushed.
        if let Err(e) = journal.rotate(&self.dir_sync).await {
            log_write_error("digests journal: cannot start a new file", &e);
            return false;
        }
        let dirs: Vec<PathBuf> = self.unflushed.borrow().iter().map(Path::to_path_buf).collect();
        let wrote = !dirs.is_empty();
        let mut ok = true;
        for dir in dirs {
            let _format = self.format_mutex.lock(dir.clone()).await;
            if let Err(e) = self.flush_format_locked(&dir).await {
                log_write_error(&format!("cannot write {}/.digests", dir.display()), &e);
                ok = false;
            }
        }
        if ok {
            journal.remove_old().await;
            if wrote {
                super::error::note_disk_ok();
            }
        }
        ok
    }

    /// Writes a format's index back if it is unflushed, taking the format
    /// lock. Any path to the format will do, a `products/` link too (for
    /// what reads the file itself, like its mtime).
    pub async fn flush_format(&self, format_dir: &Path) -> std::io::Result<()> {
        let Some(key) = self.unflushed_key(format_dir) else {
            return Ok(());
        };
        let _format = self.format_mutex.lock(key.clone()).await;
        self.flush_format_locked(&key).await
    }

    /// [`Store::flush_format`] for a caller holding the format lock.
    pub async fn flush_format_locked(&self, dir: &Path) -> std::io::Result<()> {
        if !self.unflushed.borrow().contains(dir) {
            return Ok(());
        }
        let Some(bytes) = self.digests_cache.borrow().get(dir).map(|d| d.to_bytes()) else {
            self.unflushed.borrow_mut().remove(dir);
            return Ok(());
        };
        let _writing = self.flushing.enter(dir.to_path_buf());
        match meta::write_digests(dir, bytes, self.cfg.fsync, self.durable_dirs()).await {
            Ok(()) => {}
            Err(e) if io::is_missing(&e) && !io::is_dir(dir).await => {
                // Deleted meanwhile: nothing left to index.
                self.unflushed.borrow_mut().remove(dir);
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        self.unflushed.borrow_mut().remove(dir);
        Ok(())
    }

    /// The folder syncer when writes must be durable (`DLREPO_FSYNC`).
    fn durable_dirs(&self) -> Option<&io::DirSyncer> {
        self.cfg.fsync.then_some(&self.dir_sync)
    }

    /// Forgets every cached fact about the tree (SIGHUP), except indexes
    /// not yet written back (the caller checkpoints first). Every cache key
    /// lies below the root.
    pub fn forget_everything(&self) {
        self.forget_tree(&self.root);
    }

    /// Forgets every cached fact about `dir` and everything below it, when
    /// a finalisation or a failed link changed that part of the tree.
    /// Unflushed indexes are kept: they are still the truth.
    pub fn forget_tree(&self, dir: &Path) {
        self.bump_digests_epoch();
        self.tag_cache.forget_tree(dir);
        self.job_states.forget_tree(dir);
        self.ready_formats.borrow_mut().retain(|p| !p.starts_with(dir));
        self.known_dirs.borrow_mut().retain(|p| !p.starts_with(dir));
        let unflushed = self.unflushed.borrow();
        self.digests_cache
            .borrow_mut()
            .retain(|p, _| !p.starts_with(dir) || unflushed.contains(p));
    }

    /// [`Store::forget_tree`] for a tree being deleted: its unflushed
    /// indexes go too. Returns once no checkpoint is writing below `dir`.
    pub async fn drop_tree(&self, dir: &Path) {
        self.unflushed.borrow_mut().retain(|p| !p.starts_with(dir));
        self.forget_tree(dir);
        // Not by taking the format lock: the caller may hold locks that
        // an upload waiting for that format lock would need next.
        self.flushing.wait_until_none(|p| p.starts_with(dir)).await;
    }

    /// The cached index of a format is newer than its file from now on;
    /// wakes the checkpoint task.
    fn mark_unflushed(&self, format_dir: &Path) {
        self.unflushed.borrow_mut().insert(format_dir.to_path_buf());
        self.flush_wanted.notify_one();
    }

    fn bump_digests_epoch(&self) {
        self.digests_epoch.set(self.digests_epoch.get() + 1);
    }

    /// The index of a format, from the cache or from disk.
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

    /// The index of a format reached through a `products/` link, whose path
    /// is not the cache key.
    pub async fn digests_via_link(&self, format_dir: &Path) -> Rc<Digests> {
        match self.unflushed_key(format_dir) {
            Some(key) => self.digests(&key).await,
            None => Rc::new(Digests::from_map(meta::read_digests(format_dir).await)),
        }
    }

    /// The cache key of an unflushed format, whatever path reaches it.
    fn unflushed_key(&self, format_dir: &Path) -> Option<PathBuf> {
        if self.unflushed.borrow().is_empty() {
            return None;
        }
        if self.unflushed.borrow().contains(format_dir) {
            return Some(format_dir.to_path_buf());
        }
        let real = io::canonicalize(format_dir).ok()?;
        let key = self.root.join(real.strip_prefix(&self.canonical_root).ok()?);
        self.unflushed.borrow().contains(&key).then_some(key)
    }

    /// The index of a format for a writer holding the format lock: a file
    /// that cannot be read is an error here, not an empty index.
    pub async fn digests_checked(&self, format_dir: &Path) -> std::io::Result<Rc<Digests>> {
        if let Some(d) = self.digests_cache.borrow().get(format_dir) {
            return Ok(d.clone());
        }
        let d = Rc::new(Digests::from_map(meta::read_digests_checked(format_dir).await?));
        // The format lock keeps writers out; a reader may have cached the
        // same content meanwhile.
        self.cache_digests(format_dir, d.clone());
        Ok(d)
    }

    pub(crate) fn cache_digests(&self, format_dir: &Path, d: Rc<Digests>) {
        let mut cache = self.digests_cache.borrow_mut();
        if cache.len() >= DIGESTS_CACHE_FORMATS && !cache.contains_key(format_dir) {
            // Crude but bounded: start over rather than track recency.
            let unflushed = self.unflushed.borrow();
            cache.retain(|p, _| unflushed.contains(p));
        }
        cache.insert(format_dir.to_path_buf(), d);
    }

    /// Records one artifact's digest (verbatim) in its format's index
    /// (`current`, as the caller read it), for a caller holding the format
    /// lock that has just linked it. Visible at once; the file follows at
    /// the next checkpoint. Returns the journal line that vouches for it
    /// until then, for [`Store::append_journal`] once the lock is released;
    /// `None` when the file itself was written.
    pub async fn record_digest(
        &self,
        format_dir: &Path,
        current: Rc<Digests>,
        path: &str,
        digest: &str,
        blob: &Path,
    ) -> std::io::Result<Option<Vec<u8>>> {
        self.bump_digests_epoch();
        // No copy unless a reader still holds this version.
        self.digests_cache.borrow_mut().remove(format_dir);
        let mut d = Rc::try_unwrap(current).unwrap_or_else(|rc| (*rc).clone());
        d.insert(path.to_string(), Value::String(digest.to_string()));
        if self.journal.get().is_none() {
            // The caller's link makes the folder durable.
            meta::write_digests(format_dir, d.encode(), self.cfg.fsync, None).await?;
            self.cache_digests(format_dir, Rc::new(d));
            return Ok(None);
        }
        self.cache_digests(format_dir, Rc::new(d));
        self.mark_unflushed(format_dir);
        Ok(Some(journal::line(
            journal::relative(&self.root, format_dir),
            path,
            digest,
            journal::relative(&self.root, blob),
        )))
    }

    /// Announces, in the journal, the link an upload is about to make; the
    /// hold keeps that line's generation on disk until the upload ends.
    /// `None` without a journal.
    pub async fn announce_link(
        &self,
        format_dir: &Path,
        path: &str,
        digest: &str,
        blob: &Path,
    ) -> std::io::Result<Option<journal::GenHold<'_>>> {
        let Some(journal) = self.journal.get() else {
            return Ok(None);
        };
        let line = journal::intent_line(
            journal::relative(&self.root, format_dir),
            path,
            digest,
            journal::relative(&self.root, blob),
        );
        Ok(Some(journal.append_intent(line).await?))
    }

    /// Takes back an entry [`Store::record_digest`] made, for an upload
    /// that failed after it: the path gets `previous` again, or no entry.
    /// The caller holds the format lock.
    pub async fn undo_record(&self, format_dir: &Path, path: &str, previous: Option<String>) {
        // A checkpoint may have written the entry and let the cache go.
        let current = match self.digests_checked(format_dir).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("cannot take back {path} from {}/.digests: {e}", format_dir.display());
                return;
            }
        };
        self.bump_digests_epoch();
        self.digests_cache.borrow_mut().remove(format_dir);
        let mut d = Rc::try_unwrap(current).unwrap_or_else(|rc| (*rc).clone());
        match previous {
            Some(p) => d.insert(path.to_string(), Value::String(p)),
            None => d.remove(path),
        }
        self.cache_digests(format_dir, Rc::new(d));
        self.mark_unflushed(format_dir);
    }

    /// Appends the journal line of an upload recorded by
    /// [`Store::record_digest`]; the upload is answered only after this.
    /// Called without the format lock, so uploads into one format do not
    /// queue behind each other's journal writes: a checkpoint meanwhile
    /// writes the index, entry included, before it drops any journal file.
    /// If the journal cannot take the line, the index is written at once.
    pub async fn append_journal(&self, format_dir: &Path, line: Vec<u8>) -> std::io::Result<()> {
        let Some(journal) = self.journal.get() else {
            return Ok(());
        };
        if let Err(e) = journal.append(line, &self.dir_sync).await {
            tracing::warn!("digests journal: {e}; writing {}/.digests now", format_dir.display());
            self.flush_format(format_dir).await?;
        }
        Ok(())
    }

    /// Replaces a format's whole index and writes it at once (the
    /// post-process re-index). The caller holds the format lock.
    pub async fn write_digests(&self, format_dir: &Path, d: Digests) -> std::io::Result<()> {
        self.bump_digests_epoch();
        // Durable before the journal lines it replaces can go.
        let res = meta::write_digests(format_dir, d.to_bytes(), self.cfg.fsync, self.durable_dirs()).await;
        match (&res, self.journal.get()) {
            (Ok(()), _) => {
                self.unflushed.borrow_mut().remove(format_dir);
                self.cache_digests(format_dir, Rc::new(d));
            }
            (Err(_), Some(_)) => {
                // The new index is the truth now; a checkpoint retries.
                self.cache_digests(format_dir, Rc::new(d));
                self.mark_unflushed(format_dir);
            }
            (Err(_), None) => {
                self.digests_cache.borrow_mut().remove(format_dir);
            }
        }
        res
    }
}
