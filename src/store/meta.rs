//! Reading and writing the small dotfiles of the tree.

use std::path::Path;

use serde_json::{Map, Value};

use crate::io;

/// A JSON timestamp: the float mtime of a file, or the integer 0 when the
/// file is missing (as the original answers).
pub fn timestamp_value(mtime: Option<f64>) -> Value {
    match mtime.and_then(serde_json::Number::from_f64) {
        Some(n) => Value::Number(n),
        None => Value::from(0),
    }
}

/// The mtime of a path (following symlinks), `None` if missing.
pub async fn mtime(path: &Path) -> Option<f64> {
    match io::stat_opt(path).await {
        Ok(Some(st)) => Some(st.mtime_f64()),
        _ => None,
    }
}

/// Whether a flag file exists.
pub async fn flag(path: &Path) -> bool {
    io::exists(path).await
}

/// Sets or clears a flag file.
pub async fn set_flag(path: &Path, on: bool) -> std::io::Result<()> {
    if on {
        io::create_if_missing(path).await.map(drop)
    } else {
        io::unlink_opt(path).await.map(drop)
    }
}

/// Reads a JSON object file. Missing, unreadable or invalid files, and
/// anything that is not an object, read as `{}`.
pub async fn read_object(path: &Path) -> Map<String, Value> {
    match io::read_file_opt(path).await {
        Ok(Some(bytes)) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        },
        _ => Map::new(),
    }
}

/// Reads a text file with surrounding whitespace stripped (`None` if missing).
pub async fn read_stripped(path: &Path) -> Option<String> {
    match io::read_file_opt(path).await {
        Ok(Some(bytes)) => Some(String::from_utf8_lossy(&bytes).trim().to_string()),
        _ => None,
    }
}

/// The `.digests` of a format directory, in file order. A `container`
/// format without `.digests` gets digests synthesised from its files.
pub async fn read_digests(format_dir: &Path) -> Map<String, Value> {
    read_digests_checked(format_dir).await.unwrap_or_default()
}

/// Writes a format's `.digests` (its bytes already encoded), atomically;
/// with `durable` the data is synced first, and with `dir_sync` the folder
/// entry too before this returns.
pub async fn write_digests(
    format_dir: &Path,
    bytes: Vec<u8>,
    durable: bool,
    dir_sync: Option<&io::DirSyncer>,
) -> std::io::Result<()> {
    io::write_file_atomic(&format_dir.join(".digests"), bytes, durable).await?;
    match dir_sync {
        Some(s) => s.sync(format_dir).await,
        None => Ok(()),
    }
}

/// [`read_digests`] for a writer: a file that cannot be read is an error
/// (not an empty index that the rewrite would then make permanent). An
/// unparsable file still reads as empty, as it lists nothing either way.
pub async fn read_digests_checked(format_dir: &Path) -> std::io::Result<Map<String, Value>> {
    let path = format_dir.join(".digests");
    Ok(match io::read_file_opt(&path).await? {
        Some(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        },
        None if is_container(format_dir) => synthetic_container_digests(format_dir).await,
        None => Map::new(),
    })
}

fn is_container(format_dir: &Path) -> bool {
    format_dir.file_name().map(|n| n == "container").unwrap_or(false)
}

/// `{<relative path>: "sha256:<basename>"}` over every regular file of a
/// registry-written `container` format, in sorted walk order.
pub async fn synthetic_container_digests(format_dir: &Path) -> Map<String, Value> {
    let mut out = Map::new();
    for rel in walk_files(format_dir).await {
        if rel == ".digests" || rel == ".dirty" {
            continue;
        }
        let base = rel.rsplit('/').next().unwrap_or(&rel).to_string();
        out.insert(rel, Value::String(format!("sha256:{base}")));
    }
    out
}

/// Every regular file under `dir` (symlinks not followed), as relative
/// paths in sorted walk order. Folders that cannot be read are skipped.
pub async fn walk_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    // Depth first, each folder's entries in name order: a stack of
    // (folder, its relative path, its entries left, reversed).
    let mut stack = vec![(dir.to_path_buf(), String::new(), sorted_rev(dir))];
    while let Some((folder, prefix, entries)) = stack.last_mut() {
        let Some(e) = entries.pop() else {
            stack.pop();
            continue;
        };
        let name = e.name.to_string_lossy();
        let rel = if prefix.is_empty() {
            name.into_owned()
        } else {
            format!("{prefix}/{name}")
        };
        let full = folder.join(&e.name);
        let kind = match e.kind {
            Some(k) => Some(k),
            None => io::lstat(&full).await.ok().map(|st| {
                if st.is_dir() {
                    io::EntryKind::Dir
                } else if st.is_file() {
                    io::EntryKind::File
                } else {
                    io::EntryKind::Other
                }
            }),
        };
        match kind {
            Some(io::EntryKind::Dir) => {
                let entries = sorted_rev(&full);
                stack.push((full, rel, entries));
            }
            Some(io::EntryKind::File) => out.push(rel),
            _ => {}
        }
    }
    out
}

/// A folder's entries in reverse name order (popped from the end).
fn sorted_rev(dir: &Path) -> Vec<io::DirEntry> {
    let mut v = io::read_dir_sorted(dir).unwrap_or_default();
    v.reverse();
    v
}

/// The digest algorithm and hex of a stored digest string (`sha256:…`),
/// when it has that shape.
pub fn split_digest(v: &Value) -> Option<(&str, &str)> {
    v.as_str()?.split_once(':')
}
