use std::cell::Cell;
use std::rc::Rc;

use stormlog::seam::Clock;

/// A node's wall clock: the simulation's clock plus this node's skew, which the `skew`
/// fault moves. (No simulator gives nodes different clocks by itself.)
#[derive(Clone, Default)]
pub struct SimClock {
    skew_ms: Rc<Cell<i64>>,
}

impl SimClock {
    pub fn skew_by(&self, by_ms: i64) {
        self.skew_ms.set(self.skew_ms.get() + by_ms);
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        let since = turmoil::since_epoch().unwrap_or_default();
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX) + self.skew_ms.get()
    }
}
