//! The public API as other crates build on it: error chains, what decoding
//! an event from a newer build gives, getters, the traits every public type
//! implements, and the names of the original API.

use std::error::Error;
use std::fmt::{Debug, Display};
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use agentbus::{
    event_bus, BuildError, BusStats, DecodeEventError, DecodeEventErrorKind, EncodeEventError,
    Event, EventBus, EventBusBuilder, EventFilter, EventId, EventStream, EventType, EventTypeSet,
    EventTypeSetIter, HistoryQuery, Lagged, Order, ParseEventIdError, ParseEventTypeError,
    PublishOutcome, Publisher, SubscriptionBuilder, SubscriptionGuard, SubscriptionId,
    TryRecvError, WeakEventBus, DEFAULT_HISTORY_CAPACITY, MAX_HISTORY_CAPACITY,
};
use serde_json::json;

#[test]
fn smoke() {
    let err = Event::from_json(r#"{"type": "agent.dreamed"}"#).unwrap_err();
    assert_eq!(err.unknown_type(), Some("agent.dreamed"));
    assert_eq!(HistoryQuery::new().circle_id(3).get_circle_id(), Some(3));
}

// ------------------------------------------------------------------ errors

fn decode_error(json: &str) -> DecodeEventError {
    Event::from_json(json).expect_err(json)
}

fn encode_error() -> EncodeEventError {
    let mut event = Event::new(EventType::SystemError);
    event.timestamp = UNIX_EPOCH - Duration::from_secs(1);
    event.to_json().unwrap_err()
}

/// One of every error the public API returns, with each decode error kind.
fn every_error() -> Vec<Box<dyn Error + Send + Sync + 'static>> {
    vec![
        Box::new("agent.dreamed".parse::<EventType>().unwrap_err()),
        Box::new("not-a-uuid".parse::<EventId>().unwrap_err()),
        Box::new(decode_error("}{")),
        Box::new(decode_error(r#"{"type": "task.created""#)),
        Box::new(decode_error(r#"{"data": {}}"#)),
        Box::new(decode_error(r#"{"type": "agent.dreamed"}"#)),
        Box::new(decode_error(r#"{"type": "task.created", "id": "x"}"#)),
        Box::new(decode_error(
            r#"{"type": "task.created", "timestamp": "yesterday"}"#,
        )),
        Box::new(encode_error()),
        Box::new(
            EventBus::builder()
                .history_capacity(usize::MAX)
                .try_build()
                .unwrap_err(),
        ),
        Box::new(TryRecvError::Empty),
        Box::new(TryRecvError::Lagged(3)),
        Box::new(TryRecvError::Closed),
        Box::new(Lagged(2)),
    ]
}

/// Every message in `err`'s chain, outermost first.
fn chain(err: &(dyn Error + 'static)) -> Vec<String> {
    let mut messages = vec![err.to_string()];
    let mut current = err;
    while let Some(source) = current.source() {
        messages.push(source.to_string());
        current = source;
    }
    messages
}

#[test]
fn no_error_message_repeats_its_cause() {
    for err in every_error() {
        let messages = chain(&*err);
        for (i, outer) in messages.iter().enumerate() {
            for inner in &messages[i + 1..] {
                assert!(
                    !outer.contains(inner.as_str()),
                    "{outer:?} repeats its cause {inner:?} (debug: {err:?})"
                );
            }
        }
    }
}

#[test]
fn error_messages_are_lowercase_without_trailing_punctuation() {
    for err in every_error() {
        // Only our own message: the causes are other crates' wording.
        let message = err.to_string();
        let first = message.chars().next().expect("an empty message");
        assert!(!first.is_uppercase(), "{message:?}");
        assert!(!message.ends_with(['.', '!', '\n']), "{message:?}");
    }
}

#[test]
fn error_chains_say_what_went_wrong() {
    let cases: [(Box<dyn Error + Send + Sync>, &[&str]); 5] = [
        (
            Box::new(decode_error(r#"{"data": {}}"#)),
            &["invalid event json", "missing field `type`"],
        ),
        (
            Box::new(decode_error("{\n  \"type\": \"memory.forgotten\"\n}")),
            &[
                "invalid event json",
                "unknown event type `memory.forgotten`",
            ],
        ),
        (
            Box::new(decode_error(r#"{"type": "task.created", "id": "x"}"#)),
            &["invalid event json", "invalid event id"],
        ),
        (
            Box::new(encode_error()),
            &["event cannot be encoded as json", "timestamp"],
        ),
        (
            Box::new("not-a-uuid".parse::<EventId>().unwrap_err()),
            &["invalid event id: "],
        ),
    ];
    for (err, expected) in cases {
        let text = chain(&*err).join(": ");
        for part in expected {
            assert!(text.contains(part), "{text:?} lacks {part:?}");
        }
    }
}

#[test]
fn decode_errors_are_told_apart_by_kind() {
    let cases = [
        ("}{", DecodeEventErrorKind::Syntax),
        (r#"{"type": "task.created",}"#, DecodeEventErrorKind::Syntax),
        (
            r#"{"type": "task.created"} x"#,
            DecodeEventErrorKind::Syntax,
        ),
        ("", DecodeEventErrorKind::Eof),
        (r#"{"type": "task.created""#, DecodeEventErrorKind::Eof),
        ("null", DecodeEventErrorKind::Data),
        (r#"{"data": {}}"#, DecodeEventErrorKind::Data),
        (r#"{"type": 5}"#, DecodeEventErrorKind::Data),
        (r#"{"type": null}"#, DecodeEventErrorKind::Data),
        (
            r#"{"type": "task.created", "circle_id": "five"}"#,
            DecodeEventErrorKind::Data,
        ),
        (
            r#"{"type": "task.created", "id": "not-a-uuid"}"#,
            DecodeEventErrorKind::Data,
        ),
        (
            r#"{"type": "agent.dreamed"}"#,
            DecodeEventErrorKind::UnknownType,
        ),
        (
            r#"{"type": "Task.Created"}"#,
            DecodeEventErrorKind::UnknownType,
        ),
    ];
    for (json, kind) in cases {
        let err = decode_error(json);
        assert_eq!(err.kind(), kind, "{json:?}: {err:?}");
        assert_eq!(
            err.unknown_type().is_some(),
            kind == DecodeEventErrorKind::UnknownType,
            "{json:?}"
        );
    }
}

// ------------------------------------------------- events from a newer build

#[test]
fn an_unknown_type_is_a_typed_error_naming_it() {
    let newer = json!({
        "id": "0190f3a4-1b2c-7d3e-8f40-123456789abc",
        "type": "agent.memory.compacted",
        "data": {"bytes": 1024},
        "circle_id": 5,
        "a_field_from_the_future": true,
        "timestamp": "2026-11-23T23:54:30.123456789Z"
    })
    .to_string();
    let err = decode_error(&newer);
    assert_eq!(err.kind(), DecodeEventErrorKind::UnknownType);
    assert_eq!(err.unknown_type(), Some("agent.memory.compacted"));
    assert_eq!(err.line(), 1);
    assert!(err.column() > 0);
    // The type parsed on its own says the same.
    let parse: ParseEventTypeError = "agent.memory.compacted".parse::<EventType>().unwrap_err();
    assert_eq!(parse.name(), "agent.memory.compacted");
}

#[test]
fn bytes_and_values_decode_with_the_same_typed_errors() {
    let newer = json!({"type": "agent.dreamed", "circle_id": 5});
    let known = json!({"type": "memory.shared", "circle_id": 5});
    let from_bytes = Event::from_json_slice(newer.to_string().as_bytes()).unwrap_err();
    assert_eq!(from_bytes.unknown_type(), Some("agent.dreamed"));
    assert_eq!((from_bytes.line(), from_bytes.column() > 0), (1, true));
    let from_value = Event::from_json_value(newer).unwrap_err();
    assert_eq!(from_value.unknown_type(), Some("agent.dreamed"));
    assert_eq!((from_value.line(), from_value.column()), (0, 0));

    let event = Event::from_json_value(known.clone()).unwrap();
    assert_eq!(event.event_type, EventType::MemoryShared);
    let same = Event::from_json_slice(event.to_json().unwrap().as_bytes()).unwrap();
    assert_eq!(same, event);

    let not_utf8 = Event::from_json_slice(b"{\"type\": \"task.\xff\"}").unwrap_err();
    assert_eq!(not_utf8.kind(), DecodeEventErrorKind::Syntax);
    assert_eq!(not_utf8.unknown_type(), None);
    let wrong = Event::from_json_value(json!({"type": "task.created", "circle_id": "five"}));
    assert_eq!(wrong.unwrap_err().kind(), DecodeEventErrorKind::Data);
    let not_an_object = Event::from_json_value(json!([known]));
    assert_eq!(
        not_an_object.unwrap_err().kind(),
        DecodeEventErrorKind::Data
    );
}

#[test]
fn an_unknown_type_reports_where_it_is() {
    let err = decode_error("{\n  \"data\": {},\n  \"type\": \"memory.forgotten\"\n}");
    assert_eq!(err.unknown_type(), Some("memory.forgotten"));
    assert_eq!(err.line(), 3);
    assert!(err.column() > 0);
}

#[test]
fn fields_are_checked_in_document_order() {
    // The first problem in the text is the one reported.
    let err = decode_error(r#"{"type": "agent.dreamed", "circle_id": "five"}"#);
    assert_eq!(err.unknown_type(), Some("agent.dreamed"));
    let err = decode_error(r#"{"circle_id": "five", "type": "agent.dreamed"}"#);
    assert_eq!(err.kind(), DecodeEventErrorKind::Data);
    assert_eq!(err.unknown_type(), None);
}

#[test]
fn a_huge_unknown_type_is_named_truncated() {
    let name = format!("agent.{}", "x".repeat(10_000));
    let err = decode_error(&json!({ "type": name }).to_string());
    let named = err.unknown_type().unwrap();
    assert!(named.starts_with("agent.xxx"));
    assert!(named.ends_with('…'));
    assert!(named.len() <= 64 + '…'.len_utf8());
    assert_eq!(
        Some(named),
        name.parse::<EventType>().err().as_ref().map(|e| e.name())
    );
}

#[test]
fn an_earlier_unrelated_rejection_is_not_blamed_on_a_later_decode() {
    // Decoding some other value with an unknown type name on this thread...
    assert!(serde_json::from_str::<Vec<EventType>>(r#"["agent.dreamed"]"#).is_err());
    // ...then a decode that fails for another reason, or succeeds.
    let err = decode_error(r#"{"type": "task.created", "circle_id": "five"}"#);
    assert_eq!(err.kind(), DecodeEventErrorKind::Data);
    assert_eq!(err.unknown_type(), None);
    assert!(Event::from_json(r#"{"type": "task.created"}"#).is_ok());
    let err = decode_error("}{");
    assert_eq!(err.unknown_type(), None);
}

#[test]
fn serde_decoding_rejects_unknown_types_too() {
    // Through serde alone the error is serde's, and still names the type.
    let err = serde_json::from_str::<Event>(r#"{"type": "agent.dreamed"}"#).unwrap_err();
    assert!(err.to_string().contains("agent.dreamed"), "{err}");
    let err = serde_json::from_value::<Event>(json!({"type": "agent.dreamed"})).unwrap_err();
    assert!(err.to_string().contains("agent.dreamed"), "{err}");
}

#[test]
fn a_reader_of_mixed_builds_counts_and_skips_unknown_types() {
    // What a store or a NATS bridge does with a stream from several builds:
    // every known event decodes, every unknown one is counted by name, none
    // is lost silently and nothing panics.
    let lines = [
        json!({"type": "task.created", "data": {"n": 1}}).to_string(),
        json!({"type": "task.paused", "data": {"n": 2}}).to_string(),
        json!({"type": "task.completed", "data": {"n": 3}}).to_string(),
        json!({"type": "task.paused", "data": {"n": 4}}).to_string(),
        "{\"type\": \"task.created\", \"data\": ".to_owned(),
    ];
    let (mut decoded, mut unknown, mut broken) = (Vec::new(), Vec::new(), 0);
    for line in &lines {
        match Event::from_json(line) {
            Ok(event) => decoded.push(event.data["n"].as_u64().unwrap()),
            Err(err) => match err.unknown_type() {
                Some(name) => unknown.push(name.to_owned()),
                None => broken += 1,
            },
        }
    }
    assert_eq!(decoded, [1, 3]);
    assert_eq!(unknown, ["task.paused", "task.paused"]);
    assert_eq!(broken, 1);
}

// ----------------------------------------------------------------- getters

#[test]
fn history_query_getters_return_what_was_set() {
    let query = HistoryQuery::new();
    assert_eq!(query.get_limit(), HistoryQuery::DEFAULT_LIMIT);
    assert_eq!(query.get_event_type(), None);
    assert_eq!(query.get_source_agent_id(), None);
    assert_eq!(query.get_circle_id(), None);
    assert_eq!(query.get_project_id(), None);
    assert_eq!(query.get_correlation_id(), None);
    assert_eq!(query, HistoryQuery::default());

    let chain = Event::new(EventType::TaskCompleted).id;

    let query = query
        .event_type(EventType::MemoryShared)
        .source_agent_id(7)
        .circle_id(5)
        .project_id(2)
        .correlation_id(chain)
        .limit(10);
    assert_eq!(query.get_correlation_id(), Some(chain));
    assert_eq!(query.get_event_type(), Some(EventType::MemoryShared));
    assert_eq!(query.get_source_agent_id(), Some(7));
    assert_eq!(query.get_circle_id(), Some(5));
    assert_eq!(query.get_project_id(), Some(2));
    assert_eq!(query.get_limit(), 10);
    assert_ne!(query, HistoryQuery::new());
}

#[test]
fn event_filter_getters_return_what_was_set() {
    let filter = EventFilter::new();
    assert_eq!(filter.get_event_types(), EventTypeSet::all());
    assert_eq!(filter.get_source_agent_id(), None);
    assert_eq!(filter.get_circle_id(), None);
    assert_eq!(filter.get_project_id(), None);
    assert_eq!(filter.get_correlation_id(), None);
    assert_eq!(filter, EventFilter::default());

    let chain = Event::new(EventType::TaskCompleted).id;
    let types = EventTypeSet::from([EventType::MemoryShared, EventType::TaskFailed]);
    let filter = filter
        .event_type(types)
        .source_agent_id(7)
        .circle_id(5)
        .project_id(2)
        .correlation_id(chain);
    assert_eq!(filter.get_event_types(), types);
    assert_eq!(filter.get_source_agent_id(), Some(7));
    assert_eq!(filter.get_circle_id(), Some(5));
    assert_eq!(filter.get_project_id(), Some(2));
    assert_eq!(filter.get_correlation_id(), Some(chain));
    assert_ne!(filter, EventFilter::new());
    let shown = format!("{filter:?}");
    for field in [
        "EventFilter {",
        "circle_id: Some(5)",
        "source_agent_id: Some(7)",
        "project_id: Some(2)",
        &format!("correlation_id: Some({chain:?})"),
    ] {
        assert!(shown.contains(field), "{field} in {shown}");
    }

    // A history query built from the filter reports the same criteria.
    let query = HistoryQuery::from(filter.clone());
    assert_eq!(query.get_filter(), &filter);
    assert_eq!(query.get_event_type(), None, "two types are not one");
    assert_eq!(query.get_circle_id(), Some(5));
    assert_eq!(query.get_limit(), HistoryQuery::DEFAULT_LIMIT);
    assert_eq!(
        HistoryQuery::new()
            .event_type(EventType::TaskFailed)
            .get_filter()
            .get_event_types(),
        EventTypeSet::from(EventType::TaskFailed)
    );
}

#[test]
fn event_type_sets_iterate_and_extend() {
    let mut set = EventTypeSet::from([EventType::TaskFailed, EventType::AgentStarted]);
    set.extend([EventType::SystemWarning, EventType::TaskFailed]);
    let iter: EventTypeSetIter = set.into_iter();
    assert_eq!(iter.len(), 3);
    let types: Vec<_> = iter.collect();
    assert_eq!(
        types,
        [
            EventType::AgentStarted,
            EventType::TaskFailed,
            EventType::SystemWarning
        ]
    );
    assert_eq!(set.iter().collect::<Vec<_>>(), types);
    let mut every = Vec::new();
    for t in EventTypeSet::all() {
        every.push(t);
    }
    assert_eq!(every, EventType::ALL);
    assert_eq!(EventTypeSet::empty().into_iter().next(), None);
}

#[test]
fn builders_and_ids_have_their_conversions() {
    assert_eq!(EventBusBuilder::default(), EventBus::builder());
    assert_eq!(
        EventBusBuilder::default().build().history_capacity(),
        DEFAULT_HISTORY_CAPACITY
    );
    let id = Event::new(EventType::TaskCreated).id;
    let uuid: uuid::Uuid = id.into();
    assert_eq!(EventId::from(uuid), id);
    assert_eq!(uuid, id.as_uuid());
}

#[test]
fn a_subscription_builder_debugs_without_its_closure() {
    let bus = EventBus::new();
    let builder = bus
        .subscription(EventType::TaskCompleted)
        .circle_id(5)
        .name("watcher")
        .filter(|_e: &Event| true);
    let text = format!("{builder:?}");
    assert!(text.contains("watcher") && text.contains("circle_id: Some(5)"));
    assert!(text.contains("TaskCompleted"), "{text}");
}

/// Builders are equal when their settings are and their guards are the
/// same `Arc`s (a clone's); equal builders hash alike, and a builder shows
/// its settings and how many guards it holds.
#[test]
fn builders_compare_hash_and_show_their_settings() {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let hash = |builder: &EventBusBuilder| {
        BuildHasherDefault::<DefaultHasher>::default().hash_one(builder)
    };
    let base = EventBus::builder();
    let accept_all = |_: &Event| Ok(());
    let guarded = base.clone().guard(accept_all);
    for other in [
        base.clone().history_capacity(7),
        base.clone().dead_letter_capacity(3),
        base.clone().max_concurrent_handlers(2),
        guarded.clone(),
    ] {
        assert_ne!(other, base, "{other:?}");
        assert_ne!(hash(&other), hash(&base), "{other:?}");
    }
    // The same settings and as many guards, but other guards.
    assert_ne!(base.clone().guard(accept_all), guarded);
    assert_eq!(guarded.clone(), guarded);
    assert_eq!(hash(&guarded.clone()), hash(&guarded));
    assert_eq!(EventBus::builder(), base);

    let shown = format!(
        "{:?}",
        guarded
            .history_capacity(7)
            .dead_letter_capacity(3)
            .max_concurrent_handlers(2)
    );
    assert_eq!(
        shown,
        "EventBusBuilder { history_capacity: 7, guards: 1, dead_letter_capacity: 3, \
         max_concurrent_handlers: Some(2) }"
    );
}

#[test]
fn a_bus_and_its_publishers_debug_as_its_capacity_and_counters() {
    let bus = EventBus::builder().history_capacity(7).build();
    bus.publish_blocking(Event::new(EventType::TaskCompleted));
    let text = format!("{bus:?}");
    assert!(text.starts_with("EventBus {"), "{text}");
    assert!(text.contains("history_capacity: 7"), "{text}");
    assert!(text.contains("events_published: 1"), "{text}");
    let publisher = format!("{:?}", bus.publisher());
    assert!(
        publisher.starts_with("Publisher { bus: EventBus {"),
        "{publisher}"
    );
    let guarded = EventBus::builder()
        .guard(|_: &Event| Ok(()))
        .guard(|_: &Event| Ok(()))
        .build();
    let text = format!("{guarded:?}");
    assert!(text.contains("guards: 2"), "{text}");
}

// ------------------------------------------------------------------ traits

fn send_sync<T: Send + Sync>() {}
fn debug<T: Debug>() {}
fn value<T: Clone + Debug + PartialEq + Eq + Hash + Send + Sync + 'static>() {}
fn error<T: Error + Debug + Display + Send + Sync + 'static>() {}
fn default<T: Default>() {}

#[test]
fn public_types_implement_the_common_traits() {
    // Values: compared, hashed, cloned, sent.
    value::<EventId>();
    value::<EventType>();
    value::<EventTypeSet>();
    value::<SubscriptionId>();
    value::<HistoryQuery>();
    value::<EventFilter>();
    value::<Order>();
    value::<PublishOutcome>();
    value::<BusStats>();
    value::<EventBusBuilder>();
    value::<DecodeEventErrorKind>();
    value::<Lagged>();
    value::<TryRecvError>();
    value::<BuildError>();
    value::<ParseEventTypeError>();
    value::<ParseEventIdError>();
    fn event<T: Clone + Debug + Eq + Send + Sync + 'static>() {}
    event::<Event>();
    fn copy<T: Copy>() {}
    copy::<EventId>();
    copy::<EventType>();
    copy::<EventTypeSet>();
    copy::<SubscriptionId>();
    copy::<PublishOutcome>();
    copy::<BusStats>();
    copy::<Order>();
    fn ordered<T: Ord>() {}
    ordered::<EventId>();
    ordered::<EventType>();
    ordered::<SubscriptionId>();
    fn shown<T: Display>() {}
    shown::<EventId>();
    shown::<EventType>();
    shown::<SubscriptionId>();

    // Errors: usable with `?`, `Box<dyn Error + Send + Sync>` and threads.
    error::<DecodeEventError>();
    error::<EncodeEventError>();
    error::<ParseEventTypeError>();
    error::<ParseEventIdError>();
    error::<BuildError>();
    error::<TryRecvError>();
    error::<Lagged>();

    // Handles: shared across threads, printable.
    send_sync::<EventBus>();
    send_sync::<WeakEventBus>();
    send_sync::<Publisher>();
    send_sync::<EventStream>();
    send_sync::<SubscriptionGuard>();
    send_sync::<SubscriptionBuilder<'static>>();
    send_sync::<EventTypeSetIter>();
    debug::<EventBus>();
    debug::<WeakEventBus>();
    debug::<Publisher>();
    debug::<EventStream>();
    debug::<SubscriptionGuard>();
    debug::<SubscriptionBuilder<'static>>();
    debug::<EventTypeSetIter>();
    fn clone<T: Clone>() {}
    clone::<EventBus>();
    clone::<WeakEventBus>();
    fn unpin<T: Unpin>() {}
    unpin::<EventStream>();

    default::<EventBus>();
    default::<WeakEventBus>();
    default::<EventBusBuilder>();
    default::<HistoryQuery>();
    default::<EventTypeSet>();
    default::<PublishOutcome>();
    default::<BusStats>();

    fn serde<T: serde::Serialize + serde::de::DeserializeOwned>() {}
    serde::<Event>();
    serde::<EventId>();
    serde::<EventType>();
}

// ------------------------------------------------------ the original names

/// The quick start and the original API, spelled as users spell them: this
/// test stops compiling if a name is renamed or a shape changes.
#[test]
fn the_original_api_keeps_its_names() {
    use std::future::Future;

    let all: [EventType; 24] = EventType::ALL;
    assert_eq!(EventType::COUNT, 24);
    assert_eq!(all[17].as_str(), "task.completed");
    assert_eq!(EventType::TaskCompleted.index(), 17);
    assert_eq!(
        "task.completed".parse::<EventType>(),
        Ok(EventType::TaskCompleted)
    );

    let event = Event::new(EventType::TaskCompleted)
        .with_data(json!({"task_id": 123}))
        .with_source_agent(1)
        .with_circle(5)
        .with_project(7);
    let (_, _, _, _, _, _, _): (
        &EventId,
        &EventType,
        &serde_json::Value,
        &Option<i64>,
        &Option<i64>,
        &Option<i64>,
        &std::time::SystemTime,
    ) = (
        &event.id,
        &event.event_type,
        &event.data,
        &event.source_agent_id,
        &event.circle_id,
        &event.project_id,
        &event.timestamp,
    );

    let bus = EventBus::builder().history_capacity(10).build();
    let sync: SubscriptionId = bus.subscribe(EventType::TaskCompleted, |_e: &Event| {});
    let _async: SubscriptionId = bus
        .subscribe_async(EventType::TaskCompleted, |_e: Arc<Event>| async move {
            Ok::<(), String>(())
        });
    let _built: SubscriptionId = bus
        .subscription(EventType::TaskCompleted)
        .filter(|e: &Event| e.circle_id == Some(5))
        .name("circle-5-watcher")
        .handler(|_e: &Event| {});
    let publish = bus.publish(event.clone());
    fn send<F: Future<Output = PublishOutcome> + Send>(f: F) -> F {
        f
    }
    let outcome: PublishOutcome = futures::executor::block_on(send(publish));
    let PublishOutcome {
        delivered, failed, ..
    } = bus.publish_blocking(Arc::new(event));
    assert_eq!((outcome.delivered, outcome.failed), (3, 0));
    assert_eq!((delivered, failed), (3, 0));
    let history: Vec<Arc<Event>> = bus.history(
        &HistoryQuery::new()
            .event_type(EventType::TaskCompleted)
            .circle_id(5)
            .source_agent_id(1)
            .project_id(7)
            .limit(10),
    );
    assert_eq!(history.len(), 2);
    let BusStats {
        events_published,
        events_delivered,
        handler_errors,
        active_subscribers,
        history_size,
        ..
    } = bus.stats();
    assert_eq!(
        (
            events_published,
            events_delivered,
            handler_errors,
            active_subscribers,
            history_size
        ),
        (2, 6, 0, 3, 2)
    );
    assert!(bus.unsubscribe(sync));
    assert!(!bus.unsubscribe(sync));
    bus.clear_history();
    bus.reset();
    let _global: &'static EventBus = event_bus();
    let capacities: [usize; 2] = [DEFAULT_HISTORY_CAPACITY, MAX_HISTORY_CAPACITY];
    assert_eq!(capacities, [1000, 1 << 22]);
}
