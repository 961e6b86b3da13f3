//! One behaviour for every backend: each case takes a fresh, empty store and
//! checks one promise of [`EventStore`] and the recorder, catch-up, replay
//! and projections built on it. The store crate runs the suite against
//! SQLite and PostgreSQL with [`conformance_suite!`](crate::conformance_suite).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agentbus::{Event, EventBus, EventId, EventType, EventTypeSet, HistoryQuery};
use agentbus_store::{
    replay, EventStore, Order, Overflow, Projection, ReadQuery, Recorder, Retention, StoreError,
    StoredEvent,
};
use futures_util::StreamExt;

use super::{assert_contiguous, read_all, within, Picky, Throttled};

mod dead_letters;

use crate::traffic::numbered;
pub use dead_letters::*;

/// One `#[tokio::test]` per case of the suite (a multi-threaded runtime
/// with two workers), each calling the case with the store `$make` yields:
/// an expression evaluated in the test, of type `Option<S>` where `S:
/// EventStore + Clone` (`None`: the backend is unavailable and the test
/// returns, the message already printed). The calling crate needs tokio
/// with `macros` and `rt-multi-thread`.
///
/// ```text
/// agentbus_testkit::conformance_suite!(sqlite_store());
/// ```
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@cases $make;
            append_gives_gap_free_sequences_and_skips_known_ids,
            events_round_trip_exactly,
            read_filters_orders_and_pages,
            cursors_beyond_the_largest_sequence_read_nothing,
            get_reads_one_event_by_id,
            correlation_reads_a_whole_chain_as_the_bus_history_does,
            recorder_stores_every_event_of_concurrent_publishers,
            flush_covers_every_earlier_publish_while_publishers_run,
            catch_up_seam_has_no_gap_and_no_duplicate,
            catch_up_refills_a_consumer_that_fell_behind,
            replay_keeps_ids_and_never_stores_twice,
            projection_resumed_from_a_snapshot_equals_a_rebuild,
            retention_prunes_in_the_background,
            two_recorders_share_one_store,
            a_store_chosen_at_run_time_works_behind_arc_dyn,
            a_slow_writer_slows_publishers_and_memory_stays_bounded,
            reserving_publishers_never_wait_on_their_thread,
            drop_policy_counts_drops_and_flush_reports_them,
            store_failures_are_retried_and_flush_reports_them,
            events_the_store_refuses_are_skipped_not_retried_forever,
            dead_letters_round_trip_filter_and_replace,
            dead_letters_survive_a_restart_and_redrive_by_name,
            dead_letters_beyond_the_bound_leave_the_store_too,
            a_late_recorder_stores_every_letter_already_kept,
            dead_letter_writes_that_fail_are_retried,
        );
    };
    (@cases $make:expr; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(store) = $make else { return };
                $crate::store::conformance::$case(store).await;
            }
        )*
    };
}

/// `append` numbers new events from 1 without gaps and skips ids already
/// stored (also ids repeated within a batch) without using up a sequence.
pub async fn append_gives_gap_free_sequences_and_skips_known_ids<S: EventStore + Clone>(store: S) {
    assert_eq!(store.last_sequence().await.unwrap(), 0);
    let events: Vec<Arc<Event>> = (0..5).map(|n| Arc::new(numbered(n))).collect();
    let appended = store.append(&events[..3]).await.unwrap();
    assert_eq!(appended.sequences, vec![Some(1), Some(2), Some(3)]);
    assert_eq!(appended.last_sequence, 3);

    // Known ids (also repeated within the batch) are skipped without a gap.
    let batch = vec![
        Arc::clone(&events[1]),
        Arc::clone(&events[3]),
        Arc::clone(&events[3]),
        Arc::clone(&events[4]),
    ];
    let appended = store.append(&batch).await.unwrap();
    assert_eq!(appended.sequences, vec![None, Some(4), None, Some(5)]);
    assert_eq!(store.last_sequence().await.unwrap(), 5);

    let all = read_all(&store).await;
    assert_contiguous(&all, 1, 5);
    let ids: Vec<_> = all.iter().map(|s| s.event.id).collect();
    let expected: Vec<_> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids, expected);

    // An empty batch and an all-duplicate batch change nothing.
    assert_eq!(store.append(&[]).await.unwrap().last_sequence, 5);
    assert_eq!(
        store.append(&events).await.unwrap().sequences,
        vec![None; 5]
    );
    assert_eq!(store.last_sequence().await.unwrap(), 5);
}

/// Every field of an event comes back exactly as appended: odd data,
/// extreme ids, a causal link, a timestamp to the nanosecond, a trace
/// context with and without a `tracestate`, and none.
pub async fn events_round_trip_exactly<S: EventStore + Clone>(store: S) {
    let parent = Event::new(EventType::TaskCompleted)
        .with_data(serde_json::json!({
            "unicode": "naïve ✓ \u{0}", "big": i64::MAX, "float": 0.1, "neg": -1.5e300,
            "empty": {}, "list": [null, true, [1]]
        }))
        .with_source_agent(-3)
        .with_circle(i64::MIN)
        .with_project(i64::MAX);
    let traced = agentbus::TraceContext::parse(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        Some("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"),
    )
    .unwrap();
    let child = Event::new(EventType::AgentToolExecuted)
        .caused_by(&parent)
        .with_trace_context(traced);
    let untraced_state = agentbus::TraceContext::parse(
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
        None,
    )
    .unwrap();
    let parent = parent.with_trace_context(untraced_state);
    let mut odd = Event::new(EventType::SystemWarning).with_data(serde_json::json!("a string"));
    odd.timestamp = std::time::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
    let events = [parent, child, odd].map(Arc::new);
    store.append(&events).await.unwrap();
    let stored = read_all(&store).await;
    let back: Vec<&Event> = stored.iter().map(|s| &*s.event).collect();
    let original: Vec<&Event> = events.iter().map(|e| &**e).collect();
    assert_eq!(
        back, original,
        "every field, the timestamp to the nanosecond"
    );
}

/// `read` applies each filter of [`ReadQuery`], both orders, `after`,
/// `up_to` and `limit`, alone and together.
pub async fn read_filters_orders_and_pages<S: EventStore + Clone>(store: S) {
    let before = SystemTime::now();
    let mut events: Vec<Arc<Event>> = (0..40).map(|n| Arc::new(numbered(n))).collect();
    let chain = Event::new(EventType::TaskCreated);
    let linked = Event::new(EventType::TaskStarted).caused_by(&chain);
    events.push(Arc::new(chain.clone()));
    events.push(Arc::new(linked.clone()));
    store.append(&events).await.unwrap();
    let after_all = SystemTime::now();

    let read = |query: ReadQuery| {
        let store = store.clone();
        async move { store.read(&query).await.unwrap() }
    };
    let expect = |filter: &dyn Fn(&Event) -> bool| -> Vec<u64> {
        events
            .iter()
            .enumerate()
            .filter(|(_, e)| filter(e))
            .map(|(i, _)| i as u64 + 1)
            .collect()
    };
    let sequences =
        |stored: Vec<StoredEvent>| stored.iter().map(|s| s.sequence).collect::<Vec<_>>();

    assert_eq!(
        sequences(read(ReadQuery::new().event_type(EventType::TaskCompleted)).await),
        expect(&|e| e.event_type == EventType::TaskCompleted)
    );
    let pair = EventTypeSet::from([EventType::TaskCreated, EventType::MemoryShared]);
    assert_eq!(
        sequences(read(ReadQuery::new().event_type(pair)).await),
        expect(&|e| pair.contains(e.event_type))
    );
    assert_eq!(
        sequences(
            read(
                ReadQuery::new()
                    .circle_id(2)
                    .source_agent_id(1)
                    .project_id(7)
            )
            .await
        ),
        expect(&|e| e.circle_id == Some(2)
            && e.source_agent_id == Some(1)
            && e.project_id == Some(7))
    );
    assert_eq!(
        sequences(read(ReadQuery::new().correlation_id(chain.id)).await),
        vec![41, 42],
        "the chain: its root, then the event caused by it"
    );
    assert_eq!(
        read(ReadQuery::new().since(before).until(after_all))
            .await
            .len(),
        42
    );
    assert!(read(ReadQuery::new().since(after_all)).await.is_empty());
    assert!(read(ReadQuery::new().until(before)).await.is_empty());
    assert!(read(ReadQuery::new().event_type(EventTypeSet::empty()))
        .await
        .is_empty());
    assert!(read(ReadQuery::new().limit(0)).await.is_empty());

    // The shorthands keep every other criterion.
    let completed = expect(&|e| e.event_type == EventType::TaskCompleted);
    assert_eq!(
        sequences(
            read(
                ReadQuery::new()
                    .event_type(EventType::TaskCompleted)
                    .limit(3)
                    .descending()
                    .ascending()
            )
            .await
        ),
        completed[..3]
    );
    let below_20: Vec<u64> = completed
        .iter()
        .rev()
        .copied()
        .filter(|&s| s < 20)
        .collect();
    assert_eq!(
        sequences(
            read(
                ReadQuery::new()
                    .event_type(EventType::TaskCompleted)
                    .descending()
                    .before(20)
            )
            .await
        ),
        below_20
    );

    // Paging forwards and backwards covers everything once.
    let mut forward = Vec::new();
    loop {
        let after = forward.last().copied().unwrap_or(0);
        let page = sequences(read(ReadQuery::new().after(after).limit(10)).await);
        if page.is_empty() {
            break;
        }
        forward.extend(page);
        assert!(forward.len() <= 42, "paging forwards repeats: {forward:?}");
    }
    assert_eq!(forward, (1..=42).collect::<Vec<_>>());
    let mut backward = Vec::new();
    let mut before_seq = u64::MAX;
    loop {
        let page =
            sequences(read(ReadQuery::new().descending().before(before_seq).limit(10)).await);
        let Some(&last) = page.last() else { break };
        before_seq = last;
        backward.extend(page);
        assert!(
            backward.len() <= 42,
            "paging backwards repeats: {backward:?}"
        );
    }
    assert_eq!(backward, (1..=42).rev().collect::<Vec<_>>());
    assert_eq!(
        sequences(read(ReadQuery::new().after(5).up_to(8).order(Order::Descending)).await),
        vec![8, 7, 6]
    );
}

/// Cursors past the largest sequence a backend can hold (`after` up to
/// `u64::MAX`) read nothing in either order, and `up_to: u64::MAX` reads to
/// the end.
pub async fn cursors_beyond_the_largest_sequence_read_nothing<S: EventStore + Clone>(store: S) {
    let events: Vec<Arc<Event>> = (0..5).map(|n| Arc::new(numbered(n))).collect();
    store.append(&events).await.unwrap();
    // Sequences are stored as i64: a larger `after` is past every event,
    // not a negative number before the first.
    for after in [i64::MAX as u64, 1 << 63, u64::MAX - 1, u64::MAX] {
        for order in [Order::Ascending, Order::Descending] {
            let page = store
                .read(&ReadQuery::new().after(after).order(order))
                .await
                .unwrap();
            assert!(page.is_empty(), "after {after} ({order:?}) read {page:?}");
        }
    }
    assert_eq!(
        store
            .read(&ReadQuery::new().after(3).up_to(u64::MAX))
            .await
            .unwrap()
            .len(),
        2
    );
}

/// `get` finds each stored event by id, and nothing for an id never stored.
pub async fn get_reads_one_event_by_id<S: EventStore + Clone>(store: S) {
    let events: Vec<Arc<Event>> = (0..20).map(|n| Arc::new(numbered(n))).collect();
    store.append(&events).await.unwrap();
    for (index, event) in events.iter().enumerate() {
        let stored = store.get(event.id).await.unwrap().expect("a stored id");
        assert_eq!(stored.sequence, index as u64 + 1);
        assert_eq!(*stored.event, **event, "every field");
    }
    // An id never stored, and one minted in the same millisecond as a stored
    // one, are not found.
    assert!(store
        .get(Event::new(EventType::TaskCreated).id)
        .await
        .unwrap()
        .is_none());
    // (Ids minted in a row differ in their low bits: flip a high one.)
    let neighbour = EventId::from(uuid::Uuid::from_u128(
        events[0].id.as_uuid().as_u128() ^ (1 << 40),
    ));
    assert!(events.iter().all(|event| event.id != neighbour));
    assert_eq!(
        neighbour.timestamp_millis(),
        events[0].id.timestamp_millis()
    );
    assert!(store.get(neighbour).await.unwrap().is_none());
    // A repeat append does not change what an id reads back.
    store.append(&events[3..5]).await.unwrap();
    assert_eq!(store.get(events[4].id).await.unwrap().unwrap().sequence, 5);
    // Pruned events are gone from `get` too.
    assert_eq!(
        store
            .prune(&Retention::forever().max_events(5))
            .await
            .unwrap(),
        15
    );
    assert!(store.get(events[0].id).await.unwrap().is_none());
    assert_eq!(
        store.get(events[19].id).await.unwrap().unwrap().sequence,
        20
    );
    // Through `Arc<dyn EventStore>` as well.
    let dynamic: Arc<dyn EventStore> = Arc::new(store.clone());
    assert_eq!(
        dynamic.get(events[17].id).await.unwrap().unwrap().event,
        events[17]
    );
}

/// A correlation query reads a whole causal chain, branches included, as
/// the bus history's does.
pub async fn correlation_reads_a_whole_chain_as_the_bus_history_does<S: EventStore + Clone>(
    store: S,
) {
    // Two chains interleaved with unrelated events, one of them with a
    // branch: a tool call caused by the task, a memory caused by the call.
    let task = Event::new(EventType::TaskCompleted).with_circle(1);
    let call = Event::new(EventType::AgentToolExecuted).caused_by(&task);
    let memory = Event::new(EventType::MemoryShared)
        .caused_by(&call)
        .with_circle(1);
    let other = Event::new(EventType::TaskCreated).with_circle(1);
    let other_child = Event::new(EventType::TaskStarted).caused_by(&other);
    let events: Vec<Arc<Event>> = vec![
        numbered(0),
        task.clone(),
        other.clone(),
        numbered(1),
        call.clone(),
        other_child.clone(),
        memory.clone(),
        numbered(2),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();

    // The bus history is the reference.
    let bus = EventBus::builder().history_capacity(64).build();
    for event in &events {
        bus.publish(Arc::clone(event)).await;
    }
    store.append(&events).await.unwrap();
    let sequences = |stored: &[StoredEvent]| stored.iter().map(|s| s.sequence).collect::<Vec<_>>();
    for root in [&task, &other, &call, &memory] {
        let mut expected: Vec<_> = bus
            .history(
                &HistoryQuery::new()
                    .correlation_id(root.id)
                    .limit(usize::MAX),
            )
            .iter()
            .map(|event| event.id)
            .collect();
        expected.reverse();
        let stored = store
            .read(&ReadQuery::new().correlation_id(root.id))
            .await
            .unwrap();
        let ids: Vec<_> = stored.iter().map(|s| s.event.id).collect();
        assert_eq!(ids, expected, "the chain of {}", root.event_type);
        assert!(
            stored
                .iter()
                .all(|s| ReadQuery::new().correlation_id(root.id).matches(&s.event)),
            "`matches` agrees with the read"
        );
    }
    assert_eq!(
        sequences(
            &store
                .read(&ReadQuery::new().correlation_id(task.id))
                .await
                .unwrap()
        ),
        vec![2, 5, 7],
        "root, call and memory: a chain is named by its root"
    );
    // An event caused by another is not the root of a chain of its own.
    assert!(store
        .read(&ReadQuery::new().correlation_id(call.id))
        .await
        .unwrap()
        .is_empty());
    // Other filters, order and paging apply to the root like to the rest.
    let chain = ReadQuery::new().correlation_id(task.id);
    assert_eq!(
        sequences(&store.read(&chain.clone().circle_id(1)).await.unwrap()),
        vec![2, 7]
    );
    assert_eq!(
        sequences(
            &store
                .read(&chain.clone().descending().limit(2))
                .await
                .unwrap()
        ),
        vec![7, 5]
    );
    assert_eq!(
        sequences(&store.read(&chain.clone().after(2)).await.unwrap()),
        vec![5, 7]
    );
    assert_eq!(
        sequences(
            &store
                .read(&chain.clone().event_type(EventType::TaskCompleted))
                .await
                .unwrap()
        ),
        vec![2]
    );
    // A chain whose root was never stored still reads its members.
    let orphan_root = Event::new(EventType::TaskCreated);
    let orphan = Arc::new(Event::new(EventType::TaskStarted).caused_by(&orphan_root));
    store.append(&[Arc::clone(&orphan)]).await.unwrap();
    assert_eq!(
        sequences(
            &store
                .read(&ReadQuery::new().correlation_id(orphan_root.id))
                .await
                .unwrap()
        ),
        vec![9]
    );
}

/// A recorder stores every event of several publishing threads, each
/// thread's in its order.
pub async fn recorder_stores_every_event_of_concurrent_publishers<S: EventStore + Clone>(store: S) {
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, store.clone());
    let publishers: Vec<_> = (0..4)
        .map(|thread| {
            let bus = bus.clone();
            std::thread::spawn(move || {
                let mut publisher = bus.publisher();
                for n in 0..2_500 {
                    publisher.publish_blocking(numbered(thread * 10_000 + n));
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.join().unwrap();
    }
    assert_eq!(recorder.flush().await.unwrap(), 10_000);
    let stats = recorder.stats();
    assert_eq!(
        (stats.committed, stats.dropped, stats.lag()),
        (10_000, 0, 0)
    );
    assert_eq!(stats.last_sequence, 10_000);
    assert!(stats.batches < 10_000, "events are batched: {stats:?}");

    // No limit unless one is set.
    let all = store.read(&ReadQuery::new()).await.unwrap();
    assert_contiguous(&all, 1, 10_000);
    // Each publisher's events are stored in its publish order.
    for thread in 0..4u64 {
        let ns: Vec<u64> = all
            .iter()
            .map(|s| s.event.data["n"].as_u64().unwrap())
            .filter(|n| n / 10_000 == thread)
            .collect();
        assert_eq!(
            ns,
            (thread * 10_000..thread * 10_000 + 2_500).collect::<Vec<_>>()
        );
    }
    assert_eq!(recorder.close().await.unwrap(), 10_000);
    assert!(matches!(recorder.flush().await, Err(StoreError::Closed)));
}

/// `flush` returns only once every event published before it is stored,
/// while other publishers keep going.
pub async fn flush_covers_every_earlier_publish_while_publishers_run<S: EventStore + Clone>(
    store: S,
) {
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, store.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let (bus, stop) = (bus.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                bus.publish_blocking(numbered(n));
                n += 1;
                // About 10k events/s: busy, but well below what a debug
                // build commits, so the test's run time stays bounded.
                if n % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    let mut previous = 0;
    for round in 0..20u64 {
        let mine: Vec<Arc<Event>> = (0..50)
            .map(|n| Arc::new(numbered(round * 100 + n)))
            .collect();
        for event in &mine {
            bus.publish(Arc::clone(event)).await;
        }
        let last = recorder.flush().await.unwrap();
        // Everything published before the flush is at or below `last`.
        let stored = store
            .read(
                &ReadQuery::new()
                    .after(previous)
                    .up_to(last)
                    .limit(usize::MAX),
            )
            .await
            .unwrap();
        let ids: HashSet<_> = stored.iter().map(|s| s.event.id).collect();
        assert!(mine.iter().all(|e| ids.contains(&e.id)), "round {round}");
        previous = last;
    }
    stop.store(true, Ordering::Relaxed);
    background.join().unwrap();
    let last = recorder.flush().await.unwrap();
    assert_contiguous(&read_all(&store).await, 1, last);
}

/// Streams started at arbitrary moments while publishers run each see every
/// sequence after their start exactly once, in order.
pub async fn catch_up_seam_has_no_gap_and_no_duplicate<S: EventStore + Clone>(store: S) {
    const TOTAL: u64 = 6_000;
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, store.clone());
    let publishers: Vec<_> = (0..2)
        .map(|thread| {
            let bus = bus.clone();
            std::thread::spawn(move || {
                for n in 0..TOTAL / 2 {
                    bus.publish_blocking(numbered(thread * TOTAL + n));
                    if n % 64 == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            })
        })
        .collect();
    let mut consumers = Vec::new();
    for start in 0..6u64 {
        tokio::time::sleep(Duration::from_millis(15 * start)).await;
        let after = recorder.stats().last_sequence.saturating_sub(start * 37);
        let mut stream = recorder.subscribe_from(after, ReadQuery::new());
        consumers.push(tokio::spawn(async move {
            let mut expected = after + 1;
            while expected <= TOTAL {
                let next = tokio::time::timeout(Duration::from_secs(30), stream.next())
                    .await
                    .expect("the stream keeps up")
                    .expect("the stream stays open")
                    .expect("no error");
                assert_eq!(next.sequence, expected, "stream from {after}");
                expected += 1;
            }
            after
        }));
    }
    // A filtered stream sees exactly the matching events, in order.
    let filtered =
        recorder.subscribe_from(0, ReadQuery::new().event_type(EventType::TaskCompleted));
    for publisher in publishers {
        publisher.join().unwrap();
    }
    assert_eq!(recorder.flush().await.unwrap(), TOTAL);
    for consumer in consumers {
        consumer.await.unwrap();
    }
    let expected: Vec<u64> = read_all(&store)
        .await
        .iter()
        .filter(|s| s.event.event_type == EventType::TaskCompleted)
        .map(|s| s.sequence)
        .collect();
    let seen: Vec<u64> = filtered
        .take(expected.len())
        .map(|item| item.unwrap().sequence)
        .collect()
        .await;
    assert_eq!(seen, expected);
}

/// A consumer that stops reading while thousands of batches commit is
/// refilled from the store: it still sees everything once, in order.
pub async fn catch_up_refills_a_consumer_that_fell_behind<S: EventStore + Clone>(store: S) {
    let bus = EventBus::new();
    let recorder = Recorder::builder().max_batch(1).attach(&bus, store.clone());
    let mut stream = recorder.subscribe_from(0, ReadQuery::new());
    for n in 0..1_500 {
        bus.publish(numbered(n)).await;
    }
    assert_eq!(recorder.flush().await.unwrap(), 1_500);
    let mut expected = 1;
    while expected <= 1_500 {
        let next = stream.next().await.unwrap().unwrap();
        assert_eq!(next.sequence, expected);
        expected += 1;
    }
    // Then live again.
    bus.publish(numbered(1_500)).await;
    assert_eq!(stream.next().await.unwrap().unwrap().sequence, 1_501);
    // Closing the recorder ends the stream once everything is delivered.
    recorder.close().await.unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap()
        .is_none());
}

/// `replay` publishes stored events with their ids, and a recorder on the
/// same store does not store them again.
pub async fn replay_keeps_ids_and_never_stores_twice<S: EventStore + Clone>(store: S) {
    let source = EventBus::new();
    let recorder = Recorder::attach(&source, store.clone());
    for n in 0..30 {
        source.publish(numbered(n)).await;
    }
    recorder.flush().await.unwrap();
    recorder.close().await.unwrap();

    // Replay into a bus whose recorder writes to the same store.
    let debug = EventBus::builder().history_capacity(100).build();
    let again = Recorder::attach(&debug, store.clone());
    let replayed = replay(&store, &ReadQuery::new().after(10).up_to(25), &debug)
        .await
        .unwrap();
    assert_eq!((replayed.events, replayed.last_sequence), (15, 25));
    assert_eq!(again.flush().await.unwrap(), 30, "nothing stored twice");
    assert_eq!(again.stats().duplicates, 15);
    let history: Vec<_> = debug
        .history(&HistoryQuery::new())
        .iter()
        .rev()
        .map(|e| e.id)
        .collect();
    let stored: Vec<_> = store
        .read(&ReadQuery::new().after(10).up_to(25))
        .await
        .unwrap()
        .iter()
        .map(|s| s.event.id)
        .collect();
    assert_eq!(history, stored, "same ids, same order");
    // A limit caps the total.
    let fresh = EventBus::new();
    assert_eq!(
        replay(&store, &ReadQuery::new().limit(7), &fresh)
            .await
            .unwrap()
            .events,
        7
    );
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Tally {
    by_type: std::collections::BTreeMap<String, u64>,
    sum: u64,
}

fn tally(state: &mut Tally, stored: &StoredEvent) {
    *state
        .by_type
        .entry(stored.event.event_type.to_string())
        .or_default() += 1;
    state.sum += stored.event.data["n"].as_u64().unwrap_or(0);
}

/// A projection resumed from a snapshot reaches the state a rebuild from
/// the start reaches.
pub async fn projection_resumed_from_a_snapshot_equals_a_rebuild<S: EventStore + Clone>(store: S) {
    let batch =
        |range: std::ops::Range<u64>| range.map(|n| Arc::new(numbered(n))).collect::<Vec<_>>();
    store.append(&batch(0..2_500)).await.unwrap();
    let query = ReadQuery::new().event_type(EventTypeSet::from([
        EventType::TaskCreated,
        EventType::TaskCompleted,
    ]));
    // Each catch-up within a deadline: one that never reaches its end fails.
    let within = Duration::from_secs(30);
    let mut first = Projection::new(Tally::default(), query.clone(), tally);
    let caught_up = tokio::time::timeout(within, first.catch_up(&store)).await;
    assert_eq!(caught_up.expect("caught up in time").unwrap(), 2_500);
    let (snapshot, at) = first.snapshot();

    store.append(&batch(2_500..4_000)).await.unwrap();
    let mut resumed = Projection::resume(snapshot, at, query.clone(), tally);
    let caught_up = tokio::time::timeout(within, resumed.catch_up(&store)).await;
    assert_eq!(caught_up.expect("caught up in time").unwrap(), 4_000);
    let mut rebuilt = Projection::new(Tally::default(), query, tally);
    let caught_up = tokio::time::timeout(within, rebuilt.catch_up(&store)).await;
    caught_up.expect("caught up in time").unwrap();
    assert_eq!(resumed.state(), rebuilt.state());
    assert_eq!(rebuilt.state().by_type.values().sum::<u64>(), 2_000);
    // Applying an already-seen event is a no-op.
    let seen = store.read(&ReadQuery::new().limit(1)).await.unwrap();
    assert!(!resumed.apply(&seen[0]));
}

/// The recorder's retention prunes old events in the background.
pub async fn retention_prunes_in_the_background<S: EventStore + Clone>(store: S) {
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .retention(
            Retention::forever().max_events(100),
            Duration::from_millis(20),
        )
        .attach(&bus, store.clone());
    for n in 0..500 {
        bus.publish(numbered(n)).await;
    }
    assert_eq!(recorder.flush().await.unwrap(), 500);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = read_all(&store).await;
        if left.len() == 100 {
            assert_contiguous(&left, 401, 500);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not pruned: {} left",
            left.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(recorder.stats().pruned >= 400);
    recorder.close().await.unwrap();

    // Sequences are never reused after pruning everything.
    assert_eq!(
        store
            .prune(&Retention::forever().max_events(0))
            .await
            .unwrap(),
        100
    );
    assert!(read_all(&store).await.is_empty());
    // By age: the prefix older than the cutoff goes.
    let aged = |n: u64| {
        let mut event = numbered(n);
        event.timestamp = SystemTime::now() - Duration::from_secs(3_600);
        Arc::new(event)
    };
    let young = Arc::new(numbered(1_002));
    let appended = store
        .append(&[aged(1_000), aged(1_001), Arc::clone(&young)])
        .await
        .unwrap();
    assert_eq!(appended.sequences, vec![Some(501), Some(502), Some(503)]);
    let removed = store
        .prune(&Retention::forever().max_age(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(removed, 2);
    let left = read_all(&store).await;
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].sequence, left[0].event.id), (503, young.id));
}

/// Two buses recording into one store: every event stored once, sequences
/// contiguous.
pub async fn two_recorders_share_one_store<S: EventStore + Clone>(store: S) {
    let (a, b) = (EventBus::new(), EventBus::new());
    let (ra, rb) = (
        Recorder::attach(&a, store.clone()),
        Recorder::attach(&b, store.clone()),
    );
    let threads: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .enumerate()
        .map(|(i, bus)| {
            std::thread::spawn(move || {
                for n in 0..1_000 {
                    bus.publish_blocking(numbered(i as u64 * 10_000 + n));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    ra.flush().await.unwrap();
    rb.flush().await.unwrap();
    let all = read_all(&store).await;
    assert_contiguous(&all, 1, 2_000);
    let ids: HashSet<_> = all.iter().map(|s| s.event.id).collect();
    assert_eq!(ids.len(), 2_000);
}

/// The store works behind `Arc<dyn EventStore>`, and refuses there what
/// it refuses itself: at the door (`check`), and in a recorder, which
/// skips the event rather than retrying it.
pub async fn a_store_chosen_at_run_time_works_behind_arc_dyn<S: EventStore + Clone>(store: S) {
    let dynamic: Arc<dyn EventStore> = Arc::new(store.clone());
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, Arc::clone(&dynamic));
    bus.publish(numbered(1)).await;
    assert_eq!(recorder.flush().await.unwrap(), 1);
    assert_eq!(dynamic.read(&ReadQuery::new()).await.unwrap().len(), 1);
    assert_eq!(dynamic.last_sequence().await.unwrap(), 1);
    assert_eq!(recorder.store().last_sequence().await.unwrap(), 1);

    let mut late = numbered(2);
    late.timestamp = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000_000_000); // year 2286
    let refused = dynamic.check(&late);
    assert!(
        matches!(refused, Err(StoreError::TimestampOutOfRange { .. })),
        "{refused:?}"
    );
    bus.publish(late).await;
    bus.publish(numbered(3)).await;
    assert_eq!(recorder.flush().await.unwrap(), 2);
    assert_eq!(recorder.stats().rejected, 1);
}

/// With a writer slower than the publishers, the default policy makes
/// publishers wait: the queue never exceeds its capacity and nothing is lost.
pub async fn a_slow_writer_slows_publishers_and_memory_stays_bounded<S: EventStore + Clone>(
    store: S,
) {
    let slow = Throttled::new(store.clone(), Duration::from_millis(5));
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .capacity(64)
        .max_batch(16)
        .attach(&bus, slow);
    let publisher = {
        let bus = bus.clone();
        std::thread::spawn(move || {
            for n in 0..600 {
                bus.publish_blocking(numbered(n));
            }
        })
    };
    let (mut max_queued, mut max_lag) = (0, 0);
    while !publisher.is_finished() {
        let stats = recorder.stats();
        assert_eq!(stats.lag(), stats.lag);
        max_queued = max_queued.max(stats.queued);
        max_lag = max_lag.max(stats.lag());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    publisher.join().unwrap();
    assert!(
        max_queued <= 64,
        "queue bounded by its capacity: {max_queued}"
    );
    assert!(max_lag > 0, "a slow writer lags behind its publishers");
    assert_eq!(recorder.flush().await.unwrap(), 600);
    let stats = recorder.stats();
    assert!(stats.waits > 0, "publishers waited: {stats:?}");
    assert_eq!(stats.dropped, 0);
    assert_contiguous(&read_all(&store).await, 1, 600);
}

/// Async publishers that reserve room first never wait on their thread:
/// through a small queue and a slow writer, nothing is lost and no publish
/// found the queue full; a reservation waits without blocking the runtime.
pub async fn reserving_publishers_never_wait_on_their_thread<S: EventStore + Clone>(store: S) {
    let slow = Throttled::new(store.clone(), Duration::from_millis(2));
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .capacity(8)
        .max_batch(4)
        .attach(&bus, slow);
    let publishers: Vec<_> = (0..4u64)
        .map(|publisher| {
            let (bus, recorder) = (bus.clone(), recorder.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while n < 50 {
                    let room = recorder.reserve(50 - n as usize).await.unwrap();
                    assert!((1..=8).contains(&room.events()));
                    for _ in 0..room.events() {
                        bus.publish(numbered(publisher * 1000 + n)).await;
                        n += 1;
                    }
                }
            })
        })
        .collect();
    within(Duration::from_secs(30), "the reserving publishers", async {
        for publisher in publishers {
            publisher.await.unwrap();
        }
    })
    .await;
    assert_eq!(recorder.flush().await.unwrap(), 200);
    let stats = recorder.stats();
    assert_eq!((stats.waits, stats.dropped), (0, 0), "{stats:?}");
    assert_contiguous(&read_all(&store).await, 1, 200);

    // While every slot is held, another reservation waits, and a timer on
    // the same runtime still fires: the wait blocks nothing.
    let held = recorder.reserve(usize::MAX).await.unwrap();
    assert_eq!(held.events(), 8, "at most the capacity");
    assert!(
        tokio::time::timeout(Duration::from_millis(50), recorder.reserve(1))
            .await
            .is_err()
    );
    drop(held);
    let room = tokio::time::timeout(Duration::from_secs(10), recorder.reserve(1))
        .await
        .expect("room once the reservation is dropped")
        .unwrap();
    drop(room);
    recorder.close().await.unwrap();
    assert!(matches!(recorder.reserve(1).await, Err(StoreError::Closed)));
}

/// With a drop policy and a slow writer, events are dropped, counted, and
/// `flush` reports how many.
pub async fn drop_policy_counts_drops_and_flush_reports_them<S: EventStore + Clone>(store: S) {
    let slow = Throttled::new(store.clone(), Duration::from_millis(20));
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .capacity(8)
        .max_batch(8)
        .overflow(Overflow::DropNewest)
        .attach(&bus, slow);
    let seen = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&seen);
    bus.subscribe_all(move |_e: &Event| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    for n in 0..200 {
        bus.publish(numbered(n)).await;
    }
    assert_eq!(
        seen.load(Ordering::Relaxed),
        200,
        "handlers get every event regardless"
    );
    let dropped = recorder.stats().dropped;
    assert!(dropped > 0);
    match recorder.flush().await {
        Err(StoreError::EventsDropped { count }) => assert_eq!(count, dropped),
        other => panic!("expected EventsDropped, got {other:?}"),
    }
    // Reported once: the next flush succeeds, and the rest was stored.
    let last = recorder.flush().await.unwrap();
    assert_eq!(last, 200 - dropped);
    assert_contiguous(&read_all(&store).await, 1, last);
}

/// A flush while the store fails: it returns [`StoreError::FlushFailed`],
/// within 30 s (a writer that never answers fails the test, not hangs it).
async fn a_flush_fails(recorder: &Recorder) -> StoreError {
    let error = within(
        Duration::from_secs(30),
        "a flush while failing",
        recorder.flush(),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, StoreError::FlushFailed { .. }), "{error:?}");
    error
}

/// A store that fails: flush reports it, the events stay queued in order,
/// handlers keep running, and once the store is back everything is stored.
pub async fn store_failures_are_retried_and_flush_reports_them<S: EventStore + Clone>(store: S) {
    let failing = Arc::new(Throttled::new(store.clone(), Duration::ZERO));
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .retry_backoff(Duration::from_millis(5), Duration::from_millis(20))
        .attach(&bus, Arc::clone(&failing));
    bus.publish(numbered(0)).await;
    recorder.flush().await.unwrap();

    failing.failing.store(true, Ordering::SeqCst);
    for n in 1..100 {
        let outcome = bus.publish(numbered(n)).await;
        assert_eq!(outcome.failed, 0);
    }
    let error = a_flush_fails(&recorder).await;
    assert!(std::error::Error::source(&error).is_some());
    // The writer moves events from the queue to its batch without a lock,
    // so a snapshot may catch a few between the two counts: look again.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let stats = loop {
        let stats = recorder.stats();
        if stats.lag == 99 || std::time::Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    assert!(
        stats.errors > 0 && stats.last_error.is_some() && stats.lag == 99,
        "{stats:?}"
    );

    failing.failing.store(false, Ordering::SeqCst);
    assert_eq!(recorder.flush().await.unwrap(), 100);
    let all = read_all(&store).await;
    assert_contiguous(&all, 1, 100);
    let ns: Vec<u64> = all
        .iter()
        .map(|s| s.event.data["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, (0..100).collect::<Vec<_>>(), "in publish order");
    assert!(recorder.stats().last_error.is_none());
}

/// Events the store refuses outright are skipped and counted, not retried
/// forever: everything else is stored, in order, and flush succeeds.
pub async fn events_the_store_refuses_are_skipped_not_retried_forever<S: EventStore + Clone>(
    store: S,
) {
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .linger(Duration::from_millis(20)) // so the poisoned events share batches
        .attach(&bus, Picky(store.clone()));
    for n in 0..100u64 {
        let mut event = numbered(n);
        if n == 10 || n == 50 {
            event.data["poison"] = serde_json::json!(true);
        }
        bus.publish(event).await;
    }
    assert_eq!(recorder.flush().await.unwrap(), 98);
    let stats = recorder.stats();
    assert_eq!(
        (stats.rejected, stats.committed, stats.lag),
        (2, 98, 0),
        "{stats:?}"
    );
    let all = read_all(&store).await;
    assert_contiguous(&all, 1, 98);
    let ns: Vec<u64> = all
        .iter()
        .map(|s| s.event.data["n"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (0..100).filter(|n| *n != 10 && *n != 50).collect();
    assert_eq!(ns, expected);
}
