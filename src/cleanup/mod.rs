//! The background cleanup: one task at a time on the request ring.

pub mod gc;
pub mod scheduler;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

pub use scheduler::{RunKind, SchedState};

use crate::store::usage::human;
use crate::store::Store;

/// Schedules and runs cleanups; see [`SchedState`] for the rules.
pub struct Scheduler {
    store: Rc<Store>,
    state: RefCell<SchedState>,
    runs: Cell<u64>,
    me: RefCell<std::rc::Weak<Scheduler>>,
}

impl Scheduler {
    pub fn new(store: Rc<Store>) -> Rc<Scheduler> {
        let s = Rc::new(Scheduler {
            store,
            state: RefCell::new(SchedState::Idle),
            runs: Cell::new(0),
            me: RefCell::new(std::rc::Weak::new()),
        });
        *s.me.borrow_mut() = Rc::downgrade(&s);
        s
    }

    /// Asks for a run. It starts on the next loop turn, or after the run in
    /// progress.
    pub fn schedule(&self, kind: RunKind) {
        let start = self.state.borrow_mut().request(kind);
        if let Some(kind) = start {
            self.spawn(kind);
        }
    }

    /// Runs completed since startup.
    pub fn runs(&self) -> u64 {
        self.runs.get()
    }

    pub fn is_running(&self) -> bool {
        self.state.borrow().is_running()
    }

    fn spawn(&self, kind: RunKind) {
        let Some(me) = self.me.borrow().upgrade() else {
            return;
        };
        tokio_uring::spawn(async move {
            let mut kind = kind;
            loop {
                me.run(kind).await;
                me.runs.set(me.runs.get() + 1);
                let next = me.state.borrow_mut().finished();
                match next {
                    Some(k) => kind = k,
                    None => break,
                }
            }
        });
    }

    async fn run(&self, kind: RunKind) {
        let started = Instant::now();
        tracing::debug!("cleanup run ({kind:?}) started");
        tracing::debug!("Deleting orphan blobs");
        let stats = gc::collect_orphans(&self.store).await;
        tracing::info!("Deleted {} orphan blobs ({} bytes)", stats.removed, human(stats.bytes));
        tracing::info!(
            "cleanup run ({kind:?}) done in {:.3}s: {} files scanned, {} removed",
            started.elapsed().as_secs_f64(),
            stats.scanned,
            stats.removed
        );
    }
}
