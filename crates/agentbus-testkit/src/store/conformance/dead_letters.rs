//! The conformance cases of dead letters kept in a store: the
//! [`DeadLetterStore`] itself, and a recorder keeping a bus's letters
//! across a restart.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentbus::{
    DeadLetter, DeadLetterId, DeadLetterQuery, Event, EventBus, EventType, RedriveError,
    TraceContext,
};
use agentbus_store::{DeadLetterChanges, DeadLetterStore, EventStore, Recorder};

use super::a_flush_fails;
use crate::store::Throttled;

/// Every field of a letter, to compare.
type Fields = (
    u64,
    Event,
    u64,
    Option<String>,
    String,
    u32,
    SystemTime,
    SystemTime,
);

fn fields(letter: &DeadLetter) -> Fields {
    (
        letter.id().get(),
        (**letter.event()).clone(),
        letter.subscription_id().get(),
        letter.subscription_name().map(str::to_owned),
        letter.error().to_owned(),
        letter.attempts(),
        letter.first_failed_at(),
        letter.last_failed_at(),
    )
}

fn letter_store<S: EventStore>(store: &S) -> &dyn DeadLetterStore {
    store
        .dead_letter_store()
        .expect("both backends keep dead letters")
}

/// Every stored letter.
pub async fn stored_letters<S: EventStore>(store: &S) -> Vec<DeadLetter> {
    letter_store(store)
        .read_dead_letters(&DeadLetterQuery::new().limit(usize::MAX))
        .await
        .expect("read dead letters")
}

fn ids(letters: &[DeadLetter]) -> Vec<u64> {
    letters.iter().map(|letter| letter.id().get()).collect()
}

/// Letters are stored whole and read back exactly (event, subscription,
/// error, attempts, both times to the nanosecond), filtered, ordered and
/// paged as the bus lists them; a put replaces, a remove and a clear
/// remove.
pub async fn dead_letters_round_trip_filter_and_replace<S: EventStore + Clone>(store: S) {
    let letters = letter_store(&store);
    assert!(stored_letters(&store).await.is_empty());
    let at = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
    let traced = Event::new(EventType::TaskFailed)
        .with_circle(5)
        .with_data(serde_json::json!({"task": 7, "text": "nul \u{0} and ünïcode"}))
        .with_trace_context(
            TraceContext::parse(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Some("rojo=00f067aa0ba902b7"),
            )
            .unwrap(),
        );
    let make = |id: u64, name: Option<&str>, event: Event| {
        DeadLetter::restored(DeadLetterId::new(id), Arc::new(event), id * 10, name).with_failure(
            format!("error {id}: panicked: \"quoted\""),
            id as u32,
            at,
            at + Duration::from_nanos(id),
        )
    };
    let written = vec![
        make(1, Some("a"), Event::new(EventType::TaskCompleted)),
        make(2, Some("b"), Event::new(EventType::TaskCompleted)),
        make(3, None, Event::new(EventType::TaskCompleted)),
        make(4, Some("a"), traced),
        make(5, Some("a"), Event::new(EventType::TaskCompleted)),
    ];
    let mut changes = DeadLetterChanges::new();
    changes.put.clone_from(&written);
    letters.write_dead_letters(&changes).await.unwrap();

    let read = stored_letters(&store).await;
    let expected: Vec<Fields> = written.iter().map(fields).collect();
    assert_eq!(read.iter().map(fields).collect::<Vec<_>>(), expected);

    let cases = [
        (DeadLetterQuery::new().subscription("a"), vec![1, 4, 5]),
        (
            DeadLetterQuery::new().event_type(EventType::TaskFailed),
            vec![4],
        ),
        (
            DeadLetterQuery::new().after(DeadLetterId::new(1)).limit(2),
            vec![2, 3],
        ),
        (DeadLetterQuery::new().limit(0), vec![]),
        (DeadLetterQuery::new().newest_first().limit(2), vec![5, 4]),
        (
            DeadLetterQuery::new()
                .newest_first()
                .before(DeadLetterId::new(4))
                .subscription("a"),
            vec![1],
        ),
        (
            DeadLetterQuery::new()
                .after(DeadLetterId::new(1))
                .before(DeadLetterId::new(5)),
            vec![2, 3, 4],
        ),
    ];
    for (query, expected) in cases {
        let read = letters.read_dead_letters(&query).await.unwrap();
        assert_eq!(ids(&read), expected, "{query:?}");
    }

    // A put replaces the letter with its id; removing an unknown id is fine.
    let updated = make(2, Some("b"), Event::new(EventType::TaskCompleted)).with_failure(
        "again",
        9,
        at,
        at + Duration::from_secs(1),
    );
    let changes = DeadLetterChanges::new()
        .put(updated.clone())
        .remove(DeadLetterId::new(1))
        .remove(DeadLetterId::new(99));
    letters.write_dead_letters(&changes).await.unwrap();
    let read = stored_letters(&store).await;
    assert_eq!(ids(&read), [2, 3, 4, 5]);
    assert_eq!(fields(&read[0]), fields(&updated));

    // A clear comes first: a rewrite of them all.
    let mut rewrite =
        DeadLetterChanges::new().put(make(7, None, Event::new(EventType::TaskCreated)));
    rewrite.clear = true;
    letters.write_dead_letters(&rewrite).await.unwrap();
    assert_eq!(ids(&stored_letters(&store).await), [7]);
}

/// A bus with a recorder keeps its dead letters in the store: each new
/// letter, a failed redrive's update, a discard. After a restart (bus and
/// recorder dropped, new ones attached) the bus lists them under the same
/// ids, a redrive finds the subscription by name and delivers exactly
/// once, the letter leaves the store, a letter of a subscription without a
/// name cannot be redriven, and new letters get ids above the stored ones.
pub async fn dead_letters_survive_a_restart_and_redrive_by_name<S: EventStore + Clone>(store: S) {
    let (first, second, third, unnamed) = {
        let bus = EventBus::new();
        bus.subscription(EventType::TaskCompleted)
            .name("exporter")
            .handler(|_e: &Event| -> Result<(), String> { Err("exporter down".into()) });
        bus.subscription(EventType::TaskFailed)
            .handler(|_e: &Event| -> Result<(), String> { Err("unnamed down".into()) });
        let recorder = Recorder::attach(&bus, store.clone());
        for _ in 0..3 {
            bus.publish(Event::new(EventType::TaskCompleted)).await;
        }
        bus.publish(Event::new(EventType::TaskFailed)).await;
        recorder.flush().await.unwrap();
        let dead = bus.dead_letters();
        let listed = dead.list(&DeadLetterQuery::new());
        let stored = stored_letters(&store).await;
        assert_eq!(
            stored.iter().map(fields).collect::<Vec<_>>(),
            listed.iter().map(fields).collect::<Vec<_>>(),
            "the store holds what the bus lists"
        );
        let [first, second, third, unnamed] = ids(&listed)[..] else {
            panic!("four letters expected: {listed:?}");
        };

        // A failed redrive is an update, a discard a removal.
        let failed = dead.redrive(DeadLetterId::new(first)).await;
        assert!(
            matches!(failed, Err(RedriveError::FailedAgain { .. })),
            "{failed:?}"
        );
        assert!(dead.discard(DeadLetterId::new(second)));
        recorder.flush().await.unwrap();
        let stored = stored_letters(&store).await;
        assert_eq!(ids(&stored), [first, third, unnamed]);
        assert_eq!(stored[0].attempts(), 2);
        recorder.close().await.unwrap();
        (first, second, third, unnamed)
    };

    // The restart: a new bus whose exporter works now.
    let bus = EventBus::new();
    let calls = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    bus.subscription(EventType::TaskCompleted)
        .name("exporter")
        .handler(move |_e: &Event| -> Result<(), String> {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    bus.subscription(EventType::TaskCreated)
        .name("late")
        .handler(|_e: &Event| -> Result<(), String> { Err("late down".into()) });
    let recorder = Recorder::attach(&bus, store.clone());
    // Covers the restore (a store that reads asynchronously restores on
    // the writer, before any write).
    recorder.flush().await.unwrap();
    let dead = bus.dead_letters();
    let listed = dead.list(&DeadLetterQuery::new());
    assert_eq!(
        ids(&listed),
        [first, third, unnamed],
        "ids kept across the restart"
    );
    assert_eq!(
        (
            listed[0].subscription_name(),
            listed[0].attempts(),
            listed[0].error()
        ),
        (Some("exporter"), 2, "exporter down")
    );

    dead.redrive(DeadLetterId::new(first)).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let again = dead.redrive(DeadLetterId::new(first)).await;
    assert_eq!(
        again,
        Err(RedriveError::UnknownId(DeadLetterId::new(first)))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "delivered exactly once");
    let unnamed_id = DeadLetterId::new(unnamed);
    assert_eq!(
        dead.redrive(unnamed_id).await,
        Err(RedriveError::Unnamed(unnamed_id))
    );
    assert!(dead.get(unnamed_id).is_some(), "the letter stays");

    bus.publish(Event::new(EventType::TaskCreated)).await;
    recorder.flush().await.unwrap();
    let stored = ids(&stored_letters(&store).await);
    assert_eq!(
        stored[..2],
        [third, unnamed],
        "the redriven letter left the store"
    );
    assert_eq!(stored.len(), 3);
    assert!(
        stored[2] > unnamed.max(second),
        "new ids above the stored: {stored:?}"
    );
    assert_eq!(ids(&dead.list(&DeadLetterQuery::new())), stored);
}

/// The store holds what the bus holds: letters dropped for room leave the
/// store too, also when a restart restores more than the new bus's
/// capacity.
pub async fn dead_letters_beyond_the_bound_leave_the_store_too<S: EventStore + Clone>(store: S) {
    {
        let bus = EventBus::builder().dead_letter_capacity(3).build();
        bus.subscription(EventType::TaskCompleted)
            .name("exporter")
            .handler(|_e: &Event| -> Result<(), String> { Err("down".into()) });
        let recorder = Recorder::attach(&bus, store.clone());
        for _ in 0..5 {
            bus.publish(Event::new(EventType::TaskCompleted)).await;
        }
        recorder.flush().await.unwrap();
        assert_eq!(bus.dead_letters().dropped(), 2);
        assert_eq!(ids(&stored_letters(&store).await), [3, 4, 5]);
        recorder.close().await.unwrap();
    }
    let bus = EventBus::builder().dead_letter_capacity(2).build();
    let recorder = Recorder::attach(&bus, store.clone());
    recorder.flush().await.unwrap();
    assert_eq!(
        ids(&bus.dead_letters().list(&DeadLetterQuery::new())),
        [4, 5]
    );
    assert_eq!(bus.dead_letters().dropped(), 1);
    assert_eq!(ids(&stored_letters(&store).await), [4, 5]);
}

/// A recorder attached to a bus that already holds letters stores them
/// all, also more at once than its queue of changed ids holds (it then
/// rewrites every letter instead).
pub async fn a_late_recorder_stores_every_letter_already_kept<S: EventStore + Clone>(store: S) {
    const LETTERS: u64 = 5_000;
    let bus = EventBus::new();
    bus.subscription(EventType::TaskCompleted)
        .name("exporter")
        .handler(|_e: &Event| -> Result<(), String> { Err("down".into()) });
    for _ in 0..LETTERS {
        bus.publish_blocking(Event::new(EventType::TaskCompleted));
    }
    let recorder = Recorder::attach(&bus, store.clone());
    recorder.flush().await.unwrap();
    let stored = stored_letters(&store).await;
    assert_eq!(ids(&stored), (1..=LETTERS).collect::<Vec<_>>());
}

/// A store that fails to write dead letters: flush reports it, and once
/// the store is back every letter is stored.
pub async fn dead_letter_writes_that_fail_are_retried<S: EventStore + Clone>(store: S) {
    let failing = Arc::new(Throttled::new(store.clone(), Duration::ZERO));
    let bus = EventBus::new();
    bus.subscription(EventType::TaskCompleted)
        .name("exporter")
        .handler(|_e: &Event| -> Result<(), String> { Err("down".into()) });
    let recorder = Recorder::builder()
        .retry_backoff(Duration::from_millis(5), Duration::from_millis(20))
        .attach(&bus, Arc::clone(&failing));
    failing.failing.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        bus.publish(Event::new(EventType::TaskCompleted)).await;
    }
    a_flush_fails(&recorder).await;
    assert!(stored_letters(&store).await.is_empty());

    failing.failing.store(false, Ordering::SeqCst);
    recorder.flush().await.unwrap();
    assert_eq!(ids(&stored_letters(&store).await), [1, 2, 3]);
}
