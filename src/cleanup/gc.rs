//! Orphan GC: removes files in `.blobs/` and `.uploads/` that have one link
//! and are older than `DLREPO_ORPHAN_BLOB_LIFETIME` (docs/spec/cleanup.md §5–6).
//!
//! Race freedom: before its `statx` the GC watches the path in the pin
//! table; after it, the GC deletes only if no request pinned the blob
//! meanwhile, marking it `Deleting` synchronously before submitting the
//! unlink, so a request either sees the blob kept or sees it gone. Staging
//! files in use are in `active_uploads` from before their creation.
//! Directories are read in bounded batches and the loop is given back
//! between them; a bounded window of candidates is checked at a time,
//! narrower while the server is busy (see [`Pace`]).

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
/// Candidates checked at once (statx or unlink in flight) while the server
/// is idle, and while it is busy.
const IDLE_WINDOW: usize = 64;
const BUSY_WINDOW: usize = 4;
/// While the server is idle, orphans are unlinked with plain system
/// calls (a ring unlink is an io-wq round trip each); the loop is given back
/// after this many files, so a request that arrives waits for at most that
/// many unlinks before the GC switches to the ring.
const IDLE_SYNC_BATCH: usize = 32;
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
}

impl<'a> Pace<'a> {
    fn new(activity: &'a Activity) -> Pace<'a> {
        Pace {
            activity,
            seen: Cell::new(activity.started()),
            last_busy: Cell::new(None),
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
    // A sliding window of checks in flight: the ring always has work, and
    // requests get a bigger share of it whenever any are in progress.
    let mut running = FuturesUnordered::new();
    let tally = |stats: &mut GcStats, r: Option<u64>| {
        stats.scanned += 1;
        if let Some(size) = r {
            stats.removed += 1;
            stats.bytes += size;
        }
    };
    let mut since_yield = 0;
    while let Some(dir) = dirs.pop() {
        let Ok(mut reader) = io::DirReader::open(&dir) else {
            continue;
        };
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
                let window = if busy { BUSY_WINDOW } else { IDLE_WINDOW };
                while running.len() >= window {
                    match running.next().await {
                        Some(r) => tally(stats, r),
                        None => break,
                    }
                }
                running.push(check_one(store, pace, path, is_uploads, now, lifetime));
                since_yield += 1;
                if busy || since_yield >= IDLE_SYNC_BATCH {
                    // Requests get the ring between two files when busy.
                    since_yield = 0;
                    if busy {
                        give_cpu_to_workers();
                    }
                    io::yield_to_ring().await;
                }
            }
            since_yield = 0;
            io::yield_to_ring().await;
        }
    }
    while let Some(r) = running.next().await {
        tally(stats, r);
    }
}

/// The walk never waits for anything while its stats come from the cache,
/// so this thread stays runnable, and the ring's io-wq workers, which do
/// the requests' file operations on the same core when it is pinned, would
/// get it only when the scheduler preempts us (a slice of milliseconds per
/// operation). Yielding the core lets a queued worker run now; it returns
/// at once when none is waiting.
fn give_cpu_to_workers() {
    let _ = nix::sched::sched_yield();
}

/// Checks one file and removes it if it is an orphan. Returns its size if removed.
async fn check_one(
    store: &Rc<Store>,
    pace: &Pace<'_>,
    path: PathBuf,
    is_uploads: bool,
    now: f64,
    lifetime: f64,
) -> Option<u64> {
    let path = path.as_path();
    let in_use = || {
        is_uploads && {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            store.upload_in_use(name)
        }
    };
    if in_use() {
        return None;
    }
    let mut watch = store.gc_watch(path)?;
    let st = match io::stat(path).await {
        Ok(st) => st,
        // Vanished or unreadable: skip, never fail the run.
        Err(_) => return None,
    };
    hooks::gc_paused(path).await;
    if !st.is_file() || st.nlink > 1 || now - st.mtime_f64() < lifetime {
        return None;
    }
    // Decided synchronously with the unlink's submission: nothing can pin
    // the blob or start using the upload between this check and the unlink.
    if in_use() || store.blob_leased(path) || !watch.begin_delete() {
        return None;
    }
    let res = if !pace.busy() {
        io::unlink_now(path)
    } else {
        io::unlink(path).await
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
