//! The cleanup scheduling state machine (docs/spec/cleanup.md §2).
//!
//! At most one run at a time; every request that arrives during a run folds
//! into exactly one follow-up run, which is full if any of them asked for a
//! full run. This module is pure: the runtime wrapper in `mod.rs` starts
//! the runs it returns.

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// Tag policies, user quota refresh, then orphan GC.
    Full,
    /// Orphan GC only (after an HTTP DELETE).
    OrphansOnly,
}

impl RunKind {
    fn merge(self, other: RunKind) -> RunKind {
        if self == RunKind::Full || other == RunKind::Full {
            RunKind::Full
        } else {
            RunKind::OrphansOnly
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedState {
    Idle,
    Running {
        current: RunKind,
        /// The single run that follows, if anything asked meanwhile.
        follow_up: Option<RunKind>,
    },
}

impl SchedState {
    /// A run was asked for. Returns the kind of run to start now, if any.
    pub fn request(&mut self, kind: RunKind) -> Option<RunKind> {
        match self {
            SchedState::Idle => {
                *self = SchedState::Running {
                    current: kind,
                    follow_up: None,
                };
                Some(kind)
            }
            SchedState::Running { follow_up, .. } => {
                *follow_up = Some(follow_up.map_or(kind, |k| k.merge(kind)));
                None
            }
        }
    }

    /// The current run ended (successfully or not). Returns the follow-up
    /// run to start now, if any.
    pub fn finished(&mut self) -> Option<RunKind> {
        match *self {
            SchedState::Idle => None,
            SchedState::Running { follow_up: None, .. } => {
                *self = SchedState::Idle;
                None
            }
            SchedState::Running {
                follow_up: Some(next), ..
            } => {
                *self = SchedState::Running {
                    current: next,
                    follow_up: None,
                };
                Some(next)
            }
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self, SchedState::Running { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::RunKind::*;
    use super::*;

    #[test]
    fn idle_request_starts_at_once() {
        let mut s = SchedState::Idle;
        assert_eq!(s.request(OrphansOnly), Some(OrphansOnly));
        assert_eq!(
            s,
            SchedState::Running {
                current: OrphansOnly,
                follow_up: None
            }
        );
        assert_eq!(s.finished(), None);
        assert_eq!(s, SchedState::Idle);
    }

    #[test]
    fn requests_during_a_run_collapse_into_one() {
        let mut s = SchedState::Idle;
        assert_eq!(s.request(OrphansOnly), Some(OrphansOnly));
        assert_eq!(s.request(OrphansOnly), None);
        assert_eq!(s.request(Full), None);
        assert_eq!(s.request(OrphansOnly), None);
        assert_eq!(s.finished(), Some(Full));
        assert_eq!(s.finished(), None);
        assert!(!s.is_running());
    }

    #[test]
    fn follow_up_stays_orphans_only_without_a_full_request() {
        let mut s = SchedState::Idle;
        s.request(Full);
        s.request(OrphansOnly);
        s.request(OrphansOnly);
        assert_eq!(s.finished(), Some(OrphansOnly));
        assert_eq!(s.request(Full), None);
        assert_eq!(s.finished(), Some(Full));
        assert_eq!(s.finished(), None);
    }

    #[test]
    fn finishing_when_idle_does_nothing() {
        let mut s = SchedState::Idle;
        assert_eq!(s.finished(), None);
        assert_eq!(s, SchedState::Idle);
    }
}
