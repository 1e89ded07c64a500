//! The small settings clients change with a POST: a tag's flags and
//! description (docs/spec/http-api.md §7.5) and a branch's cleanup policy
//! (§7.4); and those the publish task keeps: the publish status and the
//! `.released` flags of a tag and its jobs (docs/spec/publish.md §1).

use std::path::Path;

use serde_json::{Map, Value};

use super::repo::Repo;
use super::{meta, pyjson, tree, Store, StoreError, StoreResult};
use crate::io;

/// What a tag POST changes; `None` leaves a setting as it is. An empty
/// description removes it.
#[derive(Debug, Default, Clone)]
pub struct TagUpdate {
    pub locked: Option<bool>,
    pub stable: Option<bool>,
    pub description: Option<String>,
}

/// What a branch POST changes; `None` keeps the stored limit.
#[derive(Debug, Default, Clone, Copy)]
pub struct PolicyUpdate {
    pub max_daily_tags: Option<u64>,
    pub max_released_tags: Option<u64>,
}

impl Store {
    /// Applies a tag POST, under the tag's mutex, which a delete holds from
    /// its check of `.locked` to its end: a tag locked here is never
    /// deleted by a delete that started before.
    pub async fn update_tag(&self, repo: &Repo, branch: &str, tag: &str, u: TagUpdate) -> StoreResult<()> {
        let dir = repo.tag_dir(branch, tag);
        let _tag = self.tag_mutex.lock(dir.clone()).await;
        let _forget = self.tag_cache.changing(&dir);
        // A delete that held the mutex may have removed the tag.
        if !io::is_dir(&dir).await {
            return Err(StoreError::NotFound);
        }
        // The description first: it is the write that needs space, so a
        // full disk refuses the request before any flag changes.
        if let Some(d) = u.description {
            let path = dir.join(".description");
            if d.is_empty() {
                io::unlink_opt(&path).await?;
            } else {
                io::write_file_atomic(&path, format!("{d}\n").into_bytes(), self.cfg.fsync).await?;
            }
        }
        if let Some(l) = u.locked {
            meta::set_flag(&dir.join(".locked"), l).await?;
        }
        if let Some(s) = u.stable {
            meta::set_flag(&dir.join(".stable"), s).await?;
        }
        Ok(())
    }

    /// Writes a branch's `.cleanup_policy`: the given limits, the stored
    /// ones for the others (0, unlimited, when there are none).
    pub async fn set_cleanup_policy(&self, repo: &Repo, branch: &str, u: PolicyUpdate) -> StoreResult<()> {
        let current = tree::cleanup_policy(repo, branch).await;
        let stored = |key: &str| current.get(key).and_then(Value::as_u64).unwrap_or(0);
        let mut out = Map::new();
        out.insert(
            "max_daily_tags".into(),
            u.max_daily_tags.unwrap_or_else(|| stored("max_daily_tags")).into(),
        );
        out.insert(
            "max_released_tags".into(),
            u.max_released_tags
                .unwrap_or_else(|| stored("max_released_tags"))
                .into(),
        );
        let bytes = pyjson::dumps(&Value::Object(out)).into_bytes();
        io::write_file_atomic(&repo.branch_dir(branch).join(".cleanup_policy"), bytes, self.cfg.fsync).await?;
        Ok(())
    }

    /// Writes a tag's `.publish-status` (`None` removes it).
    pub async fn set_publish_status(&self, tag_dir: &Path, status: Option<&str>) -> StoreResult<()> {
        let _forget = self.tag_cache.changing(tag_dir);
        let path = tag_dir.join(".publish-status");
        match status {
            Some(s) => io::write_file_atomic(&path, format!("{s}\n").into_bytes(), self.cfg.fsync).await?,
            None => drop(io::unlink_opt(&path).await?),
        }
        Ok(())
    }

    /// Sets or clears a tag's `.released`, under the tag's mutex (a delete
    /// checks the flag under it).
    pub async fn set_tag_released(&self, tag_dir: &Path, on: bool) -> StoreResult<()> {
        let _tag = self.tag_mutex.lock(tag_dir.to_path_buf()).await;
        let _forget = self.tag_cache.changing(tag_dir);
        if !io::is_dir(tag_dir).await {
            return Err(StoreError::NotFound);
        }
        Ok(meta::set_flag(&tag_dir.join(".released"), on).await?)
    }

    /// Sets or clears a job's `.released` (only publishing does).
    pub async fn set_job_released(&self, job_dir: &Path, on: bool) -> StoreResult<()> {
        let _job = self.job_mutex.lock(job_dir.to_path_buf()).await;
        if !io::is_dir(job_dir).await {
            return Err(StoreError::NotFound);
        }
        Ok(meta::set_flag(&job_dir.join(".released"), on).await?)
    }
}
