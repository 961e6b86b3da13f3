//! [`DeadLetterChanges`]: built by its methods, and empty only when it
//! would change nothing (no clear, no put, no remove).

use std::sync::Arc;

use agentbus::{DeadLetter, DeadLetterId, Event, EventType};
use agentbus_store::DeadLetterChanges;

#[test]
fn changes_are_empty_only_when_they_change_nothing() {
    assert!(DeadLetterChanges::new().is_empty());
    let letter = DeadLetter::restored(
        DeadLetterId::new(1),
        Arc::new(Event::new(EventType::TaskFailed)),
        3,
        Some("exporter"),
    );
    let put = DeadLetterChanges::new().put(letter);
    assert_eq!(put.put.len(), 1);
    assert!(!put.is_empty());
    let remove = DeadLetterChanges::new().remove(DeadLetterId::new(2));
    assert_eq!(remove.remove, [DeadLetterId::new(2)]);
    assert!(!remove.is_empty());
    // A clear alone is a change: it removes every stored letter.
    let clear = DeadLetterChanges {
        clear: true,
        ..DeadLetterChanges::new()
    };
    assert!(!clear.is_empty());
}
