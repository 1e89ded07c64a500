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
    /// Anything the file system said that is not the client's fault (500).
    Io(io::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A file-system failure is the server's problem (500), a missing file
/// included: where a missing file means a missing artifact, the code that
/// looked for it says [`StoreError::NotFound`] itself.
impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        StoreError::Io(e)
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
            StoreError::Io(e) => write!(f, "{e}"),
        }
    }
}
