//! Full run, step 1: branch retention policies (docs/spec/cleanup.md §3).
//!
//! As in 0.44, only branches of the base repository are cleaned; the
//! policies of user branches are stored and shown but not applied.

use std::rc::Rc;

use serde_json::Value;

use crate::publish::{Publisher, TagRef};
use crate::store::repo::Repo;
use crate::store::{meta, tree, Store, StoreResult};

/// A policy limit: a positive integer, `true` counting as 1 (as in Python,
/// where a bool is an int); anything else means unlimited.
fn limit(v: Option<&Value>) -> usize {
    match v {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0) as usize,
        Some(Value::Bool(true)) => 1,
        _ => 0,
    }
}

/// Deletes the tags beyond each branch's limits; returns how many.
/// A failure on one tag is logged and the run goes on with the others.
pub async fn apply(store: &Rc<Store>, publisher: &Publisher) -> StoreResult<u64> {
    let repo = store.repo(None);
    let mut deleted = 0;
    for branch in tree::list_dirs(&repo.branches_dir()).await? {
        // One branch's failure does not spare the others.
        match apply_branch(store, publisher, &repo, &branch).await {
            Ok(n) => deleted += n,
            Err(e) => tracing::error!("cleanup of branch {branch} failed: {e}"),
        }
    }
    tracing::info!("Deleted {deleted} tags");
    Ok(deleted)
}

async fn apply_branch(store: &Rc<Store>, publisher: &Publisher, repo: &Repo, branch: &str) -> StoreResult<u64> {
    let bdir = repo.branch_dir(branch);
    let mut daily = Vec::new();
    let mut released = Vec::new();
    for tag in tree::list_dirs(&bdir).await? {
        let dir = bdir.join(&tag);
        // Locked tags are neither counted nor deleted.
        if meta::flag(&dir.join(".locked")).await {
            continue;
        }
        let stamp = meta::mtime(&dir.join(".stamp")).await.unwrap_or(0.0);
        if meta::flag(&dir.join(".released")).await {
            released.push((tag, stamp));
        } else {
            daily.push((tag, stamp));
        }
    }
    // Newest first; stable, so equal times keep name order.
    let newest_first =
        |a: &(String, f64), b: &(String, f64)| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal);
    daily.sort_by(newest_first);
    released.sort_by(newest_first);
    let policy = tree::cleanup_policy(repo, branch).await;
    let mut deleted = 0;
    let max_daily = limit(policy.get("max_daily_tags"));
    if max_daily > 0 {
        for (tag, _) in daily.iter().skip(max_daily) {
            tracing::info!("Deleting daily tag {branch}/{tag} ...");
            deleted += delete(store, repo, branch, tag, false).await;
        }
    }
    let max_released = limit(policy.get("max_released_tags"));
    if max_released > 0 {
        for (tag, _) in released.iter().skip(max_released) {
            if !publisher.is_configured() {
                tracing::warn!(
                    "Deleting released tag {branch}/{tag} ... (publishing not configured: not unpublishing)"
                );
                deleted += delete(store, repo, branch, tag, true).await;
                continue;
            }
            tracing::info!("Deleting released tag {branch}/{tag} ...");
            // From the mirrors first: deleting here first would leave their
            // copies behind with nothing pointing at them.
            let t = TagRef {
                repo: repo.clone(),
                branch: branch.to_string(),
                tag: tag.clone(),
            };
            match publisher.unpublish_now(&t).await {
                // Unpublished: the tag is no longer released.
                Ok(()) => deleted += delete(store, repo, branch, tag, false).await,
                Err(e) => tracing::error!("Not deleting released tag {branch}/{tag}: unpublishing failed: {e}"),
            }
        }
    }
    Ok(deleted)
}

async fn delete(store: &Rc<Store>, repo: &Repo, branch: &str, tag: &str, released: bool) -> u64 {
    // Counted a while ago: a tag locked (or released) since is kept.
    match store.delete_tag_if_still(repo, branch, tag, released).await {
        Ok(true) => 1,
        Ok(false) => {
            tracing::info!("Not deleting tag {branch}/{tag}: its flags changed");
            0
        }
        Err(e) => {
            tracing::error!("cannot delete tag {branch}/{tag}: {e}");
            0
        }
    }
}
