//! Catch-up over a backlog of several pages: the next page is read while
//! the backlog is dense, and the stream still delivers every matching
//! sequence once, in order, dense or sparse (a filter), from any start; no
//! more than two pages are read ahead; a live event is the published `Arc`.
//! Every wait has a deadline that holds even if the stream spins.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentbus::{Event, EventBus, EventId, EventType};
use agentbus_store::{
    Appended, BoxFuture, EventStore, ReadQuery, Recorder, Retention, SqliteStore, StoreError,
    StoredEvent,
};
use agentbus_testkit::store::collect_within;
use agentbus_testkit::traffic::numbered;
use futures_util::StreamExt;
use tokio::sync::watch;

const STORED: u64 = 2_600;

/// The sequences and types a fresh stream delivers from `after`, up to the
/// end of the backlog.
async fn delivered(
    recorder: &Recorder,
    after: u64,
    filter: ReadQuery,
    count: usize,
) -> Vec<(u64, EventType)> {
    collect_within(
        recorder.subscribe_from(after, filter),
        count,
        Duration::from_secs(30),
    )
    .await
    .into_iter()
    .map(|item| {
        let stored = item.expect("a readable event");
        (stored.sequence, stored.event.event_type)
    })
    .collect()
}

/// `recorder.flush()`, within 30 s (a flush that never returns fails the
/// test).
async fn flushed(recorder: &Recorder) -> u64 {
    tokio::time::timeout(Duration::from_secs(30), recorder.flush())
        .await
        .expect("flushed within 30 s")
        .unwrap()
}

/// A recorder on a fresh SQLite file holding `total` events, sequence `s`
/// of type `type_of(s)`; the directory lives as long as the recorder is
/// used.
async fn stored(
    total: u64,
    type_of: impl Fn(u64) -> EventType,
) -> (tempfile::TempDir, EventBus, Recorder) {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new();
    let recorder = Recorder::attach(
        &bus,
        SqliteStore::open(dir.path().join("events.db")).unwrap(),
    );
    for sequence in 1..=total {
        bus.publish(Event::new(type_of(sequence))).await;
    }
    assert_eq!(flushed(&recorder).await, total);
    (dir, bus, recorder)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_several_pages_arrives_whole_in_order_dense_or_filtered() {
    let type_of = |sequence: u64| {
        if sequence.is_multiple_of(3) {
            EventType::TaskFailed
        } else {
            EventType::TaskCreated
        }
    };
    let (_dir, _bus, recorder) = stored(STORED, type_of).await;

    for after in [0, 700, 999, 1000, 1001] {
        let expected: Vec<(u64, EventType)> =
            (after + 1..=STORED).map(|s| (s, type_of(s))).collect();
        let got = delivered(&recorder, after, ReadQuery::new(), expected.len()).await;
        assert_eq!(got, expected, "unfiltered, after {after}");

        // One type in three (a page spans 3000 sequences), and two in three
        // (a full page overlaps the one read ahead of it).
        for kept in [EventType::TaskFailed, EventType::TaskCreated] {
            let expected: Vec<(u64, EventType)> = (after + 1..=STORED)
                .map(|s| (s, type_of(s)))
                .filter(|&(_, t)| t == kept)
                .collect();
            let filter = ReadQuery::new().event_type(kept);
            let got = delivered(&recorder, after, filter, expected.len()).await;
            assert_eq!(got, expected, "only {kept:?}, after {after}");
        }
    }
}

/// A backlog dense for two pages, then a run the filter leaves out, then
/// dense again for several pages: the reads started ahead while it was
/// dense either overlap what was delivered (rows skipped) or start past it
/// (dropped and read again), and a stream polled slowly (the reads ahead
/// finish long before the consumer takes their pages) sees the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_ahead_across_a_filtered_out_run_miss_nothing_and_repeat_nothing() {
    const TOTAL: u64 = 6_100;
    let type_of = |sequence: u64| {
        if (2_001..=2_700).contains(&sequence) {
            EventType::TaskFailed
        } else {
            EventType::TaskCreated
        }
    };
    let (_dir, _bus, recorder) = stored(TOTAL, type_of).await;

    for after in [0, 1_000, 1_999] {
        let expected: Vec<u64> = (after + 1..=TOTAL)
            .filter(|&s| type_of(s) == EventType::TaskCreated)
            .collect();
        let filter = ReadQuery::new().event_type(EventType::TaskCreated);
        let got: Vec<u64> = delivered(&recorder, after, filter, expected.len())
            .await
            .into_iter()
            .map(|(sequence, _)| sequence)
            .collect();
        assert_eq!(got, expected, "after {after}");
    }

    let slowly = recorder
        .subscribe_from(0, ReadQuery::new().event_type(EventType::TaskCreated))
        .then(|item| async move {
            let sequence = item.unwrap().sequence;
            if sequence % 500 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            sequence
        });
    let got = collect_within(slowly, (TOTAL - 700) as usize, Duration::from_secs(30)).await;
    let expected: Vec<u64> = (1..=TOTAL)
        .filter(|&s| type_of(s) == EventType::TaskCreated)
        .collect();
    assert_eq!(got, expected, "polled slowly");
}

/// A store whose read of page `k` (after sequence `k * 1000`) waits until
/// the test has released more than `k` pages; it counts the reads started
/// and the most running at once.
struct Gated {
    inner: SqliteStore,
    released: watch::Sender<u64>,
    started: AtomicUsize,
    running: AtomicUsize,
    most_running: AtomicUsize,
}

impl EventStore for Gated {
    fn append<'a>(
        &'a self,
        events: &'a [Arc<Event>],
    ) -> BoxFuture<'a, Result<Appended, StoreError>> {
        self.inner.append(events)
    }

    fn read<'a>(
        &'a self,
        query: &'a ReadQuery,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>> {
        Box::pin(async move {
            self.started.fetch_add(1, Ordering::SeqCst);
            let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_running.fetch_max(running, Ordering::SeqCst);
            let page = query.get_after() / 1000;
            let mut released = self.released.subscribe();
            released.wait_for(|&pages| pages > page).await.unwrap();
            let page = self.inner.read(query).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            page
        })
    }

    fn get(&self, id: EventId) -> BoxFuture<'_, Result<Option<StoredEvent>, StoreError>> {
        self.inner.get(id)
    }

    fn last_sequence(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.inner.last_sequence()
    }

    fn prune<'a>(&'a self, retention: &'a Retention) -> BoxFuture<'a, Result<u64, StoreError>> {
        self.inner.prune(retention)
    }
}

/// "Up to two pages of 1000 are being read while the consumer takes the
/// page before them": a consumer waiting for the first page of a dense
/// backlog has two reads started, and no more; each page taken starts the
/// read of the next one (as long as the backlog is dense), so two stay in
/// flight; and each page is read once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_is_read_two_pages_ahead_and_no_further() {
    const TOTAL: u64 = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let inner = SqliteStore::open(dir.path().join("events.db")).unwrap();
    let events: Vec<Arc<Event>> = (0..TOTAL).map(|n| Arc::new(numbered(n))).collect();
    inner.append(&events).await.unwrap();
    let gated = Arc::new(Gated {
        inner,
        released: watch::Sender::new(0),
        started: AtomicUsize::new(0),
        running: AtomicUsize::new(0),
        most_running: AtomicUsize::new(0),
    });
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, Arc::clone(&gated));

    let consumer = collect_within(
        recorder.subscribe_from(0, ReadQuery::new()),
        TOTAL as usize,
        Duration::from_secs(60),
    );
    // Page by page: with `released` pages read, the next two are being
    // read (as many as are left), and no more.
    let gate = async {
        for released in 0..5_usize {
            let ahead = (released + 2).min(5);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while gated.started.load(Ordering::SeqCst) < ahead {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{} reads started, not {ahead}, with {released} pages read",
                    gated.started.load(Ordering::SeqCst)
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // Time for one more read to start if one were going to.
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(
                gated.started.load(Ordering::SeqCst),
                ahead,
                "reads started with {released} pages read"
            );
            gated.released.send_replace(released as u64 + 1);
        }
    };
    let (items, ()) = tokio::join!(consumer, gate);
    let sequences: Vec<u64> = items
        .into_iter()
        .map(|item| item.unwrap().sequence)
        .collect();
    assert_eq!(sequences, (1..=TOTAL).collect::<Vec<_>>());
    assert_eq!(gated.most_running.load(Ordering::SeqCst), 2);
    // Five pages, five reads: none read twice, none past the backlog's end.
    assert_eq!(gated.started.load(Ordering::SeqCst), 5);
}

/// "An event that arrives live is the `Arc` published on the bus": after
/// the backlog, the next event is not read back from the store.
#[tokio::test]
async fn a_live_event_is_the_arc_published_not_a_copy_read_back() {
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, SqliteStore::open_in_memory().unwrap());
    bus.publish(Event::new(EventType::TaskCreated)).await;
    flushed(&recorder).await;
    let stream = recorder.subscribe_from(0, ReadQuery::new());
    assert_eq!(format!("{stream:?}"), "CatchUp { .. }");

    // Published once the stored event is taken, so it comes live.
    let published = Arc::new(Event::new(EventType::TaskCompleted));
    let publish_after_the_backlog = {
        let (bus, published) = (bus.clone(), Arc::clone(&published));
        move |item: Result<StoredEvent, StoreError>| {
            let (bus, published) = (bus.clone(), Arc::clone(&published));
            async move {
                if item.as_ref().is_ok_and(|stored| stored.sequence == 1) {
                    bus.publish(published).await;
                }
                item
            }
        }
    };
    let items = collect_within(
        stream.then(publish_after_the_backlog),
        2,
        Duration::from_secs(30),
    )
    .await;
    let live = items[1].as_ref().unwrap();
    assert_eq!(live.sequence, 2);
    assert!(Arc::ptr_eq(&live.event, &published), "a copy: {live:?}");
}
