//! Issue 3, case 8 and the memory target. A plain binary, not criterion:
//! criterion reports means, and these targets are about percentiles and RSS.
//!
//! Latency: the time from just before `publish` to the first handler's entry,
//! with 2 publisher threads and a third thread subscribing and unsubscribing
//! on the same event type, recorded in an HDR histogram. Sync handlers run on
//! the publishing thread, so the start stamp travels in a thread-local and
//! the clock is the TSC (a few ns to read, where `Instant` costs tens).
//!
//! Memory: resident set size before and after 10 M publishes with a full
//! history of 1000.
//!
//! Run: `cargo bench --bench latency` (under a minute on 2 cores).
//! `cargo bench --bench latency -- --driver <case> <n>` instead runs one case
//! `n` times for callgrind (see `driver`); `-- --floors` runs only the
//! bare-atomics floors (see `floors`); `-- --single` only the one-publisher
//! comparison with the lock bus (see `single_thread`); `-- --writers` only
//! the cost of a subscribe + unsubscribe (see `writers`).

use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use agentbus::{Event, EventBus, EventType, Publisher};
use hdrhistogram::Histogram;
use serde_json::json;

#[path = "support/lock_bus.rs"]
mod lock_bus;
use lock_bus::{LockBus, LOCK_BUS_HISTORY};

const TYPE: EventType = EventType::TaskCompleted;
const PUBLISHES_PER_THREAD: u64 = 2_000_000;
const MEMORY_PUBLISHES: u64 = 10_000_000;

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn ticks() -> u64 {
    // SAFETY: RDTSC has no preconditions; every x86_64 CPU has it.
    unsafe { std::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn ticks() -> u64 {
    thread_local! { static ORIGIN: Instant = Instant::now(); }
    ORIGIN.with(|o| o.elapsed().as_nanos() as u64)
}

/// Nanoseconds per tick, measured against `Instant` over 200 ms.
fn calibrate() -> f64 {
    let (t0, c0) = (Instant::now(), ticks());
    std::thread::sleep(Duration::from_millis(200));
    let (t1, c1) = (Instant::now(), ticks());
    (t1 - t0).as_nanos() as f64 / (c1 - c0) as f64
}

fn new_histogram() -> Histogram<u64> {
    // 1 ns to 10 s at 3 significant digits.
    Histogram::new_with_bounds(1, 10_000_000_000, 3).unwrap()
}

thread_local! {
    static STAMP: Cell<u64> = const { Cell::new(0) };
    static SAMPLES: RefCell<Histogram<u64>> = RefCell::new(new_histogram());
}

/// The measured handler's first act: stop the clock started by its publisher.
fn record_entry(ns_per_tick: f64) {
    let now = ticks();
    let elapsed = now.wrapping_sub(STAMP.get());
    let ns = (elapsed as f64 * ns_per_tick) as u64;
    SAMPLES.with(|h| h.borrow_mut().saturating_record(ns.max(1)));
}

/// The handler every unmeasured subscriber runs.
fn plain(e: &Event) {
    black_box(e.circle_id);
}

/// A bus as the latency run drives it.
trait Bus: Sync {
    fn subscribe_measuring(&self, ns_per_tick: f64);
    fn subscribe_plain(&self);
    fn churn_once(&self);
    fn publish(&self, event: Arc<Event>);
}

impl Bus for EventBus {
    fn subscribe_measuring(&self, ns_per_tick: f64) {
        self.subscribe(TYPE, move |_e: &Event| record_entry(ns_per_tick));
    }
    fn subscribe_plain(&self) {
        self.subscribe(TYPE, plain);
    }
    fn churn_once(&self) {
        let id = self.subscribe(TYPE, plain);
        self.unsubscribe(id);
    }
    fn publish(&self, event: Arc<Event>) {
        black_box(self.publish_blocking(event));
    }
}

/// agentbus publishing through one [`Publisher`] per publishing thread.
struct ViaPublisher(EventBus);

thread_local! {
    static PUBLISHER: RefCell<Option<Publisher>> = const { RefCell::new(None) };
}

impl Bus for ViaPublisher {
    fn subscribe_measuring(&self, ns_per_tick: f64) {
        self.0.subscribe_measuring(ns_per_tick);
    }
    fn subscribe_plain(&self) {
        self.0.subscribe_plain();
    }
    fn churn_once(&self) {
        self.0.churn_once();
    }
    fn publish(&self, event: Arc<Event>) {
        // Each run's threads are new, so each gets a publisher of this bus.
        PUBLISHER.with(|publisher| {
            let mut publisher = publisher.borrow_mut();
            let publisher = publisher.get_or_insert_with(|| self.0.publisher());
            black_box(publisher.publish_blocking(event));
        });
    }
}

impl Bus for LockBus {
    fn subscribe_measuring(&self, ns_per_tick: f64) {
        self.subscribe(TYPE, move |_e: &Event| record_entry(ns_per_tick));
    }
    fn subscribe_plain(&self) {
        self.subscribe(TYPE, plain);
    }
    fn churn_once(&self) {
        let id = self.subscribe(TYPE, plain);
        self.unsubscribe(TYPE, id);
    }
    fn publish(&self, event: Arc<Event>) {
        black_box(LockBus::publish(self, event));
    }
}

/// `publishers` threads publish fresh events (built before the clock starts)
/// while, if `churn`, another thread subscribes and unsubscribes in a loop.
fn run(
    bus: &dyn Bus,
    publishers: usize,
    churn: bool,
    ns_per_tick: f64,
) -> (Histogram<u64>, Duration) {
    bus.subscribe_measuring(ns_per_tick);
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(publishers);
    let started = Instant::now();
    let merged = std::thread::scope(|s| {
        if churn {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    bus.churn_once();
                }
            });
        }
        let workers: Vec<_> = (0..publishers)
            .map(|_| {
                s.spawn(|| {
                    SAMPLES.with(|h| h.borrow_mut().reset());
                    barrier.wait();
                    for _ in 0..PUBLISHES_PER_THREAD {
                        let event = Arc::new(Event::new(TYPE).with_circle(7));
                        STAMP.set(ticks());
                        bus.publish(event);
                    }
                    SAMPLES.with(|h| h.borrow().clone())
                })
            })
            .collect();
        let mut merged = new_histogram();
        for worker in workers {
            merged.add(worker.join().unwrap()).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        merged
    });
    (merged, started.elapsed())
}

/// What reading the clock twice costs: the floor under every sample.
fn timer_floor(ns_per_tick: f64) -> Histogram<u64> {
    let mut h = new_histogram();
    for _ in 0..1_000_000 {
        STAMP.set(ticks());
        let elapsed = ticks().wrapping_sub(STAMP.get());
        h.saturating_record(((elapsed as f64 * ns_per_tick) as u64).max(1));
    }
    h
}

fn row(label: &str, h: &Histogram<u64>, wall: Option<Duration>) {
    println!(
        "| {label} | {} | {} | {} | {} | {} | {} | {} |",
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.value_at_quantile(0.9999),
        h.max(),
        h.len(),
        wall.map_or_else(|| "-".to_string(), |w| format!("{:.2}", w.as_secs_f64())),
    );
}

/// Nanoseconds this thread has spent on a CPU (Linux only).
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// CPU time per publish on each of `publishers` threads, one subscriber,
/// while another thread subscribes and unsubscribes if `churn`.
///
/// Wall-clock scaling on a shared 2-core machine mostly says whether a
/// second core was free; CPU time per publish that grows from one thread to
/// two, or with churn, says the threads slow each other down (shared cache
/// lines), whatever share of a core each thread got.
fn cpu_per_publish(bus: &dyn Bus, publishers: usize, prebuilt: bool, churn: bool) -> (f64, f64) {
    const N: u64 = 3_000_000;
    bus.subscribe_plain();
    let barrier = Barrier::new(publishers);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let cpu: Vec<f64> = std::thread::scope(|s| {
        if churn {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    bus.churn_once();
                }
            });
        }
        let workers: Vec<_> = (0..publishers)
            .map(|_| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mine = Arc::new(Event::new(TYPE).with_circle(7));
                    barrier.wait();
                    let before = thread_cpu_ns();
                    for _ in 0..N {
                        let event = if prebuilt {
                            Arc::clone(&mine)
                        } else {
                            Arc::new(Event::new(TYPE).with_circle(7))
                        };
                        bus.publish(event);
                    }
                    match (before, thread_cpu_ns()) {
                        (Some(b), Some(a)) => (a - b) as f64 / N as f64,
                        _ => f64::NAN,
                    }
                })
            })
            .collect();
        let cpu = workers.into_iter().map(|w| w.join().unwrap()).collect();
        stop.store(true, Ordering::Relaxed);
        cpu
    });
    let wall = started.elapsed().as_nanos() as f64 / (N * publishers as u64) as f64;
    (cpu.iter().sum::<f64>() / cpu.len() as f64, wall)
}

fn scaling() {
    println!("\n## Contention: publisher CPU ns per publish (from /proc/thread-self/schedstat), 1 subscriber\n");
    // Parallelism is thread CPU time over wall time: near 1.0 means the two
    // publishers mostly took turns on one core and the 2-thread row measures
    // nothing about contention.
    println!("| bus | events | 1 thread | 2 threads | growth | 1 thread + churn | growth | 1 thread wall ns/event | 2 threads wall ns/event | 2-thread parallelism |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    type MakeBus = fn() -> Box<dyn Bus>;
    let buses: [(&str, MakeBus); 3] = [
        ("agentbus", || Box::new(EventBus::new())),
        ("agentbus, history off", || {
            Box::new(EventBus::builder().history_capacity(0).build())
        }),
        ("lock_bus", || Box::new(LockBus::new(LOCK_BUS_HISTORY))),
    ];
    for prebuilt in [true, false] {
        for (name, make) in &buses {
            let (c1, w1) = cpu_per_publish(&*make(), 1, prebuilt, false);
            let (c2, w2) = cpu_per_publish(&*make(), 2, prebuilt, false);
            let (cc, _) = cpu_per_publish(&*make(), 1, prebuilt, true);
            println!(
                "| {name} | {} | {c1:.1} | {c2:.1} | {:+.0}% | {cc:.1} | {:+.0}% | {w1:.1} | {w2:.1} | {:.2} |",
                if prebuilt { "prebuilt" } else { "new" },
                (c2 / c1 - 1.0) * 100.0,
                (cc / c1 - 1.0) * 100.0,
                c2 / w2
            );
        }
    }
}

/// About `rounds` × 3 multiply-adds of dependent work, standing in for the
/// rest of a publish.
fn busy(mut x: u64, rounds: u64) -> u64 {
    for k in 0..rounds {
        x = black_box(x.wrapping_mul(3).wrapping_add(k));
    }
    x
}

/// Floors that no bus design escapes, measured with bare atomics (1, 2),
/// and the cost arc-swap adds on top (3).
///
/// 1. A history that is global and exactly ordered needs one shared counter:
///    each publish takes a ticket. Two threads doing only that plus a fixed
///    amount of other work show how far a shared line alone caps scaling.
/// 2. A publish must see every subscription change that happened before it,
///    so each change moves at least one line (the pointer) and the new table
///    from the writer's core to the publisher's. A writer swapping as fast as
///    it can shows what that alone costs a publisher.
/// 3. What arc-swap adds to that: a reader of one `ArcSwap` while another
///    thread swaps a different one, the cost the bus's publishers pay for
///    subscription churn on other event types.
fn floors() {
    const OPS: u64 = 10_000_000;
    const WORK: u64 = 40; // ~25-30 ns here, about one publish
    println!("\n## Floors (bare atomics, no bus)\n");
    println!("| probe | 1 thread | 2 threads | 2 threads vs 1 |");
    println!("|---|---|---|---|");
    for (label, shared) in [
        ("own counter per thread", false),
        ("one shared counter", true),
    ] {
        let per_op = |threads: u64| {
            let counters = [
                crossbeam_utils::CachePadded::new(AtomicU64::new(0)),
                crossbeam_utils::CachePadded::new(AtomicU64::new(0)),
            ];
            let started = Instant::now();
            std::thread::scope(|s| {
                for t in 0..threads as usize {
                    let counter = &counters[if shared { 0 } else { t }];
                    s.spawn(move || {
                        let mut x = 0;
                        for _ in 0..OPS / threads {
                            x = busy(x ^ counter.fetch_add(1, Ordering::Relaxed), WORK);
                        }
                        black_box(x);
                    });
                }
            });
            started.elapsed().as_nanos() as f64 / OPS as f64
        };
        let (one, two) = (per_op(1), per_op(2));
        println!(
            "| fetch_add + work, {label} (aggregate ns/op) | {one:.1} | {two:.1} | {:.2}x throughput |",
            one / two
        );
    }

    struct Table([AtomicU64; 8]);
    let tables: Vec<Table> = (0..64)
        .map(|_| Table(std::array::from_fn(|_| AtomicU64::new(0))))
        .collect();
    let current = AtomicUsize::new(0);
    // `writer_work` 0: no writer; otherwise that many rounds of work between
    // swaps.
    let run = |writer_work: u64| {
        let stop = AtomicBool::new(false);
        let swaps = AtomicU64::new(0);
        let started = Instant::now();
        let mut x = 0;
        std::thread::scope(|s| {
            if writer_work > 0 {
                s.spawn(|| {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let next = n as usize % tables.len();
                        for slot in &tables[next].0 {
                            slot.store(n, Ordering::Relaxed);
                        }
                        current.store(next, Ordering::Release);
                        black_box(busy(n, writer_work));
                    }
                    swaps.store(n, Ordering::Relaxed);
                });
            }
            for i in 0..OPS {
                let table = &tables[current.load(Ordering::Acquire)];
                x = busy(x ^ table.0[(i % 8) as usize].load(Ordering::Relaxed), WORK);
            }
            stop.store(true, Ordering::Relaxed);
        });
        black_box(x);
        let elapsed = started.elapsed();
        (
            elapsed.as_nanos() as f64 / OPS as f64,
            swaps.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        )
    };
    let (alone, _) = run(0);
    println!("\n| writer between swaps | swaps per second | publisher ns/op | vs alone ({alone:.1} ns) | publisher ns per swap |");
    println!("|---|---|---|---|---|");
    for writer_work in [150, 450, 1500] {
        let (churned, rate) = run(writer_work);
        let ops_per_swap = 1e9 / churned / rate;
        println!(
            "| {writer_work} rounds | {:.2} M | {churned:.1} | {:+.0}% | {:.0} |",
            rate / 1e6,
            (churned / alone - 1.0) * 100.0,
            (churned - alone) * ops_per_swap
        );
    }

    // 3. arc-swap's writers walk every thread's debt slots on any swap: a
    //    reader of one `ArcSwap` pays for swaps of another.
    let read = arc_swap::ArcSwap::from_pointee(0u64);
    let unrelated = arc_swap::ArcSwap::from_pointee(0u64);
    let run = |swapping: bool| {
        let stop = AtomicBool::new(false);
        let swaps = AtomicU64::new(0);
        let started = Instant::now();
        let mut x = 0;
        std::thread::scope(|s| {
            if swapping {
                s.spawn(|| {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        unrelated.store(Arc::new(n));
                    }
                    swaps.store(n, Ordering::Relaxed);
                });
            }
            for _ in 0..OPS {
                x = busy(x ^ **read.load(), WORK);
            }
            stop.store(true, Ordering::Relaxed);
        });
        black_box(x);
        let elapsed = started.elapsed();
        (
            elapsed.as_nanos() as f64 / OPS as f64,
            swaps.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        )
    };
    let (alone, _) = run(false);
    let (beside, rate) = run(true);
    println!(
        "\nReading one `ArcSwap` ({alone:.1} ns/op alone) while another thread swaps an \
         unrelated one {:.1} M times a second: {beside:.1} ns/op ({:+.0}%)",
        rate / 1e6,
        (beside / alone - 1.0) * 100.0
    );
}

/// Resident set size in KiB, from `/proc/self/status` (Linux only).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn fmt_kib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "n/a".to_string(), |k| format!("{k} KiB"))
}

fn memory() {
    let bus = EventBus::new();
    bus.subscribe(TYPE, plain);
    let publish = |i: u64| {
        bus.publish_blocking(
            Event::new(TYPE)
                .with_data(json!({"task_id": i, "result": "success"}))
                .with_circle(7),
        );
    };
    // Fill history first, so what follows is the steady state.
    for i in 0..LOCK_BUS_HISTORY as u64 {
        publish(i);
    }
    let before = rss_kib();
    println!("\n## Memory: RSS over {MEMORY_PUBLISHES} publishes, history 1000 full\n");
    println!("| publishes | RSS |");
    println!("|---|---|");
    println!("| 0 (history just filled) | {} |", fmt_kib(before));
    let started = Instant::now();
    let step = MEMORY_PUBLISHES / 5;
    for chunk in 1..=5 {
        for i in 0..step {
            publish(i);
        }
        println!(
            "| {} M | {} |",
            chunk * step / 1_000_000,
            fmt_kib(rss_kib())
        );
    }
    let after = rss_kib();
    assert_eq!(bus.stats().history_size, LOCK_BUS_HISTORY);
    if let (Some(b), Some(a)) = (before, after) {
        println!(
            "\nRSS growth: {} KiB ({:+.2}%) over {MEMORY_PUBLISHES} publishes in {:.1} s",
            a as i64 - b as i64,
            (a as f64 - b as f64) * 100.0 / b as f64,
            started.elapsed().as_secs_f64()
        );
    }
}

/// A fixed-work loop for `valgrind --tool=callgrind`: instruction counts per
/// publish are the difference between two runs of different lengths.
fn driver(case: &str, n: u64) {
    let ev = Arc::new(Event::new(TYPE).with_circle(7));
    let sync_bus = |subscribers: usize, capacity: usize| {
        let bus = EventBus::builder().history_capacity(capacity).build();
        for _ in 0..subscribers {
            bus.subscribe(TYPE, plain);
        }
        bus
    };
    match case {
        "fanout1" | "fanout16" | "off1" | "pertype1" => {
            let (subscribers, capacity) = match case {
                "fanout16" => (16, LOCK_BUS_HISTORY),
                "off1" => (1, 0),
                _ => (1, LOCK_BUS_HISTORY),
            };
            let bus = sync_bus(subscribers, capacity);
            if case == "pertype1" {
                // `fanout1` with per-type counting on (`EventBus::count_per_type`).
                bus.count_per_type();
            }
            for _ in 0..n {
                black_box(bus.publish_blocking(Arc::clone(&ev)));
            }
        }
        "publisher1" => {
            let mut publisher = sync_bus(1, LOCK_BUS_HISTORY).publisher();
            for _ in 0..n {
                black_box(publisher.publish_blocking(Arc::clone(&ev)));
            }
        }
        "filtered16" => {
            let bus = EventBus::new();
            for k in 0..16 {
                bus.subscription(TYPE)
                    .filter(move |e: &Event| e.circle_id == Some(k))
                    .handler(plain);
            }
            for _ in 0..n {
                black_box(bus.publish_blocking(Arc::clone(&ev)));
            }
        }
        "async1" => {
            let bus = EventBus::new();
            bus.subscribe_async(TYPE, |e: Arc<Event>| async move {
                black_box(e.circle_id);
            });
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(async {
                for _ in 0..n {
                    black_box(bus.publish(Arc::clone(&ev)).await);
                }
            });
        }
        "newevent" => {
            let bus = sync_bus(1, LOCK_BUS_HISTORY);
            for _ in 0..n {
                black_box(
                    bus.publish_blocking(
                        Event::new(TYPE)
                            .with_data(json!({"task_id": 123}))
                            .with_circle(7),
                    ),
                );
            }
        }
        "lockbus1" | "lockbus16" | "lockfiltered16" => {
            // The peer, counted the same way.
            let bus = LockBus::new(LOCK_BUS_HISTORY);
            for k in 0..if case == "lockbus1" { 1 } else { 16 } {
                if case == "lockfiltered16" {
                    bus.subscribe(TYPE, move |e: &Event| {
                        if e.circle_id == Some(k) {
                            plain(e);
                        }
                    });
                } else {
                    bus.subscribe(TYPE, plain);
                }
            }
            for _ in 0..n {
                black_box(bus.publish(Arc::clone(&ev)));
            }
        }
        "history" => {
            let bus = EventBus::new();
            for i in 0..2 * LOCK_BUS_HISTORY {
                bus.publish_blocking(Event::new(EventType::ALL[i % 4]));
            }
            let query = agentbus::HistoryQuery::new()
                .event_type(EventType::ALL[1])
                .limit(10);
            for _ in 0..n {
                black_box(bus.history(&query));
            }
        }
        other => panic!("unknown driver case {other}"),
    }
}

/// One publisher, no contention: agentbus against the lock bus, the same
/// subscribers (plain, 16 plain, 16 filtered with one match), run in short
/// alternating batches so that a loaded machine slows both alike. Reports
/// the median and the fastest batch of each (ns per publish) and their
/// ratios; the fastest batch is the least disturbed one.
fn single_thread() {
    const BATCH: u32 = 2_000;
    const ROUNDS: usize = 400;
    let ev = Arc::new(
        Event::new(TYPE)
            .with_data(json!({"task_id": 123}))
            .with_circle(7),
    );
    type Publish<'a> = Box<dyn FnMut() + 'a>;
    let time = |publish: &mut Publish<'_>| {
        let started = Instant::now();
        for _ in 0..BATCH {
            publish();
        }
        started.elapsed().as_nanos() as f64 / f64::from(BATCH)
    };
    println!("\n# One publisher, alternating batches of {BATCH} ({ROUNDS} rounds)\n");
    println!(
        "| case | agentbus median / fastest | lock_bus median / fastest | ratio median / fastest |"
    );
    println!("|---|---|---|---|");
    let cases = [
        "1 subscriber",
        "16 subscribers",
        "16 filtered, 1 match",
        "1 subscriber, Publisher",
        "16 subscribers, Publisher",
        "16 filtered, 1 match, Publisher",
        "1 subscriber, history off",
        "16 subscribers, history off",
        "16 filtered, 1 match, history off",
    ];
    for case in cases {
        let bus = EventBus::builder()
            .history_capacity(if case.ends_with("history off") {
                0
            } else {
                LOCK_BUS_HISTORY
            })
            .build();
        let lock = LockBus::new(LOCK_BUS_HISTORY);
        let n = if case.starts_with("16") { 16 } else { 1 };
        for k in 0..n {
            if case.contains("filtered") {
                bus.subscription(TYPE)
                    .filter(move |e: &Event| e.circle_id == Some(k))
                    .handler(plain);
                lock.subscribe(TYPE, move |e: &Event| {
                    if e.circle_id == Some(k) {
                        plain(e);
                    }
                });
            } else {
                bus.subscribe(TYPE, plain);
                lock.subscribe(TYPE, plain);
            }
        }
        let mut publisher = bus.publisher();
        let via_publisher = case.ends_with("Publisher");
        let mut ours: Publish<'_> = if via_publisher {
            Box::new(|| {
                black_box(publisher.publish_blocking(Arc::clone(&ev)));
            })
        } else {
            Box::new(|| {
                black_box(bus.publish_blocking(Arc::clone(&ev)));
            })
        };
        let mut theirs: Publish<'_> = Box::new(|| {
            black_box(lock.publish(Arc::clone(&ev)));
        });
        let (mut a, mut b) = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
        for round in 0..ROUNDS {
            if round % 2 == 0 {
                a.push(time(&mut ours));
                b.push(time(&mut theirs));
            } else {
                b.push(time(&mut theirs));
                a.push(time(&mut ours));
            }
        }
        let summary = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            (v[v.len() / 2], v[0])
        };
        let ((am, af), (bm, bf)) = (summary(&mut a), summary(&mut b));
        println!(
            "| {case} | {am:.1} / {af:.1} ns | {bm:.1} / {bf:.1} ns | {:.2}x / {:.2}x |",
            am / bm,
            af / bf
        );
    }
}

/// What subscription changes cost: one `subscribe` plus one `unsubscribe`
/// of a plain handler on a bus with one subscriber, µs per pair (median of
/// 20 rounds of 500 pairs), with nobody else publishing and with another
/// thread publishing on the same bus all along. Each pair replaces the
/// type's table twice.
fn writers() {
    const PAIRS: u32 = 500;
    const ROUNDS: usize = 20;
    println!("\n# Subscription changes: subscribe + unsubscribe, µs per pair (median of {ROUNDS} rounds of {PAIRS})\n");
    println!("| case | µs per pair |");
    println!("|---|---|");
    for other_publisher in [false, true] {
        let bus = EventBus::new();
        bus.subscribe(TYPE, plain);
        // This thread has published once: it owns hazard slots.
        bus.publish_blocking(Event::new(TYPE));
        let stop = AtomicBool::new(false);
        let mut rounds = std::thread::scope(|s| {
            if other_publisher {
                s.spawn(|| {
                    let ev = Arc::new(Event::new(TYPE));
                    while !stop.load(Ordering::Relaxed) {
                        black_box(bus.publish_blocking(Arc::clone(&ev)));
                    }
                });
            }
            let rounds: Vec<f64> = (0..ROUNDS)
                .map(|_| {
                    let started = Instant::now();
                    for _ in 0..PAIRS {
                        let id = bus.subscribe(TYPE, plain);
                        bus.unsubscribe(id);
                    }
                    started.elapsed().as_nanos() as f64 / f64::from(PAIRS) / 1e3
                })
                .collect();
            stop.store(true, Ordering::Relaxed);
            rounds
        });
        rounds.sort_by(f64::total_cmp);
        let case = if other_publisher {
            "another thread publishing"
        } else {
            "nobody else publishing"
        };
        println!("| {case} | {:.2} |", rounds[ROUNDS / 2]);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--writers") {
        writers();
        return;
    }
    if args.iter().any(|a| a == "--floors") {
        floors();
        return;
    }
    if args.iter().any(|a| a == "--single") {
        single_thread();
        return;
    }
    if let Some(at) = args.iter().position(|a| a == "--driver") {
        let case = args.get(at + 1).expect("--driver <case> <n>");
        let n = args
            .get(at + 2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(100_000);
        driver(case, n);
        return;
    }
    // `cargo bench` passes `--bench`; anything else (e.g. `cargo test
    // --benches`) returns at once so it stays fast.
    if !args.iter().any(|a| a == "--bench") {
        println!("latency: skipped (run with `cargo bench --bench latency`)");
        return;
    }
    let ns_per_tick = calibrate();
    println!("# Latency: publish to first handler entry (ns)\n");
    println!("clock: TSC, {ns_per_tick:.4} ns/tick; {PUBLISHES_PER_THREAD} publishes per publisher thread\n");
    println!("| run | p50 | p99 | p99.9 | p99.99 | max | samples | wall s |");
    println!("|---|---|---|---|---|---|---|---|");
    row(
        "timer floor (two TSC reads)",
        &timer_floor(ns_per_tick),
        None,
    );

    type MakeBus = fn() -> Box<dyn Bus>;
    let buses: [(&str, MakeBus); 3] = [
        ("agentbus", || Box::new(EventBus::new())),
        ("agentbus Publisher", || {
            Box::new(ViaPublisher(EventBus::new()))
        }),
        ("lock_bus", || Box::new(LockBus::new(LOCK_BUS_HISTORY))),
    ];
    for (publishers, churn) in [(1, false), (2, false), (2, true)] {
        for (name, make) in &buses {
            let bus = make();
            let (h, wall) = run(&*bus, publishers, churn, ns_per_tick);
            let label = format!(
                "{name}, {publishers} publisher{}{}",
                if publishers > 1 { "s" } else { "" },
                if churn { " + churn" } else { "" }
            );
            row(&label, &h, Some(wall));
        }
    }
    single_thread();
    writers();
    scaling();
    floors();
    memory();
}
