//! Image manifests as the registry stores them (docs/spec/http-api.md §9.3):
//! which ones are accepted, the blobs they name, and the bytes kept.

use serde_json::{Map, Value};

use super::digest::Digest;
use super::pyjson;

/// The single-image manifest types a push may store. Manifest lists and
/// OCI indexes are not among them.
pub const MEDIA_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Why a manifest is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestError {
    /// Not a JSON object, or a descriptor without a usable digest.
    Invalid(String),
    /// A `mediaType` this registry does not store.
    Unsupported(String),
}

/// A manifest received by a push, checked: its media type and the blobs
/// its config and layers name, in order.
#[derive(Debug, Clone)]
pub struct Manifest {
    doc: Map<String, Value>,
    pub blobs: Vec<Digest>,
}

impl Manifest {
    /// Parses a pushed manifest.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let doc = match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(ManifestError::Invalid("the manifest is not a JSON object".into())),
            Err(e) => return Err(ManifestError::Invalid(format!("the manifest is not JSON: {e}"))),
        };
        match doc.get("mediaType").and_then(Value::as_str) {
            Some(t) if MEDIA_TYPES.contains(&t) => {}
            Some(t) => {
                return Err(ManifestError::Unsupported(format!(
                    "manifests of type {t} are not supported (only single-image OCI and Docker v2 schema 2 manifests)"
                )))
            }
            None => {
                return Err(ManifestError::Unsupported(
                    "the manifest has no mediaType (only single-image OCI and Docker v2 schema 2 manifests)".into(),
                ))
            }
        }
        let mut blobs = Vec::new();
        for d in descriptors(&doc) {
            let digest = d
                .get("digest")
                .and_then(Value::as_str)
                .and_then(|s| Digest::parse(Some(s)).ok())
                .ok_or_else(|| ManifestError::Invalid("a descriptor has no valid digest".into()))?;
            blobs.push(digest);
        }
        if doc.get("config").is_none() {
            return Err(ManifestError::Invalid("the manifest has no config".into()));
        }
        Ok(Manifest { doc, blobs })
    }

    /// The bytes stored: the manifest with each descriptor's `size` set to
    /// its blob's size (`sizes`, in the order of [`Manifest::blobs`]; the
    /// key keeps its place, or is added at the end), as Python's
    /// `json.dumps` writes it. Its SHA-256 is the manifest's digest.
    pub fn stored_bytes(&self, sizes: &[u64]) -> Vec<u8> {
        let mut doc = self.doc.clone();
        let mut sizes = sizes.iter();
        if let Some(Value::Object(c)) = doc.get_mut("config") {
            if let Some(s) = sizes.next() {
                c.insert("size".into(), (*s).into());
            }
        }
        if let Some(Value::Array(layers)) = doc.get_mut("layers") {
            for l in layers.iter_mut() {
                if let (Value::Object(l), Some(s)) = (l, sizes.next()) {
                    l.insert("size".into(), (*s).into());
                }
            }
        }
        pyjson::dumps(&Value::Object(doc)).into_bytes()
    }
}

/// The config descriptor, then every layer descriptor.
fn descriptors(doc: &Map<String, Value>) -> Vec<&Map<String, Value>> {
    let mut out = Vec::new();
    if let Some(Value::Object(c)) = doc.get("config") {
        out.push(c);
    }
    if let Some(Value::Array(layers)) = doc.get("layers") {
        out.extend(layers.iter().filter_map(Value::as_object));
    }
    out
}

/// The `mediaType` of a stored manifest, if it has one.
pub fn media_type(bytes: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    v.get("mediaType")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const HEX_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn manifest(media: &str) -> String {
        format!(
            r#"{{"schemaVersion": 2, "mediaType": "{media}",
                "config": {{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:{HEX_A}", "size": 7}},
                "layers": [{{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:{HEX_B}"}}],
                "annotations": {{"é": "ü"}}}}"#
        )
    }

    #[test]
    fn accepted_manifests_list_their_blobs_and_get_true_sizes() {
        let m = Manifest::parse(manifest(MEDIA_TYPES[0]).as_bytes()).expect("valid");
        assert_eq!(
            m.blobs.iter().map(|d| d.hex.as_str()).collect::<Vec<_>>(),
            [HEX_A, HEX_B]
        );
        let bytes = String::from_utf8(m.stored_bytes(&[100, 200])).expect("UTF-8");
        // Python's separators and escapes; the size keeps its place, or comes last.
        assert!(bytes.starts_with(r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:aaaa"#));
        assert!(bytes.contains(&format!(r#""digest": "sha256:{HEX_A}", "size": 100}}"#)));
        assert!(bytes.contains(&format!(r#""digest": "sha256:{HEX_B}", "size": 200}}]"#)));
        assert!(bytes.ends_with(r#""annotations": {"\u00e9": "\u00fc"}}"#));
        assert!(Manifest::parse(manifest(MEDIA_TYPES[1]).as_bytes()).is_ok());
    }

    #[test]
    fn refused_manifests_say_why() {
        let index = manifest("application/vnd.oci.image.index.v1+json");
        assert!(matches!(
            Manifest::parse(index.as_bytes()),
            Err(ManifestError::Unsupported(_))
        ));
        assert!(matches!(Manifest::parse(b"[1, 2]"), Err(ManifestError::Invalid(_))));
        assert!(matches!(Manifest::parse(b"{"), Err(ManifestError::Invalid(_))));
        let no_type =
            manifest(MEDIA_TYPES[0]).replace(r#""mediaType": "application/vnd.oci.image.manifest.v1+json","#, "");
        assert!(matches!(
            Manifest::parse(no_type.as_bytes()),
            Err(ManifestError::Unsupported(_))
        ));
        let bad_digest = manifest(MEDIA_TYPES[0]).replace(&format!("sha256:{HEX_B}"), "sha256:xyz");
        assert!(matches!(
            Manifest::parse(bad_digest.as_bytes()),
            Err(ManifestError::Invalid(_))
        ));
        assert_eq!(
            media_type(manifest(MEDIA_TYPES[1]).as_bytes()).as_deref(),
            Some(MEDIA_TYPES[1])
        );
    }
}
