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
//! - `..., built per publish` (`none`, `dedup`, `rate_limit_per_agent`):
//!   each publish first builds its event (`Event::new(..).with_source_agent
//!   (..).with_data(json!(..))`, a new task id each time), as a publisher
//!   does, so the payload is in cache when the guard reads it: the realistic
//!   cost of a guard. The pool's prebuilt events are mostly out of cache.
//!
//! `cargo bench -p agentbus-guard --bench guards`
//!
//! `cargo bench -p agentbus-guard --bench guards -- --alternate` instead
//! times the same cases in short batches taken in turn (so a loaded
//! machine slows them alike), plus two threads publishing at once (the
//! pair's wall time per publish, 20,000 distinct agents for the rate
//! limit), a control guard that only reads the whole payload, for each way
//! of publishing (what reading the data costs any guard that does, whether
//! the payload is cold, hot or was just written) and the cost of
//! one read of each clock; it prints the median and the fastest batch of
//! each, their differences from `none`, and the median of the per-round
//! differences (each batch minus its `none` batch of the same round, which
//! cancels slow drifts of the machine).
//!
//! `cargo bench -p agentbus-guard --bench guards -- --driver <case> <n>`
//! instead publishes `n` times through one case (`none`, `dedup`,
//! `rate_limit`, `schemas`) and exits, for `valgrind --tool=callgrind`:
//! the instructions per publish are the difference between two lengths
//! divided by the difference in `n` (as `.ci/bench-callgrind` does for the
//! core). There the dedup and rate-limit cases run on a manual clock
//! stepped 1 µs per publish, so the counts repeat exactly (the rate limit
//! at 1000 per second per agent, each agent's whole quota).

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::{Event, EventBus, EventType, Guard};
use agentbus_guard::{Clock, Dedup, RateLimit, Schemas};
use criterion::{criterion_group, Criterion, Throughput};
use serde_json::json;

const POOL: usize = 4096;

/// The benched event: `n` picks its agent (one of 1000) and its task id.
fn event(n: usize) -> Event {
    Event::new(EventType::TaskCompleted)
        .with_source_agent((n % 1000) as i64)
        .with_circle(7)
        .with_data(json!({
            "task_id": n,
            "result": "success",
            "duration_ms": 1234,
            "agent": "reviewer",
            "tags": ["rust", "bench"],
        }))
}

fn pool() -> Vec<Arc<Event>> {
    (0..POOL).map(|n| Arc::new(event(n))).collect()
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

    // `built`: each publish builds its event first, as a publisher does
    // (the payload is then in cache); otherwise it takes the next of the
    // pool's prebuilt events (their payloads mostly out of cache).
    let run = |bus: EventBus, step: Option<Clock>, built: bool| {
        let events = events.clone();
        let mut next = 0;
        move || {
            if let Some(clock) = &step {
                clock.advance(Duration::from_micros(1));
            }
            let outcome = if built {
                bus.publish_blocking(event(next))
            } else {
                bus.publish_blocking(Arc::clone(&events[next % POOL]))
            };
            next += 1;
            debug_assert_eq!(outcome.delivered, 1);
            outcome
        }
    };

    let mut counters = Vec::new();
    for built in [false, true] {
        let suffix = if built { ", built per publish" } else { "" };
        let mut none = run(with_subscriber(EventBus::new()), None, built);
        group.bench_function(format!("none{suffix}"), |b| b.iter(&mut none));

        let clock = Clock::manual();
        let dedup = Dedup::window(Duration::from_millis(1)).clock(clock.clone());
        let mut dedup_case = run(
            with_subscriber(EventBus::builder().guard(dedup.clone()).build()),
            Some(clock),
            built,
        );
        group.bench_function(format!("dedup{suffix}"), |b| b.iter(&mut dedup_case));

        let limit = RateLimit::per_agent(u32::MAX, Duration::from_secs(1));
        let mut limit_case = run(
            with_subscriber(EventBus::builder().guard(limit.clone()).build()),
            None,
            built,
        );
        group.bench_function(format!("rate_limit_per_agent{suffix}"), |b| {
            b.iter(&mut limit_case)
        });
        counters.push((dedup, limit));
    }

    let schemas = schemas();
    let mut schemas_case = run(
        with_subscriber(EventBus::builder().guard(schemas.clone()).build()),
        None,
        false,
    );
    group.bench_function("schemas", |b| b.iter(&mut schemas_case));
    group.finish();

    for (dedup, limit) in counters {
        assert_eq!(
            (dedup.deduplicated(), limit.rate_limited()),
            (0, 0),
            "every benched event must be let in"
        );
    }
    assert_eq!(schemas.invalid(), 0, "every benched event must be let in");
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
        // On the stepped clock too: each of the 1000 agents publishes once
        // a millisecond, its whole quota, so every check updates a live key.
        "rate_limit" => EventBus::builder()
            .guard(RateLimit::per_agent(1000, Duration::from_secs(1)).clock(clock.clone()))
            .build(),
        "schemas" => EventBus::builder().guard(schemas()).build(),
        "noop" => EventBus::builder().guard(noop).build(),
        other => panic!("unknown driver case {other}"),
    };
    let bus = with_subscriber(bus);
    for n in 0..n {
        clock.advance(Duration::from_micros(1));
        let outcome = bus.publish_blocking(Arc::clone(&events[n % POOL]));
        assert_eq!(outcome.delivered, 1, "every driven event must be let in");
    }
}

/// One case of [`alternate`]: a bus and the events it publishes, from one
/// thread or from two (each taking its half of the events).
struct Case {
    name: &'static str,
    /// The index of the case this one is compared with.
    baseline: usize,
    bus: EventBus,
    events: Arc<Vec<Arc<Event>>>,
    threads: usize,
    clock: Clock,
    /// Each publish builds its event just before (`events` unused).
    built: bool,
}

impl Case {
    fn new(name: &'static str, bus: EventBus, events: &Arc<Vec<Arc<Event>>>, clock: Clock) -> Self {
        Self {
            name,
            baseline: 0,
            bus: with_subscriber(bus),
            events: Arc::clone(events),
            threads: 1,
            clock,
            built: false,
        }
    }

    fn built(mut self) -> Self {
        self.built = true;
        self
    }

    fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    fn against(mut self, baseline: usize) -> Self {
        self.baseline = baseline;
        self
    }

    /// Publishes `batch` events from each thread, starting at `round`'s
    /// place in the pool; the wall time per publish of one thread.
    fn batch(&self, round: usize, batch: usize) -> f64 {
        let share = self.events.len() / self.threads;
        let publish = |thread: usize| {
            let events = &self.events[thread * share..(thread + 1) * share];
            for n in 0..batch {
                // Every case steps a clock, so each pays the same for it.
                self.clock.advance(Duration::from_micros(1));
                let n = round * batch + n;
                let outcome = if self.built {
                    self.bus.publish_blocking(event(n))
                } else {
                    self.bus
                        .publish_blocking(Arc::clone(&events[n % events.len()]))
                };
                debug_assert_eq!(outcome.delivered, 1);
                black_box(outcome);
            }
        };
        let start = Instant::now();
        if self.threads == 1 {
            publish(0);
        } else {
            std::thread::scope(|scope| {
                for thread in 0..self.threads {
                    scope.spawn(move || publish(thread));
                }
            });
        }
        start.elapsed().as_nanos() as f64 / batch as f64
    }
}

/// A guard that lets everything in: what the core's hook costs by itself.
fn noop(_event: &Event) -> Result<(), agentbus::Rejection> {
    Ok(())
}

/// A guard that reads every key and string of the data and lets the event
/// in: what reading the payload costs any guard that reads it (the control
/// for the pool's cold payloads and for the events built per publish).
fn touch_payload(event: &Event) -> Result<(), agentbus::Rejection> {
    fn walk(value: &serde_json::Value) -> usize {
        match value {
            serde_json::Value::String(text) => text.len() + usize::from(text.as_bytes()[0]),
            serde_json::Value::Array(items) => items.iter().map(walk).sum(),
            serde_json::Value::Object(entries) => entries
                .iter()
                .map(|(key, item)| key.len() + usize::from(key.as_bytes()[0]) + walk(item))
                .sum(),
            _ => 1,
        }
    }
    black_box(walk(&event.data));
    Ok(())
}

fn guarded(guard: impl Guard) -> EventBus {
    EventBus::builder().guard(guard).build()
}

/// The cases of the criterion group and two-thread ones, in alternating
/// batches; prints medians, fastest batches and differences from `none`.
fn alternate() {
    const ROUNDS: usize = 300;
    const BATCH: usize = 4000;
    let events = Arc::new(pool());
    // 2 threads × 10,000 distinct agents, the memory case.
    let agents: Arc<Vec<Arc<Event>>> = Arc::new(
        (0..20_000)
            .map(|n| {
                Arc::new(
                    Event::new(EventType::TaskCompleted)
                        .with_source_agent(n)
                        .with_circle(7)
                        .with_data(json!({"task_id": n, "result": "success"})),
                )
            })
            .collect(),
    );
    let dedup = |clock: &Clock| Dedup::window(Duration::from_millis(1)).clock(clock.clone());
    let limit = || RateLimit::per_agent(u32::MAX, Duration::from_secs(1));
    // Few enough events that their payloads stay in cache, as a payload
    // just built by its publisher is: 512, with a 100 µs window (about 100
    // remembered).
    let hot = Arc::new(pool()[..512].to_vec());
    let cases = {
        let c = Clock::manual;
        let (d1, d2, d3, d4) = (c(), c(), c(), c());
        vec![
            Case::new("none", EventBus::new(), &events, c()),
            Case::new("dedup", guarded(dedup(&d1)), &events, d1),
            Case::new("rate_limit_per_agent", guarded(limit()), &events, c()),
            Case::new("schemas", guarded(schemas()), &events, c()),
            Case::new("no-op guard (the core's hook)", guarded(noop), &events, c()),
            Case::new("none, 2 threads", EventBus::new(), &agents, c())
                .threads(2)
                .against(5),
            Case::new("dedup, 2 threads", guarded(dedup(&d2)), &agents, d2)
                .threads(2)
                .against(5),
            Case::new(
                "rate_limit_per_agent, 2 threads",
                guarded(limit()),
                &agents,
                c(),
            )
            .threads(2)
            .against(5),
            Case::new("none, 512 hot payloads", EventBus::new(), &hot, c()).against(8),
            Case::new(
                "dedup, 512 hot payloads",
                guarded(Dedup::window(Duration::from_micros(100)).clock(d3.clone())),
                &hot,
                d3,
            )
            .against(8),
            Case::new("schemas, 512 hot payloads", guarded(schemas()), &hot, c()).against(8),
            Case::new("none, built per publish", EventBus::new(), &events, c())
                .built()
                .against(11),
            Case::new("dedup, built per publish", guarded(dedup(&d4)), &events, d4)
                .built()
                .against(11),
            Case::new(
                "rate_limit_per_agent, built per publish",
                guarded(limit()),
                &events,
                c(),
            )
            .built()
            .against(11),
            Case::new(
                "control: a guard reading the whole payload",
                guarded(touch_payload),
                &events,
                c(),
            ),
            Case::new(
                "control: a guard reading the whole payload, built per publish",
                guarded(touch_payload),
                &events,
                c(),
            )
            .built()
            .against(11),
            Case::new(
                "control: a guard reading the whole payload, 512 hot payloads",
                guarded(touch_payload),
                &hot,
                c(),
            )
            .against(8),
        ]
    };
    let mut samples = vec![Vec::with_capacity(ROUNDS); cases.len()];
    for round in 0..ROUNDS {
        for (case, samples) in cases.iter().zip(&mut samples) {
            samples.push(case.batch(round, BATCH));
        }
    }
    let stats = |samples: &mut Vec<f64>| {
        samples.sort_by(f64::total_cmp);
        (samples[samples.len() / 2], samples[0])
    };
    let paired: Vec<f64> = cases
        .iter()
        .enumerate()
        .map(|(at, case)| {
            let mut differences: Vec<f64> = samples[at]
                .iter()
                .zip(&samples[case.baseline])
                .map(|(sample, none)| sample - none)
                .collect();
            differences.sort_by(f64::total_cmp);
            differences[differences.len() / 2]
        })
        .collect();
    let summary: Vec<(f64, f64)> = samples.iter_mut().map(stats).collect();
    println!("# guarded publish, ns per publish: {ROUNDS} rounds of {BATCH} per case, in turn");
    println!(
        "| case | median | fastest | median over its `none` | fastest over its `none` | median of per-round differences |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for ((case, &(median, fastest)), paired) in cases.iter().zip(&summary).zip(&paired) {
        let (none_median, none_fastest) = summary[case.baseline];
        println!(
            "| {} | {median:.1} | {fastest:.1} | {:+.1} | {:+.1} | {paired:+.1} |",
            case.name,
            median - none_median,
            fastest - none_fastest
        );
    }
    for (name, clock) in [
        ("monotonic", Clock::monotonic()),
        ("coarse", Clock::coarse()),
    ] {
        let reads = 10_000_000;
        let start = Instant::now();
        for _ in 0..reads {
            black_box(clock.now());
        }
        let per_read = start.elapsed().as_nanos() as f64 / reads as f64;
        println!("one read of Clock::{name}: {per_read:.1} ns");
    }
}

criterion_group!(benches, guards);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--alternate") {
        alternate();
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
    benches();
    Criterion::default().configure_from_args().final_summary();
}
