//! The background cleanup: one task at a time on the request ring.
//!
//! A full run applies the branch retention policies, refreshes user disk
//! usage, then collects orphans; an orphans-only run (after an HTTP DELETE)
//! only collects orphans. Scheduling follows [`SchedState`]. After each run
//! its figures are logged and written to `<root>/.dlrepo-rs/cleanup.json`.

pub mod gc;
mod hooks;
pub mod policy;
pub mod quota;
pub mod scheduler;

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

pub use scheduler::{RunKind, SchedState};

use crate::publish::Publisher;
use crate::store::usage::human;
use crate::store::Store;

/// What asked for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Startup,
    Timer,
    Signal,
    /// `POST /cleanup`.
    Http,
    Delete,
    /// Requests that arrived while a run was in progress.
    FollowUp,
}

impl Trigger {
    fn name(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::Timer => "timer",
            Trigger::Signal => "SIGUSR1",
            Trigger::Http => "HTTP",
            Trigger::Delete => "delete",
            Trigger::FollowUp => "follow-up",
        }
    }
}

/// Figures of one run.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub kind: Option<RunKind>,
    pub trigger: Option<Trigger>,
    pub started: f64,
    pub seconds: f64,
    pub tags_deleted: u64,
    pub files_scanned: u64,
    pub blobs_removed: u64,
    pub bytes_reclaimed: u64,
    pub error: Option<String>,
}

/// Figures summed over the runs since startup.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub runs: u64,
    /// Runs by (kind, trigger).
    pub by_cause: Vec<(&'static str, &'static str, u64)>,
    pub tags_deleted: u64,
    pub blobs_removed: u64,
    pub bytes_reclaimed: u64,
}

/// Schedules and runs cleanups.
pub struct Scheduler {
    store: Rc<Store>,
    /// Unpublishes released tags before the policy deletes them.
    publisher: Rc<Publisher>,
    state: RefCell<SchedState>,
    last: RefCell<Option<RunReport>>,
    totals: RefCell<Totals>,
    me: RefCell<Weak<Scheduler>>,
}

impl Scheduler {
    pub fn new(store: Rc<Store>, publisher: Rc<Publisher>) -> Rc<Scheduler> {
        let s = Rc::new(Scheduler {
            store,
            publisher,
            state: RefCell::new(SchedState::Idle),
            last: RefCell::new(None),
            totals: RefCell::new(Totals::default()),
            me: RefCell::new(Weak::new()),
        });
        *s.me.borrow_mut() = Rc::downgrade(&s);
        s
    }

    /// Asks for a run. It starts on the next loop turn, or folds into the
    /// single run that follows the one in progress.
    pub fn schedule(&self, kind: RunKind, trigger: Trigger) {
        tracing::debug!("cleanup ({}) requested by {}", kind_name(kind), trigger.name());
        let start = self.state.borrow_mut().request(kind);
        if let Some(kind) = start {
            self.spawn(kind, trigger);
        }
    }

    pub fn is_running(&self) -> bool {
        self.state.borrow().is_running()
    }

    fn spawn(&self, kind: RunKind, trigger: Trigger) {
        let Some(me) = self.me.borrow().upgrade() else { return };
        tokio_uring::spawn(async move {
            let (mut kind, mut trigger) = (kind, trigger);
            loop {
                let report = me.run(kind, trigger).await;
                // Leave the running state first, so the status says whether
                // a follow-up run starts.
                let next = me.state.borrow_mut().finished();
                me.record(report).await;
                match next {
                    Some(k) => (kind, trigger) = (k, Trigger::FollowUp),
                    None => break,
                }
            }
        });
    }

    async fn run(&self, kind: RunKind, trigger: Trigger) -> RunReport {
        hooks::run_started().await;
        let started = Instant::now();
        let mut r = RunReport {
            kind: Some(kind),
            trigger: Some(trigger),
            started: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            ..RunReport::default()
        };
        tracing::debug!("cleanup ({}, {}) started", kind_name(kind), trigger.name());
        if kind == RunKind::Full {
            match policy::apply(&self.store, &self.publisher).await {
                Ok(n) => r.tags_deleted = n,
                Err(e) => {
                    tracing::error!("exception in cleanup (tag policies): {e}");
                    r.error = Some(e.to_string());
                }
            }
            if let Err(e) = quota::refresh(&self.store).await {
                tracing::error!("exception in cleanup (quota refresh): {e}");
                r.error.get_or_insert(e.to_string());
            }
        }
        tracing::debug!("Deleting orphan blobs");
        let gc = gc::collect_orphans(&self.store).await;
        tracing::info!("Deleted {} orphan blobs ({} bytes)", gc.removed, human(gc.bytes));
        r.files_scanned = gc.scanned;
        r.blobs_removed = gc.removed;
        r.bytes_reclaimed = gc.bytes;
        r.seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            "cleanup ({}, {}) done in {:.3}s: {} tags deleted, {} files scanned, {} orphans removed, {} bytes reclaimed",
            kind_name(kind),
            trigger.name(),
            r.seconds,
            r.tags_deleted,
            r.files_scanned,
            r.blobs_removed,
            human(r.bytes_reclaimed)
        );
        r
    }

    async fn record(&self, r: RunReport) {
        {
            let mut t = self.totals.borrow_mut();
            t.runs += 1;
            let (kind, trigger) = (
                r.kind.map(kind_name).unwrap_or("-"),
                r.trigger.map(Trigger::name).unwrap_or("-"),
            );
            match t.by_cause.iter_mut().find(|(k, g, _)| *k == kind && *g == trigger) {
                Some(c) => c.2 += 1,
                None => t.by_cause.push((kind, trigger, 1)),
            }
            t.tags_deleted += r.tags_deleted;
            t.blobs_removed += r.blobs_removed;
            t.bytes_reclaimed += r.bytes_reclaimed;
        }
        *self.last.borrow_mut() = Some(r);
        if let Err(e) = self.write_status().await {
            tracing::warn!("cannot write the cleanup status: {e}");
        }
    }

    /// The last run and the totals since startup (`/metrics`).
    pub fn figures(&self) -> (Option<RunReport>, Totals) {
        (self.last.borrow().clone(), self.totals.borrow().clone())
    }

    /// The operator's view: `<root>/.dlrepo-rs/cleanup.json`.
    pub fn status_json(&self) -> serde_json::Value {
        let last = self.last.borrow().clone().map(|r| {
            json!({
                "kind": r.kind.map(kind_name),
                "trigger": r.trigger.map(Trigger::name),
                "started": r.started,
                "seconds": r.seconds,
                "tags_deleted": r.tags_deleted,
                "files_scanned": r.files_scanned,
                "blobs_removed": r.blobs_removed,
                "bytes_reclaimed": r.bytes_reclaimed,
                "error": r.error,
            })
        });
        let t = self.totals.borrow();
        json!({
            "running": self.is_running(),
            "last_run": last,
            "totals": {
                "runs": t.runs,
                "tags_deleted": t.tags_deleted,
                "blobs_removed": t.blobs_removed,
                "bytes_reclaimed": t.bytes_reclaimed,
            },
        })
    }

    async fn write_status(&self) -> std::io::Result<()> {
        let dir = self.store.root.join(".dlrepo-rs");
        self.store.ensure_dir(&dir).await?;
        let mut bytes = serde_json::to_vec_pretty(&self.status_json()).unwrap_or_default();
        bytes.push(b'\n');
        crate::io::write_file_atomic(&dir.join("cleanup.json"), bytes, false).await
    }
}

fn kind_name(k: RunKind) -> &'static str {
    match k {
        RunKind::Full => "full",
        RunKind::OrphansOnly => "orphans-only",
    }
}
