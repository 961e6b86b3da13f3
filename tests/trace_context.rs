//! W3C trace context on events: the JSON fields, validation, and the
//! inheritance by events published from inside handlers.

use std::sync::Arc;

use agentbus::{
    with_cause, DecodeEventErrorKind, Event, EventBus, EventType, HistoryQuery, TraceContext,
};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const OTHER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";

fn context(traceparent: &str, tracestate: Option<&str>) -> TraceContext {
    TraceContext::parse(traceparent, tracestate).unwrap()
}

fn only(bus: &EventBus, event_type: EventType) -> Arc<Event> {
    let found = bus.history(&HistoryQuery::new().event_type(event_type));
    assert_eq!(found.len(), 1, "expected one {event_type}, found {found:?}");
    Arc::clone(&found[0])
}

#[test]
fn fields_are_absent_when_unset_and_round_trip_when_set() {
    let plain = Event::new(EventType::TaskCreated);
    let json = plain.to_json().unwrap();
    assert!(!json.contains("trace"), "{json}");
    assert_eq!(Event::from_json(&json).unwrap(), plain);

    let traced = plain.with_trace_context(context(PARENT, Some("rojo=1,congo=2")));
    let value: serde_json::Value = serde_json::from_str(&traced.to_json().unwrap()).unwrap();
    assert_eq!(value["traceparent"], PARENT);
    assert_eq!(value["tracestate"], "rojo=1,congo=2");
    assert_eq!(Event::from_json_value(value).unwrap(), traced);

    let no_state = Event::new(EventType::TaskCreated).with_trace_context(context(PARENT, None));
    let json = no_state.to_json().unwrap();
    assert!(!json.contains("tracestate"), "{json}");
    assert_eq!(Event::from_json(&json).unwrap(), no_state);
}

#[test]
fn json_from_before_trace_context_still_decodes() {
    let old = r#"{"id":"019ab3c2-0000-7000-8000-000000000001","type":"task.completed",
        "data":{"task_id":1},"source_agent_id":1,"circle_id":5,"project_id":null,
        "correlation_id":null,"causation_id":null,"timestamp":"2026-11-23T23:54:30.123456789Z"}"#;
    let event = Event::from_json(old).unwrap();
    assert_eq!(event.trace_context, None);
    assert_eq!(event.circle_id, Some(5));
}

#[test]
fn bad_trace_context_json_is_a_data_error() {
    for bad in [
        r#"{"type":"task.created","traceparent":"00-abc"}"#,
        r#"{"type":"task.created","traceparent":7}"#,
        r#"{"type":"task.created","tracestate":"rojo=1"}"#,
        r#"{"type":"task.created","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"Bad Key=1"}"#,
    ] {
        let err = Event::from_json(bad).unwrap_err();
        assert_eq!(err.kind(), DecodeEventErrorKind::Data, "{bad}: {err}");
    }
    let err = TraceContext::parse(PARENT, Some("k=v,k=w")).unwrap_err();
    assert_eq!(err.header(), "tracestate");
    assert_eq!(err.to_string(), "invalid tracestate: a key appears twice");
}

#[test]
fn a_handler_passes_its_events_trace_context_on_unless_one_is_set() {
    let bus = EventBus::new();
    let weak = bus.downgrade();
    bus.subscribe(EventType::TaskCompleted, move |_task: &Event| {
        let bus = weak.upgrade().unwrap();
        bus.publish_blocking(Event::new(EventType::AgentToolExecuted));
        bus.publish_blocking(
            Event::new(EventType::MemoryShared).with_trace_context(context(OTHER, None)),
        );
    });
    let traced = context(PARENT, Some("rojo=1"));
    let task = Event::new(EventType::TaskCompleted).with_trace_context(traced.clone());
    let task_id = task.id;
    bus.publish_blocking(task);

    let inherited = only(&bus, EventType::AgentToolExecuted);
    assert_eq!(inherited.trace_context.as_ref(), Some(&traced));
    assert_eq!(inherited.causation_id, Some(task_id));
    let own = only(&bus, EventType::MemoryShared);
    assert_eq!(own.trace_context, Some(context(OTHER, None)));
    assert_eq!(own.causation_id, Some(task_id));

    // Outside any handler nothing is inherited.
    bus.publish_blocking(Event::new(EventType::TaskCreated));
    assert_eq!(only(&bus, EventType::TaskCreated).trace_context, None);
}

/// An event with explicit causal ids still inherits the trace context, and
/// an async handler's later polls and a `with_cause` task pass it on too.
#[tokio::test]
async fn async_handlers_and_with_cause_pass_the_trace_context_on() {
    let bus = EventBus::new();
    let weak = bus.downgrade();
    bus.subscribe_async(EventType::TaskCompleted, move |task: Arc<Event>| {
        let weak = weak.clone();
        async move {
            tokio::task::yield_now().await;
            let bus = weak.upgrade().unwrap();
            let explicit = Event::new(EventType::AgentToolExecuted).with_correlation(task.id);
            bus.publish(explicit).await;
            let spawned = with_cause(&task, async move {
                bus.publish(Event::new(EventType::MemoryShared)).await;
            });
            tokio::spawn(spawned).await.unwrap();
        }
    });
    let traced = context(OTHER, None);
    bus.publish(Event::new(EventType::TaskCompleted).with_trace_context(traced.clone()))
        .await;

    let explicit = only(&bus, EventType::AgentToolExecuted);
    assert_eq!(explicit.trace_context.as_ref(), Some(&traced));
    assert_eq!(explicit.causation_id, None);
    let spawned = only(&bus, EventType::MemoryShared);
    assert_eq!(spawned.trace_context, Some(traced));
}

/// `with_cause` outside any handler (a task that picked its parent out of
/// history, say) still passes the parent's trace context and ids on.
#[test]
fn with_cause_outside_a_handler_passes_the_trace_context_on() {
    let bus = EventBus::new();
    let traced = context(PARENT, Some("rojo=00f067aa0ba902b7"));
    let parent = Event::new(EventType::TaskCompleted).with_trace_context(traced.clone());
    futures::executor::block_on(with_cause(&parent, async {
        bus.publish(Event::new(EventType::MemoryShared)).await;
    }));
    let child = only(&bus, EventType::MemoryShared);
    assert_eq!(child.trace_context, Some(traced));
    assert_eq!(child.causation_id, Some(parent.id));
}

/// An untraced handled event leaves what its handler publishes untraced.
#[test]
fn an_untraced_event_passes_nothing_on() {
    let bus = EventBus::new();
    let weak = bus.downgrade();
    bus.subscribe(EventType::TaskCompleted, move |_task: &Event| {
        let bus = weak.upgrade().unwrap();
        bus.publish_blocking(Event::new(EventType::AgentToolExecuted));
    });
    bus.publish_blocking(Event::new(EventType::TaskCompleted));
    let child = only(&bus, EventType::AgentToolExecuted);
    assert_eq!(child.trace_context, None);
    assert!(child.causation_id.is_some());
}

/// A `traceparent`'s parts read back as given: ids in lowercase hex, the
/// flags byte, and `sampled` from its bit 0 alone.
#[test]
fn a_traceparent_reads_back_its_parts() {
    let parent: agentbus::TraceParent = PARENT.parse().unwrap();
    assert_eq!(parent.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(parent.parent_id_hex(), "00f067aa0ba902b7");
    assert_eq!(
        parent.parent_id(),
        [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
    );
    assert_eq!(parent.flags(), 1);
    assert!(parent.sampled());
    let other: agentbus::TraceParent = OTHER.parse().unwrap();
    assert_eq!((other.flags(), other.sampled()), (0, false));
    let more_flags: agentbus::TraceParent =
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"
            .parse()
            .unwrap();
    assert_eq!((more_flags.flags(), more_flags.sampled()), (3, true));
    let unsampled: agentbus::TraceParent =
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02"
            .parse()
            .unwrap();
    assert!(!unsampled.sampled());
    assert_eq!(parent.to_string(), PARENT);
}
