//! Orphan GC: removes files in `.blobs/` and `.uploads/` that have one link
//! and are older than `DLREPO_ORPHAN_BLOB_LIFETIME` (docs/spec/cleanup.md §5–6).
//!
//! Race freedom: before its `statx` the GC watches the path in the pin
//! table; after it, the GC deletes only if no request pinned the blob
//! meanwhile, marking it `Deleting` synchronously before submitting the
//! unlink, so a request either sees the blob kept or sees it gone. Staging
//! files in use are in `active_uploads` from before their creation.
//! Directories are read in bounded batches. While the server is idle a
//! window of checks is in flight and the loop is given back every few
//! files; while it is busy (see [`Pace`]) the walk runs in short slices
//! with rests between them, so it takes a capped share of the core.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::hooks;
use crate::io;
use crate::store::activity::Activity;
use crate::store::Store;

/// How many directory entries are read before giving the loop back.
const LIST_BATCH: usize = 256;
/// Checks at once (a statx that missed the caches in flight) while the
/// server is idle.
const IDLE_WINDOW: usize = 64;
/// Checks at once while the server is busy: the ring unlinks in flight
/// once a plain one has waited for the disk.
const BUSY_WINDOW: usize = 4;
/// While the server is idle, the loop is given back after this many files,
/// so a request that arrives waits for at most that many unlinks.
const IDLE_SYNC_BATCH: usize = 32;
/// While requests are being served, the walk works in slices of about
/// `BUSY_SLICE` of this thread's CPU time, each followed by a rest
/// `BUSY_REST` times as long: the walk takes at most an eighth of the
/// thread, and a request waits at most one slice behind it. Under a full
/// upload load the uploads lose more than the GC's own time (cold caches,
/// the rests' wake-ups): a fifth of the thread cost them 28 % of their
/// rate, an eighth 6–15 %, which keeps their p99 near 1.3× of what it is
/// without a GC (docs/benchmarks.md).
const BUSY_SLICE: Duration = Duration::from_micros(50);
const BUSY_REST: u32 = 7;
/// A slice that ran long (a folder batch, a slow stat) buys a rest of at
/// most this.
const MAX_REST: Duration = Duration::from_millis(100);
/// A plain unlink that took longer than this waited for the disk.
const SLOW_UNLINK: Duration = Duration::from_millis(1);
/// How long after the last request started the server still counts as
/// busy: a steady stream of requests has gaps between an answer and the
/// next request, and the walk must not use those for a batch of blocking
/// unlinks that the next request would wait behind.
const QUIET_AFTER: Duration = Duration::from_millis(50);

/// Whether requests are being served, as the walk sees it.
struct Pace<'a> {
    activity: &'a Activity,
    /// The activity's request count when last looked at.
    seen: Cell<u64>,
    /// When the walk last saw a request; none yet in this run.
    last_busy: Cell<Option<Instant>>,
    /// Set once a plain unlink waited for the disk: the rest of the run
    /// unlinks on the ring, where such a wait holds no request up.
    slow_unlinks: Cell<bool>,
}

impl<'a> Pace<'a> {
    fn new(activity: &'a Activity) -> Pace<'a> {
        Pace {
            activity,
            seen: Cell::new(activity.started()),
            last_busy: Cell::new(None),
            slow_unlinks: Cell::new(hooks::ring_unlinks()),
        }
    }

    fn busy(&self) -> bool {
        let started = self.activity.started();
        if self.activity.in_flight() > 0 || started != self.seen.get() {
            self.seen.set(started);
            self.last_busy.set(Some(Instant::now()));
            return true;
        }
        self.last_busy.get().is_some_and(|t| t.elapsed() < QUIET_AFTER)
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct GcStats {
    pub scanned: u64,
    pub removed: u64,
    pub bytes: u64,
}

pub async fn collect_orphans(store: &Rc<Store>) -> GcStats {
    let mut stats = GcStats::default();
    let lifetime = store.cfg.orphan_blob_lifetime as f64;
    let pace = Pace::new(&store.activity);
    for (folder, is_uploads) in [(store.blobs_dir(), false), (store.uploads_dir(), true)] {
        // Each folder on its own: a missing .blobs does not skip .uploads.
        if !io::is_dir(&folder).await {
            continue;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        walk(store, &pace, &folder, is_uploads, now, lifetime, &mut stats).await;
    }
    stats
}

async fn walk(
    store: &Rc<Store>,
    pace: &Pace<'_>,
    root: &Path,
    is_uploads: bool,
    now: f64,
    lifetime: f64,
    stats: &mut GcStats,
) {
    let mut dirs = vec![root.to_path_buf()];
    // A sliding window of checks in flight, wide while idle, narrow and in
    // capped slices while busy.
    let mut running = FuturesUnordered::new();
    let tally = |stats: &mut GcStats, r: Option<u64>| {
        stats.scanned += 1;
        if let Some(size) = r {
            stats.removed += 1;
            stats.bytes += size;
        }
    };
    let mut since_yield = 0;
    // Since when the walk has held the loop without a rest or a yield.
    let mut slice = thread_cpu();
    while let Some(dir) = dirs.pop() {
        let Ok(mut reader) = io::DirReader::open(&dir) else {
            continue;
        };
        // Entries are looked up from the folder, one name each; checks
        // still in flight keep it open.
        let folder = io::CachedDir::open(&dir).map(Rc::new);
        loop {
            // An entry the kernel cannot read ends this folder's scan; the
            // next run tries again.
            let batch = reader.next_batch(LIST_BATCH).unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            for e in batch {
                let path = dir.join(&e.name);
                if e.kind == Some(io::EntryKind::Dir) {
                    dirs.push(path);
                    continue;
                }
                let busy = pace.busy();
                // A check with plain system calls ends when first polled, so
                // while busy this is one file at a time; once unlinks are on
                // the ring, a few of them overlap.
                running.push(check_one(store, pace, folder.clone(), path, is_uploads, now, lifetime));
                let window = if busy { BUSY_WINDOW } else { IDLE_WINDOW };
                while running.len() >= window {
                    match running.next().await {
                        Some(r) => tally(stats, r),
                        None => break,
                    }
                }
                if busy {
                    let spent = thread_cpu().saturating_sub(slice);
                    if spent >= BUSY_SLICE {
                        io::sleep((spent * BUSY_REST).min(MAX_REST)).await;
                        slice = thread_cpu();
                    }
                    continue;
                }
                since_yield += 1;
                if since_yield >= IDLE_SYNC_BATCH {
                    since_yield = 0;
                    io::yield_to_ring().await;
                    slice = thread_cpu();
                }
            }
            if !pace.busy() {
                since_yield = 0;
                io::yield_to_ring().await;
                slice = thread_cpu();
            }
        }
    }
    while let Some(r) = running.next().await {
        tally(stats, r);
    }
}

/// CPU time this thread has used. Wall time would count the io-wq
/// workers and other threads that preempt the walk on a shared core.
fn thread_cpu() -> Duration {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

/// Checks one file and removes it if it is an orphan. Returns its size if removed.
async fn check_one(
    store: &Rc<Store>,
    pace: &Pace<'_>,
    folder: Option<Rc<io::CachedDir>>,
    path: PathBuf,
    is_uploads: bool,
    now: f64,
    lifetime: f64,
) -> Option<u64> {
    let path = path.as_path();
    let name = path.file_name()?;
    let in_use = || is_uploads && store.upload_in_use(name.to_str().unwrap_or(""));
    if in_use() {
        return None;
    }
    let mut watch = store.gc_watch(path)?;
    let cached = folder.as_ref().and_then(|f| f.stat(name));
    let st = match cached {
        Some(r) => r,
        None => io::stat(path).await,
    };
    // Vanished or unreadable: skip, never fail the run.
    let st = st.ok()?;
    hooks::gc_paused(path).await;
    if !st.is_file() || st.nlink > 1 || now - st.mtime_f64() < lifetime {
        return None;
    }
    // Decided synchronously with the unlink's submission: nothing can pin
    // the blob or start using the upload between this check and the unlink.
    if in_use() || store.blob_leased(path) || !watch.begin_delete() {
        return None;
    }
    // A plain system call: the stat has brought the inode into the cache
    // and the walk has just read its folder, so it seldom waits for the
    // disk, and a ring unlink is an io-wq round trip for each file. When it
    // did wait (a cold allocation bitmap), the ring takes over.
    let res = if pace.slow_unlinks.get() {
        io::unlink(path).await
    } else {
        let started = Instant::now();
        let res = match &folder {
            Some(f) => f.unlink_now(name),
            None => io::unlink_now(path),
        };
        if started.elapsed() > SLOW_UNLINK {
            pace.slow_unlinks.set(true);
        }
        res
    };
    drop(watch);
    res.ok().map(|()| st.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_between_two_looks_counts_as_busy() {
        let activity = Rc::new(Activity::default());
        let pace = Pace::new(&activity);
        assert!(!pace.busy(), "no request yet: idle");
        let guard = activity.begin();
        assert!(pace.busy(), "a request in flight");
        drop(guard);
        // Started and finished while the walk was not looking.
        drop(activity.begin());
        assert!(pace.busy(), "a request came and went");
    }

    #[test]
    fn requests_from_before_the_run_do_not_count() {
        let activity = Rc::new(Activity::default());
        drop(activity.begin());
        let pace = Pace::new(&activity);
        assert!(!pace.busy());
    }
}
