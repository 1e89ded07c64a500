//! A format's `.digests` index, kept parsed (for lookups and listings) and,
//! when the file is rewritten for every upload, also encoded.
//!
//! With `DLREPO_DIGESTS_FLUSH_DELAY_MS=0` every upload rewrites the whole
//! file, as the original does, so a format with n files costs O(n) per
//! upload. Re-encoding and re-sorting n entries each time dominated small
//! uploads into big formats. So once a rewrite has needed the bytes, they
//! are kept, with the byte range of every entry in key order: an upload
//! splices one entry in (a binary search and one move of the bytes after
//! it) and the rewrite writes the buffer as it is. With the journal (the
//! default) a format is encoded once per checkpoint instead, and keeping
//! the bytes would only double the memory and the work per upload.

use std::ops::{Deref, Range};

use serde_json::{Map, Value};

use super::pyjson;

#[derive(Debug, Default, Clone)]
pub struct Digests {
    /// File order, as read (or as inserted).
    map: Map<String, Value>,
    /// Built by the first [`Digests::encode`], then kept in step.
    encoded: Option<Encoded>,
}

/// `json.dumps(digests, sort_keys=True)` and where each entry lies in it.
#[derive(Debug, Clone)]
struct Encoded {
    buf: Vec<u8>,
    /// Sorted by key bytes, which for UTF-8 is code point order: Python's
    /// `sort_keys`. Each range covers `"key": value`, without separators.
    slots: Vec<(Box<str>, Range<usize>)>,
}

impl Encoded {
    fn new(map: &Map<String, Value>) -> Encoded {
        let mut entries: Vec<(&String, &Value)> = map.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut buf = Vec::with_capacity(2 + entries.len() * 96);
        let mut slots = Vec::with_capacity(entries.len());
        buf.push(b'{');
        for (i, (k, v)) in entries.into_iter().enumerate() {
            if i > 0 {
                buf.extend_from_slice(b", ");
            }
            let start = buf.len();
            buf.extend_from_slice(entry(k, v).as_bytes());
            slots.push((k.as_str().into(), start..buf.len()));
        }
        buf.push(b'}');
        Encoded { buf, slots }
    }

    fn set(&mut self, key: &str, text: &[u8]) {
        match self.slots.binary_search_by(|(k, _)| k.as_bytes().cmp(key.as_bytes())) {
            Ok(i) => {
                let old = self.slots[i].1.clone();
                self.buf.splice(old.clone(), text.iter().copied());
                self.slots[i].1 = old.start..old.start + text.len();
                self.shift(i + 1, text.len() as isize - old.len() as isize);
            }
            Err(i) => {
                let n = self.slots.len();
                let (at, bytes, start) = if n == 0 {
                    // `{}` becomes `{text}`.
                    (1, text.to_vec(), 1)
                } else if i < n {
                    // `text, ` before the entry that follows.
                    let at = self.slots[i].1.start;
                    (at, [text, b", "].concat(), at)
                } else {
                    // `, text` after the last entry.
                    let at = self.slots[n - 1].1.end;
                    (at, [b", ", text].concat(), at + 2)
                };
                let added = bytes.len() as isize;
                self.buf.splice(at..at, bytes);
                self.slots.insert(i, (key.into(), start..start + text.len()));
                self.shift(i + 1, added);
            }
        }
    }

    /// Moves the ranges of the slots from `from` on by `delta` bytes.
    fn shift(&mut self, from: usize, delta: isize) {
        if delta == 0 {
            return;
        }
        for (_, r) in &mut self.slots[from..] {
            *r = r.start.wrapping_add_signed(delta)..r.end.wrapping_add_signed(delta);
        }
    }
}

impl Digests {
    pub fn from_map(map: Map<String, Value>) -> Self {
        Digests { map, encoded: None }
    }

    fn encoded(&mut self) -> &mut Encoded {
        let map = &self.map;
        self.encoded.get_or_insert_with(|| Encoded::new(map))
    }

    /// Adds or replaces one entry (an existing key keeps its position).
    pub fn insert(&mut self, key: String, value: Value) {
        if let Some(e) = &mut self.encoded {
            e.set(&key, entry(&key, &value).as_bytes());
        }
        self.map.insert(key, value);
    }

    /// Removes one entry (the others keep their order).
    pub fn remove(&mut self, key: &str) {
        if self.map.shift_remove(key).is_some() {
            // Rare (an upload taken back): encode afresh when next needed.
            self.encoded = None;
        }
    }

    /// The bytes of `json.dumps(digests, sort_keys=True)`, kept from now on
    /// for the next rewrite.
    pub fn encode(&mut self) -> Vec<u8> {
        self.encoded().buf.clone()
    }

    /// The same bytes without keeping them (a checkpoint's write-back, or a
    /// shared copy): encoded afresh unless they are kept already.
    pub fn to_bytes(&self) -> Vec<u8> {
        match &self.encoded {
            Some(e) => e.buf.clone(),
            None => pyjson::dumps_sorted_map(&self.map).into_bytes(),
        }
    }
}

impl Deref for Digests {
    type Target = Map<String, Value>;
    fn deref(&self) -> &Map<String, Value> {
        &self.map
    }
}

/// `"key": value` as Python's `json.dumps` writes one entry.
fn entry(key: &str, value: &Value) -> String {
    let mut out = String::with_capacity(key.len() + 80);
    pyjson::write_str(&mut out, key);
    out.push_str(": ");
    out.push_str(&pyjson::dumps_sorted(value));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect()
    }

    fn expected(d: &Digests) -> Vec<u8> {
        pyjson::dumps_sorted_map(&d.map).into_bytes()
    }

    #[test]
    fn encodes_like_sorted_python_json() {
        let m = map(&[("b", "sha256:2"), ("a/\u{e9}", "sha256:1"), ("A", "x\"y")]);
        let mut d = Digests::from_map(m.clone());
        assert_eq!(d.encode(), pyjson::dumps_sorted_map(&m).into_bytes());
        assert_eq!(Digests::default().encode(), b"{}");
    }

    #[test]
    fn insert_keeps_both_views_in_step() {
        let mut d = Digests::from_map(map(&[("z", "1"), ("m", "2")]));
        d.insert("a".into(), Value::String("3".into()));
        d.insert("z".into(), Value::String("4".into()));
        let keys: Vec<&String> = d.keys().collect();
        assert_eq!(keys, ["z", "m", "a"], "file order kept");
        assert_eq!(d.encode(), br#"{"a": "3", "m": "2", "z": "4"}"#);
        assert_eq!(d.encode(), expected(&d));
    }

    #[test]
    fn first_middle_last_and_replaced_entries() {
        let mut d = Digests::default();
        // Into an empty index, then before, after and between entries, then
        // replacements that grow and shrink, first, middle and last.
        for (k, v) in [
            ("m", "1"),
            ("c", "22"),
            ("x", "333"),
            ("f", "4"),
            ("c", "a longer value"),
            ("m", ""),
            ("x", "\u{1f600} and \"quotes\""),
            ("é", "after ASCII"),
            ("B", "before lowercase"),
        ] {
            d.insert(k.into(), Value::String(v.into()));
            assert_eq!(
                String::from_utf8_lossy(&d.encode()),
                String::from_utf8_lossy(&expected(&d))
            );
        }
    }

    #[test]
    fn many_pseudo_random_inserts_match_a_full_encoding() {
        let mut d = Digests::from_map(map(&[("seed", "0")]));
        // Kept bytes from here on: every insert splices.
        d.encode();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = format!("dir{}/file{}", x % 7, x % 311);
            let value = "v".repeat((x % 5) as usize) + &i.to_string();
            d.insert(key, Value::String(value));
        }
        assert_eq!(d.encode(), expected(&d));
    }

    #[test]
    fn without_kept_bytes_inserts_only_change_the_map() {
        let mut d = Digests::from_map(map(&[("m", "1")]));
        d.insert("a".into(), Value::String("2".into()));
        assert!(d.encoded.is_none());
        assert_eq!(d.to_bytes(), expected(&d));
        assert!(d.encoded.is_none(), "to_bytes keeps nothing");
        d.insert("z".into(), Value::String("3".into()));
        assert_eq!(d.to_bytes(), br#"{"a": "2", "m": "1", "z": "3"}"#);
    }
}
