//! What a publisher's hand-off to the recorder promises: it wakes a
//! sleeping writer, reservations hold room and give it back, and under
//! `DropOldest` publishers never wait and the oldest queued events are the
//! ones lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::{Event, EventBus, EventType};
use agentbus_store::{EventStore, Overflow, ReadQuery, Recorder, SqliteStore, StoreError};
use agentbus_testkit::store::Gated;
use serde_json::json;

/// Far longer than anything here takes, even on a loaded machine.
const LIMIT: Duration = Duration::from_secs(20);

/// Waits until `done` holds, polling; panics naming `what` after [`LIMIT`].
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done().await {
        assert!(Instant::now() < deadline, "{what} within {LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// After a quiet the writer sleeps; the next event's hand-off wakes it, so
/// a lone event commits at once, without anyone flushing.
#[tokio::test]
async fn a_lone_event_after_a_quiet_commits_without_a_flush() {
    let store = SqliteStore::open_in_memory().unwrap();
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, store.clone());
    // Well past the writer's 5 ms watch: it is asleep now.
    tokio::time::sleep(Duration::from_millis(100)).await;
    bus.publish(Event::new(EventType::TaskCreated)).await;
    eventually("the event committed without a flush", async || {
        store.last_sequence().await.unwrap() == 1
    })
    .await;
    recorder.close().await.unwrap();
}

/// A reservation holds room until dropped: another publisher's reservation
/// waits meanwhile, and gets the room once it is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_holds_its_room_until_dropped() {
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .capacity(4)
        .attach(&bus, SqliteStore::open_in_memory().unwrap());
    let whole = tokio::time::timeout(LIMIT, recorder.reserve(4))
        .await
        .expect("an empty queue has room")
        .unwrap();
    assert_eq!(whole.events(), 4);
    let other = recorder.clone();
    let waiting = tokio::spawn(async move { other.reserve(1).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiting.is_finished(),
        "a reservation was granted room another one holds"
    );
    drop(whole);
    let granted = tokio::time::timeout(LIMIT, waiting)
        .await
        .expect("the room given back went to the waiting reservation")
        .unwrap()
        .unwrap();
    assert_eq!(granted.events(), 1);
    drop(granted);
    recorder.close().await.unwrap();
}

/// Under `DropOldest` a publisher facing a full queue never waits: the
/// oldest queued events make room, are counted, and the next flush says
/// so; the newest are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_never_waits_and_loses_the_oldest_queued_events() {
    let store = Arc::new(Gated::new(SqliteStore::open_in_memory().unwrap()));
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .capacity(2)
        .max_batch(1)
        .overflow(Overflow::DropOldest)
        .attach(&bus, Arc::clone(&store));
    let numbered = |n: u64| Event::new(EventType::TaskCreated).with_data(json!({ "n": n }));
    let stuck = Event::new(EventType::TaskCreated).with_data(json!({ "n": 0, "gated": true }));
    bus.publish(stuck).await;
    eventually("the writer took the first event", async || {
        recorder.stats().in_flight == 1
    })
    .await;

    // Two fill the queue; two more push the two oldest out.
    let publisher = bus.clone();
    let (done, published) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        for n in 1..=4 {
            publisher.publish_blocking(numbered(n));
        }
        let _ = done.send(());
    });
    tokio::time::timeout(LIMIT, published)
        .await
        .expect("a publisher waited for room under DropOldest")
        .unwrap();
    assert_eq!(recorder.stats().dropped, 2);

    store.open();
    let flushed = tokio::time::timeout(LIMIT, recorder.flush()).await.unwrap();
    assert!(
        matches!(flushed, Err(StoreError::EventsDropped { count: 2 })),
        "{flushed:?}"
    );
    assert_eq!(recorder.flush().await.unwrap(), 3);
    let stored: Vec<_> = store
        .read(&ReadQuery::new())
        .await
        .unwrap()
        .iter()
        .map(|stored| stored.event.data["n"].as_u64().unwrap())
        .collect();
    assert_eq!(stored, [0, 3, 4], "the oldest queued (1 and 2) are lost");
    recorder.close().await.unwrap();
}
