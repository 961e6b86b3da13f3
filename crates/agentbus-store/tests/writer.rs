//! The recorder's writer thread, as the crate docs describe it: batches
//! (linger, full batches, a reserved publish gathered into one), what it
//! refuses at the door, counters, retries with backoff for events and dead
//! letters, giving up while closing, and background pruning. The stores
//! are SQLite behind the testkit's `Faulty` (a switch per failing part) or
//! `Throttled` (a slow writer).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::{Event, EventBus, EventType};
use agentbus_store::StoreError;
use agentbus_store::{EventStore, ReadQuery, Recorder, RecorderStats, Retention, SqliteStore};
use agentbus_testkit::logs::ProcessLogs;
use agentbus_testkit::store::conformance::stored_letters;
use agentbus_testkit::store::{close_within, within, Faulty, Throttled};
use serde_json::json;

/// Waits until `done(stats)` holds, failing the test after `limit`.
async fn until(
    recorder: &Recorder,
    limit: Duration,
    what: &str,
    done: impl Fn(&RecorderStats) -> bool,
) -> RecorderStats {
    let deadline = Instant::now() + limit;
    loop {
        let stats = recorder.stats();
        if done(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {limit:?}: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until `recorder` has counted `attempts` failed writes.
async fn failed_attempts(recorder: &Recorder, attempts: u64, what: &str) {
    until(recorder, Duration::from_secs(10), what, |s| {
        s.errors >= attempts
    })
    .await;
}

/// Closes `recorder` while `failing` is set, clears it once an attempt
/// made while closing has failed, and returns what the close returned.
async fn close_while_failing_then_recover(
    recorder: &Recorder,
    failing: &AtomicBool,
) -> Result<u64, StoreError> {
    failed_attempts(recorder, 1, "a failed attempt").await;
    let closing = tokio::spawn({
        let recorder = recorder.clone();
        async move { close_within(&recorder, Duration::from_secs(10)).await }
    });
    // The first attempt after the close fails too; the next ones may not.
    failed_attempts(recorder, 2, "an attempt while closing").await;
    failing.store(false, Ordering::SeqCst);
    closing.await.unwrap()
}

fn faulty() -> Arc<Faulty<SqliteStore>> {
    Arc::new(Faulty::new(SqliteStore::open_in_memory().unwrap()))
}

/// A bus whose `TaskCompleted` handler ("exporter") always fails, so each
/// such event leaves a dead letter.
fn bus_with_failing_exporter() -> EventBus {
    let bus = EventBus::new();
    bus.subscription(EventType::TaskCompleted)
        .name("exporter")
        .handler(|_e: &Event| -> Result<(), String> { Err("exporter down".into()) });
    bus
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_waits_for_dead_letter_changes_still_being_retried() {
    let store = faulty();
    let bus = bus_with_failing_exporter();
    let recorder = Recorder::builder()
        .retry_backoff(Duration::from_secs(1), Duration::from_secs(1))
        .attach(&bus, Arc::clone(&store));
    store.failing_letters.store(true, Ordering::SeqCst);
    bus.publish(Event::new(EventType::TaskCompleted)).await;
    failed_attempts(&recorder, 1, "a failed letter write").await;
    // The store is back, but the writer retries only after its backoff: a
    // flush now must wait for that retry, not report the letter durable.
    store.failing_letters.store(false, Ordering::SeqCst);
    within(Duration::from_secs(10), "flush", recorder.flush())
        .await
        .unwrap();
    assert_eq!(
        stored_letters(&store.inner).await.len(),
        1,
        "a flush returned before the dead letter it covers was stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_the_store_refuses_at_the_door_are_never_appended() {
    let store = faulty();
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, Arc::clone(&store));
    let refused = Event::new(EventType::TaskCreated).with_data(json!({ "unstorable": true }));
    let refused_id = refused.id;
    bus.publish(Event::new(EventType::TaskCreated)).await;
    bus.publish(refused).await;
    bus.publish(Event::new(EventType::TaskCreated)).await;
    assert_eq!(recorder.flush().await.unwrap(), 2);
    let stats = recorder.stats();
    assert_eq!((stats.committed, stats.rejected), (2, 1), "{stats:?}");
    assert_eq!(store.inner.get(refused_id).await.unwrap(), None);
}

#[tokio::test]
async fn duplicates_count_only_the_ids_already_stored() {
    let store = SqliteStore::open_in_memory().unwrap();
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, store);
    let event = Event::new(EventType::TaskCreated);
    bus.publish(event.clone()).await;
    bus.publish(Event::new(EventType::TaskCreated)).await;
    recorder.flush().await.unwrap();
    bus.publish(event).await; // a replay: stored already
    assert_eq!(recorder.flush().await.unwrap(), 2);
    let stats = recorder.stats();
    assert_eq!((stats.committed, stats.duplicates), (2, 1), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_being_retried_holds_at_most_max_batch_events() {
    let store = faulty();
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .max_batch(3)
        .retry_backoff(Duration::from_millis(100), Duration::from_millis(100))
        .attach(&bus, Arc::clone(&store));
    store.failing_appends.store(true, Ordering::SeqCst);
    for _ in 0..10 {
        bus.publish(Event::new(EventType::TaskCreated)).await;
    }
    // Each retry tops the batch up from the queue: by the third attempt all
    // ten are handed off, and the batch is as full as it may be.
    let stats = until(&recorder, Duration::from_secs(10), "three attempts", |s| {
        s.errors >= 3
    })
    .await;
    assert_eq!((stats.in_flight, stats.queued), (3, 7), "{stats:?}");
    assert_eq!(store.largest_batch.load(Ordering::SeqCst), 3);
    store.failing_appends.store(false, Ordering::SeqCst);
    assert_eq!(recorder.flush().await.unwrap(), 10);
    assert_eq!(store.largest_batch.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_reservation_gets_room_as_soon_as_the_writer_takes_events() {
    let slow = Arc::new(Throttled::new(
        SqliteStore::open_in_memory().unwrap(),
        Duration::from_millis(500),
    ));
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .capacity(4)
        .max_batch(4)
        .attach(&bus, Arc::clone(&slow));
    bus.publish(Event::new(EventType::TaskCreated)).await;
    until(
        &recorder,
        Duration::from_secs(10),
        "the first event taken",
        |s| s.in_flight == 1,
    )
    .await;
    for _ in 0..4 {
        bus.publish(Event::new(EventType::TaskCreated)).await;
    }
    // The queue is full while the first event commits (500 ms); the room
    // comes when the writer takes the next four, before they commit.
    let room = within(Duration::from_secs(10), "reserve", recorder.reserve(4))
        .await
        .unwrap();
    let stats = recorder.stats();
    assert!(
        stats.committed <= 1,
        "the room came only after the events that filled the queue were committed: {stats:?}"
    );
    drop(room);
    assert_eq!(recorder.flush().await.unwrap(), 5);
}

/// Linger holds a batch open: an event published 20 ms after another joins
/// its batch under a 1 s linger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linger_holds_a_batch_open_for_events_published_meanwhile() {
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .linger(Duration::from_secs(1))
        .attach(&bus, SqliteStore::open_in_memory().unwrap());
    bus.publish(Event::new(EventType::TaskCreated)).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    bus.publish(Event::new(EventType::TaskCreated)).await;
    assert_eq!(recorder.flush().await.unwrap(), 2);
    let stats = recorder.stats();
    assert_eq!(stats.batches, 1, "{stats:?}");
}

/// A full batch has nothing to wait for: it commits at once, linger or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_commits_without_lingering() {
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .max_batch(1)
        .linger(Duration::from_secs(30))
        .attach(&bus, SqliteStore::open_in_memory().unwrap());
    bus.publish(Event::new(EventType::TaskCreated)).await;
    until(
        &recorder,
        Duration::from_secs(5),
        "the full batch committed",
        |s| s.committed == 1,
    )
    .await;
}

/// A publisher holding a reservation publishes a batch of its own (a web
/// `POST`): the writer waits for the rest of it (until the reservation is
/// dropped, at most 2 ms), so it commits in one transaction. A loaded
/// machine may stretch the second publish past the 2 ms, so it needs 5
/// whole batches in up to 60 tries (a writer that does not wait makes none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_publish_commits_in_one_batch() {
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, SqliteStore::open_in_memory().unwrap());
    let mut whole = 0;
    for _ in 0..60 {
        if whole == 5 {
            break;
        }
        let before = recorder.stats();
        let room = recorder.reserve(2).await.unwrap();
        bus.publish(Event::new(EventType::TaskCreated)).await;
        // The writer takes the first event alone, then waits for the rest.
        let deadline = Instant::now() + Duration::from_secs(5);
        while recorder.stats().queued > 0 {
            assert!(Instant::now() < deadline, "the first event never taken");
            std::hint::spin_loop();
        }
        // Past any look the writer takes at once (a stale wake-up), well
        // inside the 2 ms it waits.
        std::thread::sleep(Duration::from_micros(300));
        bus.publish(Event::new(EventType::TaskCreated)).await;
        drop(room);
        until(&recorder, Duration::from_secs(5), "both committed", |s| {
            s.committed == before.committed + 2
        })
        .await;
        recorder.flush().await.unwrap(); // the counters of that commit are all in
        if recorder.stats().batches - before.batches == 1 {
            whole += 1;
        }
    }
    assert_eq!(
        whole, 5,
        "only {whole} of 60 reserved publishes were one batch"
    );
}

/// A lone event commits at once: with the default batch size it waits only
/// for the writer's 5 µs look at whether a burst is still growing, so its
/// latency is within 150 µs of a recorder whose batches of one skip that
/// look. The minimum of 100 tries each, in alternating order (whichever goes
/// first after a quiet pays more), on one machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_event_commits_at_once() {
    async fn latency(bus: &EventBus, recorder: &Recorder) -> Duration {
        let committed = recorder.stats().committed;
        let started = Instant::now();
        bus.publish(Event::new(EventType::TaskCreated)).await;
        while recorder.stats().committed == committed {
            std::hint::spin_loop();
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "never committed"
            );
        }
        started.elapsed()
    }
    let (bus, ones) = (EventBus::new(), EventBus::new());
    let recorder = Recorder::attach(&bus, SqliteStore::open_in_memory().unwrap());
    let one_by_one = Recorder::builder()
        .max_batch(1)
        .attach(&ones, SqliteStore::open_in_memory().unwrap());
    let (mut lone, mut baseline) = (Duration::MAX, Duration::MAX);
    for round in 0..100 {
        if round % 2 == 0 {
            lone = lone.min(latency(&bus, &recorder).await);
            baseline = baseline.min(latency(&ones, &one_by_one).await);
        } else {
            baseline = baseline.min(latency(&ones, &one_by_one).await);
            lone = lone.min(latency(&bus, &recorder).await);
        }
        // A quiet longer than the writer's burst watch (5 ms): each event
        // finds its writer asleep, as a lone event does.
        tokio::time::sleep(Duration::from_millis(8)).await;
    }
    assert!(
        lone < baseline + Duration::from_micros(150),
        "a lone event took {lone:?} at best, a batch of one {baseline:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_appends_are_retried_with_a_doubling_backoff() {
    let store = faulty();
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .retry_backoff(Duration::from_millis(20), Duration::from_secs(10))
        .attach(&bus, Arc::clone(&store));
    store.failing_appends.store(true, Ordering::SeqCst);
    bus.publish(Event::new(EventType::TaskCreated)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // 20, 40, 80, 160, 320 ms: six attempts in the first second, at most.
    let errors = recorder.stats().errors;
    assert!((1..=8).contains(&errors), "{errors} attempts in 1 s");
    store.failing_appends.store(false, Ordering::SeqCst);
    assert_eq!(recorder.flush().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_dead_letter_writes_are_retried_with_a_doubling_backoff() {
    let store = faulty();
    let bus = bus_with_failing_exporter();
    let recorder = Recorder::builder()
        .retry_backoff(Duration::from_millis(20), Duration::from_secs(10))
        .attach(&bus, Arc::clone(&store));
    store.failing_letters.store(true, Ordering::SeqCst);
    bus.publish(Event::new(EventType::TaskCompleted)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let errors = recorder.stats().errors;
    assert!((1..=8).contains(&errors), "{errors} attempts in 1 s");
    store.failing_letters.store(false, Ordering::SeqCst);
    within(Duration::from_secs(10), "flush", recorder.flush())
        .await
        .unwrap();
    assert_eq!(stored_letters(&store.inner).await.len(), 1);
}

/// While dead-letter writes wait out their backoff, events keep flowing
/// and do not bring the letters' retry forward.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_committed_meanwhile_do_not_hurry_a_dead_letter_retry() {
    let store = faulty();
    let bus = bus_with_failing_exporter();
    let recorder = Recorder::builder()
        .retry_backoff(Duration::from_secs(2), Duration::from_secs(2))
        .attach(&bus, Arc::clone(&store));
    store.failing_letters.store(true, Ordering::SeqCst);
    bus.publish(Event::new(EventType::TaskCompleted)).await;
    failed_attempts(&recorder, 1, "a failed letter write").await;
    for n in 0..20u64 {
        bus.publish(Event::new(EventType::TaskCreated)).await;
        until(
            &recorder,
            Duration::from_secs(10),
            "the event committed",
            |s| s.committed == n + 2,
        )
        .await;
    }
    let stats = recorder.stats();
    assert_eq!(stats.errors, 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_gives_up_after_a_few_attempts_on_a_store_that_keeps_failing() {
    let store = faulty();
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .max_batch(1)
        .retry_backoff(Duration::from_millis(100), Duration::from_millis(100))
        .attach(&bus, Arc::clone(&store));
    store.failing_appends.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        bus.publish(Event::new(EventType::TaskCreated)).await;
    }
    let error = close_within(&recorder, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::FlushFailed { .. }), "{error:?}");
    let stats = recorder.stats();
    // At most one attempt before the close arrived, then three.
    assert!((3..=4).contains(&stats.errors), "{stats:?}");
    assert_eq!(stats.queued, 0, "abandoned events are let go: {stats:?}");
    assert_eq!(store.inner.last_sequence().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_back_while_closing_gets_every_event() {
    let store = faulty();
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .retry_backoff(Duration::from_millis(200), Duration::from_millis(200))
        .attach(&bus, Arc::clone(&store));
    store.failing_appends.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        bus.publish(Event::new(EventType::TaskCreated)).await;
    }
    let closed = close_while_failing_then_recover(&recorder, &store.failing_appends).await;
    // The close was told of the failure; the writer still stores every
    // event before it stops.
    assert!(
        matches!(closed, Err(StoreError::FlushFailed { .. })),
        "{closed:?}"
    );
    assert_eq!(store.inner.last_sequence().await.unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_gives_up_on_dead_letters_a_store_keeps_failing() {
    let store = faulty();
    let bus = bus_with_failing_exporter();
    let recorder = Recorder::builder()
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(50))
        .attach(&bus, Arc::clone(&store));
    store.failing_letters.store(true, Ordering::SeqCst);
    bus.publish(Event::new(EventType::TaskCompleted)).await;
    let error = close_within(&recorder, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::FlushFailed { .. }), "{error:?}");
    assert!(stored_letters(&store.inner).await.is_empty());
    assert_eq!(
        store.inner.last_sequence().await.unwrap(),
        1,
        "the event is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_back_while_closing_are_stored() {
    let store = faulty();
    let bus = bus_with_failing_exporter();
    let recorder = Recorder::builder()
        .retry_backoff(Duration::from_millis(200), Duration::from_millis(200))
        .attach(&bus, Arc::clone(&store));
    store.failing_letters.store(true, Ordering::SeqCst);
    bus.publish(Event::new(EventType::TaskCompleted)).await;
    let closed = close_while_failing_then_recover(&recorder, &store.failing_letters).await;
    // The close was told of the failure; the writer still stores the letter
    // before it stops.
    assert!(
        matches!(closed, Err(StoreError::FlushFailed { .. })),
        "{closed:?}"
    );
    assert_eq!(stored_letters(&store.inner).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_retention_the_writer_never_prunes() {
    let store = faulty();
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, Arc::clone(&store));
    for _ in 0..3 {
        bus.publish(Event::new(EventType::TaskCreated)).await;
        recorder.flush().await.unwrap();
    }
    recorder.close().await.unwrap();
    assert_eq!(store.prunes.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_at_start_then_once_per_interval() {
    let store = faulty();
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .retention(
            Retention::forever().max_events(2),
            Duration::from_secs(3600),
        )
        .attach(&bus, Arc::clone(&store));
    for _ in 0..5 {
        bus.publish(Event::new(EventType::TaskCreated)).await;
        recorder.flush().await.unwrap();
    }
    assert_eq!(recorder.close().await.unwrap(), 5);
    assert_eq!(store.prunes.load(Ordering::SeqCst), 1, "at start only");
    let kept = store.inner.read(&ReadQuery::new()).await.unwrap();
    assert_eq!(kept.len(), 5, "the next prune is an hour away");
}

/// Giving up on close is logged at `ERROR` with the number of events
/// abandoned (the one in flight and those still queued): nobody was told
/// they were durable, and this line is all that says they are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giving_up_on_close_logs_how_many_events_were_abandoned() {
    let logs = ProcessLogs::start();
    let store = faulty();
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .max_batch(1)
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(10))
        .attach(&bus, Arc::clone(&store));
    store.failing_appends.store(true, Ordering::SeqCst);
    for _ in 0..7 {
        bus.publish(Event::new(EventType::TaskCreated)).await;
    }
    close_within(&recorder, Duration::from_secs(10))
        .await
        .unwrap_err();
    let logs = logs.finish();
    assert!(
        logs.lines()
            .any(|line| line.contains("ERROR") && line.contains("abandoned=7")),
        "no ERROR line with abandoned=7 in:\n{logs}"
    );
}
