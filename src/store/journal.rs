//! The `.digests` journal: what lets an upload be answered before its
//! format's `.digests` file is rewritten, and what tells, after a crash,
//! which linked files were acknowledged.
//!
//! The file format makes every upload rewrite its format's whole index: O(n)
//! bytes for a format of n files, and on ext4 a new inode (and a freed one)
//! per upload, which is what made small uploads slow there. Instead, an
//! upload appends lines to `<root>/.dlrepo-rs/digests-journal.<n>` and
//! changes the in-memory index that every reader of this server uses; a
//! checkpoint a little later rewrites each changed `.digests` once and then
//! removes the journal files it covers (`Store::checkpoint`). Journal files
//! left by a crash are replayed at startup, before any request is served.
//!
//! An upload writes two lines, paths relative to the root:
//!
//! * `[format, path, digest, blob, "linking"]` before it links the blob at
//!   the artifact path (an *intent*);
//! * `[format, path, digest, blob]` once the link is made, before the `201`
//!   (a *commit*).
//!
//! On replay a commit counts only if the artifact is still a link of that
//! blob: a file deleted, re-uploaded or rewritten by the post-process
//! command since then keeps what its later history says, so replaying old
//! lines over a newer `.digests` is harmless. An intent without its commit
//! whose link was made is undone: the artifact gets back the content last
//! committed for it, or goes. So after a crash the tree holds exactly the
//! uploads that were acknowledged (or about to be), and nothing unindexed.
//!
//! A checkpoint never removes a generation that holds an intent whose
//! commit has not been written yet ([`GenHold`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use serde_json::{Map, Value};
use tokio_uring::fs::File;

use super::digest::Digest;
use super::digests::Digests;
use super::meta;
use crate::io::{self, DirSyncer};
use crate::names;

const PREFIX: &str = "digests-journal.";
/// The marker that makes a line an intent.
const INTENT: &str = "linking";

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

/// Lines appended during one turn of the event loop, written together by
/// one ring operation: every upload appends two lines, and under load many
/// uploads append in the same turn, each otherwise costing a write handed
/// to an io-wq worker.
struct Batch {
    n: u64,
    file: Rc<File>,
    /// Where the batch's first line goes.
    pos: u64,
    buf: Vec<u8>,
    /// Taken for writing: later lines start a new batch.
    sealed: bool,
    done: tokio::sync::watch::Sender<Option<Result<(), Rc<std::io::Error>>>>,
}

pub struct Journal {
    dir: PathBuf,
    durable: bool,
    cur: RefCell<Gen>,
    /// The batch lines join until it is written.
    batch: RefCell<Option<Rc<RefCell<Batch>>>>,
    /// Earlier generations, still needed until a checkpoint covers them.
    old: RefCell<Vec<u64>>,
    /// Generations holding intents whose commit is not written yet, with
    /// how many.
    held: RefCell<HashMap<u64, usize>>,
}

/// What the replay could not write back (a full disk, say): the complete
/// index of each such format, to be served from memory and written by a
/// later checkpoint. The journal files stay until then.
pub type Unwritten = Vec<(PathBuf, Map<String, Value>)>;

/// Keeps the generation of an upload's intent on disk until the upload has
/// written its commit (or given up and undone its link).
pub struct GenHold<'a> {
    journal: &'a Journal,
    n: u64,
}

impl Drop for GenHold<'_> {
    fn drop(&mut self) {
        let mut held = self.journal.held.borrow_mut();
        if let Some(c) = held.get_mut(&self.n) {
            *c -= 1;
            if *c == 0 {
                held.remove(&self.n);
            }
        }
    }
}

impl Journal {
    /// Replays what earlier runs left, then starts a new generation.
    pub async fn open(root: &Path, durable: bool, syncer: &DirSyncer) -> std::io::Result<(Journal, Unwritten)> {
        let dir = root.join(".dlrepo-rs");
        for created in io::mkdir_all(&dir).await? {
            if let (true, Some(parent)) = (durable, created.parent()) {
                syncer.sync(parent).await?;
            }
        }
        let replayed = replay(root, &dir, durable, syncer).await?;
        let gen = new_gen(&dir, replayed.next, durable, syncer).await?;
        let journal = Journal {
            dir,
            durable,
            cur: RefCell::new(gen),
            batch: RefCell::new(None),
            // What could not be written back is removed by the first
            // checkpoint that writes it.
            old: RefCell::new(replayed.kept),
            held: RefCell::new(HashMap::new()),
        };
        Ok((journal, replayed.unwritten))
    }

    fn path(&self, n: u64) -> PathBuf {
        gen_path(&self.dir, n)
    }

    /// Writes a line at its own offset of the current generation, in this
    /// turn's batch; returns the generation once the batch is written.
    async fn write(&self, line: Vec<u8>) -> std::io::Result<u64> {
        let (mut done, n) = {
            let mut g = self.cur.borrow_mut();
            let mut slot = self.batch.borrow_mut();
            let open = slot
                .as_ref()
                .filter(|b| {
                    let b = b.borrow();
                    !b.sealed && b.n == g.n
                })
                .cloned();
            let batch = match open {
                Some(b) => b,
                None => {
                    let b = Rc::new(RefCell::new(Batch {
                        n: g.n,
                        file: g.file.clone(),
                        pos: g.len,
                        buf: Vec::new(),
                        sealed: false,
                        done: tokio::sync::watch::Sender::new(None),
                    }));
                    tokio_uring::spawn(write_batch(b.clone()));
                    *slot = Some(b.clone());
                    b
                }
            };
            g.len += line.len() as u64;
            let mut b = batch.borrow_mut();
            b.buf.extend_from_slice(&line);
            (b.done.subscribe(), g.n)
        };
        let res = match done.wait_for(Option::is_some).await {
            Ok(r) => r.clone(),
            Err(_) => Some(Err(Rc::new(std::io::Error::other("journal batch dropped")))),
        };
        match res {
            Some(Err(e)) => Err(copy_error(&e)),
            _ => Ok(n),
        }
    }

    /// Appends an intent, before the link it announces. It is written (a
    /// kill cannot lose it) but not synced: the commit's sync covers it.
    pub async fn append_intent(&self, line: Vec<u8>) -> std::io::Result<GenHold<'_>> {
        // Held from before the write: a rotation meanwhile must not lose it.
        let n = self.cur.borrow().n;
        *self.held.borrow_mut().entry(n).or_insert(0) += 1;
        let hold = GenHold { journal: self, n };
        let written = self.write(line).await?;
        debug_assert_eq!(written, n);
        Ok(hold)
    }

    /// Appends a commit; durable (when configured) when this returns.
    pub async fn append(&self, line: Vec<u8>, syncer: &DirSyncer) -> std::io::Result<()> {
        if super::hooks::journal_append_fails() {
            // A real write fails after a trip through the ring.
            tokio::task::yield_now().await;
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let n = self.write(line).await?;
        if self.durable {
            // Shared with the appends around it; a generation already removed
            // by a checkpoint was covered by that checkpoint's own syncs.
            syncer.sync_file(&self.path(n)).await?;
        }
        Ok(())
    }

    /// Whether earlier generations wait for a checkpoint to remove them.
    pub fn has_old(&self) -> bool {
        !self.old.borrow().is_empty()
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

    /// Removes the generations before the current one, except those still
    /// holding an intent without its commit (a later checkpoint takes them).
    pub async fn remove_old(&self) {
        let old = std::mem::take(&mut *self.old.borrow_mut());
        for n in old {
            if self.held.borrow().contains_key(&n) {
                self.old.borrow_mut().push(n);
                continue;
            }
            if let Err(e) = io::unlink_opt(&self.path(n)).await {
                tracing::warn!("cannot remove {}: {e}", self.path(n).display());
            }
        }
    }
}

/// Writes a batch once the appends of this turn have joined it.
async fn write_batch(batch: Rc<RefCell<Batch>>) {
    tokio::task::yield_now().await;
    let (file, pos, buf) = {
        let mut b = batch.borrow_mut();
        b.sealed = true;
        (b.file.clone(), b.pos, std::mem::take(&mut b.buf))
    };
    let res = io::write_all_at(&file, buf, pos).await.map(drop).map_err(Rc::new);
    batch.borrow().done.send_replace(Some(res));
}

/// The same error for each line of a failed batch.
fn copy_error(e: &std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(e.kind(), e.to_string()),
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

fn encode(format_rel: &Path, path: &str, digest: &str, blob_rel: &Path, intent: bool) -> Vec<u8> {
    let (format, blob) = (path_str(format_rel), path_str(blob_rel));
    let all = [&*format, path, digest, &*blob, INTENT];
    let fields = &all[..if intent { 5 } else { 4 }];
    // The JSON array of the fields, as serde_json would write it.
    let mut out = Vec::with_capacity(fields.iter().map(|f| f.len() + 3).sum::<usize>() + 2);
    out.push(b'[');
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(&mut out, f);
    }
    out.extend_from_slice(b"]\n");
    out
}

/// A path as text, without copying it when it is valid UTF-8 (as the
/// store's own paths always are).
fn path_str(p: &Path) -> std::borrow::Cow<'_, str> {
    match p.to_str() {
        Some(s) => s.into(),
        None => p.to_string_lossy(),
    }
}

/// Appends `s` as a JSON string. Copied as it is when nothing in it needs
/// escaping, which is every name the store makes: serde_json's
/// byte-by-byte escaping was a visible share of an upload's CPU.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Without an early exit, so that the compiler checks many bytes at once.
    let plain = !s
        .bytes()
        .fold(false, |esc, b| esc | (b < 0x20) | (b == b'"') | (b == b'\\'));
    if plain {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, s).is_err() {
        // Writing into a Vec does not fail; keep the line parseable anyway.
        out.extend_from_slice(b"\"\"");
    }
}

/// A commit line.
pub fn line(format_rel: &Path, path: &str, digest: &str, blob_rel: &Path) -> Vec<u8> {
    encode(format_rel, path, digest, blob_rel, false)
}

/// An intent line.
pub fn intent_line(format_rel: &Path, path: &str, digest: &str, blob_rel: &Path) -> Vec<u8> {
    encode(format_rel, path, digest, blob_rel, true)
}

/// A parsed journal line.
#[derive(Debug, PartialEq)]
struct Entry {
    format: String,
    path: String,
    digest: String,
    blob: String,
    intent: bool,
}

/// The lines of a journal file. A line torn by a crash or a failed write is
/// skipped: the rest of its reserved range is zeros, so the line written
/// after it starts after the last zero byte.
fn parse(bytes: &[u8]) -> Vec<Entry> {
    bytes
        .split(|b| *b == b'\n')
        .filter_map(|l| {
            let start = l.iter().rposition(|b| *b == 0).map_or(0, |i| i + 1);
            let mut v: Vec<String> = serde_json::from_slice(&l[start..]).ok()?;
            let intent = match v.len() {
                4 => false,
                5 if v[4] == INTENT => {
                    v.pop();
                    true
                }
                _ => return None,
            };
            let [format, path, digest, blob]: [String; 4] = v.try_into().ok()?;
            Some(Entry {
                format,
                path,
                digest,
                blob,
                intent,
            })
        })
        .collect()
}

/// A relative path that stays below the root.
fn below(root: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    (!rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))).then(|| root.join(p))
}

/// `p` relative to `root` as a journal line holds it (`below` turns it
/// back): `p.strip_prefix(root)`, or `p` when it is not below `root`.
pub fn relative<'a>(root: &Path, p: &'a Path) -> &'a Path {
    relative_by_bytes(root, p).unwrap_or_else(|| p.strip_prefix(root).unwrap_or(p))
}

/// [`relative`] by bytes, where that gives what the component walk
/// would: the store's paths start with the root's own bytes, and the walk
/// of `strip_prefix` was a visible share of an upload's CPU. `None` for
/// the rest, left to the walk.
fn relative_by_bytes<'a>(root: &Path, p: &'a Path) -> Option<&'a Path> {
    use std::os::unix::ffi::OsStrExt;
    let root = root.as_os_str().as_bytes();
    let rest = p.as_os_str().as_bytes().strip_prefix(root)?.strip_prefix(b"/")?;
    // The walk trims separators and `.` components at either end.
    (plain_end(root) && plain_start(rest) && plain_end(rest)).then(|| Path::new(std::ffi::OsStr::from_bytes(rest)))
}

/// Whether `b` does not start with a separator or a `.` component.
fn plain_start(b: &[u8]) -> bool {
    !(b.starts_with(b"/") || b.starts_with(b"./") || b == b".")
}

/// Whether `b` does not end with a separator or a `.` component.
fn plain_end(b: &[u8]) -> bool {
    !(b.ends_with(b"/") || b.ends_with(b"/.") || b == b".")
}

/// Whether the artifact `a` (not followed if a link) is the file `b`.
pub async fn same_file(a: &Path, b: &Path) -> bool {
    match (io::lstat(a).await, io::stat(b).await) {
        (Ok(a), Ok(b)) => a.is_file() && a.dev == b.dev && a.ino == b.ino,
        _ => false,
    }
}

/// Gives an artifact whose upload never committed the content last
/// committed at its path (`previous`, a digest as recorded) when that blob
/// is still there, or removes it. Returns what the index must say now.
pub async fn restore_artifact(root: &Path, artifact: &Path, previous: Option<&str>) -> std::io::Result<Option<String>> {
    if let Some(prev) = previous {
        if let Ok(d) = Digest::parse(Some(prev)) {
            let blob = root.join(d.blob_rel_path());
            if io::stat_opt(&blob).await?.is_some_and(|st| st.is_file()) {
                io::replace_with_link(&blob, artifact).await?;
                return Ok(Some(prev.to_string()));
            }
        }
    }
    io::unlink_opt(artifact).await?;
    Ok(None)
}

/// Removes the temporaries an older version of this server left inside a
/// format folder (`.<name>.tmp-<hex>`), which no listing shows but a
/// download could reach.
async fn sweep_old_temporaries(fdir: &Path) {
    for rel in meta::walk_files(fdir).await {
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        if names::is_temporary_name(name) {
            let p = fdir.join(&rel);
            if let Err(e) = io::unlink_opt(&p).await {
                tracing::warn!("cannot remove the leftover {}: {e}", p.display());
            }
        }
    }
}

struct Replayed {
    /// The number of the next generation.
    next: u64,
    /// Generations that must stay until a checkpoint writes what they hold.
    kept: Vec<u64>,
    unwritten: Unwritten,
}

/// Applies the journal files found in `dir` to the formats they concern
/// and removes them. Formats whose `.digests` cannot be written get their
/// complete index back for the store to serve from memory, and the files
/// stay until a checkpoint has written those indexes.
async fn replay(root: &Path, dir: &Path, durable: bool, syncer: &DirSyncer) -> std::io::Result<Replayed> {
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
    let mut unreadable = false;
    let mut unwritten = Vec::new();
    let (mut restored, mut undone) = (0usize, 0usize);
    for f in order {
        let entries = by_format.remove(&f).unwrap_or_default();
        let Some(fdir) = below(root, &f) else { continue };
        if !io::is_dir(&fdir).await {
            continue;
        }
        sweep_old_temporaries(&fdir).await;
        let mut map = match meta::read_digests_checked(&fdir).await {
            Ok(m) => m,
            Err(e) => {
                // Without the file there is no complete view to rewrite.
                tracing::error!("journal replay: cannot read {}/.digests: {e}", fdir.display());
                unreadable = true;
                continue;
            }
        };
        // The last commit per path, and the intents no commit followed.
        let mut last: HashMap<String, (String, String)> = HashMap::new();
        let mut pending: Vec<(String, String, String)> = Vec::new();
        for e in entries {
            let key = (e.path, e.digest, e.blob);
            if e.intent {
                pending.push(key);
            } else {
                if let Some(i) = pending.iter().position(|p| *p == key) {
                    pending.remove(i);
                }
                last.insert(key.0, (key.1, key.2));
            }
        }
        let mut changed = false;
        for (path, (digest, blob)) in &last {
            let (Some(file), Some(blob)) = (below(&fdir, path), below(root, blob)) else {
                continue;
            };
            if !same_file(&file, &blob).await {
                continue;
            }
            let value = Value::String(digest.clone());
            if map.get(path) != Some(&value) {
                map.insert(path.clone(), value);
                changed = true;
                restored += 1;
            }
        }
        for (path, digest, blob) in pending {
            let (Some(file), Some(blob)) = (below(&fdir, &path), below(root, &blob)) else {
                continue;
            };
            let recorded = map.get(&path).and_then(Value::as_str) == Some(digest.as_str());
            if recorded || !same_file(&file, &blob).await {
                continue;
            }
            // Linked, never acknowledged: back to what was committed.
            let previous = match last.get(&path) {
                Some((d, _)) => Some(d.clone()),
                None => map.get(&path).and_then(Value::as_str).map(str::to_string),
            };
            match restore_artifact(root, &file, previous.as_deref()).await {
                Ok(Some(prev)) => {
                    map.insert(path, Value::String(prev));
                }
                Ok(None) => {
                    map.remove(&path);
                }
                Err(e) => {
                    tracing::error!("journal replay: cannot undo {}: {e}", file.display());
                    continue;
                }
            }
            changed = true;
            undone += 1;
        }
        if !changed {
            continue;
        }
        let bytes = Digests::from_map(map.clone()).to_bytes();
        if let Err(e) = meta::write_digests(&fdir, bytes, durable, durable.then_some(syncer)).await {
            tracing::warn!(
                "journal replay: cannot write {}/.digests ({e}); serving it from memory until it can be written",
                fdir.display()
            );
            unwritten.push((fdir, map));
        }
    }
    if restored > 0 || undone > 0 {
        tracing::warn!(
            "journal replay: restored {restored} .digests entries written before an unclean stop, \
             undid {undone} uploads that were never acknowledged"
        );
    }
    if unreadable {
        // Left for the next start, which may read what this one could not;
        // this run numbers its own generations after them and keeps them.
        return Ok(Replayed {
            next,
            kept: Vec::new(),
            unwritten,
        });
    }
    if !unwritten.is_empty() {
        return Ok(Replayed {
            next,
            kept: gens,
            unwritten,
        });
    }
    for n in gens {
        io::unlink_opt(&gen_path(dir, n)).await?;
    }
    Ok(Replayed {
        next,
        kept: Vec::new(),
        unwritten,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_is_the_component_walk_by_bytes() {
        for root in ["/r", "/r/", "/data/dl", "/"] {
            for p in [
                "/r",
                "/r/",
                "/r/a",
                "/r/a/b",
                "/r//a",
                "/r/./a",
                "/r/.",
                "/r/.blobs/x",
                "/ra/b",
                "/x/r/a",
                "/data/dl/branches/b",
                "/data/dlx",
                "/data/dl/a//b/",
                "/data/dl/a/.",
                "/data/dl/./",
                "/data/dl/a//b",
                "/",
                "relative/r",
            ] {
                let (root, p) = (Path::new(root), Path::new(p));
                // The same bytes, not only an equal path: they go into journal lines.
                let want = p.strip_prefix(root).unwrap_or(p);
                if let Some(fast) = relative_by_bytes(root, p) {
                    assert_eq!(fast.as_os_str(), want.as_os_str(), "{root:?} {p:?}");
                }
                assert_eq!(relative(root, p).as_os_str(), want.as_os_str(), "{root:?} {p:?}");
            }
        }
        // The usual paths take the byte path.
        for p in [
            "/data/dl/branches/b/t/j/f",
            "/data/dl/.blobs/sha256/ab/abcd",
            "/data/dl/a//b",
        ] {
            assert!(relative_by_bytes(Path::new("/data/dl"), Path::new(p)).is_some(), "{p}");
        }
    }

    #[test]
    fn lines_are_the_json_serde_would_write() {
        let cases = [
            ("branches/b/t/j/f", "a/b.txt", "sha256:00ff", ".blobs/sha256/00/00ff"),
            ("branches/b/t/j/f", "quote\" back\\ tab\t nl\n", "sha256:00", ".blobs/x"),
            ("~u/b/t/j/f", "é ü 漢 \u{7f}", "", ""),
        ];
        for (format, path, digest, blob) in cases {
            let (f, b) = (Path::new(format), Path::new(blob));
            let mut want = serde_json::to_vec(&(format, path, digest, blob)).expect("json");
            want.push(b'\n');
            assert_eq!(line(f, path, digest, b), want);
            let mut want = serde_json::to_vec(&(format, path, digest, blob, INTENT)).expect("json");
            want.push(b'\n');
            assert_eq!(intent_line(f, path, digest, b), want);
            let back = parse(&intent_line(f, path, digest, b));
            assert_eq!(back.len(), 1);
            assert_eq!((back[0].path.as_str(), back[0].intent), (path, true));
        }
    }

    #[test]
    fn lines_round_trip_with_any_characters() {
        let l = line(
            Path::new("branches/b/t/j/f"),
            "sub/é \"q\"\n.txt",
            "sha256:AB",
            Path::new(".blobs/sha256/ab/ab"),
        );
        assert_eq!(l.iter().filter(|b| **b == b'\n').count(), 1);
        let mut i = intent_line(Path::new("f"), "p", "d", Path::new("b"));
        i.extend_from_slice(&l);
        assert_eq!(
            parse(&i),
            vec![
                Entry {
                    format: "f".into(),
                    path: "p".into(),
                    digest: "d".into(),
                    blob: "b".into(),
                    intent: true,
                },
                Entry {
                    format: "branches/b/t/j/f".into(),
                    path: "sub/é \"q\"\n.txt".into(),
                    digest: "sha256:AB".into(),
                    blob: ".blobs/sha256/ab/ab".into(),
                    intent: false,
                }
            ]
        );
    }

    #[test]
    fn lines_are_compact_json_arrays() {
        let l = line(Path::new("f/g"), "a \"b\"", "sha256:x", Path::new(".blobs/x"));
        assert_eq!(l, b"[\"f/g\",\"a \\\"b\\\"\",\"sha256:x\",\".blobs/x\"]\n");
        let i = intent_line(Path::new("f"), "p", "d", Path::new("b"));
        assert_eq!(i, b"[\"f\",\"p\",\"d\",\"b\",\"linking\"]\n");
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
        assert!(parse(b"[\"f\", \"p\", \"d\", \"b\", \"other\"]\n").is_empty());
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
