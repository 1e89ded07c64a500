//! What a publish run does (docs/spec/publish.md §1.3–1.4), mirror by
//! mirror.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use hyper::{Method, StatusCode};
use serde_json::Value;

use super::client::{Failure, Payload, Target};
use super::{Publisher, TagRef};
use crate::io;
use crate::names::encode_url_path as encode;
use crate::store::repo::JobRef;
use crate::store::{meta, tree};

/// How often a mirror is tried when it fails in a way that may pass.
#[derive(Debug, Clone, Copy)]
pub enum Retries {
    /// A background run: `DLREPO_PUBLISH_RETRIES` more times (default 5),
    /// 1 s, 2 s, 4 s… apart (at most a minute).
    Background,
    /// Inline in a cleanup run, which waits for it: at most two more.
    Inline,
}

impl Retries {
    fn delays(self, configured: u32) -> Vec<u64> {
        let n = match self {
            Retries::Background => configured,
            Retries::Inline => configured.min(2),
        };
        (0..n).map(|i| (1u64 << i.min(6)).min(60)).collect()
    }
}

/// A mirror for this run: its client, with the credentials read now.
async fn open(p: &Publisher, url: &str) -> Result<Target, Failure> {
    let auth = p
        .auth_file()
        .ok_or_else(|| Failure::fatal("DLREPO_PUBLISH_AUTH is undefined"))?;
    let bytes = io::read_file(auth)
        .await
        .map_err(|e| Failure::fatal(format!("DLREPO_PUBLISH_AUTH: {}: {e}", auth.display())))?;
    let text = String::from_utf8_lossy(&bytes);
    let (login, password) = text.trim().split_once(':').ok_or_else(|| {
        Failure::fatal(format!(
            "DLREPO_PUBLISH_AUTH: {} holds no LOGIN:PASSWORD",
            auth.display()
        ))
    })?;
    Target::new(url, login, password, &p.user_agent, p.timeout())
}

/// Runs `DLREPO_PUBLISH_FILTER_CMD <url>` in the tag folder: whether to
/// publish to this mirror.
async fn accepts(p: &Publisher, tag: &TagRef, url: &str) -> Result<bool, Failure> {
    let Some(cmd) = &p.cfg.publish_filter_cmd else {
        return Ok(true);
    };
    match tokio::process::Command::new(cmd)
        .arg(url)
        .current_dir(tag.dir())
        .status()
        .await
    {
        Ok(st) => Ok(st.success()),
        Err(e) => Err(Failure::fatal(format!("DLREPO_PUBLISH_FILTER_CMD {cmd}: {e}"))),
    }
}

/// Runs `step` for a mirror, again after a pause while it fails in a way
/// that may pass (down, 5xx, a timeout), saying so in the tag's status.
async fn with_retries<T>(
    p: &Publisher,
    tag: &TagRef,
    url: &str,
    retries: Retries,
    step: impl AsyncFn() -> Result<T, Failure>,
) -> Result<T, Failure> {
    let delays = retries.delays(p.cfg.publish_retries);
    let mut delays = delays.iter();
    loop {
        match step().await {
            Ok(v) => return Ok(v),
            Err(e) if e.transient => {
                let Some(d) = delays.next() else { return Err(e) };
                tracing::warn!(
                    "publishing {} to {url}: {}; trying again in {d} s",
                    tag.url(),
                    e.message
                );
                p.status(tag, &format!("retrying {url} in {d} s: {}", e.message)).await;
                tokio::time::sleep(Duration::from_secs(*d)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The jobs of a tag, in name order.
async fn jobs_of(tag: &TagRef) -> Vec<JobRef> {
    tree::list_dirs(&tag.dir())
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|job| JobRef {
            repo: tag.repo.clone(),
            branch: tag.branch.clone(),
            tag: tag.tag.clone(),
            job,
        })
        .collect()
}

/// Publishes a tag to every mirror; the outcome is in its status.
pub async fn publish(p: &Rc<Publisher>, tag: &TagRef) {
    tracing::info!("publishing tag {}/{}", tag.branch, tag.tag);
    p.status(tag, "in progress").await;
    let mut published_jobs: Vec<Value> = Vec::new();
    let mut failures = Vec::new();
    for url in p.targets() {
        let res = async {
            if !accepts(p, tag, &url).await? {
                tracing::info!("not publishing {} to {url}: the filter command refused", tag.url());
                return Ok(None);
            }
            let target = open(p, &url).await?;
            tracing::info!("publishing tag {}/{} to {url}", tag.branch, tag.tag);
            with_retries(p, tag, &url, Retries::Background, async || {
                publish_jobs(p, &target, tag).await?;
                let a = target
                    .call(&p.permits, Method::GET, &encode(&tag.url()), &[], &Payload::Empty)
                    .await?;
                if a.status == StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                let a = a.ok("GET tag")?;
                let v: Value = serde_json::from_slice(&a.body)
                    .map_err(|e| Failure::fatal(format!("GET {}: not JSON: {e}", tag.url())))?;
                Ok(v["tag"]["jobs"].as_array().cloned())
            })
            .await
        }
        .await;
        match res {
            Ok(Some(jobs)) => published_jobs = jobs,
            Ok(None) => {}
            Err(e) => {
                tracing::error!("publishing {} to {url} failed: {}", tag.url(), e.message);
                failures.push(format!("{url}: {}", e.message));
            }
        }
    }
    let store = &p.store;
    let dir = tag.dir();
    let outcome = if !failures.is_empty() {
        // What was copied stays; the tag is released once every mirror has it.
        Err(failures.join("; "))
    } else if !published_jobs.is_empty() {
        match store.set_tag_released(&dir, true).await {
            Ok(()) => Ok(format!("published to {}", p.cfg.publish_url.as_deref().unwrap_or(""))),
            Err(e) => Err(format!("cannot mark the tag released: {e}")),
        }
    } else {
        clear_released(p, tag).await;
        return;
    };
    match outcome {
        Ok(status) => {
            tracing::info!("tag {}/{} {status}", tag.branch, tag.tag);
            p.status(tag, &status).await;
        }
        Err(e) => p.status(tag, &format!("error: {e}")).await,
    }
}

/// Copies the tag's locked jobs to one mirror (§1.3.1).
async fn publish_jobs(p: &Publisher, target: &Target, tag: &TagRef) -> Result<(), Failure> {
    let store = &p.store;
    let jobs = jobs_of(tag).await;
    let total: usize = {
        let mut n = 0;
        for j in &jobs {
            if tree::job_lock_flag(j).await {
                n += 1;
            }
        }
        n
    };
    let mut done = 0;
    for job in jobs {
        let dir = job.dir();
        if !tree::job_lock_flag(&job).await {
            tracing::debug!("not publishing {}: the job is not locked", job.url());
            continue;
        }
        let url = encode(&job.url());
        if meta::flag(&dir.join(".internal")).await {
            target
                .call(&p.permits, Method::DELETE, &url, &[], &Payload::Empty)
                .await?;
            store.set_job_released(&dir, false).await.map_err(local)?;
            done += 1;
            continue;
        }
        let digest = meta::read_stripped(&dir.join(".digest")).await.unwrap_or_default();
        let remote = target.call(&p.permits, Method::GET, &url, &[], &Payload::Empty).await?;
        if remote.status == StatusCode::OK {
            let v: Value = serde_json::from_slice(&remote.body).unwrap_or(Value::Null);
            if v["job"]["digest"].as_str() == Some(digest.as_str()) && !digest.is_empty() {
                tracing::debug!("{} is up to date on {}", job.url(), target.origin);
                done += 1;
                continue;
            }
            target
                .call(&p.permits, Method::DELETE, &url, &[], &Payload::Empty)
                .await?;
            store.set_job_released(&dir, false).await.map_err(local)?;
        }
        p.status(
            tag,
            &format!(
                "uploading {} to {} (job {} of {total})",
                job.job,
                target.origin,
                done + 1
            ),
        )
        .await;
        for format in tree::list_dirs(&dir).await.map_err(local)? {
            if !p.cfg.is_internal_format(&format) {
                publish_format(p, target, &job, &format).await?;
            }
        }
        let metadata = meta::read_object(&dir.join(".metadata")).await;
        let body = serde_json::to_vec(&serde_json::json!({ "job": metadata })).unwrap_or_default();
        target
            .call(&p.permits, Method::PATCH, &url, &[], &Payload::Json(body))
            .await?
            .ok("PATCH job metadata")?;
        store.set_job_released(&dir, true).await.map_err(local)?;
        let lock = br#"{"job": {"locked": true}}"#.to_vec();
        target
            .call(&p.permits, Method::PUT, &url, &[], &Payload::Json(lock))
            .await?
            .ok("PUT job lock")?;
        done += 1;
    }
    Ok(())
}

/// Copies one format's files (§1.3.2), as many at once as the semaphore
/// lets through, then finalises it on the mirror.
async fn publish_format(p: &Publisher, target: &Target, job: &JobRef, format: &str) -> Result<(), Failure> {
    let fdir = job.dir().join(format);
    let digests = p.store.digests(&fdir).await;
    let base = job.format_url(format);
    let mut running = FuturesUnordered::new();
    for (path, value) in digests.iter() {
        let Some(digest) = value.as_str() else { continue };
        let url = encode(&format!("{base}{path}"));
        let file = io::join(&fdir, path);
        running.push(publish_file(p, target, url, file, digest.to_string()));
        // Enough queued to keep every permit busy, not the whole format.
        if running.len() >= p.cfg.publish_max_requests.max(1) as usize * 2 {
            if let Some(r) = running.next().await {
                r?;
            }
        }
    }
    while let Some(r) = running.next().await {
        r?;
    }
    target
        .call(&p.permits, Method::PATCH, &encode(&base), &[], &Payload::Empty)
        .await?
        .ok("PATCH format")?;
    Ok(())
}

/// One file: a link-only PUT when the mirror has the blob, else the bytes.
async fn publish_file(
    p: &Publisher,
    target: &Target,
    url: String,
    file: PathBuf,
    digest: String,
) -> Result<(), Failure> {
    let probe = target
        .call(&p.permits, Method::HEAD, &url, &[("Digest", &digest)], &Payload::Empty)
        .await?;
    if probe.status == StatusCode::OK {
        tracing::debug!("publish: linked {url} on {} (no bytes sent)", target.origin);
        target
            .call(
                &p.permits,
                Method::PUT,
                &url,
                &[("Digest", &digest), ("X-Dlrepo-Link", &digest)],
                &Payload::Empty,
            )
            .await?
            .ok("PUT (link only)")?;
    } else {
        tracing::debug!("publish: sending {url} to {}", target.origin);
        target
            .call(
                &p.permits,
                Method::PUT,
                &url,
                &[("Digest", &digest)],
                &Payload::File(file),
            )
            .await?
            .ok("PUT")?;
    }
    Ok(())
}

/// Deletes a tag from every mirror, then clears its released flags
/// (§1.4). The outcome is in its status.
pub async fn unpublish(p: &Publisher, tag: &TagRef, retries: Retries) {
    p.status(tag, "in progress").await;
    let mut failures = Vec::new();
    for url in p.targets() {
        let res = async {
            if !accepts(p, tag, &url).await? {
                return Ok(());
            }
            let target = open(p, &url).await?;
            tracing::info!("deleting tag {}/{} from {url}", tag.branch, tag.tag);
            with_retries(p, tag, &url, retries, async || {
                let a = target
                    .call(&p.permits, Method::DELETE, &encode(&tag.url()), &[], &Payload::Empty)
                    .await?;
                if a.status != StatusCode::NOT_FOUND {
                    a.ok("DELETE tag")?;
                }
                Ok(())
            })
            .await
        }
        .await;
        if let Err(e) = res {
            tracing::error!("deleting {} from {url} failed: {}", tag.url(), e.message);
            failures.push(format!("{url}: {}", e.message));
        }
    }
    if failures.is_empty() {
        clear_released(p, tag).await;
    } else {
        p.status(tag, &format!("error: {}", failures.join("; "))).await;
    }
}

/// The tag and its jobs are released nowhere: flags and status go.
async fn clear_released(p: &Publisher, tag: &TagRef) {
    let store = &p.store;
    let dir = tag.dir();
    let mut res = store.set_tag_released(&dir, false).await;
    for job in jobs_of(tag).await {
        res = res.and(store.set_job_released(&job.dir(), false).await);
    }
    res = res.and(store.set_publish_status(&dir, None).await);
    if let Err(e) = res {
        tracing::error!("cannot clear the released flags of {}: {e}", tag.url());
        p.status(tag, &format!("error: cannot clear the released flags: {e}"))
            .await;
    }
}

/// A local failure (reading or writing this server's own tree).
fn local(e: impl std::fmt::Display) -> Failure {
    Failure::fatal(format!("on this server: {e}"))
}
