//! Key lanes for [`ordered_by`](crate::SubscriptionBuilder::ordered_by):
//! one line of one slot per key, so deliveries with equal keys run one at a
//! time in the order they joined (publish order) and other keys run in
//! parallel. A lane exists only while a delivery of its key holds it or
//! waits: the map never grows past the keys in flight.
//!
//! Keys are hashed to 64 bits; two keys with the same hash share a lane
//! (ordered together), which costs parallelism, never order.

use std::collections::HashMap;

use crate::delivery::permits::{Gate, Line};
use crate::sync::{lock, Arc, Mutex};

/// The lanes of one subscription.
#[derive(Default)]
pub(crate) struct Lanes {
    lines: Mutex<HashMap<u64, Line>>,
}

impl Lanes {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// How many keys hold or wait for their lane.
    #[cfg(test)]
    pub(crate) fn busy(&self) -> usize {
        lock(&self.lines).len()
    }
}

impl Gate for Lanes {
    fn with_line<R>(&self, key: u64, f: impl FnOnce(&mut Line) -> R) -> R {
        let mut lines = lock(&self.lines);
        let line = lines.entry(key).or_insert_with(|| Line::new(1));
        let result = f(line);
        if line.is_idle() {
            lines.remove(&key);
        }
        result
    }
}

#[cfg(test)]
#[cfg(not(agentbus_loom))]
mod tests {
    use super::*;
    use crate::delivery::permits::Ticket;
    use std::task::{Context, Waker};

    #[test]
    fn keys_wait_only_for_their_own_lane_and_lanes_are_forgotten_when_idle() {
        let lanes = Lanes::new();
        let mut cx = Context::from_waker(Waker::noop());
        let a1 = Ticket::join(&lanes, 1);
        let mut a2 = Ticket::join(&lanes, 1);
        let mut b1 = Ticket::join(&lanes, 2);
        assert!(b1.poll_held(&mut cx).is_ready());
        assert!(a2.poll_held(&mut cx).is_pending());
        drop(a1);
        assert!(a2.poll_held(&mut cx).is_ready());
        assert_eq!(lanes.busy(), 2);
        drop((a2, b1));
        assert_eq!(lanes.busy(), 0);
    }
}
