//! Stress and soak: concurrent publishers, subscription churn and history
//! readers; misbehaving handlers; memory over many publishes; an opt-in soak
//! (`AGENTBUS_SOAK_SECS=600 cargo test --release --test stress soak -- --nocapture`).
//!
//! Every count is exact: each handler counts its own calls, and the bus's
//! stats must add up to those counts once the threads have stopped. Sizes are
//! smaller in debug builds so the default `cargo test` stays quick.

use std::collections::{HashMap, HashSet};
use std::panic::{self, PanicHookInfo};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, MutexGuard, Once, OnceLock, Weak};
use std::thread;
use std::time::{Duration, Instant};

use agentbus::{Event, EventBus, EventType, HistoryQuery, PublishOutcome, SubscriptionId};

/// `release` iterations in optimised builds, `debug` otherwise.
fn scaled(release: u64, debug: u64) -> u64 {
    if cfg!(debug_assertions) {
        debug
    } else {
        release
    }
}

/// The tests here each load both cores and one reads the process's resident
/// memory, so they run one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Panics this file provokes carry this marker; the hook keeps them off
/// stderr so a real failure's message stands out.
const DELIBERATE: &str = "stress: deliberate panic";

/// A non-string panic payload.
struct Payload(#[allow(dead_code)] u64);

/// A panic payload whose own `Drop` panics.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        if !thread::panicking() {
            panic!("{DELIBERATE} (payload drop)");
        }
    }
}

/// Panics with `payload`; typed so handlers that always panic still name
/// their return type.
fn explode<P: std::any::Any + Send>(payload: P) -> Result<(), String> {
    panic::panic_any(payload)
}

fn quiet_deliberate_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            let payload = info.payload();
            let deliberate = payload.is::<Payload>()
                || payload.is::<Bomb>()
                || payload
                    .downcast_ref::<&str>()
                    .is_some_and(|m| m.starts_with(DELIBERATE))
                || payload
                    .downcast_ref::<String>()
                    .is_some_and(|m| m.starts_with(DELIBERATE));
            if !deliberate {
                previous(info);
            }
        }));
    });
}

fn count() -> Arc<AtomicU64> {
    Arc::new(AtomicU64::new(0))
}

/// Publisher `thread`'s `seq`-th event: the fields are a function of the two,
/// so a history entry assembled from two events would not check out.
fn mix_event(thread: u64, seq: u64) -> Event {
    let event_type = if seq % 5 == 4 {
        EventType::AgentStarted
    } else {
        EventType::TaskCompleted
    };
    Event::new(event_type)
        .with_source_agent(thread as i64)
        .with_project(seq as i64)
        .with_circle((seq % 3) as i64)
}

fn check_mix_event(event: &Event) -> (u64, u64) {
    let thread = event.source_agent_id.expect("agent id") as u64;
    let seq = event.project_id.expect("project id") as u64;
    assert_eq!(
        event.circle_id,
        Some((seq % 3) as i64),
        "torn entry {event:?}"
    );
    let expected = mix_event(thread, seq).event_type;
    assert_eq!(event.event_type, expected, "torn entry {event:?}");
    (thread, seq)
}

/// When the mix's publishers stop.
#[derive(Clone, Copy)]
enum Until {
    /// Each publisher publishes exactly this many events.
    Published(u64),
    /// Each publisher publishes until this much time has passed.
    Elapsed(Duration),
}

/// What a run of the mix did, all of it checked against the bus's stats.
#[derive(Debug, Default)]
struct MixReport {
    published: u64,
    delivered: u64,
    failed: u64,
    churned_subscriptions: u64,
    history_reads: u64,
    history_entries_checked: u64,
}

/// Publishers (odd ones through a `Publisher`), a subscription churner and
/// history readers on one bus, with every count checked exactly once they
/// stop.
fn run_mix(publishers: u64, until: Until, capacity: usize) -> MixReport {
    quiet_deliberate_panics();
    let bus = EventBus::builder().history_capacity(capacity).build();
    let stop = Arc::new(AtomicBool::new(false));

    // Permanent subscribers: every delivery to them is counted.
    let all_calls = count();
    let last_seq: Arc<Vec<AtomicU64>> =
        Arc::new((0..publishers).map(|_| AtomicU64::new(0)).collect());
    let out_of_order = count();
    {
        let (calls, last_seq, out_of_order) =
            (all_calls.clone(), last_seq.clone(), out_of_order.clone());
        bus.subscribe(
            [EventType::TaskCompleted, EventType::AgentStarted],
            move |e: &Event| {
                calls.fetch_add(1, Ordering::Relaxed);
                // Sync handlers run on the publisher's thread, so this slot is
                // only ever touched by one thread: publish order must hold.
                let (thread, seq) = (
                    e.source_agent_id.unwrap() as usize,
                    e.project_id.unwrap() as u64,
                );
                if last_seq[thread].swap(seq + 1, Ordering::Relaxed) != seq {
                    out_of_order.fetch_add(1, Ordering::Relaxed);
                }
            },
        );
    }
    let filtered_calls = count();
    {
        let calls = filtered_calls.clone();
        bus.subscription(EventType::TaskCompleted)
            .circle_id(0)
            .handler(move |_e: &Event| {
                calls.fetch_add(1, Ordering::Relaxed);
            });
    }
    let failing_calls = count();
    {
        let calls = failing_calls.clone();
        bus.subscription(EventType::AgentStarted)
            .filter(|e: &Event| e.project_id.unwrap() % 16 == 4)
            .handler(move |e: &Event| -> Result<(), String> {
                calls.fetch_add(1, Ordering::Relaxed);
                if e.project_id.unwrap() % 32 == 4 {
                    panic!("{DELIBERATE}");
                }
                Err("refused".into())
            });
    }
    let async_calls = count();
    {
        let calls = async_calls.clone();
        bus.subscribe_async(EventType::AgentStarted, move |_e: Arc<Event>| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let never_calls = count();
    {
        let calls = never_calls.clone();
        bus.subscribe(EventType::SystemError, move |_e: &Event| {
            calls.fetch_add(1, Ordering::Relaxed);
        });
    }
    const PERMANENT: usize = 5;

    // Publishers, the churner, two readers and this thread.
    let start = Arc::new(Barrier::new(publishers as usize + 4));
    let progress: Arc<Vec<AtomicU64>> =
        Arc::new((0..publishers).map(|_| AtomicU64::new(0)).collect());

    let publisher_handles: Vec<_> = (0..publishers)
        .map(|thread| {
            let (bus, start, progress) = (bus.clone(), start.clone(), progress.clone());
            thread::spawn(move || {
                // Odd publishers go through a long-lived `Publisher`, whose
                // cached tables must see every change the churner makes.
                let mut publisher = (thread % 2 == 1).then(|| bus.publisher());
                start.wait();
                let began = Instant::now();
                let mut seq = 0;
                loop {
                    match until {
                        Until::Published(n) if seq == n => break,
                        Until::Elapsed(d) if seq % 256 == 0 && began.elapsed() >= d => break,
                        _ => {}
                    }
                    let event = mix_event(thread, seq);
                    match &mut publisher {
                        Some(publisher) => publisher.publish_blocking(event),
                        None => bus.publish_blocking(event),
                    };
                    seq += 1;
                    // Release: a reader that sees this count sees the event's publish.
                    progress[thread as usize].store(seq, Ordering::Release);
                }
                seq
            })
        })
        .collect();

    let churn_calls = count();
    let churner = {
        let (bus, start, stop, calls) = (
            bus.clone(),
            start.clone(),
            stop.clone(),
            churn_calls.clone(),
        );
        thread::spawn(move || {
            start.wait();
            let mut last: Option<SubscriptionId> = None;
            let mut churned = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let calls_a = calls.clone();
                let a = bus.subscribe(EventType::TaskCompleted, move |_e: &Event| {
                    calls_a.fetch_add(1, Ordering::Relaxed);
                });
                let calls_b = calls.clone();
                let b = bus
                    .subscription(EventType::AgentStarted)
                    .filter(|e: &Event| e.circle_id == Some(1))
                    .handler(move |_e: &Event| {
                        calls_b.fetch_add(1, Ordering::Relaxed);
                    });
                // Ids are never reused: each is newer than every earlier one.
                assert!(last.is_none_or(|l| l < a) && a < b, "{last:?} {a:?} {b:?}");
                last = Some(b);
                assert!(bus.unsubscribe(a));
                assert!(!bus.unsubscribe(a), "unsubscribe is true only once");
                drop(bus.guard(b));
                assert!(!bus.unsubscribe(b), "the guard unsubscribed");
                churned += 2;
            }
            churned
        })
    };

    let readers: Vec<_> = (0..2)
        .map(|reader| {
            let (bus, start, stop, progress) =
                (bus.clone(), start.clone(), stop.clone(), progress.clone());
            thread::spawn(move || {
                start.wait();
                let (mut reads, mut entries) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let mut query =
                        HistoryQuery::new().limit(if reads % 2 == 0 { usize::MAX } else { 64 });
                    if reader == 1 && reads % 3 == 0 {
                        query = query.event_type(EventType::AgentStarted);
                    }
                    let events = bus.history(&query);
                    let done: Vec<u64> =
                        progress.iter().map(|p| p.load(Ordering::Acquire)).collect();
                    assert!(events.len() <= capacity.min(query.get_limit()));
                    let mut ids = HashSet::new();
                    let mut newest_seen: HashMap<u64, u64> = HashMap::new();
                    for event in &events {
                        assert!(
                            ids.insert(event.id),
                            "duplicate history entry {:?}",
                            event.id
                        );
                        assert!(query.matches(event), "{query:?} returned {event:?}");
                        let (thread, seq) = check_mix_event(event);
                        // Pushed before its publish returned, so at most the
                        // one publish in flight is ahead of `progress`.
                        assert!(
                            seq <= done[thread as usize],
                            "event {seq} of thread {thread} was never published"
                        );
                        if let Some(newer) = newest_seen.insert(thread, seq) {
                            assert!(
                                seq < newer,
                                "thread {thread}: {seq} after {newer}, not newest first"
                            );
                        }
                    }
                    reads += 1;
                    entries += events.len() as u64;
                }
                (reads, entries)
            })
        })
        .collect();

    start.wait();
    let per_thread: Vec<u64> = publisher_handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    stop.store(true, Ordering::Relaxed);
    let churned_subscriptions = churner.join().unwrap();
    let (mut history_reads, mut history_entries_checked) = (0, 0);
    for reader in readers {
        let (reads, entries) = reader.join().unwrap();
        history_reads += reads;
        history_entries_checked += entries;
    }

    // Exact counts, now that every thread has stopped.
    let published: u64 = per_thread.iter().sum();
    let matching = |pred: &dyn Fn(u64) -> bool| -> u64 {
        per_thread
            .iter()
            .map(|&n| (0..n).filter(|&s| pred(s)).count() as u64)
            .sum()
    };
    assert_eq!(all_calls.load(Ordering::Relaxed), published);
    assert_eq!(out_of_order.load(Ordering::Relaxed), 0);
    assert_eq!(
        filtered_calls.load(Ordering::Relaxed),
        matching(&|s| s % 5 != 4 && s % 3 == 0)
    );
    assert_eq!(
        failing_calls.load(Ordering::Relaxed),
        matching(&|s| s % 5 == 4 && s % 16 == 4)
    );
    assert_eq!(
        async_calls.load(Ordering::Relaxed),
        matching(&|s| s % 5 == 4)
    );
    assert_eq!(never_calls.load(Ordering::Relaxed), 0);
    for (thread, &n) in per_thread.iter().enumerate() {
        assert_eq!(last_seq[thread].load(Ordering::Relaxed), n);
    }

    let stats = bus.stats();
    let failed = failing_calls.load(Ordering::Relaxed);
    let delivered = all_calls.load(Ordering::Relaxed)
        + filtered_calls.load(Ordering::Relaxed)
        + async_calls.load(Ordering::Relaxed)
        + churn_calls.load(Ordering::Relaxed);
    assert_eq!(stats.events_published, published);
    assert_eq!(stats.events_delivered, delivered);
    assert_eq!(stats.handler_errors, failed);
    assert_eq!(stats.active_subscribers, PERMANENT);
    assert_eq!(stats.history_size, capacity.min(published as usize));

    // Quiescent: the ring holds exactly the newest `capacity` publishes, so
    // each thread's entries are its last ones, contiguous and newest first.
    let window = bus.history(&HistoryQuery::new().limit(usize::MAX));
    assert_eq!(window.len(), capacity.min(published as usize));
    let mut by_thread: HashMap<u64, Vec<u64>> = HashMap::new();
    for event in &window {
        let (thread, seq) = check_mix_event(event);
        by_thread.entry(thread).or_default().push(seq);
    }
    for (thread, seqs) in by_thread {
        let last = per_thread[thread as usize];
        let expected: Vec<u64> = (last - seqs.len() as u64..last).rev().collect();
        assert_eq!(
            seqs, expected,
            "thread {thread}'s entries in the final window"
        );
    }

    MixReport {
        published,
        delivered,
        failed,
        churned_subscriptions,
        history_reads,
        history_entries_checked,
    }
}

#[test]
fn smoke() {
    let _serial = serial();
    let report = run_mix(2, Until::Published(200), 16);
    assert_eq!(report.published, 400);
    // Both publishers' TaskCompleted events reach the permanent subscriber.
    assert!(report.delivered >= 400);
}

#[test]
fn publishers_churn_and_readers_count_exactly() {
    let _serial = serial();
    let per_thread = scaled(200_000, 50_000);
    // A capacity that is no power of two, so tickets wrap unevenly.
    let report = run_mix(4, Until::Published(per_thread), 257);
    assert_eq!(report.published, 4 * per_thread);
    assert!(
        report.history_reads > 0 && report.churned_subscriptions > 0,
        "{report:?}"
    );
}

/// Counts calls of one handler, split into successes and failures as the
/// bus should count them.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Tally {
    fn ok(&self) {
        self.ok.fetch_add(1, Ordering::Relaxed);
    }

    fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> (u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

#[test]
fn misbehaving_handlers_leave_the_bus_correct() {
    let _serial = serial();
    quiet_deliberate_panics();
    let bus = EventBus::builder().history_capacity(100).build();
    let tallies: Vec<Arc<Tally>> = (0..14).map(|_| Arc::new(Tally::default())).collect();
    let t = |i: usize| Arc::clone(&tallies[i]);
    let seq_of = |e: &Event| e.project_id.unwrap() as u64;

    let ty = EventType::TaskFailed;
    let tally = t(0);
    bus.subscribe(ty, move |_e: &Event| tally.ok());
    let tally = t(1);
    bus.subscribe(ty, move |_e: &Event| -> Result<(), &'static str> {
        tally.failed();
        Err("handler error")
    });
    let tally = t(2);
    bus.subscribe(ty, move |_e: &Event| {
        tally.failed();
        explode(DELIBERATE)
    });
    let tally = t(3);
    bus.subscribe(ty, move |e: &Event| {
        tally.failed();
        explode(format!("{DELIBERATE} (String {})", e.id))
    });
    let tally = t(4);
    bus.subscribe(ty, move |e: &Event| {
        tally.failed();
        explode(Payload(seq_of(e)))
    });
    let tally = t(5);
    bus.subscribe(ty, move |_e: &Event| {
        tally.failed();
        explode(Bomb)
    });
    // Blocks the publishing thread a while, now and then.
    let tally = t(6);
    bus.subscribe(ty, move |e: &Event| {
        if seq_of(e) % 200 == 0 {
            thread::sleep(Duration::from_millis(2));
        }
        tally.ok();
    });
    let tally = t(7);
    bus.subscribe_async(ty, move |_e: Arc<Event>| {
        let tally = tally.clone();
        async move { tally.ok() }
    });
    let tally = t(8);
    bus.subscribe_async(ty, move |_e: Arc<Event>| {
        let tally = tally.clone();
        async move {
            tally.failed();
            Err::<(), _>("async error")
        }
    });
    let tally = t(9);
    bus.subscribe_async(ty, move |_e: Arc<Event>| {
        let tally = tally.clone();
        async move {
            tally.failed();
            explode(format!("{DELIBERATE} (async)"))
        }
    });
    // Panics before it even makes its future.
    let tally = t(10);
    bus.subscribe_async(ty, move |_e: Arc<Event>| -> std::future::Ready<()> {
        tally.failed();
        panic!("{DELIBERATE} (async start)");
    });
    // A filter that panics on even events: a failure, and no handler call.
    let tally = t(11);
    let filter_tally = t(11);
    bus.subscription(ty)
        .filter(move |e: &Event| {
            if seq_of(e) % 2 == 0 {
                filter_tally.failed();
                panic!("{DELIBERATE} (filter)");
            }
            true
        })
        .handler(move |_e: &Event| tally.ok());
    // Unsubscribes itself on its first call.
    let me: Arc<OnceLock<SubscriptionId>> = Arc::default();
    let (tally, me_in, handle, unsubscribed_once) = (t(12), me.clone(), bus.clone(), count());
    let unsubscribed = unsubscribed_once.clone();
    let id = bus.subscribe(ty, move |_e: &Event| {
        tally.ok();
        if handle.unsubscribe(*me_in.get().unwrap()) {
            unsubscribed.fetch_add(1, Ordering::Relaxed);
        }
    });
    me.set(id).unwrap();

    // Publishes recursively, and subscribes and unsubscribes from inside a
    // handler: no lock is held while handlers run.
    const DEPTH: i64 = 3;
    let (tally, handle) = (t(13), bus.clone());
    bus.subscribe(EventType::AgentTaskAssigned, move |e: &Event| {
        tally.ok();
        let depth = e.circle_id.unwrap();
        if depth == 1 {
            let temporary = handle.subscribe(EventType::SystemWarning, |_e: &Event| {});
            assert!(handle.unsubscribe(temporary));
        }
        if depth < DEPTH {
            let child = Event::new(EventType::AgentTaskAssigned).with_circle(depth + 1);
            let outcome = handle.publish_blocking(child);
            assert_eq!(
                outcome,
                PublishOutcome {
                    delivered: 1,
                    failed: 0,
                    retrying: 0,
                }
            );
        }
    });

    const THREADS: u64 = 2;
    let per_thread = scaled(10_000, 3_000);
    let start = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (bus, start) = (bus.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                let (mut delivered, mut failed) = (0, 0);
                for seq in 0..per_thread {
                    let outcome = bus.publish_blocking(Event::new(ty).with_project(seq as i64));
                    delivered += outcome.delivered as u64;
                    failed += outcome.failed as u64;
                    if seq % 10 == 0 {
                        let chain = bus.publish_blocking(
                            Event::new(EventType::AgentTaskAssigned).with_circle(0),
                        );
                        assert_eq!(
                            chain,
                            PublishOutcome {
                                delivered: 1,
                                failed: 0,
                                retrying: 0,
                            }
                        );
                        delivered += 1;
                    }
                }
                (delivered, failed)
            })
        })
        .collect();
    let (mut delivered, mut failed) = (0, 0);
    for handle in handles {
        let (d, f) = handle.join().unwrap();
        delivered += d;
        failed += f;
    }

    let published = THREADS * per_thread;
    let chains = THREADS * per_thread.div_ceil(10);
    let even = THREADS * per_thread.div_ceil(2);
    // Each handler was called exactly once per publish of its type.
    for (i, tally) in tallies.iter().enumerate() {
        let expected = match i {
            0 | 6 | 7 => (published, 0),
            1..=5 | 8..=10 => (0, published),
            11 => (published - even, even),
            12 => continue,
            13 => (chains * (DEPTH as u64 + 1), 0),
            _ => unreachable!(),
        };
        assert_eq!(tally.get(), expected, "handler {i}");
    }
    // The self-unsubscriber: unsubscribed exactly once; after that only a
    // publish already in flight on the other thread may call it.
    let (calls, _) = tallies[12].get();
    assert_eq!(unsubscribed_once.load(Ordering::Relaxed), 1);
    assert!((1..=THREADS).contains(&calls), "called {calls} times");

    // What publish returned, what the bus counted and what handlers saw agree.
    let handler_ok: u64 = tallies.iter().map(|t| t.get().0).sum();
    let handler_failed: u64 = tallies.iter().map(|t| t.get().1).sum();
    let stats = bus.stats();
    assert_eq!(
        stats.events_published,
        published + chains * (DEPTH as u64 + 1)
    );
    assert_eq!(stats.events_delivered, handler_ok);
    assert_eq!(stats.handler_errors, handler_failed);
    // The nested publishes' outcomes are in the handlers' tallies, not in
    // the top-level outcomes the threads summed.
    assert_eq!(delivered, handler_ok - chains * DEPTH as u64);
    assert_eq!(failed, handler_failed);
    assert_eq!(stats.active_subscribers, 13);

    // Still fully usable, and `reset` drops the handlers (which hold the
    // bus, so this also breaks their reference cycle).
    let odd = bus.publish_blocking(Event::new(ty).with_project(1));
    assert_eq!(
        odd,
        PublishOutcome {
            delivered: 4,
            failed: 8,
            retrying: 0,
        }
    );
    bus.reset();
    assert_eq!(bus.stats().active_subscribers, 0);
    assert_eq!(
        bus.publish_blocking(Event::new(ty)),
        PublishOutcome::default()
    );
}

/// Resident memory in bytes, from /proc/self/statm.
#[cfg(target_os = "linux")]
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn pushed_out_events_are_released_and_memory_stays_flat() {
    let _serial = serial();
    const CAPACITY: usize = 1000;
    const THREADS: u64 = 2;
    let per_thread = scaled(750_000, 250_000);
    let bus = EventBus::builder().history_capacity(CAPACITY).build();
    let delivered = count();
    let calls = delivered.clone();
    bus.subscribe_all(move |_e: &Event| {
        calls.fetch_add(1, Ordering::Relaxed);
    });

    // Events held from outside the bus from the start: once pushed out of
    // history only this reference may remain.
    let kept: Vec<Arc<Event>> = (0..10)
        .map(|i| Arc::new(Event::new(EventType::MemoryCreated).with_project(i)))
        .collect();
    for event in &kept {
        bus.publish_blocking(Arc::clone(event));
        assert!(Arc::strong_count(event) >= 2, "history holds it");
    }

    // Two publishers and a reader (reads park swapped-out events), in two
    // halves; resident memory after the first half is the baseline.
    let phase = |bus: &EventBus, sample: &Mutex<Vec<Weak<Event>>>| {
        let stop = AtomicBool::new(false);
        thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let events = bus.history(&HistoryQuery::new().limit(10));
                    assert!(events.len() <= 10);
                    reads += 1;
                }
                reads
            });
            let publishers: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        let mut weak = Vec::new();
                        for i in 0..per_thread / 2 {
                            // A payload, so a leak would be large and plain.
                            let event = Arc::new(
                                Event::new(EventType::TaskCompleted)
                                    .with_data(serde_json::json!({"n": i, "note": "x".repeat(64)})),
                            );
                            if i % 1024 == 0 {
                                weak.push(Arc::downgrade(&event));
                            }
                            bus.publish_blocking(event);
                        }
                        weak
                    })
                })
                .collect();
            for publisher in publishers {
                sample.lock().unwrap().extend(publisher.join().unwrap());
            }
            stop.store(true, Ordering::Relaxed);
            assert!(reader.join().unwrap() > 0);
        });
    };
    let sample = Mutex::new(Vec::new());
    phase(&bus, &sample);
    #[cfg(target_os = "linux")]
    let baseline = resident_bytes();
    phase(&bus, &sample);
    #[cfg(target_os = "linux")]
    let after = resident_bytes();

    // A read drains anything a writer parked while the last read ran.
    let window = bus.history(&HistoryQuery::new().limit(usize::MAX));
    assert_eq!(window.len(), CAPACITY);
    let published = 10 + THREADS * per_thread;
    let stats = bus.stats();
    assert_eq!(stats.events_published, published);
    assert_eq!(stats.events_delivered, published);
    assert_eq!(delivered.load(Ordering::Relaxed), published);
    assert_eq!(stats.history_size, CAPACITY);

    for event in &kept {
        assert_eq!(
            Arc::strong_count(event),
            1,
            "history still holds {:?}",
            event.id
        );
    }
    // Every sampled event is freed unless it is still in the window.
    let in_window: HashSet<_> = window.iter().map(|e| e.id).collect();
    let sample = sample.into_inner().unwrap();
    assert!(sample.len() as u64 >= THREADS * per_thread / 1024);
    for weak in &sample {
        if let Some(event) = weak.upgrade() {
            assert!(
                in_window.contains(&event.id),
                "pushed-out event {:?} still alive",
                event.id
            );
        }
    }

    // Flat, not fast: the second half may not keep what it published. Each
    // event with its payload takes well over 500 bytes, so keeping them would
    // add at least twice the bound.
    #[cfg(target_os = "linux")]
    {
        let growth = after.saturating_sub(baseline);
        println!(
            "resident memory: {baseline} bytes after the first half, {after} after the second"
        );
        let bound = (THREADS * per_thread / 2 * 500 / 2).min(16 << 20);
        assert!(
            growth < bound,
            "resident memory grew {growth} bytes over the second half ({baseline} -> {after})"
        );
    }
    drop(window);
}

#[test]
fn soak() {
    let _serial = serial();
    let seconds = std::env::var("AGENTBUS_SOAK_SECS").ok().map(|s| {
        s.parse::<f64>()
            .unwrap_or_else(|_| panic!("AGENTBUS_SOAK_SECS={s:?} is not a number of seconds"))
    });
    // Without the variable, a short run that still checks every count.
    let duration = Duration::from_secs_f64(seconds.unwrap_or(0.3));
    let began = Instant::now();
    let report = run_mix(4, Until::Elapsed(duration), 1000);
    println!(
        "soak: {:.1}s, {} published, {} delivered, {} failed, {} subscriptions churned, \
         {} history reads ({} entries checked)",
        began.elapsed().as_secs_f64(),
        report.published,
        report.delivered,
        report.failed,
        report.churned_subscriptions,
        report.history_reads,
        report.history_entries_checked,
    );
    assert!(report.published > 0);
}
