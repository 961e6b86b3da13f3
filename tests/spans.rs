//! Feature `tracing`: a publish and each handler call get spans named and
//! attributed as OpenTelemetry's messaging conventions say, recorded here by
//! a real `tracing` subscriber.
#![cfg(feature = "tracing")]

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use agentbus::{Event, EventBus, EventType, TraceContext};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event as TracingEvent, Metadata, Subscriber};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// One span as recorded: its name, fields, parent and how often entered.
#[derive(Clone, Debug, Default)]
struct Recorded {
    name: &'static str,
    metadata: Option<&'static Metadata<'static>>,
    fields: HashMap<String, String>,
    parent: Option<u64>,
    entered: u64,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// Records every span, its fields and entries, and which span is current.
#[derive(Clone, Default)]
struct Recorder {
    spans: Arc<Mutex<HashMap<u64, Recorded>>>,
    stack: Arc<Mutex<Vec<u64>>>,
    next: Arc<AtomicU64>,
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut recorded = Recorded {
            name: attributes.metadata().name(),
            metadata: Some(attributes.metadata()),
            parent: self.stack.lock().unwrap().last().copied(),
            ..Recorded::default()
        };
        attributes.record(&mut Fields(&mut recorded.fields));
        self.spans.lock().unwrap().insert(id, recorded);
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut spans = self.spans.lock().unwrap();
        values.record(&mut Fields(
            &mut spans.get_mut(&span.into_u64()).unwrap().fields,
        ));
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &TracingEvent<'_>) {}

    fn enter(&self, span: &Id) {
        self.spans
            .lock()
            .unwrap()
            .get_mut(&span.into_u64())
            .unwrap()
            .entered += 1;
        self.stack.lock().unwrap().push(span.into_u64());
    }

    fn exit(&self, _: &Id) {
        self.stack.lock().unwrap().pop();
    }

    /// As the `tracing-subscriber` registry does: the innermost entered span.
    fn current_span(&self) -> tracing_core::span::Current {
        let Some(id) = self.stack.lock().unwrap().last().copied() else {
            return tracing_core::span::Current::none();
        };
        let metadata = self.spans.lock().unwrap()[&id].metadata.unwrap();
        tracing_core::span::Current::new(Id::from_u64(id), metadata)
    }
}

#[test]
fn publish_and_process_spans_follow_the_messaging_conventions() {
    let recorder = Recorder::default();
    let bus = EventBus::new();
    bus.subscribe(EventType::TaskCompleted, |_e: &Event| {});
    let (sender, receiver) = futures::channel::oneshot::channel::<()>();
    let receiver = Arc::new(Mutex::new(Some(receiver)));
    bus.subscribe_async(EventType::TaskCompleted, move |_e: Arc<Event>| {
        let receiver = receiver.lock().unwrap().take();
        async move {
            // Pending on the first poll, finished on a later one.
            if let Some(receiver) = receiver {
                let _ = receiver.await;
            }
        }
    });
    let event = Event::new(EventType::TaskCompleted)
        .with_trace_context(TraceContext::parse(PARENT, Some("rojo=1")).unwrap());
    let id = event.id.to_string();
    tracing::subscriber::with_default(recorder.clone(), || {
        let outcome = futures::executor::block_on(async {
            let mut publish = std::pin::pin!(bus.publish(event));
            assert!(futures::poll!(publish.as_mut()).is_pending());
            sender.send(()).unwrap();
            publish.await
        });
        assert_eq!(outcome.delivered, 2);
    });

    let spans = recorder.spans.lock().unwrap().clone();
    let mut by_name: HashMap<&str, Vec<(u64, Recorded)>> = HashMap::new();
    for (span_id, span) in spans {
        by_name.entry(span.name).or_default().push((span_id, span));
    }
    let publish = &by_name["publish"];
    assert_eq!(publish.len(), 1);
    let (publish_id, publish) = &publish[0];
    let f = &publish.fields;
    assert_eq!(f["otel.name"], "publish task.completed");
    assert_eq!(f["otel.kind"], "producer");
    assert_eq!(f["messaging.system"], "agentbus");
    assert_eq!(f["messaging.operation.type"], "publish");
    assert_eq!(f["messaging.destination.name"], "task.completed");
    assert_eq!(f["messaging.message.id"], id);
    assert_eq!(f["messaging.message.conversation_id"], id);
    assert_eq!(f["traceparent"], PARENT);
    assert_eq!(f["tracestate"], "rojo=1");

    let process = &by_name["process"];
    assert_eq!(process.len(), 2, "one per handler");
    for (_, span) in process {
        assert_eq!(span.fields["otel.name"], "process task.completed");
        assert_eq!(span.fields["otel.kind"], "consumer");
        assert_eq!(span.fields["messaging.operation.type"], "process");
        assert_eq!(span.fields["messaging.message.id"], id);
        assert_eq!(span.fields["traceparent"], PARENT);
        assert!(span.fields.contains_key("agentbus.subscription"));
        assert_eq!(span.parent, Some(*publish_id));
    }
    // The async handler's span is entered again for its later poll.
    assert!(
        process.iter().any(|(_, span)| span.entered >= 2),
        "{process:?}"
    );
}

#[test]
fn an_untraced_event_records_no_trace_fields() {
    let recorder = Recorder::default();
    let bus = EventBus::new();
    tracing::subscriber::with_default(recorder.clone(), || {
        bus.publish_blocking(Event::new(EventType::MemoryShared));
    });
    let spans = recorder.spans.lock().unwrap();
    let publish = spans.values().find(|s| s.name == "publish").unwrap();
    assert_eq!(publish.fields["otel.name"], "publish memory.shared");
    assert!(!publish.fields.contains_key("traceparent"));
}
