//! A format's `.digests` index, kept both parsed (for lookups and listings)
//! and pre-encoded (for rewrites).
//!
//! Every upload rewrites the whole file, as the original does, so a format
//! with n files costs O(n) per upload. Re-encoding and re-sorting n entries
//! each time dominated small uploads into big formats; keeping each entry's
//! Python-JSON text in key order turns a rewrite into one concatenation.

use std::collections::BTreeMap;
use std::ops::Deref;

use serde_json::{Map, Value};

use super::pyjson;

#[derive(Debug, Default, Clone)]
pub struct Digests {
    /// File order, as read (or as inserted).
    map: Map<String, Value>,
    /// Key → `"key": value` in Python's `json.dumps` form. `String` orders by
    /// bytes, which for UTF-8 is code point order: Python's `sort_keys`.
    /// Built on the first write, so read-only copies never pay for it.
    encoded: Option<BTreeMap<String, String>>,
}

impl Digests {
    pub fn from_map(map: Map<String, Value>) -> Self {
        Digests { map, encoded: None }
    }

    fn encoded(&mut self) -> &mut BTreeMap<String, String> {
        let map = &self.map;
        self.encoded
            .get_or_insert_with(|| map.iter().map(|(k, v)| (k.clone(), entry(k, v))).collect())
    }

    /// Adds or replaces one entry (an existing key keeps its position).
    pub fn insert(&mut self, key: String, value: Value) {
        let e = entry(&key, &value);
        self.encoded().insert(key.clone(), e);
        self.map.insert(key, value);
    }

    /// The bytes of `json.dumps(digests, sort_keys=True)`.
    pub fn encode(&mut self) -> Vec<u8> {
        let encoded = self.encoded();
        let len: usize = encoded.values().map(|e| e.len() + 2).sum();
        let mut out = Vec::with_capacity(len + 2);
        out.push(b'{');
        for (i, e) in encoded.values().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(e.as_bytes());
        }
        out.push(b'}');
        out
    }
}

impl Deref for Digests {
    type Target = Map<String, Value>;
    fn deref(&self) -> &Map<String, Value> {
        &self.map
    }
}

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
        let m = d.map.clone();
        assert_eq!(d.encode(), pyjson::dumps_sorted_map(&m).into_bytes());
    }
}
