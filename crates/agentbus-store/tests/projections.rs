//! Projections fed one event at a time: each sequence is folded once.

use std::sync::Arc;

use agentbus::{Event, EventType};
use agentbus_store::{Projection, ReadQuery, StoredEvent};

fn stored(sequence: u64, event_type: EventType) -> StoredEvent {
    StoredEvent {
        sequence,
        event: Arc::new(Event::new(event_type)),
    }
}

#[test]
fn apply_folds_each_sequence_once_and_skips_what_it_passed() {
    let mut folded = Projection::new(
        Vec::new(),
        ReadQuery::new(),
        |seen: &mut Vec<u64>, s: &StoredEvent| {
            seen.push(s.sequence);
        },
    );
    assert!(folded.apply(&stored(1, EventType::TaskCreated)));
    assert!(folded.apply(&stored(2, EventType::TaskCreated)));
    // The same sequence again (a redelivery), and an older one: ignored.
    assert!(!folded.apply(&stored(2, EventType::TaskCreated)));
    assert!(!folded.apply(&stored(1, EventType::TaskCompleted)));
    assert!(folded.apply(&stored(3, EventType::TaskCreated)));
    assert_eq!(folded.state(), &[1, 2, 3]);
    assert_eq!(folded.sequence(), 3);
}

#[test]
fn apply_after_resume_skips_what_the_snapshot_holds() {
    let mut count = Projection::resume(
        10u32,
        7,
        ReadQuery::new().event_type(EventType::TaskCompleted),
        |n: &mut u32, _: &StoredEvent| *n += 1,
    );
    assert!(!count.apply(&stored(7, EventType::TaskCompleted)));
    // Filtered out, but passed over: the sequence moves on.
    assert!(!count.apply(&stored(8, EventType::TaskCreated)));
    assert_eq!(count.sequence(), 8);
    assert!(!count.apply(&stored(8, EventType::TaskCompleted)));
    assert!(count.apply(&stored(9, EventType::TaskCompleted)));
    assert_eq!(count.into_parts(), (11, 9));
}
