//! Issue 19: the cost of each guard on a publish, side by side with a bus
//! without guards, in one criterion group (so the ratios come from one run).
//!
//! Each case publishes (blocking, one sync subscriber) from a pool of 4096
//! distinct events with a 5-field payload, so none is a duplicate or over
//! its quota: what is measured is the cost of letting an event in.
//!
//! - `none`: no guard.
//! - `dedup`: `Dedup`, 1 ms window on a manual clock stepped 1 µs per
//!   publish, so about 1000 events are remembered (each event is inserted
//!   and later expired once, the steady state).
//! - `rate_limit_per_agent`: `RateLimit::per_agent`, 1000 agents, a quota
//!   no agent reaches, on the monotonic clock.
//! - `schemas`: `Schemas` with a schema for the 5-field payload.
//!
//! `cargo bench -p agentbus-guard --bench guards`
//!
//! `cargo bench -p agentbus-guard --bench guards -- --driver <case> <n>`
//! instead publishes `n` times through one case (`none`, `dedup`,
//! `rate_limit`, `schemas`) and exits, for `valgrind --tool=callgrind`:
//! the instructions per publish are the difference between two lengths
//! divided by the difference in `n` (as `.ci/bench-callgrind` does for the
//! core). The dedup case steps its manual clock 1 µs per publish there
//! too, so the counts repeat exactly.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use agentbus::{Event, EventBus, EventType};
use agentbus_guard::{Clock, Dedup, RateLimit, Schemas};
use criterion::{criterion_group, Criterion, Throughput};
use serde_json::json;

const POOL: usize = 4096;

fn pool() -> Vec<Arc<Event>> {
    (0..POOL)
        .map(|n| {
            Arc::new(
                Event::new(EventType::TaskCompleted)
                    .with_source_agent((n % 1000) as i64)
                    .with_circle(7)
                    .with_data(json!({
                        "task_id": n,
                        "result": "success",
                        "duration_ms": 1234,
                        "agent": "reviewer",
                        "tags": ["rust", "bench"],
                    })),
            )
        })
        .collect()
}

fn schemas() -> Schemas {
    Schemas::new()
        .schema(
            EventType::TaskCompleted,
            json!({
                "type": "object",
                "required": ["task_id", "result"],
                "properties": {
                    "task_id": {"type": "integer", "minimum": 0},
                    "result": {"type": "string", "enum": ["success", "failure"]},
                    "duration_ms": {"type": "integer", "minimum": 0},
                    "agent": {"type": "string", "maxLength": 64},
                    "tags": {"type": "array", "items": {"type": "string"}}
                }
            }),
        )
        .expect("the schema compiles")
}

fn with_subscriber(bus: EventBus) -> EventBus {
    bus.subscribe(EventType::TaskCompleted, |e: &Event| {
        black_box(e.circle_id);
    });
    bus
}

fn guards(c: &mut Criterion) {
    let events = pool();
    let mut group = c.benchmark_group("guarded_publish");
    group.throughput(Throughput::Elements(1));

    let run = |bus: EventBus, step: Option<Clock>| {
        let events = events.clone();
        let mut next = 0;
        move || {
            if let Some(clock) = &step {
                clock.advance(Duration::from_micros(1));
            }
            let outcome = bus.publish_blocking(Arc::clone(&events[next]));
            next = (next + 1) % POOL;
            debug_assert_eq!(outcome.delivered, 1);
            outcome
        }
    };

    let mut none = run(with_subscriber(EventBus::new()), None);
    group.bench_function("none", |b| b.iter(&mut none));

    let clock = Clock::manual();
    let dedup = Dedup::window(Duration::from_millis(1)).clock(clock.clone());
    let mut dedup_case = run(
        with_subscriber(EventBus::builder().guard(dedup.clone()).build()),
        Some(clock),
    );
    group.bench_function("dedup", |b| b.iter(&mut dedup_case));

    let limit = RateLimit::per_agent(u32::MAX, Duration::from_secs(1));
    let mut limit_case = run(
        with_subscriber(EventBus::builder().guard(limit.clone()).build()),
        None,
    );
    group.bench_function("rate_limit_per_agent", |b| b.iter(&mut limit_case));

    let schemas = schemas();
    let mut schemas_case = run(
        with_subscriber(EventBus::builder().guard(schemas.clone()).build()),
        None,
    );
    group.bench_function("schemas", |b| b.iter(&mut schemas_case));
    group.finish();

    assert_eq!(
        (
            dedup.deduplicated(),
            limit.rate_limited(),
            schemas.invalid()
        ),
        (0, 0, 0),
        "every benched event must be let in"
    );
}

/// A fixed-work loop for callgrind: `n` publishes through one case, built
/// as in [`guards`].
fn driver(case: &str, n: usize) {
    let events = pool();
    let clock = Clock::manual();
    let bus = match case {
        "none" => EventBus::new(),
        "dedup" => EventBus::builder()
            .guard(Dedup::window(Duration::from_millis(1)).clock(clock.clone()))
            .build(),
        "rate_limit" => EventBus::builder()
            .guard(RateLimit::per_agent(u32::MAX, Duration::from_secs(1)))
            .build(),
        "schemas" => EventBus::builder().guard(schemas()).build(),
        other => panic!("unknown driver case {other}"),
    };
    let bus = with_subscriber(bus);
    for n in 0..n {
        clock.advance(Duration::from_micros(1));
        let outcome = bus.publish_blocking(Arc::clone(&events[n % POOL]));
        assert_eq!(outcome.delivered, 1, "every driven event must be let in");
    }
}

criterion_group!(benches, guards);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--driver") {
        let case = args.get(at + 1).expect("--driver <case> <n>");
        let n = args
            .get(at + 2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(100_000);
        driver(case, n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
