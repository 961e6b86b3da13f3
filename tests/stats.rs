//! `BusStats`: what each counter counts.

use std::sync::Arc;

use agentbus::{BusStats, Event, EventBus, EventType, EventTypeSet, Retry, TypeStats};

mod common;
use common::settle;

#[test]
fn smoke() {
    let bus = EventBus::new();
    assert_eq!(bus.stats(), BusStats::default());
    bus.subscribe(EventType::TaskCreated, |_e: &Event| {});
    bus.publish_blocking(Event::new(EventType::TaskCreated));
    assert_eq!(
        bus.stats(),
        BusStats {
            events_published: 1,
            events_delivered: 1,
            handler_errors: 0,
            active_subscribers: 1,
            history_size: 1,
            ..BusStats::default()
        }
    );
}

#[test]
fn events_published_counts_every_publish() {
    let bus = EventBus::new();
    for _ in 0..5 {
        bus.publish_blocking(Event::new(EventType::TaskCreated));
    }
    futures::executor::block_on(bus.publish(Event::new(EventType::TaskFailed)));
    let stats = bus.stats();
    assert_eq!(stats.events_published, 6);
    assert_eq!(stats.events_delivered, 0);
}

#[test]
fn delivered_and_errors_sum_the_outcomes() {
    let bus = EventBus::new();
    bus.subscribe(EventType::TaskCreated, |_e: &Event| {});
    bus.subscribe(EventType::TaskCreated, |_e: &Event| {});
    bus.subscribe(EventType::TaskCreated, |_e: &Event| -> Result<(), &str> {
        Err("nope")
    });
    bus.subscribe(EventType::TaskFailed, |_e: &Event| {});
    bus.subscribe_async(EventType::TaskFailed, |_e: Arc<Event>| async {
        Err::<(), _>("async nope")
    });
    bus.subscribe_async(EventType::TaskFailed, |_e: Arc<Event>| async {});
    let (mut delivered, mut failed) = (0, 0);
    for t in [
        EventType::TaskCreated,
        EventType::TaskFailed,
        EventType::TaskCreated,
        EventType::SystemError,
    ] {
        let outcome = bus.publish_blocking(Event::new(t));
        delivered += outcome.delivered as u64;
        failed += outcome.failed as u64;
    }
    assert_eq!((delivered, failed), (2 + 2 + 2, 1 + 1 + 1));
    let stats = bus.stats();
    assert_eq!(stats.events_published, 4);
    assert_eq!(stats.events_delivered, delivered);
    assert_eq!(stats.handler_errors, failed);
}

#[test]
fn async_deliveries_are_counted_when_the_publish_completes() {
    let bus = EventBus::new();
    bus.subscribe_async(EventType::TaskCreated, |_e: Arc<Event>| async {
        tokio::task::yield_now().await;
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let outcome = rt.block_on(bus.publish(Event::new(EventType::TaskCreated)));
    assert_eq!(outcome.delivered, 1);
    assert_eq!(bus.stats().events_delivered, 1);
}

#[test]
fn active_subscribers_counts_subscriptions() {
    let bus = EventBus::new();
    let a = bus.subscribe(EventType::TaskCreated, |_e: &Event| {});
    assert_eq!(bus.stats().active_subscribers, 1);
    let all = bus.subscribe_all(|_e: &Event| {});
    assert_eq!(
        bus.stats().active_subscribers,
        2,
        "subscribe_all counts once"
    );
    let set = bus.subscribe(
        EventTypeSet::from([EventType::TaskFailed, EventType::TaskStarted]),
        |_e: &Event| {},
    );
    assert_eq!(bus.stats().active_subscribers, 3);
    let stream = bus.stream(EventTypeSet::all(), 4);
    assert_eq!(bus.stats().active_subscribers, 4);
    let guard = bus.guard(bus.subscribe_async(EventType::TaskCreated, |_e: Arc<Event>| async {}));
    assert_eq!(bus.stats().active_subscribers, 5);

    drop(guard);
    assert_eq!(bus.stats().active_subscribers, 4);
    drop(stream);
    assert_eq!(bus.stats().active_subscribers, 3);
    assert!(bus.unsubscribe(all));
    assert_eq!(bus.stats().active_subscribers, 2);
    assert!(!bus.unsubscribe(all));
    assert_eq!(bus.stats().active_subscribers, 2);
    assert!(bus.unsubscribe(set));
    assert!(bus.unsubscribe(a));
    assert_eq!(bus.stats().active_subscribers, 0);
}

#[test]
fn subscribe_all_is_delivered_once_per_publish() {
    let bus = EventBus::new();
    bus.subscribe_all(|_e: &Event| {});
    for t in EventType::ALL {
        bus.publish_blocking(Event::new(t));
    }
    let stats = bus.stats();
    assert_eq!(stats.events_published, EventType::COUNT as u64);
    assert_eq!(stats.events_delivered, EventType::COUNT as u64);
}

#[test]
fn history_size_tracks_the_ring() {
    let bus = EventBus::builder().history_capacity(5).build();
    for n in 1..=12 {
        bus.publish_blocking(Event::new(EventType::TaskCreated));
        assert_eq!(bus.stats().history_size, n.min(5));
    }
    bus.clear_history();
    assert_eq!(bus.stats().history_size, 0);
    assert_eq!(bus.stats().events_published, 12);

    let off = EventBus::builder().history_capacity(0).build();
    off.publish_blocking(Event::new(EventType::TaskCreated));
    assert_eq!(off.stats().history_size, 0);
    assert_eq!(off.stats().events_published, 1);
}

#[test]
fn reset_zeroes_everything() {
    let bus = EventBus::new();
    bus.subscribe(EventType::TaskCreated, |_e: &Event| {});
    bus.subscribe(EventType::TaskCreated, |_e: &Event| -> Result<(), String> {
        Err("x".into())
    });
    for _ in 0..3 {
        bus.publish_blocking(Event::new(EventType::TaskCreated));
    }
    assert_ne!(bus.stats(), BusStats::default());
    bus.reset();
    assert_eq!(bus.stats(), BusStats::default());
    bus.publish_blocking(Event::new(EventType::TaskCreated));
    assert_eq!(bus.stats().events_published, 1);
    assert_eq!(bus.stats().events_delivered, 0);
}

#[test]
fn counts_are_exact_across_publisher_threads() {
    let bus = EventBus::builder().history_capacity(100).build();
    bus.subscribe(EventType::TaskCreated, |_e: &Event| {});
    bus.subscribe(EventType::TaskCreated, |e: &Event| -> Result<(), String> {
        if e.data.is_null() {
            Err("null data".into())
        } else {
            Ok(())
        }
    });
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let bus = bus.clone();
            std::thread::spawn(move || {
                for n in 0..5_000 {
                    let event = Event::new(EventType::TaskCreated);
                    let event = if n % 5 == 0 {
                        event.with_data(serde_json::Value::Null)
                    } else {
                        event
                    };
                    bus.publish_blocking(event);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let stats = bus.stats();
    assert_eq!(stats.events_published, 20_000);
    assert_eq!(stats.handler_errors, 4_000);
    assert_eq!(stats.events_delivered, 20_000 + 16_000);
    assert_eq!(stats.history_size, 100);
    assert_eq!(stats.active_subscribers, 2);
}

/// Runs `publish(bus, n)` for each `n` below `per_thread` on `threads`
/// threads released at once, so that all of them hold a stripe at once.
fn publish_at_once(bus: &EventBus, threads: u64, per_thread: u64, publish: fn(&EventBus, u64)) {
    let start = Arc::new(std::sync::Barrier::new(threads as usize));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (bus, start) = (bus.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                for n in 0..per_thread {
                    publish(&bus, n);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}

/// More live publishing threads than exclusive stripes (16), so some share
/// the overflow stripe, then a second wave that reuses the stripes the first
/// wave's threads returned when they exited: every count stays exact.
#[test]
fn counts_are_exact_past_the_exclusive_stripes_and_across_stripe_reuse() {
    const THREADS: u64 = 24;
    const PER_THREAD: u64 = 20_000;
    let bus = EventBus::builder().history_capacity(0).build();
    bus.subscribe(EventType::TaskCreated, |_e: &Event| {});
    let wave = |bus: &EventBus| {
        publish_at_once(bus, THREADS, PER_THREAD, |bus, _| {
            bus.publish_blocking(Event::new(EventType::TaskCreated));
        });
    };
    wave(&bus);
    assert_eq!(bus.stats().events_published, THREADS * PER_THREAD);
    wave(&bus);
    let stats = bus.stats();
    assert_eq!(stats.events_published, 2 * THREADS * PER_THREAD);
    assert_eq!(stats.events_delivered, 2 * THREADS * PER_THREAD);
}

#[test]
fn buses_have_separate_counters() {
    let a = EventBus::new();
    let b = EventBus::new();
    a.publish_blocking(Event::new(EventType::TaskCreated));
    assert_eq!(a.stats().events_published, 1);
    assert_eq!(b.stats().events_published, 0);
    // Clones share one bus.
    let a2 = a.clone();
    a2.publish_blocking(Event::new(EventType::TaskCreated));
    assert_eq!(a.stats().events_published, 2);
}

fn per_type(bus: &EventBus, event_type: EventType) -> (u64, u64, u64) {
    let stats = bus.stats_per_type().expect("per-type counting is on");
    let TypeStats {
        published,
        delivered,
        failed,
        ..
    } = stats[event_type.index()];
    assert_eq!(stats[event_type.index()].event_type, event_type);
    (published, delivered, failed)
}

#[test]
fn per_type_counts_are_off_until_asked_and_start_there() {
    let bus = EventBus::new();
    bus.subscribe(EventType::TaskCreated, |_e: &Event| {});
    bus.publish_blocking(Event::new(EventType::TaskCreated));
    assert_eq!(bus.stats_per_type(), None);
    bus.count_per_type();
    assert_eq!(per_type(&bus, EventType::TaskCreated), (0, 0, 0));
    bus.publish_blocking(Event::new(EventType::TaskCreated));
    // A second call changes nothing.
    bus.count_per_type();
    assert_eq!(per_type(&bus, EventType::TaskCreated), (1, 1, 0));
    assert_eq!(bus.stats().events_published, 2);
    bus.reset();
    assert_eq!(per_type(&bus, EventType::TaskCreated), (0, 0, 0));
    bus.publish_blocking(Event::new(EventType::TaskCreated));
    assert_eq!(per_type(&bus, EventType::TaskCreated), (1, 0, 0));
}

/// Sync, async (finished at once and pending), retried and failing
/// deliveries, from more threads than there are exclusive stripes: each
/// type's counts are exact and add up to the bus-wide ones.
#[test]
fn per_type_counts_are_exact_and_sum_to_the_bus_totals() {
    const THREADS: u64 = 20;
    const PER_THREAD: u64 = 2_000;
    let bus = EventBus::builder().history_capacity(0).build();
    bus.count_per_type();
    bus.subscribe(EventType::TaskCreated, |_e: &Event| {});
    bus.subscribe(EventType::TaskCreated, |e: &Event| -> Result<(), String> {
        if e.data.is_null() {
            Err("null data".into())
        } else {
            Ok(())
        }
    });
    bus.subscribe_async(EventType::TaskFailed, |_e: Arc<Event>| async {
        Err::<(), _>("async nope")
    });
    publish_at_once(&bus, THREADS, PER_THREAD, |bus, n| {
        let event = Event::new(EventType::TaskCreated);
        bus.publish_blocking(if n % 4 == 0 {
            event.with_data(serde_json::Value::Null)
        } else {
            event
        });
        if n % 10 == 0 {
            bus.publish_blocking(Event::new(EventType::TaskFailed));
        }
    });
    // An async handler still pending after the first poll, and a delivery
    // that succeeds on its retry: both counted by the event's type.
    bus.subscribe_async(EventType::AgentStarted, |_e: Arc<Event>| async {
        tokio::task::yield_now().await;
    });
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    bus.subscription(EventType::MemoryShared)
        .retry(Retry::attempts(2).delay(std::time::Duration::from_millis(1)))
        .handler(move |_e: &Event| -> Result<(), String> {
            match seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => Err("first call fails".into()),
                _ => Ok(()),
            }
        });
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(bus.publish(Event::new(EventType::AgentStarted)));
    bus.publish_blocking(Event::new(EventType::MemoryShared));
    settle(&bus);

    let n = THREADS * PER_THREAD;
    assert_eq!(
        per_type(&bus, EventType::TaskCreated),
        (n, n + 3 * n / 4, n / 4)
    );
    assert_eq!(per_type(&bus, EventType::TaskFailed), (n / 10, 0, n / 10));
    assert_eq!(per_type(&bus, EventType::AgentStarted), (1, 1, 0));
    assert_eq!(per_type(&bus, EventType::MemoryShared), (1, 1, 0));
    let all = bus.stats_per_type().unwrap();
    let stats = bus.stats();
    let sum = |field: fn(&TypeStats) -> u64| all.iter().map(field).sum::<u64>();
    assert_eq!(sum(|s| s.published), stats.events_published);
    assert_eq!(sum(|s| s.delivered), stats.events_delivered);
    assert_eq!(sum(|s| s.failed), stats.handler_errors);
}
