//! The upload sequence (docs/spec/http-api.md §8): the checks made before the body is
//! read, the staging file that receives it, and the commit that turns a
//! verified staging file into a linked, indexed artifact.

use std::rc::Rc;

use super::digest::Digest;
use super::link::ArtifactRef;
use super::staging::{Hasher, Staging};
use super::{Store, StoreError, StoreResult};
use crate::names;

impl Store {
    /// Refuses an upload before its body is read: an artifact path that
    /// cannot be a file, or a locked job (unless the format is internal).
    pub async fn check_upload(&self, target: &ArtifactRef) -> StoreResult<()> {
        if !self.cfg.is_internal_format(&target.format) && self.job_locked_cached(&target.job).await {
            return Err(StoreError::Refused("Cannot upload files in locked jobs".into()));
        }
        let path = &target.path;
        let depth = names::depth(path);
        if depth > names::MAX_ARTIFACT_DEPTH {
            return Err(StoreError::Refused(format!(
                "Artifact path too deep: {depth} levels, at most {} allowed",
                names::MAX_ARTIFACT_DEPTH
            )));
        }
        if !names::is_valid_upload_path(path) || !names::fits_below(&target.format_dir(), path) {
            return Err(StoreError::Refused(path.clone()));
        }
        Ok(())
    }

    /// A staging file for a body announced with `digest`, hashed with its
    /// algorithm as it arrives.
    pub async fn begin_upload(self: &Rc<Self>, digest: &Digest) -> StoreResult<Staging> {
        let hasher = Hasher::for_algo(&digest.algo).ok_or_else(|| {
            StoreError::InvalidDigest(format!(
                "invalid digest: {digest} (this server cannot verify {} uploads)",
                digest.algo
            ))
        })?;
        Ok(Staging::create_for_request(self, hasher).await?)
    }

    /// Commits a received body: checks it against `digest`, moves it into
    /// the blob store (or drops it when the blob exists) and links the blob
    /// at the artifact path, recording `digest_header` verbatim. The blob
    /// stays pinned from its rename to its link, so even a zero orphan
    /// lifetime cannot collect it in between.
    pub async fn ingest_upload(
        self: &Rc<Self>,
        mut staging: Staging,
        target: &ArtifactRef,
        digest: &Digest,
        digest_header: &str,
    ) -> StoreResult<()> {
        // Whatever fails before the blob is in place, the staging file goes
        // now, before the answer, not when the value is dropped.
        let hex = match staging.finish(self.cfg.fsync).await {
            Ok(hex) => hex,
            Err(e) => {
                staging.discard().await;
                return Err(e.into());
            }
        };
        if hex != digest.hex {
            staging.discard().await;
            return Err(StoreError::DigestMismatch(format!(
                "Received data does not match digest: {digest_header}"
            )));
        }
        let blob = match self.commit_blob(&mut staging, digest).await {
            Ok(blob) => blob,
            Err(e) => {
                staging.discard().await;
                return Err(e);
            }
        };
        drop(staging);
        self.link_held(target, digest_header, blob).await
    }
}
