//! Catch-up over a backlog of several pages: the next page is read while
//! the backlog is dense, and the stream still delivers every matching
//! sequence once, in order, dense or sparse (a filter), from any start.

use std::time::Duration;

use agentbus::{Event, EventBus, EventType};
use agentbus_store::{ReadQuery, Recorder, SqliteStore};
use futures_util::StreamExt;

const STORED: u64 = 2_600;

/// The sequences and types a fresh stream delivers from `after`, up to the
/// end of the backlog.
async fn delivered(
    recorder: &Recorder,
    after: u64,
    filter: ReadQuery,
    count: usize,
) -> Vec<(u64, EventType)> {
    let stream = recorder.subscribe_from(after, filter).take(count);
    tokio::time::timeout(Duration::from_secs(30), stream.collect::<Vec<_>>())
        .await
        .expect("the backlog within 30 s")
        .into_iter()
        .map(|item| {
            let stored = item.expect("a readable event");
            (stored.sequence, stored.event.event_type)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_several_pages_arrives_whole_in_order_dense_or_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new();
    let recorder = Recorder::attach(
        &bus,
        SqliteStore::open(dir.path().join("events.db")).unwrap(),
    );
    let type_of = |sequence: u64| {
        if sequence.is_multiple_of(3) {
            EventType::TaskFailed
        } else {
            EventType::TaskCreated
        }
    };
    for sequence in 1..=STORED {
        bus.publish(Event::new(type_of(sequence))).await;
    }
    assert_eq!(recorder.flush().await.unwrap(), STORED);

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
