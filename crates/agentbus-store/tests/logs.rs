//! What the recorder logs: each event dropped for room at `WARN`,
//! rate-limited to the 1st, 2nd, 4th, 8th... drop; the dead letters it
//! restores on attach at `INFO`, once, and nothing when there are none.
//!
//! Captured with `agentbus_testkit::logs::capture_logs`, which sees what
//! the calling thread logs: both logs are written on the thread that
//! publishes or attaches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::{Event, EventBus, EventType};
use agentbus_store::{DeadLetterChanges, Overflow, Recorder, SqliteStore, StoreError};
use agentbus_testkit::logs::capture_logs;
use agentbus_testkit::store::{restored_letters, Gated};
use serde_json::json;

/// The lines of `logs` that contain `message`.
fn lines_with<'a>(logs: &'a str, message: &str) -> Vec<&'a str> {
    logs.lines().filter(|line| line.contains(message)).collect()
}

#[test]
fn each_drop_is_counted_and_logged_at_warn_rate_limited() {
    // A recorder that waited for room instead of dropping would block the
    // publishes below for good (the store is gated).
    let _deadline = agentbus_testkit::deadline::deadline();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(Gated::new(SqliteStore::open_in_memory().unwrap()));
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .capacity(1)
        .max_batch(1)
        .overflow(Overflow::DropNewest)
        .attach(&bus, Arc::clone(&store));
    // The writer stuck on the first event, the second fills the queue.
    bus.publish_blocking(Event::new(EventType::TaskCreated).with_data(json!({ "gated": true })));
    let deadline = Instant::now() + Duration::from_secs(20);
    while recorder.stats().in_flight != 1 {
        assert!(Instant::now() < deadline, "the writer took the first event");
        std::thread::sleep(Duration::from_millis(5));
    }
    bus.publish_blocking(Event::new(EventType::TaskCreated));

    let dropped: Vec<Event> = (0..5).map(|_| Event::new(EventType::TaskCreated)).collect();
    let (outcomes, logs) = capture_logs(|| {
        dropped
            .iter()
            .map(|event| bus.publish_blocking(event.clone()))
            .collect::<Vec<_>>()
    });
    for outcome in &outcomes {
        assert_eq!(
            (outcome.delivered, outcome.failed),
            (1, 0),
            "the recorder's hand-off never fails, even when it drops"
        );
    }
    assert_eq!(recorder.stats().dropped, 5);
    let warned = lines_with(&logs, "queue full: event not recorded");
    assert_eq!(warned.len(), 3, "drops 1, 2 and 4 are logged:\n{logs}");
    for (line, (count, event)) in
        warned
            .iter()
            .zip([(1, &dropped[0]), (2, &dropped[1]), (4, &dropped[3])])
    {
        assert!(
            line.contains("WARN")
                && line.contains(&format!("dropped={count}"))
                && line.contains(&event.id.to_string()),
            "drop {count} names its event ({}): {line}",
            event.id
        );
    }

    store.open();
    let flushed = runtime.block_on(recorder.flush());
    assert!(
        matches!(flushed, Err(StoreError::EventsDropped { count: 5 })),
        "{flushed:?}"
    );
    assert_eq!(runtime.block_on(recorder.close()).unwrap(), 2);
}

#[test]
fn attach_logs_the_dead_letters_it_restores_and_nothing_when_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).unwrap();
    store
        .write_dead_letters_blocking(&DeadLetterChanges {
            put: restored_letters(1..=2),
            ..DeadLetterChanges::new()
        })
        .unwrap();

    let bus = EventBus::new();
    let (_recorder, logs) = capture_logs(|| Recorder::attach(&bus, store));
    assert_eq!(bus.dead_letters().len(), 2);
    let restored = lines_with(&logs, "dead letters restored from the store");
    assert_eq!(restored.len(), 1, "{logs}");
    assert!(
        restored[0].contains("INFO") && restored[0].contains("restored=2"),
        "{}",
        restored[0]
    );

    let empty = SqliteStore::open(dir.path().join("empty.db")).unwrap();
    let bus = EventBus::new();
    let (_recorder, logs) = capture_logs(|| Recorder::attach(&bus, empty));
    assert!(
        lines_with(&logs, "dead letters restored").is_empty(),
        "nothing restored, nothing logged:\n{logs}"
    );
}
