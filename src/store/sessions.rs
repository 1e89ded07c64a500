//! Registry blob upload sessions (docs/spec/http-api.md §9.3): a staging
//! file that several requests append to (POST, PATCH…, PUT), then commit.
//!
//! A session's staging file is protected from the orphan GC for the
//! session's whole life, not only while a request uses it: its uuid stays
//! in the staging set from the POST until the final PUT, a DELETE, or its
//! expiry after `DLREPO_UPLOAD_SESSION_TIMEOUT` idle seconds. A blob that
//! a session committed is leased for as long, so the manifest that names
//! it finds it even with a zero orphan lifetime.

use crate::pathmap::PathMap;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::digest::Digest;
use super::staging::{Hasher, Staging};
use super::{Store, StoreError, StoreResult};

/// Why a chunk cannot be appended where it says it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkError {
    /// `Content-Range` does not start where the upload ends: 416.
    Gap { have: u64 },
    /// A `Content-Range` that does not parse, or disagrees with the
    /// body's length: 400.
    Invalid(String),
}

/// Checks a PATCH's `Content-Range: <start>-<end>` (inclusive, `bytes `
/// allowed before it) against the `have` bytes received so far and the
/// body's announced length. No header: the chunk goes at the end.
pub fn check_chunk(have: u64, content_range: Option<&str>, content_length: Option<u64>) -> Result<(), ChunkError> {
    let Some(range) = content_range else { return Ok(()) };
    let spec = range.trim();
    let spec = spec
        .strip_prefix("bytes")
        .map(|s| s.trim_start_matches([' ', '=']))
        .unwrap_or(spec);
    let bad = || ChunkError::Invalid(format!("Content-Range {range:?} is not <start>-<end>"));
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let start: u64 = a.trim().parse().map_err(|_| bad())?;
    let end: u64 = b.trim().split('/').next().unwrap_or("").parse().map_err(|_| bad())?;
    if start != have {
        return Err(ChunkError::Gap { have });
    }
    if end < start {
        return Err(bad());
    }
    if let Some(len) = content_length {
        if len != end - start + 1 {
            return Err(ChunkError::Invalid(format!(
                "Content-Range {range:?} announces {} bytes, Content-Length {len}",
                end - start + 1
            )));
        }
    }
    Ok(())
}

/// The `Range` a session reports: `0-<last byte>`, `0-0` when empty.
pub fn range_header(len: u64) -> String {
    format!("0-{}", len.saturating_sub(1))
}

struct Entry {
    /// `None` while a request is using it.
    staging: Option<Staging>,
    last_used: Instant,
}

/// The open sessions, by uuid, and the blobs they committed, by path.
#[derive(Default)]
pub struct Sessions {
    open: RefCell<HashMap<String, Entry>>,
    leases: RefCell<PathMap<Instant>>,
}

/// A session a request is using; given back with [`Store::session_put_back`].
pub struct InUse {
    pub uuid: String,
    pub staging: Staging,
}

/// What looking a session up can find.
pub enum Lookup {
    Found(Box<InUse>),
    Unknown,
    /// Another request is appending to it right now.
    Busy,
}

impl Store {
    fn session_timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.upload_session_timeout.max(1))
    }

    /// Opens a session: a fresh staging file hashed with SHA-256. Returns
    /// its uuid.
    pub async fn session_open(self: &Rc<Self>) -> StoreResult<String> {
        let staging = self.new_session_staging().await?;
        let uuid = staging.uuid().to_string();
        self.sessions.open.borrow_mut().insert(
            uuid.clone(),
            Entry {
                staging: Some(staging),
                last_used: Instant::now(),
            },
        );
        Ok(uuid)
    }

    async fn new_session_staging(self: &Rc<Self>) -> StoreResult<Staging> {
        let hasher = Hasher::for_algo("sha256").ok_or_else(|| StoreError::Failed("no SHA-256".into()))?;
        Ok(Staging::create(self, hasher).await?)
    }

    /// Takes a session for a request.
    pub fn session_take(&self, uuid: &str) -> Lookup {
        let mut open = self.sessions.open.borrow_mut();
        let Some(e) = open.get_mut(uuid) else {
            return Lookup::Unknown;
        };
        e.last_used = Instant::now();
        match e.staging.take() {
            Some(staging) => Lookup::Found(Box::new(InUse {
                uuid: uuid.to_string(),
                staging,
            })),
            None => Lookup::Busy,
        }
    }

    /// Gives a session back after a request that leaves it open.
    pub fn session_put_back(&self, s: InUse) {
        let mut open = self.sessions.open.borrow_mut();
        match open.get_mut(&s.uuid) {
            Some(e) => {
                e.staging = Some(s.staging);
                e.last_used = Instant::now();
            }
            // Expired meanwhile: it goes now (the staging file with it).
            None => drop(s),
        }
    }

    /// Ends a session whatever became of its staging file (committed,
    /// cancelled, failed).
    pub fn session_close(&self, uuid: &str) {
        self.sessions.open.borrow_mut().remove(uuid);
    }

    /// Appends a request's data to a session's staging file and waits for
    /// it to be written.
    pub async fn session_append(&self, s: &mut InUse, data: Bytes) -> StoreResult<()> {
        s.staging.write(data).await?;
        Ok(())
    }

    /// Commits a session's data as the blob `digest` (a mismatch deletes
    /// the data) and leases the blob until a manifest names it.
    pub async fn session_commit(self: &Rc<Self>, mut s: InUse, digest: &Digest) -> StoreResult<()> {
        self.session_close(&s.uuid);
        let hex = match s.staging.finish(self.cfg.fsync).await {
            Ok(h) => h,
            Err(e) => {
                s.staging.discard().await;
                return Err(e.into());
            }
        };
        if digest.algo != "sha256" || hex != digest.hex {
            s.staging.discard().await;
            return Err(StoreError::DigestMismatch(format!(
                "the data does not match the digest {digest}"
            )));
        }
        let blob = match self.commit_blob(&mut s.staging, digest).await {
            Ok(b) => b,
            Err(e) => {
                s.staging.discard().await;
                return Err(e);
            }
        };
        // Leased while still pinned: the GC never sees it unprotected.
        self.lease_blob(&blob.path);
        Ok(())
    }

    /// Keeps the orphan GC off a blob until a manifest links it or the
    /// session timeout passes.
    pub fn lease_blob(&self, blob: &std::path::Path) {
        let until = Instant::now() + self.session_timeout();
        self.sessions.leases.borrow_mut().insert(blob.to_path_buf(), until);
    }

    /// Whether a blob is leased (checked by the GC right before it deletes).
    pub fn blob_leased(&self, blob: &std::path::Path) -> bool {
        self.sessions
            .leases
            .borrow()
            .get(blob)
            .is_some_and(|until| *until > Instant::now())
    }

    /// Ends the leases of blobs a manifest now links.
    pub fn end_leases<'a>(&self, blobs: impl IntoIterator<Item = &'a std::path::Path>) {
        let mut leases = self.sessions.leases.borrow_mut();
        for b in blobs {
            leases.remove(b);
        }
    }

    /// The task that expires idle sessions (their staging files go) and
    /// old leases.
    pub fn spawn_session_expiry(self: &Rc<Self>) {
        let store = self.clone();
        let every = (self.session_timeout() / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        tokio_uring::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                store.expire_sessions();
            }
        });
    }

    fn expire_sessions(&self) {
        let now = Instant::now();
        let timeout = self.session_timeout();
        let expired: Vec<Entry> = {
            let mut open = self.sessions.open.borrow_mut();
            let uuids: Vec<String> = open
                .iter()
                .filter(|(_, e)| {
                    let idle = now.duration_since(e.last_used);
                    // One in use whose request died (a client gone mid-PATCH)
                    // goes after twice as long.
                    idle >= timeout && (e.staging.is_some() || idle >= 2 * timeout)
                })
                .map(|(u, _)| u.clone())
                .collect();
            uuids.iter().filter_map(|u| open.remove(u)).collect()
        };
        if !expired.is_empty() {
            tracing::info!("{} idle registry upload sessions expired", expired.len());
        }
        // Dropping a staging file removes it.
        drop(expired);
        self.sessions.leases.borrow_mut().retain(|_, until| *until > now);
    }

    /// The bytes a session holds so far.
    pub fn session_len(s: &InUse) -> u64 {
        s.staging.len()
    }

    /// Settles a session's writes before its request is answered.
    pub async fn session_settle(&self, s: &mut InUse) -> StoreResult<()> {
        Ok(s.staging.settle().await?)
    }

    /// Cancels a session: its staging file goes now.
    pub async fn session_cancel(&self, s: InUse) {
        self.session_close(&s.uuid);
        s.staging.discard().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_go_where_the_upload_ends() {
        assert_eq!(check_chunk(0, None, Some(10)), Ok(()));
        assert_eq!(check_chunk(0, Some("0-9"), Some(10)), Ok(()));
        assert_eq!(check_chunk(10, Some("10-19"), None), Ok(()));
        assert_eq!(check_chunk(10, Some("bytes 10-19/100"), Some(10)), Ok(()));
        assert_eq!(check_chunk(10, Some("bytes=10-19"), Some(10)), Ok(()));
        // A gap, or a chunk sent twice.
        assert_eq!(
            check_chunk(10, Some("20-29"), Some(10)),
            Err(ChunkError::Gap { have: 10 })
        );
        assert_eq!(
            check_chunk(10, Some("0-9"), Some(10)),
            Err(ChunkError::Gap { have: 10 })
        );
        assert!(matches!(
            check_chunk(0, Some("0-9"), Some(5)),
            Err(ChunkError::Invalid(_))
        ));
        assert!(matches!(
            check_chunk(0, Some("nonsense"), None),
            Err(ChunkError::Invalid(_))
        ));
        assert!(matches!(check_chunk(5, Some("5-4"), None), Err(ChunkError::Invalid(_))));
    }

    #[test]
    fn ranges_report_the_last_byte() {
        assert_eq!(range_header(0), "0-0");
        assert_eq!(range_header(1), "0-0");
        assert_eq!(range_header(1000), "0-999");
    }
}
