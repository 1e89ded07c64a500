//! Group commit for directory fsyncs.
//!
//! Making a new directory entry durable needs an fsync of the directory.
//! When many uploads land in the same directory at once, they can share one
//! fsync: a request only needs *some* fsync of that directory that started
//! after its own change. Requests that arrive while one is in flight wait for
//! the next round, which starts as soon as the current one ends and covers
//! all of them. The `.digests` journal shares its fdatasyncs the same way.

use crate::pathmap::PathMap;
use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use tokio::sync::watch;

#[derive(Default)]
struct DirState {
    /// Rounds started so far.
    started: u64,
    /// Highest round any waiter needs.
    wanted: u64,
    running: bool,
    /// A regular file (the journal) rather than a directory.
    file: bool,
    /// Last finished round and its outcome (as an errno, 0 for success).
    done: Option<watch::Sender<(u64, i32)>>,
}

/// Shares directory fsyncs between concurrent requests.
#[derive(Clone, Default)]
pub struct DirSyncer {
    dirs: Rc<RefCell<PathMap<DirState>>>,
}

impl DirSyncer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns once an fsync of `dir` that started after this call has finished.
    pub async fn sync(&self, dir: &Path) -> io::Result<()> {
        self.sync_path(dir, false).await
    }

    /// The same for the data of a regular file. A file that no longer
    /// exists counts as synced: its owner removes it only once its content
    /// is durable elsewhere.
    pub async fn sync_file(&self, file: &Path) -> io::Result<()> {
        self.sync_path(file, true).await
    }

    async fn sync_path(&self, dir: &Path, file: bool) -> io::Result<()> {
        let (need, mut rx, start) = {
            let mut dirs = self.dirs.borrow_mut();
            let st = dirs.entry_or_insert_with(dir, DirState::default);
            st.file = file;
            let need = st.started + 1;
            st.wanted = st.wanted.max(need);
            let tx = st.done.get_or_insert_with(|| watch::channel((0, 0)).0);
            let rx = tx.subscribe();
            let start = !st.running;
            if start {
                st.running = true;
            }
            (need, rx, start)
        };
        if start {
            tokio_uring::spawn(run(self.dirs.clone(), dir.to_path_buf()));
        }
        loop {
            let (round, errno) = *rx.borrow_and_update();
            if round >= need {
                return if errno == 0 {
                    Ok(())
                } else {
                    Err(io::Error::from_raw_os_error(errno))
                };
            }
            if rx.changed().await.is_err() {
                return Err(io::Error::other("directory sync task ended"));
            }
        }
    }
}

async fn run(dirs: Rc<RefCell<PathMap<DirState>>>, dir: PathBuf) {
    loop {
        let (round, file) = {
            let mut map = dirs.borrow_mut();
            let Some(st) = map.get_mut(&dir) else { return };
            if st.wanted <= st.started {
                st.running = false;
                // Nobody waits: forget the directory so the map stays small.
                if st.done.as_ref().map(|t| t.receiver_count()).unwrap_or(0) == 0 {
                    map.remove(&dir);
                }
                return;
            }
            st.started += 1;
            (st.started, st.file)
        };
        let res = if file {
            fsync_file(&dir).await
        } else {
            fsync_dir(&dir).await
        };
        let errno = match res {
            Ok(()) => 0,
            Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
        };
        let map = dirs.borrow();
        if let Some(tx) = map.get(&dir).and_then(|s| s.done.as_ref()) {
            tx.send_replace((round, errno));
        }
    }
}

async fn fsync_dir(dir: &Path) -> io::Result<()> {
    let f = super::open(dir, libc::O_RDONLY | libc::O_DIRECTORY, 0).await?;
    let res = f.sync_all().await;
    let closed = f.close().await;
    res.and(closed)
}

async fn fsync_file(path: &Path) -> io::Result<()> {
    let f = match super::open(path, libc::O_RDONLY, 0).await {
        Ok(f) => f,
        Err(e) if super::is_missing(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    let res = f.sync_data().await;
    let closed = f.close().await;
    res.and(closed)
}
