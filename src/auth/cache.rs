//! A bounded cache whose entries expire (credentials and ACL decisions).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

pub struct TtlCache<K, V> {
    map: HashMap<K, (V, Instant)>,
    size: usize,
    ttl: Duration,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(size: usize, ttl: Duration) -> Self {
        TtlCache {
            map: HashMap::new(),
            size,
            ttl,
        }
    }

    pub fn get<Q>(&mut self, k: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        match self.map.get(k) {
            Some((v, at)) if at.elapsed() < self.ttl => Some(v.clone()),
            Some(_) => {
                self.map.remove(k);
                None
            }
            None => None,
        }
    }

    pub fn insert(&mut self, k: K, v: V) {
        if self.size == 0 || self.ttl.is_zero() {
            return;
        }
        if self.map.len() >= self.size {
            let ttl = self.ttl;
            self.map.retain(|_, (_, at)| at.elapsed() < ttl);
            if self.map.len() >= self.size {
                // Still full of live entries: drop the oldest half.
                let mut ages: Vec<Instant> = self.map.values().map(|(_, at)| *at).collect();
                ages.sort();
                let cut = ages[ages.len() / 2];
                self.map.retain(|_, (_, at)| *at > cut);
            }
        }
        self.map.insert(k, (v, Instant::now()));
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_expiring() {
        let mut c = TtlCache::new(4, Duration::from_secs(60));
        for i in 0..10 {
            c.insert(i, i);
        }
        assert!(c.map.len() <= 4);
        assert_eq!(c.get(&9), Some(9));
        let mut c = TtlCache::new(4, Duration::from_millis(1));
        c.insert(1, 1);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.get(&1), None);
    }
}
