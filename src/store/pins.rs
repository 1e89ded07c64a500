//! The pin table: which blobs requests are using, and which one the orphan
//! GC is about to delete (docs/spec/cleanup.md §6).
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

use crate::pathmap::PathMap;
use std::cell::RefCell;
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

/// A pin asked for while the GC's unlink is in flight: wait for it to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnlinkInFlight;

/// The transitions, apart from the table so each can be checked on its own.
/// `None` stands for a blob that has no entry.
impl PinState {
    /// A request pins the blob.
    pub fn on_pin(s: Option<PinState>) -> Result<PinState, UnlinkInFlight> {
        match s {
            None => Ok(PinState::Pinned { pins: 1 }),
            Some(PinState::Pinned { pins }) => Ok(PinState::Pinned { pins: pins + 1 }),
            Some(PinState::Watched { pins, .. }) => Ok(PinState::Watched {
                pins: pins + 1,
                dirty: true,
            }),
            Some(PinState::Deleting) => Err(UnlinkInFlight),
        }
    }

    /// A request's pin ends; `None` when the entry goes.
    pub fn on_unpin(self) -> Option<PinState> {
        match self {
            PinState::Pinned { pins } if pins <= 1 => None,
            PinState::Pinned { pins } => Some(PinState::Pinned { pins: pins - 1 }),
            PinState::Watched { pins, dirty } => Some(PinState::Watched {
                pins: pins.saturating_sub(1),
                dirty,
            }),
            PinState::Deleting => Some(PinState::Deleting),
        }
    }

    /// The GC starts watching; `None` when the blob is in play already (it
    /// is then left alone this run).
    pub fn on_watch(s: Option<PinState>) -> Option<PinState> {
        match s {
            None => Some(PinState::Watched { pins: 0, dirty: false }),
            Some(_) => None,
        }
    }

    /// The GC decides after its `statx`: `Some(Deleting)` only when no
    /// request pinned the blob since the watch began.
    pub fn on_begin_delete(self) -> Option<PinState> {
        match self {
            PinState::Watched { pins: 0, dirty: false } => Some(PinState::Deleting),
            _ => None,
        }
    }

    /// The GC's watch ends, after its unlink or without one; `None` when
    /// the entry goes (pins still held keep it as plainly pinned).
    pub fn on_watch_end(self) -> Option<PinState> {
        match self {
            PinState::Deleting | PinState::Watched { pins: 0, .. } => None,
            PinState::Watched { pins, .. } => Some(PinState::Pinned { pins }),
            p @ PinState::Pinned { .. } => Some(p),
        }
    }
}

struct Entry {
    state: PinState,
    done: Rc<Notify>,
}

#[derive(Clone, Default)]
pub struct PinTable {
    map: Rc<RefCell<PathMap<Entry>>>,
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
                let current = map.get(path).map(|e| e.state);
                match PinState::on_pin(current) {
                    Ok(state) => {
                        map.entry_or_insert_with(path, || Entry {
                            state,
                            done: Rc::new(Notify::new()),
                        })
                        .state = state;
                        None
                    }
                    Err(UnlinkInFlight) => map.get(path).map(|e| e.done.clone()),
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
        let state = PinState::on_watch(map.get(path).map(|e| e.state))?;
        map.insert(
            path.to_path_buf(),
            Entry {
                state,
                done: Rc::new(Notify::new()),
            },
        );
        Some(Watch {
            table: self.clone(),
            path: path.to_path_buf(),
            deleting: false,
        })
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

    /// Moves the entry of `path` to `next` (`None`: removes it), returning
    /// the removed entry's waiters.
    fn set(map: &mut PathMap<Entry>, path: &Path, next: Option<PinState>) -> Option<Rc<Notify>> {
        match next {
            Some(state) => {
                if let Some(e) = map.get_mut(path) {
                    e.state = state;
                }
                None
            }
            None => map.remove(path).map(|e| e.done),
        }
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut map = self.table.map.borrow_mut();
        if let Some(e) = map.get(&self.path) {
            let next = e.state.on_unpin();
            PinTable::set(&mut map, &self.path, next);
        }
    }
}

impl Watch {
    /// Decides, synchronously, whether the GC may delete the blob now: only
    /// if no request pinned it since the watch began. On `true` the blob is
    /// `Deleting` until this watch is dropped.
    pub fn begin_delete(&mut self) -> bool {
        let mut map = self.table.map.borrow_mut();
        let Some(e) = map.get_mut(&self.path) else { return false };
        match e.state.on_begin_delete() {
            Some(state) => {
                e.state = state;
                self.deleting = true;
                true
            }
            None => false,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut map = self.table.map.borrow_mut();
        let Some(e) = map.get(&self.path) else { return };
        // Only this watch's own unlink ends a `Deleting`.
        if e.state == PinState::Deleting && !self.deleting {
            return;
        }
        let next = e.state.on_watch_end();
        let done = PinTable::set(&mut map, &self.path, next);
        drop(map);
        if let Some(done) = done {
            done.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PinState::*;

    #[test]
    fn transitions_pin_and_unpin() {
        assert_eq!(PinState::on_pin(None), Ok(Pinned { pins: 1 }));
        assert_eq!(PinState::on_pin(Some(Pinned { pins: 1 })), Ok(Pinned { pins: 2 }));
        assert_eq!(Pinned { pins: 2 }.on_unpin(), Some(Pinned { pins: 1 }));
        assert_eq!(Pinned { pins: 1 }.on_unpin(), None);
        // A pin during a watch marks it dirty, and stays dirty once released.
        let w = PinState::on_pin(Some(Watched { pins: 0, dirty: false }));
        assert_eq!(w, Ok(Watched { pins: 1, dirty: true }));
        assert_eq!(
            Watched { pins: 1, dirty: true }.on_unpin(),
            Some(Watched { pins: 0, dirty: true })
        );
        assert_eq!(PinState::on_pin(Some(Deleting)), Err(UnlinkInFlight));
        assert_eq!(Deleting.on_unpin(), Some(Deleting));
    }

    #[test]
    fn transitions_of_the_gc() {
        assert_eq!(PinState::on_watch(None), Some(Watched { pins: 0, dirty: false }));
        for held in [Pinned { pins: 1 }, Watched { pins: 0, dirty: false }, Deleting] {
            assert_eq!(PinState::on_watch(Some(held)), None, "{held:?}");
        }
        assert_eq!(Watched { pins: 0, dirty: false }.on_begin_delete(), Some(Deleting));
        assert_eq!(Watched { pins: 0, dirty: true }.on_begin_delete(), None);
        assert_eq!(Watched { pins: 1, dirty: true }.on_begin_delete(), None);
        assert_eq!(Deleting.on_watch_end(), None);
        assert_eq!(Watched { pins: 0, dirty: true }.on_watch_end(), None);
        assert_eq!(
            Watched { pins: 2, dirty: true }.on_watch_end(),
            Some(Pinned { pins: 2 })
        );
    }

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
