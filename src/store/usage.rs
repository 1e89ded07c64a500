//! Per-user disk usage and the quota check (docs/spec/cleanup.md §4.1).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

use super::Store;
use crate::io;

/// Entries stat'ed concurrently while a user's tree is measured.
const STAT_BATCH: usize = 32;

impl Store {
    /// A user's disk usage as last accounted (`.disk_usage`).
    pub async fn disk_usage(&self, user: &str) -> u64 {
        self.usage.get(user).await
    }

    /// Measures a user repository again and saves the figure (the quota
    /// refresh), under the user's usage mutex: no upload or delete changes
    /// the figure while the tree is walked.
    pub async fn recount_usage(&self, user: &str) -> std::io::Result<()> {
        let _usage = self.usage_mutex.lock(user.to_string()).await;
        let total = usage_of(self.root.join("users").join(user)).await;
        self.usage.set(user, total);
        self.usage.save(user).await
    }
}

pub struct Usage {
    root: PathBuf,
    quota: u64,
    cached: RefCell<HashMap<String, u64>>,
}

impl Usage {
    pub fn new(root: PathBuf, quota: u64) -> Usage {
        Usage {
            root,
            quota,
            cached: RefCell::new(HashMap::new()),
        }
    }

    fn file(&self, user: &str) -> PathBuf {
        self.root.join("users").join(user).join(".disk_usage")
    }

    /// The current usage, loaded from `.disk_usage` the first time.
    pub async fn get(&self, user: &str) -> u64 {
        if let Some(v) = self.cached.borrow().get(user) {
            return *v;
        }
        let v = match io::read_file_opt(&self.file(user)).await {
            Ok(Some(b)) => String::from_utf8_lossy(&b).trim().parse::<u64>().unwrap_or(0),
            _ => 0,
        };
        // Another request may have loaded it meanwhile; keep theirs.
        *self.cached.borrow_mut().entry(user.to_string()).or_insert(v)
    }

    /// Accounts a file of `new` bytes replacing one of `old` bytes (0 for a
    /// new file) if the quota allows it; otherwise changes nothing and
    /// returns the refusal, which quotes the usage without the old file.
    pub async fn try_replace(&self, user: &str, old: u64, new: u64) -> Result<(), String> {
        let used = self.get(user).await.saturating_sub(old);
        if used.saturating_add(new) > self.quota {
            return Err(format!(
                "User {user} quota exceeded ({}/{}). Please make some ménage.",
                human(used),
                human(self.quota)
            ));
        }
        self.set(user, used + new);
        Ok(())
    }

    /// The same without the quota check, to undo an accepted replacement.
    pub async fn replace(&self, user: &str, old: u64, new: u64) {
        let used = self.get(user).await.saturating_sub(old);
        self.set(user, used.saturating_add(new));
    }

    /// Accounts a file of `size` bytes removed.
    pub async fn sub(&self, user: &str, size: u64) {
        self.replace(user, size, 0).await;
    }

    /// Replaces the usage (quota refresh).
    pub fn set(&self, user: &str, value: u64) {
        self.cached.borrow_mut().insert(user.to_string(), value);
    }

    /// Writes the cached usage to `.disk_usage`.
    pub async fn save(&self, user: &str) -> std::io::Result<()> {
        let v = self.get(user).await;
        let dir = self.root.join("users").join(user);
        if !io::is_dir(&dir).await {
            return Ok(());
        }
        io::write_file_atomic(&self.file(user), v.to_string().into_bytes(), false).await
    }
}

/// Bytes of every non-directory entry below `dir`: the size of a symlink's
/// target, zero for a dangling link or a link to a directory. Directory
/// symlinks are not followed. Never fails on a single entry.
async fn usage_of(dir: PathBuf) -> u64 {
    let mut total = 0;
    let mut dirs = vec![dir];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = io::read_dir_sorted(&d) else { continue };
        let mut others = Vec::new();
        for e in entries {
            let p = d.join(&e.name);
            if e.kind == Some(io::EntryKind::Dir) {
                dirs.push(p);
            } else {
                others.push((p, e.kind));
            }
        }
        for chunk in others.chunks(STAT_BATCH) {
            let sizes = futures_util::future::join_all(chunk.iter().map(|(p, kind)| async move {
                if kind.is_none() {
                    // The file system did not say: look before following anything.
                    match io::lstat(p).await {
                        Ok(st) if st.is_dir() => return (0, Some(p.clone())),
                        Err(_) => return (0, None),
                        _ => {}
                    }
                }
                match io::stat(p).await {
                    Ok(st) if st.is_file() => (st.size, None),
                    _ => (0, None),
                }
            }))
            .await;
            for (size, subdir) in sizes {
                total += size;
                dirs.extend(subdir);
            }
        }
    }
    total
}

/// Decimal human-readable size, as the original prints it.
pub fn human(v: u64) -> String {
    if v == 0 {
        return "0".into();
    }
    let mut f = v as f64;
    let mut unit = "";
    for u in ["K", "M", "G", "T"] {
        if f >= 1000.0 {
            f /= 1000.0;
            unit = u;
        } else {
            break;
        }
    }
    if f < 100.0 {
        format!("{f:.1}{unit}")
    } else {
        format!("{f:.0}{unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0");
        assert_eq!(human(14), "14.0");
        assert_eq!(human(20), "20.0");
        assert_eq!(human(10737418240), "10.7G");
        assert_eq!(human(123456), "123K");
        assert_eq!(human(999), "999");
        assert_eq!(human(1000), "1.0K");
    }
}
