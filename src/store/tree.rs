//! Read-side queries over the tree: listings, flags, timestamps.

use std::path::Path;

use serde_json::{Map, Value};

use super::repo::{JobRef, Repo};
use super::{meta, StoreResult};
use crate::io::{self, EntryKind};

/// The visible sub-directories of `dir`, sorted by name: entries starting
/// with `.` and non-directories (following symlinks) are skipped. A missing
/// directory lists as empty.
pub async fn list_dirs(dir: &Path) -> StoreResult<Vec<String>> {
    let mut out = Vec::new();
    for e in io::read_dir_sorted_opt(dir)? {
        let Some(name) = e.name.to_str() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let is_dir = match e.kind {
            Some(EntryKind::Dir) => true,
            Some(EntryKind::File) | Some(EntryKind::Other) => false,
            Some(EntryKind::Symlink) | None => io::is_dir(&dir.join(name)).await,
        };
        if is_dir {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

/// A tag's flags and texts, as the branch view shows them.
#[derive(Debug, Clone)]
pub struct TagInfo {
    pub name: String,
    pub timestamp: Option<f64>,
    pub released: bool,
    pub locked: bool,
    pub stable: bool,
    pub publish_status: Option<String>,
    pub description: Option<String>,
}

/// A tag's flags and texts. One listing of the tag folder says which
/// dotfiles exist; only the stamp is looked up and only the texts that
/// exist are read.
pub async fn tag_info(repo: &Repo, branch: &str, tag: &str) -> TagInfo {
    let dir = repo.tag_dir(branch, tag);
    let names: Vec<std::ffi::OsString> = io::read_dir_sorted_opt(&dir)
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.name)
        .filter(|n| n.as_encoded_bytes().first() == Some(&b'.'))
        .collect();
    let has = |n: &str| names.iter().any(|x| x == n);
    let text = async |n: &str| {
        if has(n) {
            meta::read_stripped(&dir.join(n)).await
        } else {
            None
        }
    };
    TagInfo {
        name: tag.to_string(),
        timestamp: if has(".stamp") {
            meta::mtime(&dir.join(".stamp")).await
        } else {
            None
        },
        released: has(".released"),
        locked: has(".locked"),
        stable: has(".stable"),
        publish_status: text(".publish-status").await,
        description: text(".description").await,
    }
}

/// The branch's `.cleanup_policy` with `max_daily_tags` and
/// `max_released_tags` defaulting to 0.
pub async fn cleanup_policy(repo: &Repo, branch: &str) -> Map<String, Value> {
    let mut policy = meta::read_object(&repo.branch_dir(branch).join(".cleanup_policy")).await;
    for key in ["max_daily_tags", "max_released_tags"] {
        if !policy.contains_key(key) {
            policy.insert(key.to_string(), Value::from(0));
        }
    }
    policy
}

/// Counts shown in the branches listing.
#[derive(Debug, Clone, Default)]
pub struct BranchCounts {
    pub daily: u64,
    pub released: u64,
    pub locked: u64,
    pub stable: u64,
}

/// A job's stored metadata followed by the dynamic keys `locked`, `name`
/// and `released` (a dynamic key replaces a stored one in place).
pub async fn job_summary(job: &JobRef) -> Map<String, Value> {
    let dir = job.dir();
    let mut m = meta::read_object(&dir.join(".metadata")).await;
    m.insert("locked".into(), Value::Bool(meta::flag(&dir.join(".locked")).await));
    m.insert("name".into(), Value::String(job.job.clone()));
    m.insert("released".into(), Value::Bool(meta::flag(&dir.join(".released")).await));
    m
}

/// Whether a job is locked.
pub async fn job_lock_flag(job: &JobRef) -> bool {
    meta::flag(&job.dir().join(".locked")).await
}
