//! The `.digests` journal: what lets an upload be answered before its
//! format's `.digests` file is rewritten.
//!
//! The file format makes every upload rewrite its format's whole index: O(n)
//! bytes for a format of n files, and on ext4 a new inode (and a freed one)
//! per upload, which is what made small uploads slow there. Instead, an
//! upload appends one line to `<root>/.dlrepo-rs/digests-journal.<n>` and
//! changes the in-memory index that every reader of this server uses; a
//! checkpoint a little later rewrites each changed `.digests` once and then
//! removes the journal files it covers (`Store::checkpoint`). Journal files
//! left by a crash are replayed at startup, before any request is served.
//!
//! A line is `[format, path, digest, blob]`, paths relative to the root. On
//! replay it counts only if the artifact is still a link of that blob: a
//! file deleted, re-uploaded or rewritten by the post-process command since
//! then keeps what its later history says, so replaying old lines over a
//! newer `.digests` is harmless.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use serde_json::Value;
use tokio_uring::fs::File;

use super::digests::Digests;
use super::meta;
use crate::io::{self, DirSyncer};

const PREFIX: &str = "digests-journal.";

/// The file of journal generation `n` in `dir`.
fn gen_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{n}"))
}

/// One generation of the journal: the file new lines go to.
struct Gen {
    n: u64,
    file: Rc<File>,
    /// Bytes handed out so far; lines are written at distinct offsets, so
    /// concurrent appends need no ordering between them.
    len: u64,
}

pub struct Journal {
    dir: PathBuf,
    durable: bool,
    cur: RefCell<Gen>,
    /// Earlier generations, still needed until a checkpoint covers them.
    old: RefCell<Vec<u64>>,
}

impl Journal {
    /// Replays what earlier runs left, then starts a new generation.
    pub async fn open(root: &Path, durable: bool, syncer: &DirSyncer) -> std::io::Result<Journal> {
        let dir = root.join(".dlrepo-rs");
        for created in io::mkdir_all(&dir).await? {
            if let (true, Some(parent)) = (durable, created.parent()) {
                syncer.sync(parent).await?;
            }
        }
        // Files a replay could not apply stay for the next start; this run
        // numbers its own after them and never removes them.
        let next = replay(root, &dir, durable, syncer).await?;
        let gen = new_gen(&dir, next, durable, syncer).await?;
        Ok(Journal {
            dir,
            durable,
            cur: RefCell::new(gen),
            old: RefCell::new(Vec::new()),
        })
    }

    fn path(&self, n: u64) -> PathBuf {
        gen_path(&self.dir, n)
    }

    /// Appends one line; durable (when configured) when this returns.
    pub async fn append(&self, line: Vec<u8>, syncer: &DirSyncer) -> std::io::Result<()> {
        if super::hooks::journal_append_fails() {
            // A real write fails after a trip through the ring.
            tokio::task::yield_now().await;
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let (file, pos, n) = {
            let mut g = self.cur.borrow_mut();
            let pos = g.len;
            g.len += line.len() as u64;
            (g.file.clone(), pos, g.n)
        };
        io::write_all_at(&file, line, pos).await?;
        drop(file);
        if self.durable {
            // Shared with the appends around it; a generation already removed
            // by a checkpoint was covered by that checkpoint's own syncs.
            syncer.sync_file(&self.path(n)).await?;
        }
        Ok(())
    }

    /// Whether anything was appended since the last rotation.
    pub fn is_empty(&self) -> bool {
        self.cur.borrow().len == 0
    }

    /// Starts a new generation. Lines appended from now on go to it; the
    /// ones before are covered once every format changed so far is flushed.
    pub async fn rotate(&self, syncer: &DirSyncer) -> std::io::Result<()> {
        let next = self.cur.borrow().n + 1;
        let gen = new_gen(&self.dir, next, self.durable, syncer).await?;
        let old = std::mem::replace(&mut *self.cur.borrow_mut(), gen);
        self.old.borrow_mut().push(old.n);
        Ok(())
    }

    /// Removes the generations before the current one.
    pub async fn remove_old(&self) {
        let old = std::mem::take(&mut *self.old.borrow_mut());
        for n in old {
            if let Err(e) = io::unlink_opt(&self.path(n)).await {
                tracing::warn!("cannot remove {}: {e}", self.path(n).display());
            }
        }
    }
}

async fn new_gen(dir: &Path, n: u64, durable: bool, syncer: &DirSyncer) -> std::io::Result<Gen> {
    let path = gen_path(dir, n);
    let file = io::open(
        &path,
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
        0o644,
    )
    .await?;
    if durable {
        syncer.sync(dir).await?;
    }
    Ok(Gen {
        n,
        file: Rc::new(file),
        len: 0,
    })
}

/// One journal line.
pub fn line(format_rel: &Path, path: &str, digest: &str, blob_rel: &Path) -> Vec<u8> {
    let rec = Value::Array(vec![
        Value::String(format_rel.to_string_lossy().into_owned()),
        Value::String(path.to_string()),
        Value::String(digest.to_string()),
        Value::String(blob_rel.to_string_lossy().into_owned()),
    ]);
    let mut out = serde_json::to_vec(&rec).unwrap_or_default();
    out.push(b'\n');
    out
}

/// A parsed journal line.
#[derive(Debug, PartialEq)]
struct Entry {
    format: String,
    path: String,
    digest: String,
    blob: String,
}

/// The lines of a journal file. A line torn by a crash or a failed write is
/// skipped: the rest of its reserved range is zeros, so the line written
/// after it starts after the last zero byte.
fn parse(bytes: &[u8]) -> Vec<Entry> {
    bytes
        .split(|b| *b == b'\n')
        .filter_map(|l| {
            let start = l.iter().rposition(|b| *b == 0).map_or(0, |i| i + 1);
            let v: Vec<String> = serde_json::from_slice(&l[start..]).ok()?;
            let [format, path, digest, blob]: [String; 4] = v.try_into().ok()?;
            Some(Entry {
                format,
                path,
                digest,
                blob,
            })
        })
        .collect()
}

/// A relative path that stays below the root.
fn below(root: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    (!rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))).then(|| root.join(p))
}

/// Whether the artifact `a` (not followed if a link) is the file `b`.
async fn same_file(a: &Path, b: &Path) -> bool {
    match (io::lstat(a).await, io::stat(b).await) {
        (Ok(a), Ok(b)) => a.is_file() && a.dev == b.dev && a.ino == b.ino,
        _ => false,
    }
}

/// Applies the journal files found in `dir` to the `.digests` they concern
/// and removes them, unless a format could not be written (then they stay
/// for the next start). Returns the next generation number.
async fn replay(root: &Path, dir: &Path, durable: bool, syncer: &DirSyncer) -> std::io::Result<u64> {
    let mut gens: Vec<u64> = io::read_dir_sorted(dir)?
        .iter()
        .filter_map(|e| e.name.to_str()?.strip_prefix(PREFIX)?.parse().ok())
        .collect();
    gens.sort_unstable();
    let next = gens.last().map_or(0, |n| n + 1);
    // Per format, in the order the lines were written.
    let mut order: Vec<String> = Vec::new();
    let mut by_format: HashMap<String, Vec<Entry>> = HashMap::new();
    for n in &gens {
        let bytes = io::read_file(&gen_path(dir, *n)).await?;
        for e in parse(&bytes) {
            if !by_format.contains_key(&e.format) {
                order.push(e.format.clone());
            }
            by_format.entry(e.format.clone()).or_default().push(e);
        }
    }
    let mut failed = false;
    let mut restored = 0usize;
    for f in order {
        let entries = by_format.remove(&f).unwrap_or_default();
        let Some(fdir) = below(root, &f) else { continue };
        if !io::is_dir(&fdir).await {
            continue;
        }
        let mut map = match meta::read_digests_checked(&fdir).await {
            Ok(m) => m,
            Err(e) => {
                tracing::error!("journal replay: cannot read {}/.digests: {e}", fdir.display());
                failed = true;
                continue;
            }
        };
        let mut changed = false;
        for e in entries {
            let (Some(file), Some(blob)) = (below(&fdir, &e.path), below(root, &e.blob)) else {
                continue;
            };
            if !same_file(&file, &blob).await {
                continue;
            }
            let value = Value::String(e.digest);
            if map.get(&e.path) != Some(&value) {
                map.insert(e.path, value);
                changed = true;
                restored += 1;
            }
        }
        if !changed {
            continue;
        }
        let bytes = Digests::from_map(map).to_bytes();
        let written = meta::write_digests(&fdir, bytes, durable, durable.then_some(syncer)).await;
        if let Err(e) = written {
            tracing::error!("journal replay: cannot write {}/.digests: {e}", fdir.display());
            failed = true;
        }
    }
    if restored > 0 {
        tracing::warn!("journal replay: restored {restored} .digests entries written before an unclean stop");
    }
    if failed {
        return Ok(next);
    }
    for n in gens {
        io::unlink_opt(&gen_path(dir, n)).await?;
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_with_any_characters() {
        let l = line(
            Path::new("branches/b/t/j/f"),
            "sub/é \"q\"\n.txt",
            "sha256:AB",
            Path::new(".blobs/sha256/ab/ab"),
        );
        assert_eq!(l.iter().filter(|b| **b == b'\n').count(), 1);
        assert_eq!(
            parse(&l),
            vec![Entry {
                format: "branches/b/t/j/f".into(),
                path: "sub/é \"q\"\n.txt".into(),
                digest: "sha256:AB".into(),
                blob: ".blobs/sha256/ab/ab".into(),
            }]
        );
    }

    #[test]
    fn torn_and_zeroed_lines_are_skipped() {
        let a = line(Path::new("f"), "a", "d", Path::new("b"));
        let b = line(Path::new("f"), "b", "d", Path::new("b"));
        let mut bytes = a.clone();
        // A write that stopped half-way, then the next line.
        bytes.extend_from_slice(&a[..5]);
        bytes.extend_from_slice(&[0u8; 7]);
        bytes.extend_from_slice(&b);
        bytes.extend_from_slice(&a[..a.len() / 2]);
        let got: Vec<String> = parse(&bytes).into_iter().map(|e| e.path).collect();
        assert_eq!(got, vec!["a", "b"]);
        assert!(parse(b"[\"only\", \"three\", \"fields\"]\n{}\n").is_empty());
    }

    #[test]
    fn paths_must_stay_below() {
        let root = Path::new("/r");
        assert_eq!(below(root, "a/b"), Some(PathBuf::from("/r/a/b")));
        assert_eq!(below(root, "../a"), None);
        assert_eq!(below(root, "/etc/passwd"), None);
        assert_eq!(below(root, "a/./b"), Some(PathBuf::from("/r/a/b")));
        assert_eq!(below(root, ""), None);
    }
}
