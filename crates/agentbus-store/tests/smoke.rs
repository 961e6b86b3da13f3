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
    assert_eq!((stored[0].sequence, &stored[0].event), (1, &*first));
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
