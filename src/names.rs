//! Name rules shared by every layer: how URL names are lowercased, which
//! names and artifact paths can exist, and the tag and version aliases.

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

/// Characters escaped in a URL path this server writes (a `Location`, a
/// request to a mirror): controls, space, non-ASCII, those that would
/// change the URL's meaning, and `{}`, which no name may hold; `/` stays.
const URL_PATH_SET: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}');

pub fn encode_url_path(path: &str) -> String {
    utf8_percent_encode(path, URL_PATH_SET).to_string()
}

/// Lowercases a name the way Python's `str.lower()` does.
pub fn lower(name: &str) -> String {
    name.to_lowercase()
}

/// A branch, tag, job, format, product, variant, product branch or version
/// name: it must be non-empty, must not start with `.` and must not contain
/// `/`. Anything else does not exist (404).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= NAME_MAX && !name.starts_with('.') && !name.contains('/') && !name.contains('\0')
}

/// The longest file name the file systems in use take, in bytes: a longer
/// one cannot exist.
const NAME_MAX: usize = 255;

/// Whether `rel` below the folder `base` makes a path the kernel takes
/// (`PATH_MAX`, terminating NUL included): a longer one could only fail
/// half-way through creating its folders.
pub fn fits_below(base: &std::path::Path, rel: &str) -> bool {
    base.as_os_str().len() + 1 + rel.len() < libc::PATH_MAX as usize
}

/// A user name: the same rules as other names. This rejects `.`, `..` and
/// every other dot-name, so `/~../` can never reach the base repository.
pub fn is_valid_user(name: &str) -> bool {
    is_valid_name(name)
}

/// Checks an artifact path relative to its format directory. Returns false
/// for absolute paths, `.`/`..` components, NUL bytes, and the two reserved
/// names at the format root.
pub fn is_valid_artifact_path(path: &str) -> bool {
    if path.is_empty() || path.starts_with('/') || path.contains('\0') {
        return false;
    }
    if path == ".digests" || path == ".dirty" {
        return false;
    }
    !path.split('/').any(|c| c == "." || c == "..")
}

/// Checks the path of an upload: an artifact path ([`is_valid_artifact_path`])
/// that names a file that can be created. Refused besides: an empty last
/// component (a trailing `/`), a component too long for the file system,
/// and `.digests` or `.dirty` as the first component, which would turn the
/// format's index or dirty flag into a folder.
pub fn is_valid_upload_path(path: &str) -> bool {
    let first = path.split('/').next().unwrap_or_default();
    is_valid_artifact_path(path)
        && !path.ends_with('/')
        && first != ".digests"
        && first != ".dirty"
        && path.split('/').all(|c| c.len() <= NAME_MAX)
}

/// Whether a file name is one of the temporaries that older versions of
/// this server made next to a file they replaced (`.<name>.tmp-<16 hex>`):
/// never an artifact, so never served.
pub fn is_temporary_name(name: &str) -> bool {
    let Some((head, hex)) = name.rsplit_once(".tmp-") else {
        return false;
    };
    head.starts_with('.') && hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The deepest artifact path an upload may create, in components. Deeper
/// trees are refused up front: each level costs a folder, a lookup in
/// every later path walk, and a sync when uploads are durable.
pub const MAX_ARTIFACT_DEPTH: usize = 64;

/// How many components an artifact path has (empty ones included).
pub fn depth(path: &str) -> usize {
    path.split('/').count()
}

/// The tag and version aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alias {
    Latest,
    Stable,
    OldStable,
}

impl Alias {
    pub fn parse(name: &str) -> Option<Alias> {
        match name {
            "latest" => Some(Alias::Latest),
            "stable" => Some(Alias::Stable),
            "oldstable" => Some(Alias::OldStable),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_name("main"));
        assert!(is_valid_name("v1.0"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name(".x"));
        assert!(!is_valid_name(".."));
        assert!(!is_valid_name("a/b"));
        assert!(!is_valid_user(".."));
        assert!(!is_valid_user("."));
        assert!(is_valid_name(&"n".repeat(255)));
        assert!(!is_valid_name(&"n".repeat(256)));
        assert_eq!(lower("ÄbC"), "äbc");
    }

    #[test]
    fn paths_the_kernel_takes() {
        let base = std::path::Path::new("/srv/f");
        assert!(fits_below(base, &"n".repeat(4096 - 8)));
        assert!(!fits_below(base, &"n".repeat(4096 - 7)));
    }

    #[test]
    fn temporary_names() {
        assert!(is_temporary_name(".digests.tmp-0123456789abcdef"));
        assert!(is_temporary_name(".a.txt.tmp-0123456789abcdef"));
        assert!(!is_temporary_name("a.txt.tmp-0123456789abcdef"));
        assert!(!is_temporary_name(".a.tmp-0123"));
        assert!(!is_temporary_name(".a.tmp-0123456789abcdeg"));
    }

    #[test]
    fn upload_paths() {
        assert!(is_valid_upload_path("a.txt"));
        assert!(is_valid_upload_path("sub/.digests"));
        assert!(is_valid_upload_path(".hidden/x"));
        assert!(is_valid_upload_path("a//b"));
        assert!(is_valid_upload_path(&"n".repeat(255)));
        assert!(!is_valid_upload_path(&"n".repeat(256)));
        assert!(!is_valid_upload_path(&format!("dir/{}", "n".repeat(256))));
        assert!(!is_valid_upload_path(".digests/x"));
        assert!(!is_valid_upload_path(".dirty/x/y"));
        assert!(!is_valid_upload_path("dir/"));
        assert!(!is_valid_upload_path(".digests"));
        assert!(!is_valid_upload_path("../x"));
    }

    #[test]
    fn artifact_paths() {
        assert!(is_valid_artifact_path("a.txt"));
        assert!(is_valid_artifact_path("dir/File.txt"));
        assert!(is_valid_artifact_path("sub/.digests"));
        assert!(is_valid_artifact_path(".hidden"));
        assert!(is_valid_artifact_path("a//b"));
        assert!(!is_valid_artifact_path(".digests"));
        assert!(!is_valid_artifact_path(".dirty"));
        assert!(!is_valid_artifact_path("/etc/passwd"));
        assert!(!is_valid_artifact_path("../x"));
        assert!(!is_valid_artifact_path("a/./b"));
        assert!(!is_valid_artifact_path("a/.."));
        assert!(!is_valid_artifact_path(""));
    }
}
