//! Maps and sets keyed by paths. Every request looks up a dozen paths
//! (pins, known directories, indexes, locks); std's default SipHash made
//! that a visible share of a small upload's CPU. foldhash is seeded per
//! process, so request-chosen paths cannot be aimed at one bucket.

use std::path::PathBuf;

pub type PathMap<V> = std::collections::HashMap<PathBuf, V, foldhash::fast::RandomState>;
pub type PathSet = std::collections::HashSet<PathBuf, foldhash::fast::RandomState>;
