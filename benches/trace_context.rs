//! Issue 23: what a W3C trace context costs a publish, each case's unset and
//! set variants side by side in one criterion group (one run, so their ratio
//! is comparable):
//!
//! - `parent` / `state`: `Event::new` + `publish_blocking` to one sync
//!   subscriber, with the trace context unset vs set (`parent`: a
//!   traceparent only, a plain copy; `state`: with a tracestate, one
//!   allocation per clone);
//! - `inherit`: the subscriber publishes a child from inside the handler,
//!   so the bus stamps it; the parent untraced vs traced (the child then
//!   inherits the context: the copy is the cost).
//!
//! `cargo bench --bench trace_context` (about a minute on 2 cores); the
//! ratios are in `benches/RESULTS.md`.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use agentbus::{Event, EventBus, EventType, TraceContext};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn trace_context(c: &mut Criterion) {
    let context = TraceContext::parse(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        Some("rojo=00f067aa0ba902b7"),
    )
    .unwrap();
    let without_state = TraceContext::new(context.traceparent);
    let mut group = c.benchmark_group("trace_context");
    group.throughput(Throughput::Elements(1));

    let bus = EventBus::builder().history_capacity(1024).build();
    bus.subscribe(EventType::TaskCompleted, |event: &Event| {
        black_box(event.circle_id);
    });
    for (case, traced) in [("parent", &without_state), ("state", &context)] {
        group.bench_function(BenchmarkId::new(case, "unset"), |b| {
            b.iter(|| bus.publish_blocking(Event::new(EventType::TaskCompleted).with_circle(1)));
        });
        group.bench_function(BenchmarkId::new(case, "set"), |b| {
            b.iter(|| {
                bus.publish_blocking(
                    Event::new(EventType::TaskCompleted)
                        .with_circle(1)
                        .with_trace_context(traced.clone()),
                )
            });
        });
    }

    let relay = EventBus::builder().history_capacity(1024).build();
    let weak = relay.downgrade();
    relay.subscribe(EventType::TaskCompleted, move |_event: &Event| {
        if let Some(bus) = weak.upgrade() {
            bus.publish_blocking(Event::new(EventType::MemoryShared));
        }
    });
    group.bench_function(BenchmarkId::new("inherit", "unset"), |b| {
        b.iter(|| relay.publish_blocking(Event::new(EventType::TaskCompleted)));
    });
    group.bench_function(BenchmarkId::new("inherit", "set"), |b| {
        b.iter(|| {
            relay.publish_blocking(
                Event::new(EventType::TaskCompleted).with_trace_context(context.clone()),
            )
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = trace_context
}
criterion_main!(benches);
