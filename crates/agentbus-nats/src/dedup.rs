//! The receive-side window of recently delivered event ids.

use std::collections::{HashSet, VecDeque};

use agentbus::EventId;

/// Remembers the last `capacity` ids; older ones are forgotten in order.
pub(crate) struct DedupWindow {
    seen: HashSet<EventId>,
    order: VecDeque<EventId>,
    capacity: usize,
}

impl DedupWindow {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            seen: HashSet::with_capacity(capacity.min(1 << 16)),
            order: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity,
        }
    }

    /// `true` the first time `id` is offered within the window.
    pub(crate) fn insert(&mut self, id: EventId) -> bool {
        if self.capacity == 0 {
            return true;
        }
        if !self.seen.insert(id) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        self.order.push_back(id);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_the_oldest_beyond_capacity() {
        let ids: Vec<EventId> = (0..3)
            .map(|_| agentbus::Event::new(agentbus::EventType::TaskCreated).id)
            .collect();
        let mut window = DedupWindow::new(2);
        assert!(window.insert(ids[0]));
        assert!(!window.insert(ids[0]));
        assert!(window.insert(ids[1]));
        assert!(window.insert(ids[2]));
        assert!(window.insert(ids[0]), "evicted, so new again");
        assert!(!window.insert(ids[2]));
    }
}
