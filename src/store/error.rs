//! Errors of the storage layer. The HTTP layer maps them to responses in one place.

use std::io;

#[derive(Debug)]
pub enum StoreError {
    /// The object does not exist (404).
    NotFound,
    /// The request is refused with a reason (400).
    Refused(String),
    /// A `Digest` header that cannot be used (422).
    InvalidDigest(String),
    /// The body does not hash to the announced digest (422).
    DigestMismatch(String),
    /// The target is in the way, e.g. a directory where a file should go (409).
    Conflict(String),
    /// An operation of ours failed with this reason (500).
    Failed(String),
    /// The file system is full, or the quota of the server's user is used
    /// up (`ENOSPC`, `EDQUOT`): 507, nothing was kept.
    NoSpace(io::Error),
    /// Anything the file system said that is not the client's fault (500).
    Io(io::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A file-system failure is the server's problem (500), a missing file
/// included: where a missing file means a missing artifact, the code that
/// looked for it says [`StoreError::NotFound`] itself.
impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        if is_no_space(&e) {
            note_disk_full(&e);
            StoreError::NoSpace(e)
        } else {
            StoreError::Io(e)
        }
    }
}

/// Whether an error says the disk (or the server user's quota) is full.
pub fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Whether the last write that failed did so for want of space, and no
/// write has succeeded since: a full disk is logged once, not per request.
static DISK_FULL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A write failed for want of space; logged the first time only.
pub fn note_disk_full(e: &io::Error) {
    if !DISK_FULL.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!("the disk is full ({e}): writes are refused with 507 until space returns");
    }
}

/// A write succeeded: if the disk was full, say that it is no longer.
pub fn note_disk_ok() {
    if DISK_FULL.swap(false, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!("the disk has space again: writes are accepted");
    }
}

impl From<super::digest::InvalidDigest> for StoreError {
    fn from(e: super::digest::InvalidDigest) -> Self {
        StoreError::InvalidDigest(e.to_string())
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NotFound => f.write_str("not found"),
            StoreError::Refused(s)
            | StoreError::InvalidDigest(s)
            | StoreError::DigestMismatch(s)
            | StoreError::Conflict(s)
            | StoreError::Failed(s) => f.write_str(s),
            StoreError::NoSpace(e) | StoreError::Io(e) => write!(f, "{e}"),
        }
    }
}
