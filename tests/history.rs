//! History: recorded at publish, newest first, exact capacity, queries,
//! release of pushed-out events, clear and reset.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use agentbus::{
    Event, EventBus, EventFilter, EventId, EventType, EventTypeSet, HistoryQuery,
    DEFAULT_HISTORY_CAPACITY,
};
use serde_json::json;

/// `native` iterations natively, `miri` under Miri: `.ci/run` runs this
/// file with `cargo miri test` to check the history ring's unsafe code, some
/// thousand times slower than native.
const fn scaled(native: u64, miri: u64) -> u64 {
    if cfg!(miri) {
        miri
    } else {
        native
    }
}

fn bus_with(capacity: usize) -> EventBus {
    EventBus::builder().history_capacity(capacity).build()
}

fn numbered(n: u64) -> Event {
    Event::new(EventType::TaskCreated).with_data(json!({"n": n}))
}

fn numbers(events: &[Arc<Event>]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e.data["n"].as_u64().unwrap())
        .collect()
}

#[test]
fn smoke() {
    let bus = EventBus::new();
    bus.publish_blocking(numbered(1));
    bus.publish_blocking(numbered(2));
    assert_eq!(numbers(&bus.history(&HistoryQuery::new())), vec![2, 1]);
}

#[test]
fn default_capacity_is_1000() {
    assert_eq!(DEFAULT_HISTORY_CAPACITY, 1000);
    assert_eq!(EventBus::new().history_capacity(), 1000);
    assert_eq!(EventBus::default().history_capacity(), 1000);
    assert_eq!(EventBus::builder().build().history_capacity(), 1000);
}

#[test]
fn recorded_before_handlers_run() {
    let bus = EventBus::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (inner, s) = (bus.clone(), Arc::clone(&seen));
    bus.subscribe(EventType::TaskCreated, move |e: &Event| {
        let newest = inner.history(&HistoryQuery::new().limit(1));
        s.lock().unwrap().push((e.id, newest[0].id));
    });
    let inner = bus.clone();
    let async_saw_it = Arc::new(AtomicUsize::new(0));
    let a = Arc::clone(&async_saw_it);
    bus.subscribe_async(EventType::TaskCreated, move |e: Arc<Event>| {
        let history = inner.history(&HistoryQuery::new().limit(1));
        let a = Arc::clone(&a);
        async move {
            if history[0].id == e.id {
                a.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    for n in 0..3 {
        bus.publish_blocking(numbered(n));
    }
    for (event, newest) in seen.lock().unwrap().iter() {
        assert_eq!(event, newest);
    }
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert_eq!(async_saw_it.load(Ordering::SeqCst), 3);
    bus.reset();
}

#[test]
fn newest_first_with_default_limit_100() {
    let bus = EventBus::new();
    let total = scaled(250, 120);
    for n in 0..total {
        bus.publish_blocking(numbered(n));
    }
    let events = bus.history(&HistoryQuery::new());
    assert_eq!(HistoryQuery::new().get_limit(), 100);
    assert_eq!(HistoryQuery::DEFAULT_LIMIT, 100);
    assert_eq!(
        numbers(&events),
        (total - 100..total).rev().collect::<Vec<_>>()
    );
    let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
    for pair in ids.windows(2) {
        assert!(pair[0] > pair[1]);
    }
    assert_eq!(HistoryQuery::default(), HistoryQuery::new());
}

#[test]
fn holds_exactly_capacity_newest() {
    let capacities: &[usize] = if cfg!(miri) {
        &[1, 2, 3, 7]
    } else {
        &[1, 2, 3, 7, 10, 13, 64, 100, 1000]
    };
    for &capacity in capacities {
        let bus = bus_with(capacity);
        assert_eq!(bus.history_capacity(), capacity);
        let total = 3 * capacity as u64 + 5;
        for n in 0..total {
            bus.publish_blocking(numbered(n));
            let held = (n + 1).min(capacity as u64);
            assert_eq!(bus.stats().history_size as u64, held, "capacity {capacity}");
        }
        let all = bus.history(&HistoryQuery::new().limit(usize::MAX));
        let expected: Vec<u64> = (total - capacity as u64..total).rev().collect();
        assert_eq!(numbers(&all), expected, "capacity {capacity}");
    }
}

#[test]
fn partially_filled_ring() {
    let bus = bus_with(7);
    for n in 0..4 {
        bus.publish_blocking(numbered(n));
    }
    assert_eq!(
        numbers(&bus.history(&HistoryQuery::new())),
        vec![3, 2, 1, 0]
    );
    assert_eq!(bus.stats().history_size, 4);
}

#[test]
fn capacity_zero_keeps_nothing() {
    let bus = bus_with(0);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    bus.subscribe(EventType::TaskCreated, move |_e: &Event| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    let kept = Arc::new(numbered(0));
    for _ in 0..10 {
        bus.publish_blocking(Arc::clone(&kept));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 10);
    assert_eq!(bus.history_capacity(), 0);
    assert!(bus
        .history(&HistoryQuery::new().limit(usize::MAX))
        .is_empty());
    assert_eq!(bus.stats().history_size, 0);
    assert_eq!(bus.stats().events_published, 10);
    assert_eq!(Arc::strong_count(&kept), 1);
    bus.clear_history();
    assert!(bus.history(&HistoryQuery::new()).is_empty());
}

#[test]
fn limits_zero_small_and_max() {
    let bus = bus_with(50);
    for n in 0..80 {
        bus.publish_blocking(numbered(n));
    }
    assert!(bus.history(&HistoryQuery::new().limit(0)).is_empty());
    assert_eq!(
        numbers(&bus.history(&HistoryQuery::new().limit(1))),
        vec![79]
    );
    assert_eq!(
        numbers(&bus.history(&HistoryQuery::new().limit(3))),
        vec![79, 78, 77]
    );
    assert_eq!(bus.history(&HistoryQuery::new().limit(50)).len(), 50);
    assert_eq!(bus.history(&HistoryQuery::new().limit(51)).len(), 50);
    assert_eq!(
        bus.history(&HistoryQuery::new().limit(usize::MAX)).len(),
        50
    );
    assert_eq!(
        HistoryQuery::new().limit(usize::MAX).get_limit(),
        usize::MAX
    );
}

#[test]
fn filters_by_each_criterion_and_combine() {
    let bus = EventBus::new();
    let mut all = Vec::new();
    let mut n = 0;
    for t in [EventType::TaskCompleted, EventType::TaskFailed] {
        for agent in [None, Some(7), Some(8)] {
            for circle in [None, Some(1), Some(2)] {
                for project in [None, Some(2), Some(3)] {
                    let mut event = numbered(n).with_data(json!({"n": n}));
                    event.event_type = t;
                    event.source_agent_id = agent;
                    event.circle_id = circle;
                    event.project_id = project;
                    all.push(event.clone());
                    bus.publish_blocking(event);
                    n += 1;
                }
            }
        }
    }
    let expect = |keep: &dyn Fn(&Event) -> bool| -> Vec<u64> {
        all.iter()
            .rev()
            .filter(|e| keep(e))
            .map(|e| e.data["n"].as_u64().unwrap())
            .collect()
    };
    let query = |q: HistoryQuery| numbers(&bus.history(&q.limit(usize::MAX)));

    assert_eq!(query(HistoryQuery::new()), expect(&|_| true));
    assert_eq!(
        query(HistoryQuery::new().event_type(EventType::TaskFailed)),
        expect(&|e| e.event_type == EventType::TaskFailed)
    );
    assert_eq!(
        query(HistoryQuery::new().source_agent_id(7)),
        expect(&|e| e.source_agent_id == Some(7))
    );
    assert_eq!(
        query(HistoryQuery::new().circle_id(1)),
        expect(&|e| e.circle_id == Some(1))
    );
    assert_eq!(
        query(HistoryQuery::new().project_id(2)),
        expect(&|e| e.project_id == Some(2))
    );
    let combined = query(
        HistoryQuery::new()
            .event_type(EventType::TaskCompleted)
            .circle_id(1)
            .source_agent_id(7)
            .project_id(2),
    );
    assert_eq!(combined.len(), 1);
    assert_eq!(
        combined,
        expect(&|e| e.event_type == EventType::TaskCompleted
            && e.circle_id == Some(1)
            && e.source_agent_id == Some(7)
            && e.project_id == Some(2))
    );
    assert_eq!(
        query(HistoryQuery::new().circle_id(2).project_id(3)),
        expect(&|e| e.circle_id == Some(2) && e.project_id == Some(3))
    );
    assert!(query(HistoryQuery::new().circle_id(99)).is_empty());
    // The limit applies to matches, not to the events scanned.
    let limited = numbers(
        &bus.history(
            &HistoryQuery::new()
                .event_type(EventType::TaskCompleted)
                .circle_id(2)
                .limit(2),
        ),
    );
    assert_eq!(
        limited,
        expect(&|e| e.event_type == EventType::TaskCompleted && e.circle_id == Some(2))[..2]
    );
}

#[test]
fn query_matches_agrees_with_history() {
    let event = Event::new(EventType::TaskCompleted)
        .with_circle(1)
        .with_source_agent(7)
        .with_project(2);
    assert!(HistoryQuery::new().matches(&event));
    assert!(HistoryQuery::new()
        .event_type(EventType::TaskCompleted)
        .circle_id(1)
        .source_agent_id(7)
        .project_id(2)
        .matches(&event));
    assert!(!HistoryQuery::new().circle_id(2).matches(&event));
    assert!(!HistoryQuery::new()
        .event_type(EventType::TaskFailed)
        .matches(&event));
    assert!(!HistoryQuery::new()
        .project_id(1)
        .matches(&Event::new(EventType::TaskCompleted)));
}

#[test]
fn type_filter_on_a_full_ring_of_mixed_types() {
    let bus = bus_with(10);
    for n in 0..25u64 {
        let t = if n % 3 == 0 {
            EventType::TaskFailed
        } else {
            EventType::TaskCreated
        };
        let mut event = numbered(n);
        event.event_type = t;
        bus.publish_blocking(event);
    }
    // The ring holds 15..25; of those, multiples of 3 are failures.
    assert_eq!(
        numbers(&bus.history(&HistoryQuery::new().event_type(EventType::TaskFailed))),
        vec![24, 21, 18, 15]
    );
}

/// A filter on several types (which `HistoryQuery::event_type` cannot say)
/// selects from the ring's type tags like one type does, and the limit
/// counts matches.
#[test]
fn a_filter_on_several_types_selects_each_and_stops_at_the_limit() {
    let bus = bus_with(10);
    let types = [
        EventType::TaskFailed,
        EventType::TaskCreated,
        EventType::TaskCompleted,
    ];
    for n in 0..25u64 {
        let mut event = numbered(n);
        event.event_type = types[n as usize % 3];
        bus.publish_blocking(event.with_circle(n as i64 % 2));
    }
    // The ring holds 15..25; failures and completions are those not 1 mod 3.
    let either = EventTypeSet::from([EventType::TaskFailed, EventType::TaskCompleted]);
    let filter = EventFilter::new().event_type(either);
    let query = HistoryQuery::from(filter.clone());
    assert_eq!(
        numbers(&bus.history(&query)),
        vec![24, 23, 21, 20, 18, 17, 15]
    );
    assert_eq!(
        numbers(&bus.history(&query.clone().limit(3))),
        vec![24, 23, 21]
    );
    let even = HistoryQuery::from(filter.circle_id(0));
    assert_eq!(numbers(&bus.history(&even)), vec![24, 20, 18]);
    let none = HistoryQuery::from(EventFilter::new().event_type(EventTypeSet::empty()));
    assert!(bus.history(&none).is_empty());
}

#[test]
fn pushed_out_events_are_released() {
    let bus = bus_with(3);
    let first = Arc::new(numbered(0));
    bus.publish_blocking(Arc::clone(&first));
    assert_eq!(Arc::strong_count(&first), 2, "history holds one reference");
    let weak = {
        let temp = Arc::new(numbered(1));
        let weak = Arc::downgrade(&temp);
        bus.publish_blocking(temp);
        weak
    };
    assert!(weak.upgrade().is_some());
    for n in 2..=3 {
        bus.publish_blocking(numbered(n));
    }
    assert_eq!(Arc::strong_count(&first), 1);
    assert!(weak.upgrade().is_some(), "still among the 3 newest");
    bus.publish_blocking(numbered(4));
    assert!(weak.upgrade().is_none());
}

#[test]
fn events_stay_alive_while_a_reader_holds_them() {
    let bus = bus_with(1);
    bus.publish_blocking(numbered(0));
    let read = bus.history(&HistoryQuery::new());
    bus.publish_blocking(numbered(1));
    bus.clear_history();
    assert_eq!(numbers(&read), vec![0]);
    assert_eq!(Arc::strong_count(&read[0]), 1);
}

#[test]
fn clear_history_releases_and_empties() {
    let bus = bus_with(10);
    let kept: Vec<Arc<Event>> = (0..5).map(|n| Arc::new(numbered(n))).collect();
    for event in &kept {
        bus.publish_blocking(Arc::clone(event));
    }
    assert!(kept.iter().all(|e| Arc::strong_count(e) == 2));
    bus.clear_history();
    assert!(kept.iter().all(|e| Arc::strong_count(e) == 1));
    assert!(bus
        .history(&HistoryQuery::new().limit(usize::MAX))
        .is_empty());
    assert_eq!(bus.stats().history_size, 0);
    // History works again, and old entries do not come back.
    for n in 100..103 {
        bus.publish_blocking(numbered(n));
    }
    assert_eq!(
        numbers(&bus.history(&HistoryQuery::new())),
        vec![102, 101, 100]
    );
    assert_eq!(bus.stats().history_size, 3);
    // Clearing does not touch subscriptions or counters.
    assert_eq!(bus.stats().events_published, 8);
}

#[test]
fn clear_after_wrapping() {
    let bus = bus_with(4);
    for n in 0..10 {
        bus.publish_blocking(numbered(n));
    }
    bus.clear_history();
    bus.publish_blocking(numbered(10));
    assert_eq!(
        numbers(&bus.history(&HistoryQuery::new().limit(usize::MAX))),
        vec![10]
    );
    assert_eq!(bus.stats().history_size, 1);
    for n in 11..20 {
        bus.publish_blocking(numbered(n));
    }
    assert_eq!(
        numbers(&bus.history(&HistoryQuery::new().limit(usize::MAX))),
        vec![19, 18, 17, 16]
    );
}

#[test]
fn reset_clears_subscribers_history_and_stats() {
    let bus = bus_with(10);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    bus.subscribe(EventType::TaskCreated, move |_e: &Event| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    bus.subscribe(EventType::TaskCreated, |_e: &Event| -> Result<(), String> {
        Err("no".into())
    });
    let kept = Arc::new(numbered(0));
    bus.publish_blocking(Arc::clone(&kept));
    let stats = bus.stats();
    assert_eq!(
        (
            stats.events_published,
            stats.events_delivered,
            stats.handler_errors,
            stats.active_subscribers,
            stats.history_size
        ),
        (1, 1, 1, 2, 1)
    );
    bus.reset();
    assert_eq!(bus.stats(), agentbus::BusStats::default());
    assert!(bus.history(&HistoryQuery::new()).is_empty());
    assert_eq!(Arc::strong_count(&kept), 1);
    assert_eq!(bus.publish_blocking(numbered(1)).delivered, 0);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(bus.history_capacity(), 10);
    assert_eq!(bus.history(&HistoryQuery::new()).len(), 1);
}

#[test]
fn concurrent_readers_see_consistent_newest_first_snapshots() {
    let bus = bus_with(64);
    let publishers: Vec<_> = (0..2u64)
        .map(|p| {
            let bus = bus.clone();
            std::thread::spawn(move || {
                for n in 0..scaled(20_000, 50) {
                    bus.publish_blocking(
                        Event::new(EventType::TaskCreated).with_data(json!({"p": p, "n": n})),
                    );
                }
            })
        })
        .collect();
    let reader = {
        let bus = bus.clone();
        std::thread::spawn(move || {
            let mut reads = 0;
            while reads < scaled(2_000, 6) {
                let events = bus.history(&HistoryQuery::new().limit(usize::MAX));
                assert!(events.len() <= 64);
                let mut ids = std::collections::HashSet::new();
                let mut last_per_publisher = [u64::MAX; 2];
                for event in &events {
                    assert!(ids.insert(event.id), "duplicate entry");
                    let p = event.data["p"].as_u64().unwrap() as usize;
                    let n = event.data["n"].as_u64().unwrap();
                    // Newest first per publisher: its numbers strictly decrease.
                    assert!(n < last_per_publisher[p], "not newest first");
                    last_per_publisher[p] = n;
                }
                reads += 1;
            }
        })
    };
    for publisher in publishers {
        publisher.join().unwrap();
    }
    reader.join().unwrap();
    let final_read = bus.history(&HistoryQuery::new().limit(usize::MAX));
    assert_eq!(final_read.len(), 64);
    assert_eq!(bus.stats().history_size, 64);
}

#[test]
fn events_pushed_out_during_concurrent_reads_are_released() {
    let capacity = 8;
    let per_publisher = scaled(2_000, 30);
    for round in 0..scaled(100, 2) {
        let bus = bus_with(capacity);
        let published = Arc::new(AtomicUsize::new(0));
        let reader = {
            let (bus, published) = (bus.clone(), Arc::clone(&published));
            std::thread::spawn(move || {
                // Read while publishers run, then stop for good halfway.
                while published.load(Ordering::Relaxed) < per_publisher as usize {
                    drop(bus.history(&HistoryQuery::new().limit(usize::MAX)));
                }
            })
        };
        let publishers: Vec<_> = (0..2)
            .map(|_| {
                let (bus, published) = (bus.clone(), Arc::clone(&published));
                std::thread::spawn(move || {
                    (0..per_publisher)
                        .map(|n| {
                            let event = Arc::new(numbered(n));
                            let weak = Arc::downgrade(&event);
                            bus.publish_blocking(event);
                            published.fetch_add(1, Ordering::Relaxed);
                            weak
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let weaks: Vec<_> = publishers
            .into_iter()
            .flat_map(|p| p.join().unwrap())
            .collect();
        reader.join().unwrap();
        // No read runs any more: whatever the ring let go of must be freed
        // by now, not parked until some later read.
        let alive = weaks.iter().filter(|w| w.strong_count() > 0).count();
        assert_eq!(
            alive, capacity,
            "round {round}: events alive after leaving history"
        );
    }
}
