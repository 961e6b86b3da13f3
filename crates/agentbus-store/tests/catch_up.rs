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
    assert_eq!(recorder.flush().await.unwrap(), total);
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

    let mut stream = recorder
        .subscribe_from(0, ReadQuery::new().event_type(EventType::TaskCreated))
        .take((TOTAL - 700) as usize);
    let mut got = Vec::new();
    while let Some(item) = stream.next().await {
        let sequence = item.unwrap().sequence;
        if sequence % 500 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        got.push(sequence);
    }
    let expected: Vec<u64> = (1..=TOTAL)
        .filter(|&s| type_of(s) == EventType::TaskCreated)
        .collect();
    assert_eq!(got, expected, "polled slowly");
}
