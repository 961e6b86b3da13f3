//! Two recorders writing one store: a catch-up stream on one of them sees
//! the other's events too, refilled from the store, with no gap.

use std::time::Duration;

use agentbus::{Event, EventBus, EventId, EventType};
use agentbus_store::{CatchUp, ReadQuery, Recorder, SqliteStore, StoredEvent};
use futures_util::StreamExt;

/// The stream's next event, within 10 s.
async fn next(stream: &mut CatchUp) -> StoredEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a stored event within 10 s")
        .expect("the stream goes on")
        .expect("a readable event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_refills_the_other_writers_events_and_the_live_one_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let a = Recorder::attach(&bus_a, SqliteStore::open(&path).unwrap());
    let b = Recorder::attach(&bus_b, SqliteStore::open(&path).unwrap());
    let mut stream = a.subscribe_from(0, ReadQuery::new());
    // Past the backlog: the stream is live on `a`.
    let first = Event::new(EventType::TaskCreated);
    bus_a.publish(first.clone()).await;
    a.flush().await.unwrap();
    let delivered = next(&mut stream).await;
    assert_eq!((delivered.sequence, delivered.event.id), (1, first.id));

    // `b` commits between `a`'s commits: each of `a`'s live batches then
    // starts past the stream's cursor, and the stream refills from the store
    // up to and including `a`'s live event.
    let mut expected: Vec<EventId> = vec![first.id];
    for round in 0..5 {
        let from_b: Vec<Event> = (0..=round % 2)
            .map(|_| Event::new(EventType::MemoryShared))
            .collect();
        for event in &from_b {
            bus_b.publish(event.clone()).await;
        }
        b.flush().await.unwrap();
        let from_a = Event::new(EventType::TaskCompleted);
        bus_a.publish(from_a.clone()).await;
        a.flush().await.unwrap();
        expected.extend(from_b.iter().map(|event| event.id));
        expected.push(from_a.id);
    }
    let mut seen = vec![first.id];
    let mut sequences = vec![1];
    while seen.len() < expected.len() {
        let stored = next(&mut stream).await;
        sequences.push(stored.sequence);
        seen.push(stored.event.id);
    }
    assert_eq!(sequences, (1..=expected.len() as u64).collect::<Vec<_>>());
    assert_eq!(seen, expected);
}
