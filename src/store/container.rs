//! The `container` format of a job (docs/spec/layout.md §4.5): the image a
//! registry push stores, as hard links to global blobs.
//!
//! ```text
//! <job>/container/blobs/<algo>/<xx>/<hex>       the config and every layer
//! <job>/container/manifests/<algo>/<xx>/<hex>   the manifest (one file)
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::blobs::HeldBlob;
use super::digest::{sha256_hex, Digest};
use super::manifest::Manifest;
use super::repo::{JobRef, Repo};
use super::staging::{Hasher, Staging};
use super::{tree, Store, StoreError, StoreResult};
use crate::io;

/// The format name of registry images.
pub const FORMAT: &str = "container";

/// Why a manifest push is refused.
#[derive(Debug)]
pub enum PushError {
    /// A blob the manifest names is not in the registry.
    BlobUnknown(String),
    /// The user's quota does not take the image.
    Denied(String),
    Store(StoreError),
}

impl From<StoreError> for PushError {
    fn from(e: StoreError) -> Self {
        PushError::Store(e)
    }
}

impl From<std::io::Error> for PushError {
    fn from(e: std::io::Error) -> Self {
        PushError::Store(e.into())
    }
}

/// `<root>/<algo>/<xx>/<hex>` for a digest.
fn sharded(root: &Path, d: &Digest) -> PathBuf {
    let shard = d.hex.get(..2).unwrap_or(&d.hex);
    root.join(&d.algo).join(shard).join(&d.hex)
}

impl Store {
    /// The manifest of the image in `container_dir`: its file and digest.
    pub fn image_manifest(&self, container_dir: &Path) -> Option<(PathBuf, String)> {
        let manifests = container_dir.join("manifests");
        for algo in io::read_dir_sorted(&manifests).ok()? {
            let algo_dir = manifests.join(&algo.name);
            for shard in io::read_dir_sorted(&algo_dir).ok()? {
                let shard_dir = algo_dir.join(&shard.name);
                if let Some(f) = io::read_dir_sorted(&shard_dir).ok()?.first() {
                    let digest = format!("{}:{}", algo.name.to_string_lossy(), f.name.to_string_lossy());
                    return Some((shard_dir.join(&f.name), digest));
                }
            }
        }
        None
    }

    /// Stores a pushed manifest as the job's image, replacing the one it
    /// had: every blob it names is linked under `container/blobs/`, the
    /// manifest (with the blobs' true sizes) under `container/manifests/`.
    /// Returns the manifest's digest. Every blob is checked, and the quota,
    /// before the old image goes, so a refused push changes nothing.
    pub async fn put_manifest(self: &Rc<Self>, job: &JobRef, m: &Manifest) -> Result<String, PushError> {
        let need_size = true;
        let mut held: Vec<HeldBlob> = Vec::with_capacity(m.blobs.len());
        for d in &m.blobs {
            match self.hold_blob(d, need_size).await? {
                Some(b) => held.push(b),
                None => return Err(PushError::BlobUnknown(d.to_string())),
            }
        }
        let sizes: Vec<u64> = held.iter().map(|b| b.size).collect();
        let bytes = m.stored_bytes(&sizes);
        let digest = Digest::sha256(sha256_hex(&bytes));
        let job_dir = job.dir();
        let container = job_dir.join(FORMAT);
        // A delete of the job or above it: push into what it leaves.
        while self.job_states.being_removed(&job_dir) {
            self.job_states.removed(&job_dir).await;
        }
        let _job = self.job_mutex.lock(job_dir.clone()).await;
        let _format = self.format_mutex.lock(container.clone()).await;
        let user = job.repo.user.clone();
        let _usage = match &user {
            Some(u) => Some(self.usage_mutex.lock(u.clone()).await),
            None => None,
        };
        // Each distinct blob counts once, and the manifest itself.
        let mut counted = BTreeSet::new();
        let new_bytes: u64 = held
            .iter()
            .filter(|b| counted.insert(b.path.clone()))
            .map(|b| b.size)
            .sum::<u64>()
            + bytes.len() as u64;
        let old_bytes = if user.is_some() { tree_size(&container).await } else { 0 };
        if let Some(u) = &user {
            self.usage
                .try_replace(u, old_bytes, new_bytes)
                .await
                .map_err(PushError::Denied)?;
        }
        let res = self.write_image(job, &container, &held, &bytes, &digest).await;
        if let Err(e) = res {
            // Nothing half-built stays.
            let _ = self.remove_tree(&container, false).await;
            if let Some(u) = &user {
                self.usage.replace(u, new_bytes, 0).await;
                let _ = self.usage.save(u).await;
            }
            return Err(e);
        }
        if let Some(u) = &user {
            self.usage.save(u).await?;
        }
        self.end_leases(held.iter().map(|b| b.path.as_path()));
        super::error::note_disk_ok();
        Ok(digest.to_string())
    }

    async fn write_image(
        self: &Rc<Self>,
        job: &JobRef,
        container: &Path,
        held: &[HeldBlob],
        bytes: &[u8],
        digest: &Digest,
    ) -> Result<(), PushError> {
        self.ensure_job(job).await?;
        // The old image goes (the usage was settled with the new one).
        self.remove_tree(container, false).await?;
        let mut dirs: Vec<PathBuf> = Vec::new();
        for b in held {
            let Some(d) = blob_digest(&b.path) else { continue };
            let target = sharded(&container.join("blobs"), &d);
            link_into(&b.path, &target, &mut dirs).await?;
        }
        let manifest_blob = self.store_manifest_blob(bytes, digest).await?;
        let target = sharded(&container.join("manifests"), digest);
        link_into(&manifest_blob.path, &target, &mut dirs).await?;
        drop(manifest_blob);
        self.forget_tree(container);
        self.sync_dirs(dirs.iter().map(PathBuf::as_path)).await?;
        Ok(())
    }

    /// The manifest's bytes as a blob: the existing one (touched), or a new
    /// one written through a staging file. Pinned until dropped.
    async fn store_manifest_blob(self: &Rc<Self>, bytes: &[u8], digest: &Digest) -> StoreResult<HeldBlob> {
        if let Some(b) = self.hold_blob(digest, false).await? {
            return Ok(b);
        }
        let hasher = Hasher::for_algo("sha256").ok_or_else(|| StoreError::Failed("no SHA-256".into()))?;
        let mut staging = Staging::create(self, hasher).await?;
        let written = async {
            staging.write(bytes::Bytes::copy_from_slice(bytes)).await?;
            staging.finish(self.cfg.fsync).await
        }
        .await;
        if let Err(e) = written {
            staging.discard().await;
            return Err(e.into());
        }
        match self.commit_blob(&mut staging, digest).await {
            Ok(b) => Ok(b),
            Err(e) => {
                staging.discard().await;
                Err(e)
            }
        }
    }

    /// The tags of `branch` whose `job` has an image, in name order.
    pub async fn image_tags(&self, repo: &Repo, branch: &str, job: &str) -> Vec<String> {
        let mut out = Vec::new();
        for t in tree::list_dirs(&repo.branch_dir(branch)).await.unwrap_or_default() {
            if io::is_dir(&repo.format_dir(branch, &t, job, FORMAT)).await {
                out.push(t);
            }
        }
        out
    }

    /// The versions of a product branch that have an image, in name order.
    pub async fn version_image_tags(&self, pbranch_dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for v in tree::list_dirs(pbranch_dir).await.unwrap_or_default() {
            if io::is_dir(&pbranch_dir.join(&v).join(FORMAT)).await {
                out.push(v);
            }
        }
        out
    }

    /// Every image of the base repository: `<branch>/<job>` with an image
    /// in some tag, `<product>/<variant>/<product branch>` with one in
    /// some version.
    pub async fn catalog(&self) -> Vec<String> {
        let repo = self.repo(None);
        let mut images = BTreeSet::new();
        let branches = repo.branches_dir();
        for b in tree::list_dirs(&branches).await.unwrap_or_default() {
            for t in tree::list_dirs(&branches.join(&b)).await.unwrap_or_default() {
                for j in tree::list_dirs(&branches.join(&b).join(&t)).await.unwrap_or_default() {
                    if !images.contains(&format!("{b}/{j}")) && io::is_dir(&repo.format_dir(&b, &t, &j, FORMAT)).await {
                        images.insert(format!("{b}/{j}"));
                    }
                }
            }
        }
        let products = repo.products_dir();
        for p in tree::list_dirs(&products).await.unwrap_or_default() {
            for v in tree::list_dirs(&products.join(&p)).await.unwrap_or_default() {
                for pb in tree::list_dirs(&products.join(&p).join(&v)).await.unwrap_or_default() {
                    let dir = products.join(&p).join(&v).join(&pb);
                    if !self.version_image_tags(&dir).await.is_empty() {
                        images.insert(format!("{p}/{v}/{pb}"));
                    }
                }
            }
        }
        images.into_iter().collect()
    }
}

/// The digest a blob path names (`.blobs/<algo>/<xx>/<hex>`).
fn blob_digest(blob: &Path) -> Option<Digest> {
    let hex = blob.file_name()?.to_str()?;
    let algo = blob.parent()?.parent()?.file_name()?.to_str()?;
    Digest::parse(Some(&format!("{algo}:{hex}"))).ok()
}

/// Hard-links `blob` at `target`, making its folders; the folders that
/// gained an entry go into `dirs`.
async fn link_into(blob: &Path, target: &Path, dirs: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let Some(parent) = target.parent() else { return Ok(()) };
    for created in io::mkdir_all(parent).await? {
        if let Some(p) = created.parent() {
            dirs.push(p.to_path_buf());
        }
    }
    dirs.push(parent.to_path_buf());
    match io::link(blob, target).await {
        // The same blob named twice (a config that is also a layer).
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        r => r,
    }
}

/// Bytes of the regular files below `dir` (an image being replaced).
async fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    for rel in super::meta::walk_files(dir).await {
        if let Ok(st) = io::lstat(&dir.join(rel)).await {
            total += st.size;
        }
    }
    total
}
