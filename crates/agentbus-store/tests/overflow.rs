//! The recorder under `Overflow::DropOldest`: publishers never wait, the
//! oldest queued events are the ones not recorded, and flush says so.

use std::time::Duration;

use agentbus::{Event, EventBus, EventType};
use agentbus_store::{EventStore, Overflow, ReadQuery, Recorder, SqliteStore, StoreError};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_keeps_the_newest_events_and_flush_reports_the_drops() {
    let store = SqliteStore::open_in_memory().unwrap();
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .capacity(4)
        .max_batch(4)
        .overflow(Overflow::DropOldest)
        .attach(&bus, store.clone());
    // Hold the queue full: everything published meanwhile competes for 4 slots.
    let room = recorder.reserve(4).await.unwrap();
    drop(room);
    for n in 0..500u64 {
        bus.publish(Event::new(EventType::TaskCreated).with_data(json!({ "n": n })))
            .await;
    }
    let dropped = recorder.stats().dropped;
    let last = match tokio::time::timeout(Duration::from_secs(10), recorder.flush())
        .await
        .unwrap()
    {
        Err(StoreError::EventsDropped { count }) => {
            assert_eq!(count, dropped);
            recorder.flush().await.unwrap()
        }
        Ok(last) => {
            assert_eq!(dropped, 0, "no drop, no error");
            last
        }
        Err(other) => panic!("unexpected {other}"),
    };
    assert_eq!(last, 500 - dropped);
    let stored = store.read(&ReadQuery::new()).await.unwrap();
    assert_eq!(
        stored.last().unwrap().event.data["n"],
        json!(499),
        "the newest event is never the one dropped"
    );
}

/// Each flush reports the drops since the previous report, not since the
/// start: a second round of drops is counted on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_flush_reports_the_drops_since_the_last_report() {
    let store = SqliteStore::open_in_memory().unwrap();
    let slow = agentbus_testkit::store::Throttled::new(store, Duration::from_millis(50));
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .capacity(1)
        .overflow(Overflow::DropNewest)
        .attach(&bus, slow);
    let mut reported = 0;
    for round in 0..2 {
        for _ in 0..20 {
            bus.publish(Event::new(EventType::TaskCreated)).await;
        }
        let dropped = recorder.stats().dropped;
        assert!(dropped > reported, "round {round} dropped nothing");
        match recorder.flush().await {
            Err(StoreError::EventsDropped { count }) => assert_eq!(count, dropped - reported),
            other => panic!("round {round}: expected EventsDropped, got {other:?}"),
        }
        reported = dropped;
        recorder.flush().await.unwrap();
    }
}
