//! Issue 23: what a W3C trace context costs a publish. Each case runs its
//! plain and traced variants alternating, round after round, in one
//! process, and prints the median ns per publish of each and their ratio.
//!
//! - `parent` / `state`: `Event::new` + `publish_blocking` to one sync
//!   subscriber, with the trace context unset vs set (`parent`: a traceparent only, a
//!   plain copy; `state`: with a tracestate, one allocation per clone);
//! - `inherit`: the subscriber publishes a child from inside the handler,
//!   so the bus stamps it; the parent untraced vs traced (the child then
//!   inherits the context: the copy is the cost).
//!
//! `cargo bench --bench trace_context`

use std::hint::black_box;
use std::time::Instant;

use agentbus::{Event, EventBus, EventType, TraceContext};

const ROUNDS: usize = 21;
const PER_ROUND: u32 = 200_000;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// ns per call of `run`, measured `PER_ROUND` times.
fn time(run: &mut dyn FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..PER_ROUND {
        run();
    }
    start.elapsed().as_nanos() as f64 / f64::from(PER_ROUND)
}

fn compare(case: &str, plain: &mut dyn FnMut(), traced: &mut dyn FnMut()) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    time(plain);
    time(traced);
    for _ in 0..ROUNDS {
        a.push(time(plain));
        b.push(time(traced));
    }
    let (a, b) = (median(a), median(b));
    println!(
        "{case:<8} unset {a:>7.1} ns  set {b:>7.1} ns  set/unset {:.3}",
        b / a
    );
}

fn main() {
    let context = TraceContext::parse(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        Some("rojo=00f067aa0ba902b7"),
    )
    .unwrap();
    let without_state = TraceContext::new(context.traceparent);

    let bus = EventBus::builder().history_capacity(1024).build();
    bus.subscribe(EventType::TaskCompleted, |event: &Event| {
        black_box(event.circle_id);
    });
    for (case, traced) in [("parent", &without_state), ("state", &context)] {
        compare(
            case,
            &mut || {
                bus.publish_blocking(Event::new(EventType::TaskCompleted).with_circle(1));
            },
            &mut || {
                bus.publish_blocking(
                    Event::new(EventType::TaskCompleted)
                        .with_circle(1)
                        .with_trace_context(traced.clone()),
                );
            },
        );
    }

    let relay = EventBus::builder().history_capacity(1024).build();
    let weak = relay.downgrade();
    relay.subscribe(EventType::TaskCompleted, move |_event: &Event| {
        if let Some(bus) = weak.upgrade() {
            bus.publish_blocking(Event::new(EventType::MemoryShared));
        }
    });
    compare(
        "inherit",
        &mut || {
            relay.publish_blocking(Event::new(EventType::TaskCompleted));
        },
        &mut || {
            relay.publish_blocking(
                Event::new(EventType::TaskCompleted).with_trace_context(context.clone()),
            );
        },
    );
}
