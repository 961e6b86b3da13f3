//! [`Recorder::track`] and [`Tracked::commit`]: the sequences a publisher's
//! own events were given, straight from the writer, waiting for those
//! events and no others.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use agentbus::{Event, EventBus, EventType};
use agentbus_store::{Recorder, SqliteStore, StoreError};
use agentbus_testkit::store::Gated;
use serde_json::json;

/// Far longer than any commit takes here, even on a loaded machine.
const LIMIT: Duration = Duration::from_secs(20);

fn gated() -> Arc<Gated<SqliteStore>> {
    Arc::new(Gated::new(SqliteStore::open_in_memory().unwrap()))
}

fn gated_event() -> Event {
    Event::new(EventType::TaskCreated).with_data(json!({ "gated": true }))
}

#[tokio::test]
async fn commit_gives_each_new_event_its_sequence_and_none_to_an_id_already_stored() {
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, SqliteStore::open_in_memory().unwrap());
    let first = Event::new(EventType::TaskCreated);
    bus.publish(first.clone()).await;
    assert_eq!(recorder.flush().await.unwrap(), 1);
    let second = Event::new(EventType::TaskCreated);

    let tracked = recorder.track(&[first.id, second.id]);
    assert_eq!(tracked.ids(), [first.id, second.id]);
    bus.publish(first).await; // a retry: already stored
    bus.publish(second).await;
    let sequences = tokio::time::timeout(LIMIT, tracked.commit()).await.unwrap();
    assert_eq!(sequences.unwrap(), [None, Some(2)]);
    recorder.close().await.unwrap();
}

/// `commit` returns once the tracked events are committed, not before:
/// while the store holds the write, it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_waits_until_its_events_are_committed() {
    let store = gated();
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, Arc::clone(&store));
    let event = gated_event();
    let tracked = recorder.track(&[event.id]);
    bus.publish(event).await;
    let commit = tokio::spawn(tracked.commit());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !commit.is_finished(),
        "commit returned while its event was still being written: {:?}",
        commit.await
    );
    store.open();
    let sequences = tokio::time::timeout(LIMIT, commit).await.unwrap().unwrap();
    assert_eq!(sequences.unwrap(), [Some(1)]);
    recorder.close().await.unwrap();
}

/// `commit` waits for its own events only: one published after them,
/// whose write hangs, does not hold it (a flush would wait for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_does_not_wait_for_events_queued_behind_its_own() {
    let store = gated();
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .max_batch(1)
        .attach(&bus, Arc::clone(&store));
    let mine = Event::new(EventType::TaskCreated);
    let tracked = recorder.track(&[mine.id]);
    bus.publish(mine).await;
    bus.publish(gated_event()).await; // another publisher's, stuck
    let sequences = tokio::time::timeout(LIMIT, tracked.commit())
        .await
        .expect("commit waited for an event it does not track");
    assert_eq!(sequences.unwrap(), [Some(1)]);
    store.open();
    assert_eq!(
        tokio::time::timeout(LIMIT, recorder.flush())
            .await
            .unwrap()
            .unwrap(),
        2
    );
    recorder.close().await.unwrap();
}

/// A body that repeats an id gets the sequence once, then `None`.
#[tokio::test]
async fn a_repeated_id_gets_its_sequence_once_then_none() {
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, SqliteStore::open_in_memory().unwrap());
    let event = Event::new(EventType::TaskCreated);
    let tracked = recorder.track(&[event.id, event.id]);
    bus.publish(event.clone()).await;
    bus.publish(event).await;
    let sequences = tokio::time::timeout(LIMIT, tracked.commit()).await.unwrap();
    assert_eq!(sequences.unwrap(), [Some(1), None]);
    recorder.close().await.unwrap();
}

/// Two publishers tracking the same id at once both learn the sequence
/// it was stored under.
#[tokio::test]
async fn publishers_tracking_one_id_at_once_each_get_its_sequence() {
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, SqliteStore::open_in_memory().unwrap());
    let event = Event::new(EventType::TaskCreated);
    let first = recorder.track(&[event.id]);
    let second = recorder.track(&[event.id]);
    bus.publish(event).await;
    let first = tokio::time::timeout(LIMIT, first.commit()).await.unwrap();
    let second = tokio::time::timeout(LIMIT, second.commit()).await.unwrap();
    assert_eq!(first.unwrap(), [Some(1)]);
    assert_eq!(second.unwrap(), [Some(1)]);
    recorder.close().await.unwrap();
}

/// A publisher that tracks an id after it was stored (a retry) learns it
/// was already stored, whatever an earlier tracker of the same id, not
/// committed yet, learns.
#[tokio::test]
async fn a_later_tracker_of_a_stored_id_gets_none_and_the_earlier_one_its_sequence() {
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, SqliteStore::open_in_memory().unwrap());
    let event = Event::new(EventType::TaskCreated);
    let earlier = recorder.track(&[event.id]);
    bus.publish(event.clone()).await;
    recorder.flush().await.unwrap();
    let later = recorder.track(&[event.id]);
    bus.publish(event).await;
    let later = tokio::time::timeout(LIMIT, later.commit()).await.unwrap();
    assert_eq!(later.unwrap(), [None]);
    let earlier = tokio::time::timeout(LIMIT, earlier.commit()).await.unwrap();
    assert_eq!(earlier.unwrap(), [Some(1)]);
    recorder.close().await.unwrap();
}

/// An event the store refuses, or one never published, fails `commit`
/// with `NotRecorded` naming it; the others are still stored.
#[tokio::test]
async fn commit_names_an_event_refused_or_never_published() {
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, SqliteStore::open_in_memory().unwrap());
    let fine = Event::new(EventType::TaskCreated);
    let mut late = Event::new(EventType::TaskCreated);
    late.timestamp = UNIX_EPOCH + Duration::from_secs(10_000_000_000); // year 2286
    let tracked = recorder.track(&[fine.id, late.id]);
    bus.publish(fine).await;
    bus.publish(late.clone()).await;
    match tokio::time::timeout(LIMIT, tracked.commit()).await.unwrap() {
        Err(StoreError::NotRecorded { index: 1, id }) => assert_eq!(id, late.id.to_string()),
        other => panic!("expected NotRecorded for index 1, got {other:?}"),
    }

    let unpublished = Event::new(EventType::TaskCreated);
    let tracked = recorder.track(&[unpublished.id]);
    match tokio::time::timeout(LIMIT, tracked.commit()).await.unwrap() {
        Err(StoreError::NotRecorded { index: 0, id }) => {
            assert_eq!(id, unpublished.id.to_string())
        }
        other => panic!("expected NotRecorded for index 0, got {other:?}"),
    }
    assert_eq!(recorder.close().await.unwrap(), 1);
}
