//! Paths with work in progress, and waiting until none of interest is left.
//!
//! A delete waits for the `.digests` write-backs below it, and a lock
//! request for the uploads still linking into its job; both take the same
//! shape: a guard marks a path busy while it lives, and a waiter sleeps
//! until no busy path matches what it cares about.

use crate::pathmap::PathMap;
use std::cell::RefCell;
use std::path::{Path, PathBuf};

use tokio::sync::Notify;

#[derive(Default)]
pub struct BusyPaths {
    /// How many guards hold each path.
    counts: RefCell<PathMap<usize>>,
    /// Woken each time a path stops being busy.
    released: Notify,
}

impl BusyPaths {
    /// Marks `path` busy until the guard drops.
    pub fn enter(&self, path: PathBuf) -> BusyGuard<'_> {
        *self.counts.borrow_mut().entry_or_insert_with(&path, || 0) += 1;
        BusyGuard { busy: self, path }
    }

    /// Whether some busy path satisfies `matches`.
    pub fn any(&self, matches: impl Fn(&Path) -> bool) -> bool {
        self.counts.borrow().keys().any(matches)
    }

    /// Returns once no busy path satisfies `matches`.
    pub async fn wait_until_none(&self, matches: impl Fn(&Path) -> bool) {
        // One thread: nothing can release a path between the check and the
        // registration of the wait, which happens on its first poll.
        while self.counts.borrow().keys().any(&matches) {
            self.released.notified().await;
        }
    }
}

/// See [`BusyPaths::enter`].
pub struct BusyGuard<'a> {
    busy: &'a BusyPaths,
    path: PathBuf,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        let mut counts = self.busy.counts.borrow_mut();
        if let Some(n) = counts.get_mut(&self.path) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.path);
                drop(counts);
                self.busy.released.notify_waiters();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn a_waiter_wakes_when_the_last_matching_guard_drops() {
        tokio_uring::start(async {
            let busy = Rc::new(BusyPaths::default());
            let a1 = busy.enter("/r/a".into());
            let a2 = busy.enter("/r/a".into());
            let b = busy.enter("/r/b".into());
            let done = Rc::new(std::cell::Cell::new(false));
            let task = {
                let (busy, done) = (busy.clone(), done.clone());
                tokio_uring::spawn(async move {
                    busy.wait_until_none(|p| p.starts_with("/r/a")).await;
                    done.set(true);
                })
            };
            tokio::task::yield_now().await;
            drop(a1);
            tokio::task::yield_now().await;
            assert!(!done.get(), "one guard on /r/a is still held");
            drop(a2);
            tokio::time::timeout(std::time::Duration::from_secs(5), task)
                .await
                .expect("the waiter was not woken")
                .expect("the waiter task ended normally");
            assert!(done.get());
            // An unrelated busy path does not hold anyone up.
            busy.wait_until_none(|p| p.starts_with("/r/a")).await;
            drop(b);
        });
    }
}
