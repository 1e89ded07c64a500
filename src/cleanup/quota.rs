//! Full run, step 2: recompute every user's disk usage (cleanup.md §4).

use std::path::PathBuf;
use std::rc::Rc;

use crate::io;
use crate::store::{tree, Store, StoreResult};

/// Entries stat'ed concurrently.
const STAT_BATCH: usize = 32;

pub async fn refresh(store: &Rc<Store>) -> StoreResult<()> {
    tracing::debug!("Refreshing all users quotas");
    let users_dir = store.root.join("users");
    for user in tree::list_dirs(&users_dir).await? {
        let _usage = store.usage_locks.lock(user.clone()).await;
        let total = usage_of(users_dir.join(&user)).await;
        store.usage.set(&user, total);
        if let Err(e) = store.usage.save(&user).await {
            tracing::error!("cannot write the disk usage of {user}: {e}");
        }
    }
    Ok(())
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
