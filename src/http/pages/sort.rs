//! The semantic sort of the listing pages (docs/spec/web-ui.md §2): names
//! split on `.`, `-` and `_`, numbers compared as numbers and before words,
//! words without case, so `1.9` < `1.10` < `1.10a`.

use std::cmp::Ordering;

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Piece {
    /// Digits only: compared as a number (by length, then digits, so any
    /// length works), before any word.
    Number(usize, String),
    Word(String),
}

/// The sort key of a name: compare keys to compare names.
pub fn key(name: &str, case_sensitive: bool) -> Vec<Piece> {
    name.split(['.', '-', '_'])
        .map(|p| {
            if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                let digits = p.trim_start_matches('0');
                Piece::Number(digits.len(), digits.to_string())
            } else if case_sensitive {
                Piece::Word(p.to_string())
            } else {
                Piece::Word(p.to_lowercase())
            }
        })
        .collect()
}

/// Compares two names semantically; a name that is a prefix of another
/// sorts first.
pub fn compare(a: &str, b: &str, case_sensitive: bool) -> Ordering {
    key(a, case_sensitive).cmp(&key(b, case_sensitive))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(names: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        v.sort_by(|a, b| compare(a, b, false));
        v
    }

    #[test]
    fn numbers_as_numbers_and_before_words() {
        assert_eq!(
            sorted(&["1.10a", "1.10", "1.9", "1.2"]),
            ["1.2", "1.9", "1.10", "1.10a"]
        );
        assert_eq!(sorted(&["v-b", "v-10", "v-A", "v-2"]), ["v-2", "v-10", "v-A", "v-b"]);
        assert_eq!(sorted(&["main", "Main-1", "main_2"]), ["main", "Main-1", "main_2"]);
        assert_eq!(sorted(&["x.0010", "x.9"]), ["x.9", "x.0010"]);
        // Longer than any integer type.
        assert_eq!(
            sorted(&["99999999999999999999999", "100000000000000000000000"]),
            ["99999999999999999999999", "100000000000000000000000"]
        );
        assert_eq!(compare("a", "a.b", false), Ordering::Less);
    }
}
