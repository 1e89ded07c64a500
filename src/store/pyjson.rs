//! JSON encoding byte-identical to Python's `json.dumps` with default options.
//!
//! On-disk JSON (`.digests`, `.metadata`, `.cleanup_policy`) and the job
//! digest input are hashed and compared between servers, so every byte
//! matters: `", "` and `": "` separators, ASCII-only output with lowercase
//! `\uXXXX` escapes (surrogate pairs above U+FFFF), no trailing newline, and
//! floats written like Python's `repr`.

use serde_json::Value;

/// Encodes `v` as Python's `json.dumps(v)` would (keys in map order).
pub fn dumps(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v, false);
    out
}

/// Encodes `v` as Python's `json.dumps(v, sort_keys=True)` would.
pub fn dumps_sorted(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v, true);
    out
}

/// `json.dumps(m, sort_keys=True)` of an object, without building a `Value`.
pub fn dumps_sorted_map(m: &serde_json::Map<String, Value>) -> String {
    let mut out = String::with_capacity(m.len() * 96);
    write_object(&mut out, m, true);
    out
}

fn write_object(out: &mut String, map: &serde_json::Map<String, Value>, sort: bool) {
    out.push('{');
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    if sort {
        // Python sorts str keys by code point, which is UTF-8 byte order.
        entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    }
    for (i, (k, val)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_str(out, k);
        out.push_str(": ");
        write_value(out, val, sort);
    }
    out.push('}');
}

fn write_number(out: &mut String, n: &serde_json::Number) {
    if let Some(i) = n.as_i64() {
        out.push_str(&i.to_string());
    } else if let Some(u) = n.as_u64() {
        out.push_str(&u.to_string());
    } else if let Some(f) = n.as_f64() {
        out.push_str(&float_repr(f));
    }
}

/// `json.dumps(v, indent=2)`: an item per line, keys in their order.
pub fn dumps_indented(v: &Value) -> String {
    let mut out = String::new();
    write_indented(&mut out, v, 0);
    out
}

fn write_indented(out: &mut String, v: &Value, level: usize) {
    let pad = |out: &mut String, n: usize| out.extend(std::iter::repeat_n("  ", n));
    match v {
        Value::Array(a) if !a.is_empty() => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                out.push_str(if i == 0 { "\n" } else { ",\n" });
                pad(out, level + 1);
                write_indented(out, x, level + 1);
            }
            out.push('\n');
            pad(out, level);
            out.push(']');
        }
        Value::Object(o) if !o.is_empty() => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                out.push_str(if i == 0 { "\n" } else { ",\n" });
                pad(out, level + 1);
                write_str(out, k);
                out.push_str(": ");
                write_indented(out, x, level + 1);
            }
            out.push('\n');
            pad(out, level);
            out.push('}');
        }
        other => write_value(out, other, false),
    }
}

fn write_value(out: &mut String, v: &Value, sort: bool) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item, sort);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map, sort),
    }
}

/// Writes a JSON string literal with Python's `ensure_ascii=True` escaping.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    // Fast path: printable ASCII without quotes or backslashes is copied as is.
    if s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e && c != '\u{7f}' => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Formats a float like Python's `repr(float)`: the shortest text that
/// round-trips, always with a fractional part or an exponent.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let abs = f.abs();
    if (1e-4..1e16).contains(&abs) {
        let s = format!("{f}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        // Rust writes `1e16` / `1.5e-5`; Python writes `1e+16` / `1.5e-05`.
        let s = format!("{f:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        format!("{mant}e{sign}{digits:0>2}")
    }
}

/// Python's `str()` of a JSON value, as used by the metadata coercion rules
/// (`str(value)`, where lists and dicts print as their Python repr).
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `repr()` of a JSON value.
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else {
                let f = n.as_f64().unwrap_or(0.0);
                match float_repr(f).as_str() {
                    "NaN" => "nan".into(),
                    "Infinity" => "inf".into(),
                    "-Infinity" => "-inf".into(),
                    s => s.into(),
                }
            }
        }
        Value::String(s) => py_str_repr(s),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", py_str_repr(k), py_repr(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

/// Python's `repr()` of a string: single quotes unless the text holds a
/// single quote and no double quote.
fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (0x80..0xa0).contains(&(c as u32)) => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python truthiness of a JSON value (`bool(value)`).
pub fn py_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().map(|f| f != 0.0).unwrap_or(true),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn separators_and_sorting() {
        let v: Value = serde_json::from_str(r#"{"b": 1, "a": [true, null, "x"]}"#).expect("test value");
        assert_eq!(dumps(&v), r#"{"b": 1, "a": [true, null, "x"]}"#);
        assert_eq!(dumps_sorted(&v), r#"{"a": [true, null, "x"], "b": 1}"#);
    }

    #[test]
    fn ascii_escapes() {
        let v = json!("Hello W\u{f6}rld \u{1f600} \"q\" \\ / \u{7f} \u{1}\n\t\u{8}\u{c}\r");
        assert_eq!(
            dumps(&v),
            "\"Hello W\\u00f6rld \\ud83d\\ude00 \\\"q\\\" \\\\ / \u{7f} \\u0001\\n\\t\\b\\f\\r\""
        );
        assert_eq!(dumps(&json!("\u{dc}n\u{ef}")), "\"\\u00dcn\\u00ef\"");
    }

    #[test]
    fn sorted_by_code_point() {
        let v = json!({"\u{dc}n": 1, "Z": 2, "a": 3, "\u{1f600}": 4, "\u{ffff}": 5});
        assert_eq!(
            dumps_sorted(&v),
            "{\"Z\": 2, \"a\": 3, \"\\u00dcn\": 1, \"\\uffff\": 5, \"\\ud83d\\ude00\": 4}"
        );
    }

    #[test]
    fn floats_like_python_repr() {
        assert_eq!(float_repr(1795643127.5267537), "1795643127.5267537");
        assert_eq!(float_repr(946684800.0), "946684800.0");
        assert_eq!(float_repr(1.5), "1.5");
        assert_eq!(float_repr(1e16), "1e+16");
        assert_eq!(float_repr(1.5e-5), "1.5e-05");
        assert_eq!(float_repr(0.0001), "0.0001");
        assert_eq!(float_repr(-2.0), "-2.0");
        assert_eq!(float_repr(123456789012345680.0), "1.2345678901234568e+17");
    }

    #[test]
    fn python_str_of_values() {
        assert_eq!(py_str(&json!(5)), "5");
        assert_eq!(py_str(&json!(1.5)), "1.5");
        assert_eq!(py_str(&json!(true)), "True");
        assert_eq!(py_str(&json!([1, "A"])), "[1, 'A']");
        assert_eq!(py_str(&json!({"K": "V"})), "{'K': 'V'}");
        assert_eq!(py_str(&json!(["it's"])), "[\"it's\"]");
        assert_eq!(py_str(&json!([null, false])), "[None, False]");
    }

    #[test]
    fn truthiness() {
        for v in [
            json!(null),
            json!(false),
            json!(0),
            json!(0.0),
            json!(""),
            json!([]),
            json!({}),
        ] {
            assert!(!py_truthy(&v), "{v}");
        }
        for v in [
            json!(true),
            json!(1),
            json!(-0.5),
            json!("0"),
            json!([0]),
            json!({"a": 0}),
        ] {
            assert!(py_truthy(&v), "{v}");
        }
    }
}
