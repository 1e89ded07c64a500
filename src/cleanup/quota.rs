//! Full run, step 2: recompute every user's disk usage (docs/spec/cleanup.md §4).

use std::rc::Rc;

use crate::store::{tree, Store, StoreResult};

pub async fn refresh(store: &Rc<Store>) -> StoreResult<()> {
    tracing::debug!("Refreshing all users quotas");
    for user in tree::list_dirs(&store.root.join("users")).await? {
        if let Err(e) = store.recount_usage(&user).await {
            tracing::error!("cannot write the disk usage of {user}: {e}");
        }
    }
    Ok(())
}
