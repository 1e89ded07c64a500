//! The `Digest` request header: `<algo>:<hex>`.

use std::fmt;

/// Hash names Python guarantees, in the order the original accepts them.
const ALGOS: &[&str] = &[
    "md5",
    "sha1",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
    "sha3_224",
    "sha3_256",
    "sha3_384",
    "sha3_512",
    "blake2b",
    "blake2s",
    "shake_128",
    "shake_256",
];

/// A parsed digest: lowercase algorithm and lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    pub algo: String,
    pub hex: String,
}

/// Why a `Digest` header was refused; the message quotes the value as the
/// original does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDigest(pub String);

impl fmt::Display for InvalidDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid digest: {}", self.0)
    }
}

impl Digest {
    /// Parses a header value. `None` (no header) is invalid too.
    ///
    /// `shake_*` names are accepted by the syntax but have no fixed output
    /// length, so they are refused like any other invalid digest.
    pub fn parse(value: Option<&str>) -> Result<Digest, InvalidDigest> {
        let Some(value) = value else {
            return Err(InvalidDigest("None".into()));
        };
        let lower = value.to_lowercase();
        let err = || InvalidDigest(lower.clone());
        let (algo, hex) = lower.split_once(':').ok_or_else(err)?;
        if !ALGOS.contains(&algo) || algo.starts_with("shake_") {
            return Err(err());
        }
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(err());
        }
        Ok(Digest {
            algo: algo.to_string(),
            hex: hex.to_string(),
        })
    }

    pub fn sha256(hex: String) -> Digest {
        Digest {
            algo: "sha256".into(),
            hex,
        }
    }

    /// The blob path relative to the root: `.blobs/<algo>/<hex[:2]>/<hex>`.
    pub fn blob_rel_path(&self) -> String {
        let shard = self.hex.get(..2).unwrap_or(&self.hex);
        format!(".blobs/{}/{}/{}", self.algo, shard, self.hex)
    }

    /// Whether the server can verify uploads for this algorithm.
    pub fn is_verifiable(&self) -> bool {
        self.algo == "sha256"
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algo, self.hex)
    }
}

pub use crate::io::to_hex;

/// SHA-256 of a byte slice, as lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    to_hex(&sha2::Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_lowercases() {
        let d = Digest::parse(Some("SHA256:D929AB")).expect("test value");
        assert_eq!(d.algo, "sha256");
        assert_eq!(d.hex, "d929ab");
        assert_eq!(d.blob_rel_path(), ".blobs/sha256/d9/d929ab");
    }

    #[test]
    fn rejects_bad_values() {
        assert_eq!(Digest::parse(None).unwrap_err().to_string(), "invalid digest: None");
        assert_eq!(
            Digest::parse(Some("FOO")).unwrap_err().to_string(),
            "invalid digest: foo"
        );
        assert_eq!(Digest::parse(Some("")).unwrap_err().to_string(), "invalid digest: ");
        assert!(Digest::parse(Some("sha256:")).is_err());
        assert!(Digest::parse(Some("sha256:xyz")).is_err());
        assert!(Digest::parse(Some("sha256:ab/../cd")).is_err());
        assert!(Digest::parse(Some("crc32:abcd")).is_err());
        assert!(Digest::parse(Some("shake_128:abcd")).is_err());
        assert!(Digest::parse(Some("sha256:ab:cd")).is_err());
        assert!(Digest::parse(Some("md5:0123")).is_ok());
    }

    #[test]
    fn hashes() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
