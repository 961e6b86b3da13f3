//! The spans of feature `tracing` (their behaviour is in the crate docs,
//! "Feature `tracing`").

use std::fmt;

use tracing::{field, info_span, Span};

use crate::event::Event;
use crate::event_type::EventType;
use crate::handler::Reporter;

/// `"{operation} {type}"`, written without allocating.
struct SpanName(&'static str, EventType);

impl fmt::Display for SpanName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.1.as_str())
    }
}

/// The span of one publish of `event`.
pub(crate) fn publish(event: &Event) -> Span {
    let span = info_span!(
        target: "agentbus",
        "publish",
        otel.name = %SpanName("publish", event.event_type),
        otel.kind = "producer",
        messaging.system = "agentbus",
        messaging.operation.type = "publish",
        messaging.destination.name = event.event_type.as_str(),
        messaging.message.id = %event.id,
        messaging.message.conversation_id = %event.chain_id(),
        traceparent = field::Empty,
        tracestate = field::Empty,
    );
    record_trace_context(&span, event);
    span
}

/// The span of one handler's processing of `event`.
pub(crate) fn process(event: &Event, reporter: &Reporter) -> Span {
    let span = info_span!(
        target: "agentbus",
        "process",
        otel.name = %SpanName("process", event.event_type),
        otel.kind = "consumer",
        messaging.system = "agentbus",
        messaging.operation.type = "process",
        messaging.destination.name = event.event_type.as_str(),
        messaging.message.id = %event.id,
        messaging.message.conversation_id = %event.chain_id(),
        agentbus.subscription = reporter.id.get(),
        traceparent = field::Empty,
        tracestate = field::Empty,
    );
    record_trace_context(&span, event);
    span
}

fn record_trace_context(span: &Span, event: &Event) {
    if let Some(context) = &event.trace_context {
        span.record("traceparent", field::display(&context.traceparent));
        if let Some(state) = &context.tracestate {
            span.record("tracestate", state.as_str());
        }
    }
}
