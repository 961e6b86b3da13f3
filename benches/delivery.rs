//! Issue 20's speed targets, one run, candidate and baseline side by side
//! (alternating rounds, ratios reported; wall-clock on a shared machine is
//! noisy, ratios much less so). A plain binary, not criterion.
//!
//! 1. **Key lanes.** 4 keys x 10,000 events, one publisher task per key,
//!    an async handler that waits ~100 us (a blocking sleep on Tokio's
//!    blocking pool, awaited: Tokio's timer has 1 ms granularity). Baseline:
//!    the same subscription with `max_concurrency(1)` (one serial
//!    subscription); candidate: `ordered_by(key)`. Target: >= 3.5x.
//! 2. **Retry path on first-time success.** A handler that succeeds, plain
//!    vs `.retry(Retry::attempts(3))`, ns per `publish_blocking`, sync and
//!    async; and
//!    `.retry` vs `.timeout` alone (both take the managed path), which
//!    isolates what the retry policy itself costs.
//! 3. **Dead letters stay bounded.** 100,000 failing deliveries into a bus
//!    with the default bound (10,000): letters kept, dropped, and resident
//!    set growth.
//!
//! Run: `cargo bench --bench delivery` (about a minute); `-- --quick` runs
//! a tenth of each; `-- --driver <case> <n>` runs one case of 2 for
//! callgrind (see `driver`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::{Event, EventBus, EventType, Retry, DEFAULT_DEAD_LETTER_CAPACITY};
use serde_json::json;

const TYPE: EventType = EventType::TaskCompleted;
const KEYS: i64 = 4;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--driver") {
        let case = args.get(at + 1).map_or("", String::as_str);
        let n = args
            .get(at + 2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(100_000);
        return driver(case, n);
    }
    let quick = args.iter().any(|arg| arg == "--quick");
    let scale = if quick { 10 } else { 1 };
    lanes(10_000 / scale);
    retry_path(200_000 / scale as u64);
    dead_letters(100_000 / scale as u64);
}

fn lanes(per_key: i64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let run = |ordered: bool| -> Duration {
        let bus = EventBus::new();
        let handler = |_e: Arc<Event>| async {
            tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_micros(100)))
                .await
                .ok();
        };
        let subscription = bus.subscription(TYPE);
        if ordered {
            subscription
                .ordered_by(|e: &Event| e.circle_id)
                .async_handler(handler);
        } else {
            subscription.max_concurrency(1).async_handler(handler);
        }
        let started = Instant::now();
        runtime.block_on(async {
            let publishers: Vec<_> = (0..KEYS)
                .map(|key| {
                    let bus = bus.clone();
                    tokio::spawn(async move {
                        for n in 0..per_key {
                            let event = Event::new(TYPE).with_circle(key).with_data(json!(n));
                            assert_eq!(bus.publish(event).await.delivered, 1);
                        }
                    })
                })
                .collect();
            for publisher in publishers {
                publisher.await.unwrap();
            }
        });
        started.elapsed()
    };
    let (mut serial, mut ordered) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..2 {
        serial += run(false);
        ordered += run(true);
    }
    let events = (2 * KEYS * per_key) as f64;
    println!(
        "lanes: {KEYS} keys x {per_key} events, 100 us handler: serial {:.0} ev/s, ordered_by {:.0} ev/s, ratio {:.2}x",
        events / serial.as_secs_f64(),
        events / ordered.as_secs_f64(),
        serial.as_secs_f64() / ordered.as_secs_f64()
    );
}

fn retry_path(publishes: u64) {
    #[derive(Clone, Copy, PartialEq)]
    enum Kind {
        Plain,
        Retry,
        Timeout,
        AsyncPlain,
        AsyncRetry,
    }
    let bus_for = |kind: Kind| {
        let bus = EventBus::builder().history_capacity(0).build();
        let handler = |e: &Event| {
            black_box(e.circle_id);
        };
        let async_handler = |e: Arc<Event>| async move {
            black_box(e.circle_id);
        };
        let subscription = bus.subscription(TYPE);
        match kind {
            Kind::Plain => subscription.handler(handler),
            Kind::Retry => subscription.retry(Retry::attempts(3)).handler(handler),
            Kind::Timeout => subscription
                .timeout(Duration::from_secs(5))
                .handler(handler),
            Kind::AsyncPlain => subscription.async_handler(async_handler),
            Kind::AsyncRetry => subscription
                .retry(Retry::attempts(3))
                .async_handler(async_handler),
        };
        bus
    };
    let event = Arc::new(Event::new(TYPE).with_circle(1));
    let kinds = [
        Kind::Plain,
        Kind::Retry,
        Kind::Timeout,
        Kind::AsyncPlain,
        Kind::AsyncRetry,
    ];
    let buses = kinds.map(bus_for);
    let mut totals = [Duration::ZERO; 5];
    // Round 0 warms up and is not counted.
    for round in 0..6 {
        for (index, bus) in buses.iter().enumerate() {
            let started = Instant::now();
            for _ in 0..publishes / 5 {
                black_box(bus.publish_blocking(Arc::clone(&event)));
            }
            if round > 0 {
                totals[index] += started.elapsed();
            }
        }
    }
    let ns = totals.map(|total| total.as_nanos() as f64 / publishes as f64);
    println!(
        "retry path, first-time success: plain {:.0} ns, retry(3) {:.0} ns ({:.2}x plain), timeout only {:.0} ns (retry/timeout {:.2}x)",
        ns[0],
        ns[1],
        ns[1] / ns[0],
        ns[2],
        ns[1] / ns[2]
    );
    println!(
        "retry path, first-time success, async handler: plain {:.0} ns, retry(3) {:.0} ns ({:.2}x plain)",
        ns[3],
        ns[4],
        ns[4] / ns[3]
    );
}

fn dead_letters(failures: u64) {
    let bus = EventBus::builder().history_capacity(0).build();
    bus.subscription(TYPE)
        .name("always failing")
        .handler(|_e: &Event| -> Result<(), String> { Err("exporter down".into()) });
    let before = rss_kib();
    let started = Instant::now();
    for n in 0..failures {
        bus.publish_blocking(Event::new(TYPE).with_data(json!({ "n": n })));
        if n + 1 == DEFAULT_DEAD_LETTER_CAPACITY as u64 {
            println!(
                "dead letters: after {} failures, rss +{} KiB",
                n + 1,
                rss_kib().saturating_sub(before)
            );
        }
    }
    let elapsed = started.elapsed();
    let dead = bus.dead_letters();
    println!(
        "dead letters: after {failures} failures, kept {} (bound {}), dropped {}, rss +{} KiB, {:.0} ns per failure",
        dead.len(),
        DEFAULT_DEAD_LETTER_CAPACITY,
        dead.dropped(),
        rss_kib().saturating_sub(before),
        elapsed.as_nanos() as f64 / failures as f64
    );
    assert!(dead.len() <= DEFAULT_DEAD_LETTER_CAPACITY);
}

/// One case `n` times, for callgrind (instructions per publish: run at two
/// `n` and divide the difference, as `.ci/bench-callgrind` does):
/// `sync-plain`, `sync-retry`, `async-plain`, `async-retry`.
fn driver(case: &str, n: u64) {
    let bus = EventBus::builder().history_capacity(0).build();
    let subscription = bus.subscription(TYPE);
    let subscription = if case.ends_with("-retry") {
        subscription.retry(Retry::attempts(3))
    } else {
        subscription
    };
    if case.starts_with("async") {
        subscription.async_handler(|e: Arc<Event>| async move {
            black_box(e.circle_id);
        });
    } else {
        subscription.handler(|e: &Event| {
            black_box(e.circle_id);
        });
    }
    let event = Arc::new(Event::new(TYPE).with_circle(1));
    for _ in 0..n {
        black_box(bus.publish_blocking(Arc::clone(&event)));
    }
}

/// Resident set size in KiB (Linux; 0 elsewhere).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
