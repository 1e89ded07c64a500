//! Format finalisation (`PATCH` on a format) and the post-process command
//! (docs/spec/publish.md §2).

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use serde_json::{Map, Value};

use super::digest::Digest;
use super::digests::Digests;
use super::{meta, Store, StoreError, StoreResult};
use crate::io;

impl Store {
    /// Runs the post-process command when configured and matching, then
    /// clears the format's dirty flag. A failing command leaves the format
    /// dirty and answers `post process failed`.
    pub async fn finalize_format(self: &Rc<Self>, format_dir: &Path) -> StoreResult<()> {
        let _guard = self.format_mutex.lock(format_dir.to_path_buf()).await;
        // The command sees the index, and it replaces shared files by
        // copies, which the journal could no longer vouch for.
        self.flush_format_locked(format_dir).await?;
        if let Some(cmd) = self.cfg.post_process_cmd.clone() {
            let digests = self.digests_checked(format_dir).await?;
            let matches = match &self.cfg.post_process_filter {
                None => true,
                Some(re) => digests.keys().any(|k| re.is_match(k)),
            };
            if matches {
                let ok = self.post_process(format_dir, &cmd, &digests).await?;
                if !ok {
                    return Err(StoreError::Failed("post process failed".into()));
                }
            }
        }
        io::unlink_opt(&format_dir.join(".dirty")).await?;
        self.forget_tree(format_dir);
        Ok(())
    }

    /// Steps 3–5 of docs/spec/publish.md §2. Returns whether the command succeeded; the
    /// index is refreshed either way.
    async fn post_process(self: &Rc<Self>, dir: &Path, cmd: &str, digests: &Digests) -> StoreResult<bool> {
        let chunk = self.cfg.chunk_size.max(1 << 20);
        // Give the command private copies, so it cannot change shared blobs.
        let mut ctimes: HashMap<String, i128> = HashMap::new();
        for key in digests.keys() {
            let path = dir.join(key);
            let Ok(st) = io::lstat(&path).await else { continue };
            if !st.is_file() {
                continue;
            }
            if st.nlink > 1 {
                io::replace_with_copy(&path, &path, chunk).await?;
            }
            if let Ok(st) = io::lstat(&path).await {
                ctimes.insert(key.clone(), st.ctime_ns);
            }
        }
        let status = tokio::process::Command::new(cmd).current_dir(dir).status().await;
        let ok = match &status {
            Ok(s) if s.success() => true,
            Ok(s) => {
                tracing::error!(
                    "post process failed: command {cmd} exited {} (cwd {})",
                    s.code().map(|c| c.to_string()).unwrap_or_else(|| "by a signal".into()),
                    dir.display()
                );
                false
            }
            Err(e) => {
                tracing::error!("post process failed: command {cmd}: {e} (cwd {})", dir.display());
                false
            }
        };
        // Re-index every file: unchanged ones keep their digest, new or
        // modified ones are hashed; all go back to sharing a blob.
        let files = meta::walk_files(dir).await;
        let mut fresh = Map::new();
        for rel in files {
            if rel == ".digests" || rel == ".dirty" {
                continue;
            }
            let path = dir.join(&rel);
            let Ok(st) = io::lstat(&path).await else { continue };
            let known = digests
                .get(&rel)
                .and_then(Value::as_str)
                .filter(|_| ctimes.get(&rel) == Some(&st.ctime_ns));
            let value = match known {
                Some(v) => v.to_string(),
                None => format!("sha256:{}", io::sha256_file(&path, chunk).await?),
            };
            if let Ok(d) = Digest::parse(Some(&value)) {
                self.share_blob(&path, &d).await?;
            }
            fresh.insert(rel, Value::String(value));
        }
        self.write_digests(dir, Digests::from_map(fresh)).await?;
        Ok(ok)
    }

    /// Makes `path` a hard link of the blob `d`: to the existing blob, or by
    /// linking the file itself into `.blobs/` when there is none.
    async fn share_blob(&self, path: &Path, d: &Digest) -> StoreResult<()> {
        let blob = self.blob_path(d);
        let _pin = self.pins.pin(&blob).await;
        if io::touch(&blob).is_ok() {
            io::replace_with_link(&blob, path).await?;
        } else {
            if let Some(shard) = blob.parent() {
                self.ensure_dir(shard).await?;
            }
            match io::link(path, &blob).await {
                Ok(()) => io::chmod(&blob, 0o644)?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
