//! One tag's publish work: at most one run at a time, and every request
//! that arrives meanwhile folds into the single run that follows, the
//! latest request winning (a release then an unrelease ends unreleased).
//! Pure, like the cleanup scheduler: the publisher starts what it returns.

/// What a request asks for a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Copy the tag's locked jobs to the mirrors, then mark it released.
    Release,
    /// Delete the tag from the mirrors, then clear its released flags.
    Unrelease,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagWork {
    Idle,
    Running { current: Want, next: Option<Want> },
}

impl TagWork {
    /// A request arrived. Returns the run to start now, if any.
    pub fn request(&mut self, want: Want) -> Option<Want> {
        match self {
            TagWork::Idle => {
                *self = TagWork::Running {
                    current: want,
                    next: None,
                };
                Some(want)
            }
            TagWork::Running { next, .. } => {
                *next = Some(want);
                None
            }
        }
    }

    /// The current run ended, however. Returns the run to start now, if any.
    pub fn finished(&mut self) -> Option<Want> {
        match *self {
            TagWork::Idle | TagWork::Running { next: None, .. } => {
                *self = TagWork::Idle;
                None
            }
            TagWork::Running { next: Some(n), .. } => {
                *self = TagWork::Running { current: n, next: None };
                Some(n)
            }
        }
    }

    /// What the tag is to end up as once everything asked for has run.
    pub fn wanted(&self) -> Option<Want> {
        match self {
            TagWork::Idle => None,
            TagWork::Running { current, next } => Some(next.unwrap_or(*current)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Want::*;
    use super::*;

    #[test]
    fn one_run_at_a_time_and_the_latest_request_wins() {
        let mut w = TagWork::Idle;
        assert_eq!(w.request(Release), Some(Release));
        assert_eq!(w.request(Unrelease), None);
        assert_eq!(w.request(Release), None);
        assert_eq!(w.wanted(), Some(Release));
        assert_eq!(w.request(Unrelease), None);
        assert_eq!(w.wanted(), Some(Unrelease));
        assert_eq!(w.finished(), Some(Unrelease));
        assert_eq!(w.wanted(), Some(Unrelease));
        assert_eq!(w.finished(), None);
        assert_eq!(w, TagWork::Idle);
        assert_eq!(w.wanted(), None);
    }

    #[test]
    fn finishing_when_idle_does_nothing() {
        let mut w = TagWork::Idle;
        assert_eq!(w.finished(), None);
        assert_eq!(w, TagWork::Idle);
    }
}
