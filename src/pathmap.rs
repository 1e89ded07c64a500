//! Maps and sets keyed by paths. Every request looks up a dozen paths
//! (pins, known directories, indexes, locks). std's `Path` hashes itself
//! component by component, one hasher call each, which made path hashing a
//! visible share of a small upload's CPU; here a path is hashed as its
//! bytes in one call. foldhash is seeded per process, so request-chosen
//! paths cannot be aimed at one bucket.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use hashbrown::Equivalent;

type State = foldhash::fast::RandomState;

/// A path as a key: equal when `Path`s are equal (component by component,
/// so `a/b/` is `a/b`), and hashed as the bytes of its normal form, which
/// is the path itself unless it has a `//`, a `/./` or a trailing `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathKey(PathBuf);

impl PathKey {
    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

impl From<PathBuf> for PathKey {
    fn from(p: PathBuf) -> Self {
        PathKey(p)
    }
}

impl Hash for PathKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_path(&self.0, h)
    }
}

/// A borrowed path to look a [`PathKey`] up with, without building one.
struct Query<'a>(&'a Path);

impl Hash for Query<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_path(self.0, h)
    }
}

impl Equivalent<PathKey> for Query<'_> {
    fn equivalent(&self, key: &PathKey) -> bool {
        self.0 == key.0
    }
}

fn hash_path<H: Hasher>(p: &Path, h: &mut H) {
    use std::os::unix::ffi::OsStrExt;
    let bytes = p.as_os_str().as_bytes();
    if is_normal(bytes) {
        h.write(bytes);
    } else {
        // Rare: hash what the components spell, as equal paths must hash alike.
        let normal: PathBuf = p.components().collect();
        h.write(normal.as_os_str().as_bytes());
    }
}

/// Whether collecting the path's components gives back the same bytes.
///
/// Only a `/` followed by `/` or by a `.` component breaks the normal form.
/// Every request hashes a dozen or more paths, and a byte-at-a-time scan
/// was most of the cost of hashing one, so this looks at 8 bytes at a time
/// for a `/` followed by `/` or `.` and checks only those spots exactly.
fn is_normal(b: &[u8]) -> bool {
    if b.len() > 1 && b.last() == Some(&b'/') {
        return false;
    }
    let mut i = 0;
    while let (Some(w), Some(next)) = (word(b, i), word(b, i + 1)) {
        let spots = bytes_equal(w, b'/') & (bytes_equal(next, b'/') | bytes_equal(next, b'.'));
        if spots != 0 && !exact(b, i, i + 8) {
            return false;
        }
        i += 8;
    }
    exact(b, i, b.len())
}

/// The 8 bytes at `i`, as a little-endian word.
fn word(b: &[u8], i: usize) -> Option<u64> {
    let bytes: [u8; 8] = b.get(i..i + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// A mask with the high bit set in (at least) every byte of `w` equal to
/// `c`; it may flag a few more, which the exact check then clears.
fn bytes_equal(w: u64, c: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let x = w ^ (ONES * c as u64);
    x.wrapping_sub(ONES) & !x & (ONES << 7)
}

/// The byte-by-byte check of the slashes at `from..to`.
fn exact(b: &[u8], from: usize, to: usize) -> bool {
    (from..to.min(b.len())).all(|i| {
        b[i] != b'/'
            || match b.get(i + 1) {
                Some(b'/') => false,
                Some(b'.') => b.get(i + 2).is_some_and(|&c| c != b'/'),
                _ => true,
            }
    })
}

/// A hash map keyed by paths.
pub struct PathMap<V> {
    map: hashbrown::HashMap<PathKey, V, State>,
}

impl<V> Default for PathMap<V> {
    fn default() -> Self {
        PathMap {
            map: hashbrown::HashMap::with_hasher(State::default()),
        }
    }
}

impl<V> PathMap<V> {
    pub fn get(&self, p: &Path) -> Option<&V> {
        self.map.get(&Query(p))
    }

    pub fn get_mut(&mut self, p: &Path) -> Option<&mut V> {
        self.map.get_mut(&Query(p))
    }

    pub fn contains_key(&self, p: &Path) -> bool {
        self.map.contains_key(&Query(p))
    }

    pub fn insert(&mut self, p: PathBuf, v: V) -> Option<V> {
        self.map.insert(PathKey(p), v)
    }

    pub fn remove(&mut self, p: &Path) -> Option<V> {
        self.map.remove(&Query(p))
    }

    /// The entry for `p`, built only if it is missing.
    pub fn entry_or_insert_with(&mut self, p: &Path, make: impl FnOnce() -> V) -> &mut V {
        match self.map.entry_ref(&Query(p)) {
            hashbrown::hash_map::EntryRef::Occupied(e) => e.into_mut(),
            hashbrown::hash_map::EntryRef::Vacant(e) => e.insert_with_key(PathKey(p.to_path_buf()), make()),
        }
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&Path, &mut V) -> bool) {
        self.map.retain(|k, v| keep(&k.0, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Path> {
        self.map.keys().map(PathKey::as_path)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Path, &V)> {
        self.map.iter().map(|(k, v)| (k.as_path(), v))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn clear(&mut self) {
        self.map.clear()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// A hash set of paths.
#[derive(Default)]
pub struct PathSet {
    set: PathMap<()>,
}

impl PathSet {
    pub fn contains(&self, p: &Path) -> bool {
        self.set.contains_key(p)
    }

    /// Whether `p` was not in the set yet.
    pub fn insert(&mut self, p: PathBuf) -> bool {
        self.set.insert(p, ()).is_none()
    }

    /// Whether `p` was in the set.
    pub fn remove(&mut self, p: &Path) -> bool {
        self.set.remove(p).is_some()
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&Path) -> bool) {
        self.set.retain(|p, _| keep(p))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Path> {
        self.set.keys()
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn clear(&mut self) {
        self.set.clear()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_paths_are_one_key_however_spelled() {
        let mut m = PathMap::default();
        m.insert(PathBuf::from("/r/branches/b/t"), 1);
        for p in [
            "/r/branches/b/t",
            "/r/branches/b/t/",
            "/r//branches/b/t",
            "/r/./branches/b/t/.",
        ] {
            assert_eq!(m.get(Path::new(p)), Some(&1), "{p}");
        }
        assert_eq!(m.get(Path::new("/r/branches/b/t2")), None);
        assert_eq!(m.get(Path::new("/r/branches/b")), None);
        // Hidden names are plain components.
        m.insert(PathBuf::from("/r/.blobs/sha256/ab"), 2);
        assert_eq!(m.get(Path::new("/r/.blobs/sha256/ab")), Some(&2));
        assert_eq!(m.get(Path::new("/r/.blobs//sha256/ab/")), Some(&2));
        *m.entry_or_insert_with(Path::new("/r/.blobs/sha256/ab/"), || 0) += 1;
        assert_eq!(m.get(Path::new("/r/.blobs/sha256/ab")), Some(&3));
        assert_eq!(m.len(), 2);
        assert_eq!(m.remove(Path::new("/r/branches/b/t//")), Some(1));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn normal_form_check() {
        for p in ["", "/", "a", "/a/b", "./a", "/a/.b", "/a/..", "a/b.", "/.blobs/x"] {
            assert!(is_normal(p.as_bytes()), "{p}");
            let collected: PathBuf = Path::new(p).components().collect();
            assert_eq!(collected, Path::new(p));
        }
        for p in ["a/", "/a//b", "//a", "/a/./b", "/a/.", "/a/b/", "./", "/./a", "/.b/./c"] {
            assert!(!is_normal(p.as_bytes()), "{p}");
        }
    }

    #[test]
    fn word_check_agrees_with_components() {
        // Every path of up to 10 bytes over `/`, `.` and `a`, and longer
        // ones with the interesting spot at each offset of an 8-byte word.
        let mut paths = vec![String::new()];
        let mut level = vec![String::new()];
        for _ in 0..10 {
            level = level
                .iter()
                .flat_map(|p| ["/", ".", "a"].map(|c| format!("{p}{c}")))
                .collect();
            paths.extend(level.iter().cloned());
        }
        for pad in 0..20 {
            for spot in ["//", "/./", "/.", "/.a", "/..", "/", "a"] {
                paths.push(format!("/root/{}{spot}/x", "b".repeat(pad)));
                paths.push(format!("/root/{}{spot}", "b".repeat(pad)));
            }
        }
        for p in paths {
            let collected: PathBuf = Path::new(&p).components().collect();
            let expect = collected.as_os_str() == std::ffi::OsStr::new(&p);
            assert_eq!(is_normal(p.as_bytes()), expect, "{p:?}");
        }
    }

    #[test]
    fn sets() {
        let mut s = PathSet::default();
        assert!(s.insert(PathBuf::from("/a/b")));
        assert!(!s.insert(PathBuf::from("/a/b/")));
        assert!(s.contains(Path::new("/a//b")));
        s.insert(PathBuf::from("/a/c"));
        s.retain(|p| !p.ends_with("c"));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![Path::new("/a/b")]);
        assert!(s.remove(Path::new("/a/b")));
        assert!(s.is_empty());
    }
}
