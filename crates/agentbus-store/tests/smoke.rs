//! The store end to end: record from a bus, flush, read back, catch up.

use std::sync::Arc;

use agentbus::{Event, EventBus, EventType};
use agentbus_store::{EventStore, ReadQuery, Recorder, SqliteStore};
use futures_util::StreamExt;

#[tokio::test]
async fn smoke() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.db")).unwrap();
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, store.clone());
    let first = Arc::new(Event::new(EventType::TaskCreated).with_circle(5));
    bus.publish(Arc::clone(&first)).await;
    bus.publish(Event::new(EventType::TaskCompleted).with_circle(5))
        .await;
    assert_eq!(recorder.flush().await.unwrap(), 2);

    let stored = store.read(&ReadQuery::new()).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!((stored[0].sequence, &*stored[0].event), (1, &*first));
    assert_eq!(store.last_sequence().await.unwrap(), 2);

    let mut stream = recorder.subscribe_from(1, ReadQuery::new());
    bus.publish(Event::new(EventType::TaskFailed)).await;
    let next = stream.next().await.unwrap().unwrap();
    assert_eq!(next.sequence, 2);
    let live = stream.next().await.unwrap().unwrap();
    assert_eq!(
        (live.sequence, live.event.event_type),
        (3, EventType::TaskFailed)
    );
    assert_eq!(recorder.close().await.unwrap(), 3);
}

#[tokio::test]
async fn full_synchronous_stores_and_reopens() {
    use agentbus_store::{SqliteOptions, Synchronous};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.db");
    let options = SqliteOptions {
        synchronous: Synchronous::Full,
    };
    let store = SqliteStore::open_with(&path, options).unwrap();
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, store);
    for _ in 0..10 {
        bus.publish(Event::new(EventType::MemoryCreated)).await;
    }
    assert_eq!(recorder.flush().await.unwrap(), 10);
    recorder.close().await.unwrap();
    let reopened = agentbus_store::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    assert_eq!(reopened.read(&ReadQuery::new()).await.unwrap().len(), 10);
    let error = agentbus_store::open("redis://x").await.err().unwrap();
    assert!(error.to_string().contains("redis://x"), "{error}");
}

#[tokio::test]
async fn dropping_the_last_handle_commits_what_was_handed_off() {
    let store = SqliteStore::open_in_memory().unwrap();
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, store.clone());
    let clone = recorder.clone();
    drop(recorder);
    for _ in 0..100 {
        bus.publish(Event::new(EventType::ConversationMessage))
            .await;
    }
    assert_eq!(clone.stats().dropped, 0);
    drop(clone); // unsubscribes; the writer drains and stops in the background
    bus.publish(Event::new(EventType::ConversationMessage))
        .await; // not recorded
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.last_sequence().await.unwrap() < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer drained the queue"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(store.last_sequence().await.unwrap(), 100);
}

/// Each handle debugs as what it holds: the store its location, the
/// recorder its counters, a reservation and a tracker their event counts.
#[tokio::test]
async fn handles_debug_as_what_they_hold() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).unwrap();
    let shown = format!("{store:?}");
    assert!(
        shown.starts_with("SqliteStore { location: ") && shown.contains("events.db"),
        "{shown}"
    );
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, store);
    let shown = format!("{recorder:?}");
    assert!(
        shown.starts_with("Recorder { stats: RecorderStats {"),
        "{shown}"
    );
    let reservation = recorder.reserve(3).await.unwrap();
    assert_eq!(format!("{reservation:?}"), "Reservation { events: 3 }");
    drop(reservation);
    let ids = [
        Event::new(EventType::TaskCreated).id,
        Event::new(EventType::TaskCreated).id,
    ];
    assert_eq!(
        format!("{:?}", recorder.track(&ids)),
        "Tracked { events: 2 }"
    );
    recorder.close().await.unwrap();
}

/// Every builder setting keeps the ones made before it: a capacity set
/// first still bounds a reservation after `linger` and `retry_backoff`.
#[tokio::test]
async fn builder_settings_keep_the_ones_made_before() {
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .capacity(2)
        .linger(std::time::Duration::from_millis(1))
        .retry_backoff(
            std::time::Duration::from_millis(1),
            std::time::Duration::from_millis(10),
        )
        .attach(&bus, SqliteStore::open_in_memory().unwrap());
    let room = recorder.reserve(5).await.unwrap();
    assert_eq!(room.events(), 2, "at most the queue's capacity");
    drop(room);
    recorder.close().await.unwrap();
}
