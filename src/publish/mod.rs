//! Publishing released tags to mirror servers (docs/spec/publish.md §1).
//!
//! Releasing a tag asks for a background run that copies the tag's locked,
//! non-internal jobs to every `DLREPO_PUBLISH_URL` through their ordinary
//! HTTP API (link-only PUTs for what a mirror already has); unreleasing
//! deletes the tag there. Runs share the server's ring with requests: every
//! HTTP request takes a permit of one process-wide semaphore
//! (`DLREPO_PUBLISH_MAX_REQUESTS`), so a large publish never crowds out
//! uploads. A tag has at most one run at a time ([`queue::TagWork`]); what
//! it is to end up as is kept in `<root>/.dlrepo-rs/publish/`, so a run a
//! stop or a crash interrupted is resumed at the next start. A mirror that
//! is down or answers 5xx is tried again with backoff; one that keeps
//! failing does not stop the others.

mod client;
pub mod queue;
mod task;

use crate::pathmap::PathMap;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::io;
use crate::store::digest::sha256_hex;
use crate::store::{Repo, Store};
use queue::{TagWork, Want};

/// A tag of a repository, by its lowercased names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRef {
    pub repo: Repo,
    pub branch: String,
    pub tag: String,
}

impl TagRef {
    pub fn dir(&self) -> PathBuf {
        self.repo.tag_dir(&self.branch, &self.tag)
    }
    /// The tag's URL path, the same on every mirror (a user's tag goes
    /// into the mirror's repository of that user).
    pub fn url(&self) -> String {
        format!("{}/branches/{}/{}/", self.repo.url_prefix(), self.branch, self.tag)
    }
}

pub struct Publisher {
    store: Rc<Store>,
    cfg: Rc<Config>,
    permits: Semaphore,
    /// The runs of each tag (by folder), idle ones absent.
    work: RefCell<PathMap<TagWork>>,
    user_agent: String,
    me: Weak<Publisher>,
}

impl Publisher {
    pub fn new(store: Rc<Store>, cfg: Rc<Config>) -> Rc<Publisher> {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into());
        Rc::new_cyclic(|me| Publisher {
            permits: Semaphore::new(cfg.publish_max_requests.clamp(1, 4096) as usize),
            store,
            cfg,
            work: RefCell::new(Default::default()),
            user_agent: format!("dlrepo-server/{host}"),
            me: me.clone(),
        })
    }

    /// Whether publishing is configured (both the URL and the auth file).
    pub fn is_configured(&self) -> bool {
        self.cfg.publish_url.is_some() && self.cfg.publish_auth.is_some()
    }

    /// Asks for a tag to be released (published) or unreleased. Answers at
    /// once; a run starts now, or after the one in progress for that tag.
    pub async fn request(&self, tag: TagRef, want: Want) {
        let dir = tag.dir();
        let start = {
            let mut work = self.work.borrow_mut();
            let w = work.entry_or_insert_with(&dir, || TagWork::Idle);
            let start = w.request(want);
            (start, w.wanted())
        };
        if let (_, Some(wanted)) = start {
            self.remember(&tag, wanted).await;
        }
        match start.0 {
            Some(want) => {
                self.status(&tag, "queued").await;
                self.spawn(tag, want);
            }
            // The run in progress says what it does; the next one says
            // "queued" when it starts waiting for its turn.
            None => tracing::info!("publishing {}: queued behind the run in progress", tag.url()),
        }
    }

    fn spawn(&self, tag: TagRef, want: Want) {
        let Some(me) = self.me.upgrade() else { return };
        tokio_uring::spawn(async move {
            let dir = tag.dir();
            let mut want = want;
            loop {
                match want {
                    Want::Release => task::publish(&me, &tag).await,
                    Want::Unrelease => task::unpublish(&me, &tag, task::Retries::Background).await,
                }
                let next = {
                    let mut work = me.work.borrow_mut();
                    let next = work.get_mut(&dir).and_then(TagWork::finished);
                    if next.is_none() {
                        work.remove(&dir);
                    }
                    next
                };
                match next {
                    Some(n) => want = n,
                    None => break,
                }
            }
            me.forget(&tag).await;
        });
    }

    /// Unpublishes a tag now, for the cleanup policy before it deletes a
    /// released tag. An error is also written as the tag's status.
    pub async fn unpublish_now(&self, tag: &TagRef) -> Result<(), String> {
        if !self.is_configured() {
            return Err("publishing is not configured".into());
        }
        task::unpublish(self, tag, task::Retries::Inline).await;
        match crate::store::meta::read_stripped(&tag.dir().join(".publish-status")).await {
            Some(s) if s.starts_with("error: ") => Err(s),
            _ => Ok(()),
        }
    }

    /// Starts again the runs a stop or a crash interrupted.
    pub async fn resume(&self) {
        let dir = self.queue_dir();
        let Ok(entries) = io::read_dir_sorted_opt(&dir) else {
            return;
        };
        for e in entries {
            let path = dir.join(&e.name);
            let Ok(Some(bytes)) = io::read_file_opt(&path).await else {
                continue;
            };
            let Some((tag, want)) = self.parse_queued(&bytes) else {
                let _ = io::unlink_opt(&path).await;
                continue;
            };
            if !io::is_dir(&tag.dir()).await {
                let _ = io::unlink_opt(&path).await;
                continue;
            }
            if !self.is_configured() {
                tracing::warn!(
                    "not resuming the publish of {}: publishing is not configured",
                    tag.url()
                );
                continue;
            }
            tracing::info!("resuming the publish of {} interrupted by a stop", tag.url());
            self.request(tag, want).await;
        }
    }

    fn queue_dir(&self) -> PathBuf {
        self.store.root.join(".dlrepo-rs").join("publish")
    }

    fn queue_file(&self, tag: &TagRef) -> PathBuf {
        let rel = tag.dir();
        let rel = rel.strip_prefix(&self.store.root).unwrap_or(&rel);
        self.queue_dir().join(format!(
            "{}.json",
            &sha256_hex(rel.as_os_str().as_encoded_bytes())[..32]
        ))
    }

    /// Writes down what the tag is to end up as, for a restart.
    async fn remember(&self, tag: &TagRef, want: Want) {
        let rec = json!({
            "user": tag.repo.user,
            "branch": tag.branch,
            "tag": tag.tag,
            "release": want == Want::Release,
        });
        let res = async {
            io::mkdir_all(&self.queue_dir()).await?;
            io::write_file_atomic(&self.queue_file(tag), rec.to_string().into_bytes(), self.cfg.fsync).await
        }
        .await;
        if let Err(e) = res {
            tracing::warn!("cannot record the publish of {} for a restart: {e}", tag.url());
        }
    }

    async fn forget(&self, tag: &TagRef) {
        let _ = io::unlink_opt(&self.queue_file(tag)).await;
    }

    fn parse_queued(&self, bytes: &[u8]) -> Option<(TagRef, Want)> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        let user = v.get("user").and_then(Value::as_str);
        let name = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .filter(|n| crate::names::is_valid_name(n))
                .map(str::to_string)
        };
        if user.is_some_and(|u| !crate::names::is_valid_user(u)) {
            return None;
        }
        let tag = TagRef {
            repo: self.store.repo(user),
            branch: name("branch")?,
            tag: name("tag")?,
        };
        let want = if v.get("release")?.as_bool()? {
            Want::Release
        } else {
            Want::Unrelease
        };
        Some((tag, want))
    }

    /// Writes the tag's publish status; a failure is logged.
    async fn status(&self, tag: &TagRef, text: &str) {
        if let Err(e) = self.store.set_publish_status(&tag.dir(), Some(text)).await {
            tracing::warn!("cannot write the publish status of {}: {e}", tag.url());
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.publish_timeout.max(1))
    }

    fn targets(&self) -> Vec<String> {
        // Split as given: the spec keeps the parts untrimmed.
        self.cfg
            .publish_url
            .as_deref()
            .map(|u| u.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    }

    fn auth_file(&self) -> Option<&Path> {
        self.cfg.publish_auth.as_deref()
    }
}
