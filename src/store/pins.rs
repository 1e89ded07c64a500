//! The pin table: which blobs requests are using, and which one the orphan
//! GC is about to delete (cleanup.md §6).
//!
//! With a completion-based runtime every ring operation is a suspension
//! point, so the GC's `statx → decide → unlink` can interleave with a
//! request's `check → touch → link` on the same blob. Each blob in play has
//! one entry here, a small state machine owned by the runtime thread:
//!
//! ```text
//!             pin                     GC watch (no pins)
//!   (absent) ─────► Pinned{n} ◄──┐   (absent) ──────────► Watched{clean}
//!       ▲              │ unpin    │ pin                        │ pin → dirty
//!       └──────────────┘ (n = 0)  └──── Watched ◄──────────────┘
//!                                        │ GC: still clean, no pins
//!                                        ▼
//!                                     Deleting ──(unlink done)──► (absent)
//! ```
//!
//! * A request pins a blob for the whole of its short sequence. Pinning a
//!   blob that is being deleted waits until the unlink has finished, so the
//!   request then sees the blob missing (invariant I1, second half).
//! * The GC watches a blob before its `statx`. Any pin during the watch
//!   marks it dirty; after the `statx` the GC deletes only a blob that is
//!   still clean and unpinned, switching it to `Deleting` synchronously,
//!   before it submits the unlink (invariant I1, first half).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use tokio::sync::Notify;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinState {
    /// Requests are using the blob.
    Pinned { pins: u32 },
    /// The GC is looking at the blob; `dirty` once a request pinned it since.
    Watched { pins: u32, dirty: bool },
    /// The GC's unlink is in flight; new pins wait.
    Deleting,
}

struct Entry {
    state: PinState,
    done: Rc<Notify>,
}

#[derive(Clone, Default)]
pub struct PinTable {
    map: Rc<RefCell<HashMap<PathBuf, Entry>>>,
}

/// A request's hold on a blob; dropping it unpins.
pub struct Pin {
    table: PinTable,
    path: PathBuf,
}

/// The GC's watch on a blob; dropping it without deleting forgets the watch.
pub struct Watch {
    table: PinTable,
    path: PathBuf,
    deleting: bool,
}

impl PinTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pins a blob, waiting first for a GC unlink of it in flight.
    pub async fn pin(&self, path: &Path) -> Pin {
        loop {
            let wait = {
                let mut map = self.map.borrow_mut();
                match map.get_mut(path) {
                    None => {
                        map.insert(
                            path.to_path_buf(),
                            Entry {
                                state: PinState::Pinned { pins: 1 },
                                done: Rc::new(Notify::new()),
                            },
                        );
                        None
                    }
                    Some(e) => match &mut e.state {
                        PinState::Pinned { pins } => {
                            *pins += 1;
                            None
                        }
                        PinState::Watched { pins, dirty } => {
                            *pins += 1;
                            *dirty = true;
                            None
                        }
                        PinState::Deleting => Some(e.done.clone()),
                    },
                }
            };
            match wait {
                None => {
                    return Pin {
                        table: self.clone(),
                        path: path.to_path_buf(),
                    }
                }
                Some(done) => {
                    // The entry is removed when the unlink ends; wait for that.
                    let notified = done.notified();
                    if self.state(path) == Some(PinState::Deleting) {
                        notified.await;
                    }
                }
            }
        }
    }

    /// Starts watching a blob for the GC. `None` when a request holds it.
    pub fn watch(&self, path: &Path) -> Option<Watch> {
        let mut map = self.map.borrow_mut();
        match map.get(path) {
            Some(_) => None,
            None => {
                map.insert(
                    path.to_path_buf(),
                    Entry {
                        state: PinState::Watched { pins: 0, dirty: false },
                        done: Rc::new(Notify::new()),
                    },
                );
                Some(Watch {
                    table: self.clone(),
                    path: path.to_path_buf(),
                    deleting: false,
                })
            }
        }
    }

    pub fn state(&self, path: &Path) -> Option<PinState> {
        self.map.borrow().get(path).map(|e| e.state)
    }

    /// Entries in the table (for tests and status).
    pub fn len(&self) -> usize {
        self.map.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn unpin(&self, path: &Path) {
        let mut map = self.map.borrow_mut();
        let Some(e) = map.get_mut(path) else { return };
        match &mut e.state {
            PinState::Pinned { pins } => {
                *pins -= 1;
                if *pins == 0 {
                    map.remove(path);
                }
            }
            PinState::Watched { pins, .. } => *pins = pins.saturating_sub(1),
            PinState::Deleting => {}
        }
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.table.unpin(&self.path);
    }
}

impl Watch {
    /// Decides, synchronously, whether the GC may delete the blob now: only
    /// if no request pinned it since the watch began. On `true` the blob is
    /// `Deleting` until this watch is dropped.
    pub fn begin_delete(&mut self) -> bool {
        let mut map = self.table.map.borrow_mut();
        let Some(e) = map.get_mut(&self.path) else { return false };
        match e.state {
            PinState::Watched { pins: 0, dirty: false } => {
                e.state = PinState::Deleting;
                self.deleting = true;
                true
            }
            _ => false,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut map = self.table.map.borrow_mut();
        let Some(e) = map.get_mut(&self.path) else { return };
        match e.state {
            PinState::Deleting if self.deleting => {
                let done = e.done.clone();
                map.remove(&self.path);
                drop(map);
                done.notify_waiters();
            }
            PinState::Watched { pins, .. } => {
                if pins == 0 {
                    map.remove(&self.path);
                } else {
                    // Requests still hold it: it stays, as plainly pinned.
                    e.state = PinState::Pinned { pins };
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> PathBuf {
        PathBuf::from("/r/.blobs/sha256/ab/abcd")
    }

    #[test]
    fn pins_count_and_forget() {
        tokio_uring::start(async {
            let t = PinTable::new();
            let a = t.pin(&p()).await;
            let b = t.pin(&p()).await;
            assert_eq!(t.state(&p()), Some(PinState::Pinned { pins: 2 }));
            assert!(t.watch(&p()).is_none(), "the GC never watches a pinned blob");
            drop(a);
            drop(b);
            assert!(t.is_empty());
        });
    }

    #[test]
    fn a_pin_during_the_watch_spares_the_blob() {
        tokio_uring::start(async {
            let t = PinTable::new();
            let mut w = t.watch(&p()).expect("test value");
            // A request arrives between the GC's statx and its decision, and finishes.
            drop(t.pin(&p()).await);
            assert_eq!(t.state(&p()), Some(PinState::Watched { pins: 0, dirty: true }));
            assert!(!w.begin_delete());
            drop(w);
            assert!(t.is_empty());
        });
    }

    #[test]
    fn a_pin_still_held_when_the_watch_ends_stays() {
        tokio_uring::start(async {
            let t = PinTable::new();
            let w = t.watch(&p()).expect("test value");
            let pin = t.pin(&p()).await;
            drop(w);
            assert_eq!(t.state(&p()), Some(PinState::Pinned { pins: 1 }));
            drop(pin);
            assert!(t.is_empty());
        });
    }

    #[test]
    fn pins_wait_for_an_unlink_in_flight() {
        tokio_uring::start(async {
            let t = PinTable::new();
            let mut w = t.watch(&p()).expect("test value");
            assert!(w.begin_delete());
            assert_eq!(t.state(&p()), Some(PinState::Deleting));
            let t2 = t.clone();
            let order = Rc::new(RefCell::new(Vec::new()));
            let o2 = order.clone();
            let waiter = tokio_uring::spawn(async move {
                let _pin = t2.pin(&p()).await;
                o2.borrow_mut().push("pinned");
            });
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            order.borrow_mut().push("unlinked");
            drop(w);
            waiter.await.expect("test value");
            assert_eq!(*order.borrow(), vec!["unlinked", "pinned"]);
            assert!(t.is_empty());
        });
    }
}
