//! Uploads and downloads of files. Several run at once (`--jobs`); the
//! bytes of a file whose content the server already has are never sent
//! (a `HEAD` with its digest, then a link-only `PUT`), and files of the
//! same content in one upload are sent once: the others wait for it and
//! link. An interrupted download resumes with `Range` and the digest is
//! checked over the whole file.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use dlrepo::store::staging::Hasher;
use sha2::Digest;

use crate::client::{path_join, CliError, CliResult, Client, Payload};
use crate::progress::{Progress, Transfer};

const BLOCK: usize = 256 * 1024;

/// Runs `work` over `items` on up to `jobs` threads; stops taking new
/// items at the first error, which it returns.
fn run_pool<T: Sync>(items: &[T], jobs: usize, work: impl Fn(&T) -> CliResult<()> + Sync) -> CliResult<()> {
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<CliError>> = Mutex::new(None);
    let failed_now = || failed.lock().map(|f| f.is_some()).unwrap_or(true);
    std::thread::scope(|s| {
        for _ in 0..jobs.min(items.len()).max(1) {
            s.spawn(|| {
                while !failed_now() {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { break };
                    if let Err(e) = work(item) {
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(e);
                        }
                        break;
                    }
                }
            });
        }
    });
    match failed.into_inner() {
        Ok(Some(e)) => Err(e),
        Ok(None) => Ok(()),
        Err(_) => Err(CliError::Local("a transfer thread failed".into())),
    }
}

/// The files to send, in the original's order: each argument in turn; a
/// folder's files top-down, each folder's files before its sub-folders,
/// in directory order, without following links to folders.
pub fn collect(paths: &[PathBuf]) -> CliResult<Vec<(PathBuf, String)>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) -> CliResult<()> {
        let mut subdirs = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| CliError::Local(format!("{}: {e}", dir.display())))? {
            let e = e?;
            let p = e.path();
            if p.is_dir() {
                if !e.file_type()?.is_symlink() {
                    subdirs.push(p);
                }
            } else {
                let rel = p.strip_prefix(root).unwrap_or(&p).to_string_lossy().into_owned();
                out.push((p, rel));
            }
        }
        for d in subdirs {
            walk(root, &d, out)?;
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, p, &mut out)?;
        } else if p.is_file() {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((p.clone(), name));
        }
    }
    Ok(out)
}

/// What an upload knows of each content, by digest.
#[derive(Default)]
struct Contents {
    /// `false` while its first file is being sent, `true` once the server has it.
    state: Mutex<HashMap<String, bool>>,
    changed: Condvar,
    /// Digests of files already hashed, by inode (hard links, repeats).
    hashed: Mutex<HashMap<(u64, u64, u64, i64), String>>,
}

pub struct Upload<'a> {
    pub client: &'a Client,
    /// `branches/B/T/J/F`, as typed.
    pub format_path: String,
    pub jobs: usize,
}

impl Upload<'_> {
    pub fn run(&self, files: &[(PathBuf, String)]) -> CliResult<()> {
        let sizes: u64 = files
            .iter()
            .filter_map(|(p, _)| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let progress = Progress::new(files.len(), Some(sizes));
        let contents = Contents::default();
        run_pool(files, self.jobs, |(local, rel)| {
            let target = path_join(&[&self.format_path, rel]);
            self.put_file(local, &target, &contents, &progress)
                .map_err(|e| match e {
                    CliError::Local(m) => CliError::Local(format!("{}: {m}", local.display())),
                    e => e,
                })
        })
    }

    fn digest_of(&self, local: &Path, contents: &Contents) -> CliResult<(String, u64)> {
        let m = std::fs::metadata(local)?;
        if !m.is_file() {
            return Err(CliError::Local("not a regular file".into()));
        }
        let key = (m.dev(), m.ino(), m.len(), m.mtime_nsec() + m.mtime() * 1_000_000_000);
        if let Some(d) = contents.hashed.lock().ok().and_then(|h| h.get(&key).cloned()) {
            return Ok((d, m.len()));
        }
        let mut f = std::fs::File::open(local)?;
        let mut h = sha2::Sha256::new();
        let mut buf = vec![0u8; BLOCK];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let d = format!("sha256:{hex}");
        if let Ok(mut hashed) = contents.hashed.lock() {
            hashed.insert(key, d.clone());
        }
        Ok((d, m.len()))
    }

    fn put_file(&self, local: &Path, target: &str, contents: &Contents, progress: &Progress) -> CliResult<()> {
        let (digest, size) = self.digest_of(local, contents)?;
        // Claim the content, or wait for whoever sends it.
        let known = {
            let mut state = contents
                .state
                .lock()
                .map_err(|_| CliError::Local("upload state poisoned".into()))?;
            loop {
                match state.get(&digest) {
                    None => {
                        state.insert(digest.clone(), false);
                        break false;
                    }
                    Some(true) => break true,
                    Some(false) => {
                        state = contents
                            .changed
                            .wait(state)
                            .map_err(|_| CliError::Local("upload state poisoned".into()))?;
                    }
                }
            }
        };
        let res = self.send(local, target, &digest, size, known, progress);
        if !known {
            if let Ok(mut state) = contents.state.lock() {
                if res.is_ok() {
                    state.insert(digest, true);
                } else {
                    state.remove(&digest);
                }
            }
            contents.changed.notify_all();
        }
        res
    }

    fn send(
        &self,
        local: &Path,
        target: &str,
        digest: &str,
        size: u64,
        known: bool,
        progress: &Progress,
    ) -> CliResult<()> {
        let c = self.client;
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let url = c.make_url(target, &[]);
        let digest_h = [("Digest", digest.to_string())];
        let has = known
            || match c.exchange("HEAD", &url, Payload::None, &digest_h, true) {
                Ok(_) => true,
                Err(CliError::Remote { status: 404, .. }) => false,
                Err(e) => return Err(e),
            };
        if has {
            let t = progress.start(&format!("{name} (deduplicated)"), Some(size));
            let link = [("Digest", digest.to_string()), ("X-Dlrepo-Link", digest.to_string())];
            c.exchange("PUT", &url, Payload::None, &link, true)?;
            t.finish(size, size);
            return Ok(());
        }
        let t = progress.start(&name, Some(size));
        let on_read = |n: usize| t.add(n);
        let headers = [
            ("Content-Size", size.to_string()),
            ("Content-Type", "application/octet-stream".to_string()),
            ("Digest", digest.to_string()),
        ];
        c.exchange("PUT", &url, Payload::File(local, &on_read), &headers, false)
            .map(|_| t.finish(size, 0))
    }
}

/// A download's file name must stay inside the target folder.
fn safe_rel(name: &str) -> CliResult<PathBuf> {
    let p = PathBuf::from(name);
    if name.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(CliError::Local(format!(
            "{name:?}: refusing a file name outside the target folder"
        )));
    }
    Ok(p)
}

pub struct Download<'a> {
    pub client: &'a Client,
    pub retries: u32,
    pub jobs: usize,
}

impl Download<'_> {
    /// Every file of the format at `format_path` (`branches/B/T/J/F/`) into `dir`.
    pub fn run(&self, format_path: &str, files: &[String], dir: &Path) -> CliResult<()> {
        let progress = Progress::new(files.len(), None);
        run_pool(files, self.jobs, |f| {
            let rel = safe_rel(f)?;
            self.get_file(&path_join(&[format_path, f]), &dir.join(rel), &progress)
        })
    }

    fn get_file(&self, path: &str, dest: &Path, progress: &Progress) -> CliResult<()> {
        let c = self.client;
        let url = c.make_url(path, &[]);
        let resp = c.exchange("GET", &url, Payload::None, &[], false)?;
        let size = resp.header("Content-Length").and_then(|v| v.parse::<u64>().ok());
        let expected = match resp.header("Digest") {
            Some(d) => {
                let (algo, hex) = d
                    .split_once(':')
                    .filter(|(_, h)| !h.contains(':'))
                    .ok_or_else(|| CliError::Local(format!("bad Digest header: {d}")))?;
                if Hasher::for_algo(algo).is_none() {
                    return Err(CliError::Local(format!("unsupported hash type {algo}")));
                }
                Some((algo.to_string(), hex.to_string()))
            }
            None => None,
        };
        let new_hasher = || expected.as_ref().and_then(|(a, _)| Hasher::for_algo(a));
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let t = progress.start(&name, size);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::File::create(dest)?;
        let mut hasher = new_hasher();
        let mut reader: Box<dyn Read + Send> = resp.into_reader();
        let mut written = 0u64;
        let mut resumes = 0;
        let mut buf = vec![0u8; BLOCK];
        loop {
            let broken = match reader.read(&mut buf) {
                Ok(0) if size.is_none_or(|s| written >= s) => break,
                Ok(0) => "the connection closed early".to_string(),
                Ok(n) => {
                    file.write_all(&buf[..n])?;
                    if let Some(h) = &mut hasher {
                        h.update(&buf[..n]);
                    }
                    written += n as u64;
                    t.add(n);
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => e.to_string(),
            };
            self.resume(
                &url,
                &mut reader,
                &mut file,
                &mut hasher,
                &mut written,
                &mut resumes,
                &t,
                &new_hasher,
                &broken,
            )?;
        }
        file.flush()?;
        drop(file);
        if let (Some(h), Some((algo, hex))) = (hasher, &expected) {
            if h.finish_hex() != *hex {
                let _ = std::fs::remove_file(dest);
                // Like the original: empty folders up the path go too.
                let mut d = dest.parent();
                while let Some(p) = d.filter(|p| !p.as_os_str().is_empty()) {
                    if std::fs::remove_dir(p).is_err() {
                        break;
                    }
                    d = p.parent();
                }
                return Err(CliError::Local(format!(
                    "downloaded data does not match digest: {algo}:{hex}"
                )));
            }
        }
        t.finish(written, 0);
        Ok(())
    }

    /// Asks for the rest of the file after a broken transfer: with a 206
    /// the bytes continue where they stopped, with a 200 from the start.
    #[allow(clippy::too_many_arguments)]
    fn resume(
        &self,
        url: &str,
        reader: &mut Box<dyn Read + Send>,
        file: &mut std::fs::File,
        hasher: &mut Option<Hasher>,
        written: &mut u64,
        resumes: &mut u32,
        t: &Transfer,
        new_hasher: &dyn Fn() -> Option<Hasher>,
        why: &str,
    ) -> CliResult<()> {
        use std::io::Seek;
        if *resumes >= self.retries {
            return Err(CliError::Local(format!("download of {url} failed: {why}")));
        }
        *resumes += 1;
        crate::client::warn(&format!("{url}: {why}; resuming at byte {written}"));
        let range = [("Range", format!("bytes={written}-"))];
        let resp = self.client.exchange("GET", url, Payload::None, &range, false)?;
        if resp.status() != 206 {
            file.set_len(0)?;
            file.seek(std::io::SeekFrom::Start(0))?;
            t.rewind(*written);
            *written = 0;
            *hasher = new_hasher();
        }
        *reader = resp.into_reader();
        Ok(())
    }
}
