//! The core's `tracing` spans exported to OpenTelemetry through
//! `tracing-opentelemetry`, offline: an in-memory exporter collects the
//! spans, and the example prints them and checks how they are linked.
//!
//! Run with `cargo run --example opentelemetry --features tracing`.
//!
//! What it shows:
//!
//! - A request span of the application publishes an event carrying its W3C
//!   trace context (`Event::with_trace_context`, from OpenTelemetry's own
//!   propagator). The bus's `publish task.created` span (kind producer) is
//!   the request's child, and the handler's `process task.created` span
//!   (kind consumer) is the publish span's child, in the same trace.
//! - The core records the event's context on each span as the `traceparent`
//!   attribute; the small [`LinkEventContext`] layer below turns it into an
//!   OpenTelemetry *link* on the `process` span, as the messaging
//!   conventions ask. For an event that arrived with a remote context (here
//!   one parsed from a `traceparent` header), the link points into the
//!   remote trace even though the spans of this process are a trace of
//!   their own.
//! - Attributes follow the messaging conventions: `messaging.system =
//!   "agentbus"`, `messaging.destination.name` = the event type,
//!   `messaging.message.id`, `messaging.message.conversation_id`.
//!
//! A real service swaps [`Collect`] for an OTLP exporter
//! (`opentelemetry-otlp`) and keeps the rest.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use agentbus::{Event, EventBus, EventType, TraceContext};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanId, SpanKind, TraceContextExt, TracerProvider};
use opentelemetry::Value;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// An exporter that keeps every finished span, so the example runs offline.
#[derive(Clone, Debug, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collect {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.0.lock().unwrap().extend(batch);
        std::future::ready(Ok(()))
    }
}

/// Links each agentbus `process` span to the trace context its event
/// carries (the `traceparent`/`tracestate` attributes the core records).
///
/// The core records the two fields one after the other just after creating
/// the span, so the layer gathers them in the span's extensions and adds
/// the link when the span is first entered: by then the OpenTelemetry layer
/// has started the span, and `Span::current()` is this span.
struct LinkEventContext;

/// The `traceparent`/`tracestate` fields of a `process` span, not linked
/// yet.
#[derive(Default)]
struct TraceFields(HashMap<String, String>);

impl Visit for TraceFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if matches!(field.name(), "traceparent" | "tracestate") {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl LinkEventContext {
    fn gather<S>(&self, id: &Id, ctx: &Context<'_, S>, record: impl FnOnce(&mut TraceFields))
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(span) = ctx.span(id) else { return };
        if span.metadata().target() != "agentbus" || span.name() != "process" {
            return;
        }
        let mut extensions = span.extensions_mut();
        if extensions.get_mut::<TraceFields>().is_none() {
            extensions.insert(TraceFields::default());
        }
        record(extensions.get_mut::<TraceFields>().expect("inserted above"));
    }
}

impl<S> Layer<S> for LinkEventContext
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        self.gather(id, &ctx, |fields| attributes.record(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.gather(id, &ctx, |fields| values.record(fields));
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // Taken out, so a span entered again (an async handler's next
        // poll) is linked once.
        let Some(fields) = span.extensions_mut().remove::<TraceFields>() else {
            return;
        };
        // OpenTelemetry's own W3C parser, through its propagator; from an
        // empty context, so a missing or invalid field links nothing.
        let remote = TraceContextPropagator::new()
            .extract_with_context(&opentelemetry::Context::new(), &fields.0);
        let context = remote.span().span_context().clone();
        if context.is_valid() {
            tracing::Span::current().add_link(context);
        }
    }
}

/// The W3C trace context of the current span, as an event carries it.
fn current_trace_context() -> TraceContext {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut carrier);
    // OpenTelemetry writes an empty `tracestate` when it has none.
    let tracestate = carrier.get("tracestate").filter(|state| !state.is_empty());
    TraceContext::parse(&carrier["traceparent"], tracestate.map(String::as_str))
        .expect("OpenTelemetry writes a valid trace context")
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|attribute| attribute.key.as_str() == key)
        .map(|attribute| &attribute.value)
}

fn show(span: &SpanData) {
    let parent = if span.parent_span_id == SpanId::INVALID {
        "none".to_owned()
    } else {
        span.parent_span_id.to_string()
    };
    println!(
        "{:<22} kind {:<9} trace {} span {} parent {parent}",
        span.name,
        format!("{:?}", span.span_kind),
        span.span_context.trace_id(),
        span.span_context.span_id(),
    );
    for link in &span.links.links {
        println!(
            "{:<22} link -> trace {} span {}",
            "",
            link.span_context.trace_id(),
            link.span_context.span_id()
        );
    }
    for key in [
        "messaging.system",
        "messaging.destination.name",
        "messaging.message.id",
        "messaging.message.conversation_id",
    ] {
        if let Some(value) = attribute(span, key) {
            println!("{:<22} {key} = {value}", "");
        }
    }
}

fn main() {
    let exported = Collect::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exported.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("agentbus-example")))
        .with(LinkEventContext);
    let _default = tracing::subscriber::set_default(subscriber);

    let bus = EventBus::new();
    bus.subscribe(EventType::TaskCreated, |event: &Event| {
        tracing::info!(task = %event.data["task_id"], "handling the task");
    });

    // 1. Published inside a request span of this process, carrying its context.
    let request = tracing::info_span!("handle request");
    let local_context = request.in_scope(|| {
        let context = current_trace_context();
        bus.publish_blocking(
            Event::new(EventType::TaskCreated)
                .with_data(serde_json::json!({"task_id": 1}))
                .with_trace_context(context.clone()),
        );
        context
    });
    drop(request);

    // 2. An event that arrived with a remote context (a `traceparent`
    //    header, say), published outside any span of this process.
    let remote_context = TraceContext::parse(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        Some("vendor=opaque"),
    )
    .expect("a valid traceparent");
    bus.publish_blocking(
        Event::new(EventType::TaskCreated)
            .with_data(serde_json::json!({"task_id": 2}))
            .with_trace_context(remote_context.clone()),
    );

    provider
        .force_flush()
        .expect("the in-memory exporter cannot fail");
    let spans = exported.0.lock().unwrap().clone();
    for span in &spans {
        show(span);
    }

    // Check what the output shows.
    let named =
        |name: &str| -> Vec<&SpanData> { spans.iter().filter(|s| s.name == name).collect() };
    let request = named("handle request")[0];
    let publishes = named("publish task.created");
    let processes = named("process task.created");
    assert_eq!((publishes.len(), processes.len()), (2, 2), "{spans:#?}");
    for (publish, process, event_context) in [
        (publishes[0], processes[0], &local_context),
        (publishes[1], processes[1], &remote_context),
    ] {
        assert_eq!(publish.span_kind, SpanKind::Producer);
        assert_eq!(process.span_kind, SpanKind::Consumer);
        assert_eq!(
            attribute(process, "messaging.system").map(Value::as_str),
            Some("agentbus".into())
        );
        // The handler ran inside the publish: process is publish's child.
        assert_eq!(process.parent_span_id, publish.span_context.span_id());
        assert_eq!(
            process.span_context.trace_id(),
            publish.span_context.trace_id()
        );
        // And it is linked to the context the event carries.
        let link = &process.links.links[0].span_context;
        assert_eq!(
            link.trace_id().to_bytes(),
            event_context.traceparent.trace_id()
        );
        assert_eq!(
            link.span_id().to_bytes(),
            event_context.traceparent.parent_id()
        );
    }
    // The first publish belongs to the request's trace, as its child.
    assert_eq!(publishes[0].parent_span_id, request.span_context.span_id());
    assert_eq!(
        publishes[0].span_context.trace_id(),
        request.span_context.trace_id()
    );
    // The second has no parent here; only its process span's link leads to
    // the remote trace.
    assert_eq!(publishes[1].parent_span_id, SpanId::INVALID);
    assert_ne!(
        processes[1].span_context.trace_id().to_bytes(),
        remote_context.traceparent.trace_id()
    );
    println!(
        "\nok: {} spans exported, the process spans linked to their events' contexts",
        spans.len()
    );
    provider.shutdown().expect("shut down once");
}
