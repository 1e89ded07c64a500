//! Per-key async mutexes owned by the runtime thread.
//!
//! A key (a blob path, a staging path, a format directory) is locked for a
//! short sequence of ring operations that must not interleave with another
//! actor's sequence on the same key: the orphan GC's `statx → unlink` versus
//! a request's `check → touch → link`, or two uploads rewriting the same
//! `.digests`. Only keys in use are stored. Everything lives on the runtime
//! thread, so plain `Rc`/`RefCell` suffice.

use std::cell::RefCell;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct Slot {
    locked: bool,
    /// Holders plus waiters; the key is forgotten when it drops to zero.
    users: usize,
    waiters: Vec<Waker>,
}

// Keys are paths and user names chosen by requests: a seeded hash.
type Map<K> = Rc<RefCell<hashbrown::HashMap<K, Slot, foldhash::fast::RandomState>>>;

pub struct KeyLocks<K: Eq + Hash + Clone> {
    map: Map<K>,
}

impl<K: Eq + Hash + Clone> Clone for KeyLocks<K> {
    fn clone(&self) -> Self {
        KeyLocks { map: self.map.clone() }
    }
}

impl<K: Eq + Hash + Clone> Default for KeyLocks<K> {
    fn default() -> Self {
        KeyLocks {
            map: Rc::new(RefCell::new(hashbrown::HashMap::with_hasher(Default::default()))),
        }
    }
}

impl<K: Eq + Hash + Clone> KeyLocks<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for the key's lock.
    pub fn lock(&self, key: impl Into<K>) -> LockFuture<K> {
        let key = key.into();
        {
            let mut map = self.map.borrow_mut();
            match map.get_mut(&key) {
                Some(slot) => slot.users += 1,
                None => {
                    map.insert(
                        key.clone(),
                        Slot {
                            users: 1,
                            ..Slot::default()
                        },
                    );
                }
            }
        }
        LockFuture {
            key: Some(key),
            map: self.map.clone(),
        }
    }

    /// Takes the lock only if it is free right now.
    pub fn try_lock(&self, key: K) -> Option<KeyGuard<K>> {
        let mut map = self.map.borrow_mut();
        let slot = map.entry(key.clone()).or_default();
        if slot.locked {
            if slot.users == 0 {
                map.remove(&key);
            }
            return None;
        }
        slot.locked = true;
        slot.users += 1;
        Some(KeyGuard {
            key,
            map: self.map.clone(),
        })
    }

    /// Whether someone holds or waits for the key.
    pub fn is_locked(&self, key: &K) -> bool {
        self.map.borrow().get(key).map(|s| s.locked).unwrap_or(false)
    }

    /// Number of keys in use.
    pub fn len(&self) -> usize {
        self.map.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub struct LockFuture<K: Eq + Hash + Clone> {
    key: Option<K>,
    map: Map<K>,
}

impl<K: Eq + Hash + Clone + Unpin> Future for LockFuture<K> {
    type Output = KeyGuard<K>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<KeyGuard<K>> {
        let this = &mut *self;
        let Some(key) = this.key.as_ref() else {
            return Poll::Pending;
        };
        let mut map = this.map.borrow_mut();
        // Our `users` count keeps the slot until we are done.
        match map.get_mut(key) {
            Some(slot) if slot.locked => {
                slot.waiters.push(cx.waker().clone());
                return Poll::Pending;
            }
            Some(slot) => slot.locked = true,
            None => {
                let slot = Slot {
                    locked: true,
                    users: 1,
                    waiters: Vec::new(),
                };
                map.insert(key.clone(), slot);
            }
        }
        drop(map);
        let Some(key) = this.key.take() else {
            return Poll::Pending;
        };
        Poll::Ready(KeyGuard {
            key,
            map: this.map.clone(),
        })
    }
}

impl<K: Eq + Hash + Clone> Drop for LockFuture<K> {
    fn drop(&mut self) {
        // Dropped while still waiting: give up our place.
        if let Some(key) = self.key.take() {
            release_user(&self.map, &key, false);
        }
    }
}

/// Holds a key's lock until dropped.
pub struct KeyGuard<K: Eq + Hash + Clone> {
    key: K,
    map: Map<K>,
}

impl<K: Eq + Hash + Clone> Drop for KeyGuard<K> {
    fn drop(&mut self) {
        release_user(&self.map, &self.key, true);
    }
}

fn release_user<K: Eq + Hash + Clone>(map: &Map<K>, key: &K, unlock: bool) {
    let wakers = {
        let mut map = map.borrow_mut();
        let Some(slot) = map.get_mut(key) else { return };
        slot.users = slot.users.saturating_sub(1);
        if unlock {
            slot.locked = false;
        }
        let wakers = if unlock {
            std::mem::take(&mut slot.waiters)
        } else {
            Vec::new()
        };
        if slot.users == 0 {
            map.remove(key);
        }
        wakers
    };
    // Wake every waiter: one takes the lock, the others re-queue. This way a
    // waiter that was dropped after being woken cannot strand the rest.
    for w in wakers {
        w.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_and_forgets() {
        tokio_uring::start(async {
            let locks: KeyLocks<u32> = KeyLocks::new();
            let g = locks.lock(1u32).await;
            assert!(locks.is_locked(&1));
            assert!(locks.try_lock(1).is_none());
            let l2 = locks.clone();
            let order = Rc::new(RefCell::new(Vec::new()));
            let o2 = order.clone();
            let t = tokio_uring::spawn(async move {
                let _g = l2.lock(1u32).await;
                o2.borrow_mut().push("second");
            });
            tokio::task::yield_now().await;
            order.borrow_mut().push("first");
            drop(g);
            t.await.expect("test value");
            assert_eq!(*order.borrow(), vec!["first", "second"]);
            assert!(locks.is_empty());
            let g = locks.try_lock(2).expect("test value");
            drop(g);
            assert!(locks.is_empty());
        });
    }

    #[test]
    fn dropped_waiter_does_not_strand() {
        tokio_uring::start(async {
            let locks: KeyLocks<u32> = KeyLocks::new();
            let g = locks.lock(7u32).await;
            let waiting = locks.lock(7u32);
            drop(waiting);
            drop(g);
            let _g = locks.lock(7u32).await;
            assert_eq!(locks.len(), 1);
        });
    }
}
