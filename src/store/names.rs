//! Names taken from URLs: lowercasing, reserved names, artifact paths.

/// Lowercases a name the way Python's `str.lower()` does.
pub fn lower(name: &str) -> String {
    name.to_lowercase()
}

/// A branch, tag, job, format, product, variant, product branch or version
/// name: it must be non-empty, must not start with `.` and must not contain
/// `/`. Anything else does not exist (404).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains('/') && !name.contains('\0')
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
        assert_eq!(lower("ÄbC"), "äbc");
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
