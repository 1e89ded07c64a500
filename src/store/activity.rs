//! Request traffic as background work sees it: how many requests are being
//! answered now, and how many have started since startup (so a pause
//! between two requests of a steady stream is not taken for a quiet server).

use std::cell::Cell;
use std::rc::Rc;

#[derive(Debug, Default)]
pub struct Activity {
    in_flight: Cell<usize>,
    started: Cell<u64>,
}

impl Activity {
    /// Counts a request from now until the guard drops.
    pub fn begin(self: &Rc<Self>) -> RequestGuard {
        self.in_flight.set(self.in_flight.get() + 1);
        self.started.set(self.started.get().wrapping_add(1));
        RequestGuard(self.clone())
    }

    /// Requests whose handler is running.
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    /// Requests started since startup.
    pub fn started(&self) -> u64 {
        self.started.get()
    }
}

pub struct RequestGuard(Rc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.in_flight.set(self.0.in_flight.get().saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_in_flight_and_started() {
        let a = Rc::new(Activity::default());
        let g1 = a.begin();
        let g2 = a.begin();
        assert_eq!((a.in_flight(), a.started()), (2, 2));
        drop(g1);
        assert_eq!((a.in_flight(), a.started()), (1, 2));
        drop(g2);
        let _g3 = a.begin();
        assert_eq!((a.in_flight(), a.started()), (1, 3));
    }
}
