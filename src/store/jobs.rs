//! Job metadata, the internal flag, locking and the job digest
//! (docs/spec/http-api.md §7.6, docs/spec/layout.md §5.3).

use std::rc::Rc;

use serde_json::{Map, Value};

use super::digest::sha256_hex;
use super::repo::JobRef;
use super::{meta, products, pyjson, tree, Store, StoreError, StoreResult};
use crate::io;

/// The metadata coercion of the original: `str(value or "").lower()`, where
/// an empty result deletes the key.
pub fn coerce(v: &Value) -> String {
    if !pyjson::py_truthy(v) {
        return String::new();
    }
    pyjson::py_str(v).to_lowercase()
}

impl Store {
    /// Creates the branch, tag and job folders with their `.stamp` files.
    pub async fn ensure_job(&self, job: &JobRef) -> StoreResult<()> {
        io::mkdir_all(&job.dir()).await?;
        for stamp in [job.tag_dir().join(".stamp"), job.dir().join(".stamp")] {
            io::create_if_missing(&stamp).await?;
        }
        self.tag_cache.forget(&job.tag_dir());
        Ok(())
    }

    /// PATCH of a job: merges `updates` into `.metadata` (creating the job if
    /// needed) and rebuilds the job's product links.
    pub async fn patch_metadata(self: &Rc<Self>, job: &JobRef, updates: &Map<String, Value>) -> StoreResult<()> {
        let _job = self.job_mutex.lock(job.dir()).await;
        if tree::job_lock_flag(job).await {
            return Err(StoreError::Refused("Job is locked".into()));
        }
        self.ensure_job(job).await?;
        self.apply_metadata(job, updates).await
    }

    /// Rewrites `.metadata` (sorted) with the updates applied, then moves
    /// the job's product links: removes the old ones and links the job into
    /// the products view when it has all four product keys. The file comes
    /// first, so a write that fails (a full disk) changes nothing.
    async fn apply_metadata(&self, job: &JobRef, updates: &Map<String, Value>) -> StoreResult<()> {
        let dir = job.dir();
        let _products = self.products_mutex.lock(job.repo.products_dir()).await;
        let mut metadata = meta::read_object(&dir.join(".metadata")).await;
        for (k, v) in updates {
            let s = coerce(v);
            if s.is_empty() {
                metadata.remove(k);
            } else {
                metadata.insert(k.clone(), Value::String(s));
            }
        }
        let bytes = pyjson::dumps_sorted_map(&metadata).into_bytes();
        io::write_file_atomic(&dir.join(".metadata"), bytes, self.cfg.fsync).await?;
        products::remove_product_links(job).await?;
        products::create_product_links(job, &metadata).await
    }

    /// PUT of a job: the internal flag, then locking.
    pub async fn put_job(self: &Rc<Self>, job: &JobRef, internal: Option<bool>, lock: bool) -> StoreResult<()> {
        let _job = self.job_mutex.lock(job.dir()).await;
        let dir = job.dir();
        if let Some(internal) = internal {
            if tree::job_lock_flag(job).await {
                return Err(StoreError::Refused("Job is locked".into()));
            }
            if !io::is_dir(&dir).await {
                return Err(StoreError::NotFound);
            }
            meta::set_flag(&dir.join(".internal"), internal).await?;
        }
        if lock {
            self.lock_job(job).await?;
        }
        Ok(())
    }

    async fn lock_job(self: &Rc<Self>, job: &JobRef) -> StoreResult<()> {
        let dir = job.dir();
        if !io::is_dir(&dir).await {
            return Err(StoreError::NotFound);
        }
        if tree::job_lock_flag(job).await {
            // Also drops a stale "unlocked" cache entry.
            self.job_states.end_lock(&dir);
            return Ok(());
        }
        // From here uploads into the job are refused; those already past
        // their check finish first, so every format they touch is seen.
        self.job_states.begin_lock(&dir);
        tracing::debug!("locking {}: waiting for uploads still linking", dir.display());
        self.job_states.linking_drained(&dir).await;
        let res = self.lock_marked_job(job).await;
        self.job_states.end_lock(&dir);
        res
    }

    async fn lock_marked_job(self: &Rc<Self>, job: &JobRef) -> StoreResult<()> {
        let dir = job.dir();
        let formats = tree::list_dirs(&dir).await?;
        // Hold every format still while checking and locking (internal
        // formats still take uploads).
        let mut _formats = Vec::with_capacity(formats.len());
        for f in &formats {
            _formats.push(self.format_mutex.lock(dir.join(f)).await);
        }
        for f in &formats {
            if meta::flag(&dir.join(f).join(".dirty")).await {
                return Err(StoreError::Refused("Job has dirty formats".into()));
            }
        }
        // The job digest hashes the `.digests` files themselves.
        for f in &formats {
            self.flush_format_locked(&dir.join(f)).await?;
        }
        self.apply_metadata(job, &Map::new()).await?;
        let digest = self.job_digest(job, &formats).await?;
        io::write_file_atomic(&dir.join(".digest"), digest.into_bytes(), self.cfg.fsync).await?;
        meta::set_flag(&dir.join(".locked"), true).await?;
        Ok(())
    }

    /// The job digest of docs/spec/layout.md §5.3.
    pub async fn job_digest(&self, job: &JobRef, formats: &[String]) -> StoreResult<String> {
        let dir = job.dir();
        let mut map = Map::new();
        for f in formats {
            if self.cfg.is_internal_format(f) {
                continue;
            }
            let value = if f == "container" {
                self.image_manifest(&dir.join(f)).ok_or(StoreError::NotFound)?.1
            } else {
                // A format without `.digests` makes locking fail, as in 0.44.
                let bytes = io::read_file(&dir.join(f).join(".digests")).await?;
                format!("sha256:{}", sha256_hex(&bytes))
            };
            map.insert(f.clone(), Value::String(value));
        }
        let metadata = io::read_file(&dir.join(".metadata")).await?;
        map.insert(
            ".metadata".into(),
            Value::String(format!("sha256:{}", sha256_hex(&metadata))),
        );
        Ok(sha256_hex(pyjson::dumps_sorted_map(&map).as_bytes()))
    }

    /// POST of a job: unlock.
    pub async fn unlock_job(&self, job: &JobRef) -> StoreResult<()> {
        let _job = self.job_mutex.lock(job.dir()).await;
        let dir = job.dir();
        if !io::is_dir(&dir).await {
            return Err(StoreError::NotFound);
        }
        meta::set_flag(&dir.join(".locked"), false).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::coerce;
    use serde_json::json;

    #[test]
    fn coercion_follows_python() {
        assert_eq!(coerce(&json!("FooBar")), "foobar");
        assert_eq!(coerce(&json!(true)), "true");
        assert_eq!(coerce(&json!(5)), "5");
        assert_eq!(coerce(&json!(1.5)), "1.5");
        assert_eq!(coerce(&json!([1, "A"])), "[1, 'a']");
        assert_eq!(coerce(&json!({"K": "V"})), "{'k': 'v'}");
        for falsy in [
            json!(null),
            json!(false),
            json!(0),
            json!(0.0),
            json!(""),
            json!([]),
            json!({}),
        ] {
            assert_eq!(coerce(&falsy), "", "{falsy}");
        }
    }
}
