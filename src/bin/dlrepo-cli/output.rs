//! Printing the server's JSON the way the original client does: values
//! with Python's `str()` (`True`, `None`, float `repr`), `-j` as Python's
//! `json.dumps(data, indent=2)` (non-ASCII escaped), and the progress line.

use serde_json::Value;

pub use dlrepo::store::pyjson::py_str;

/// `json.dumps(v, indent=2)`.
pub fn json_dumps(v: &Value) -> String {
    dlrepo::store::pyjson::dumps_indented(v)
}

/// The original's sizes: `0`, `512.0`, `1.5K`, `12.3M`, `123G`.
pub fn human_readable(value: u64) -> String {
    if value == 0 {
        return "0".into();
    }
    let mut v = value as f64;
    let mut unit = "";
    for u in ["K", "M", "G", "T"] {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    if v < 100.0 {
        format!("{v:.1}{unit}")
    } else {
        format!("{v:.0}{unit}")
    }
}

/// The original's progress line: `  512 /  1.5K    33%  name`.
pub fn progress_line(done: u64, total: Option<u64>, name: &str) -> String {
    let n = human_readable(done);
    let (total, percent) = match total {
        Some(t) if t > 0 => (human_readable(t), format!("{:.0}%", done as f64 * 100.0 / t as f64)),
        _ => (String::new(), String::new()),
    };
    format!("{n:>5} / {total:>5} {percent:>6}  {name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_dumped_as_python_does() {
        let v = json!({"a": [1, 2.5], "b": {}, "c": [], "é": "ü\u{1F600}"});
        assert_eq!(
            json_dumps(&v),
            "{\n  \"a\": [\n    1,\n    2.5\n  ],\n  \"b\": {},\n  \"c\": [],\n  \"\\u00e9\": \"\\u00fc\\ud83d\\ude00\"\n}"
        );
    }

    #[test]
    fn sizes_and_progress_lines_match_the_original() {
        assert_eq!(human_readable(0), "0");
        assert_eq!(human_readable(5), "5.0");
        assert_eq!(human_readable(1500), "1.5K");
        assert_eq!(human_readable(52_428_800), "52.4M");
        assert_eq!(human_readable(123_000_000_000), "123G");
        assert_eq!(progress_line(0, Some(5), "a.txt"), "    0 /   5.0     0%  a.txt");
        assert_eq!(progress_line(5, Some(5), "a.txt"), "  5.0 /   5.0   100%  a.txt");
        assert_eq!(progress_line(0, Some(0), "e"), format!("    0 /{}e", " ".repeat(15)));
    }
}
