//! Bad input at every public entry point: each gives a typed error or a
//! documented outcome, never a panic.

use std::time::{Duration, UNIX_EPOCH};

use agentbus::{
    BuildError, Event, EventBus, EventId, EventType, HistoryQuery, TryRecvError,
    MAX_HISTORY_CAPACITY,
};
use serde_json::json;

/// Decodes `json`, failing the test on a panic, and returns the result.
fn decode(json: &str) -> Result<Event, agentbus::DecodeEventError> {
    std::panic::catch_unwind(|| Event::from_json(json))
        .unwrap_or_else(|_| panic!("decoding panicked on {:.80}", json))
}

#[test]
fn smoke() {
    assert!("no.such.type".parse::<EventType>().is_err());
    assert!(decode("{").is_err());
}

// ------------------------------------------------------- event type names

#[test]
fn unknown_event_type_names_are_errors() {
    for name in [
        "",
        ".",
        "task.",
        ".task",
        "task..completed",
        "TASK.COMPLETED",
        "\0",
        "🦀",
    ] {
        let err = name.parse::<EventType>().unwrap_err();
        assert_eq!(err.name(), name);
        assert!(decode(&json!({"type": name}).to_string()).is_err());
    }
}

#[test]
fn a_huge_unknown_name_is_echoed_truncated() {
    let long = "x".repeat(1 << 20);
    let err = long.parse::<EventType>().unwrap_err();
    assert_eq!(err.name(), format!("{}…", "x".repeat(64)));
    // Truncation respects char boundaries.
    let accented = "é".repeat(100);
    let err = accented.parse::<EventType>().unwrap_err();
    assert!(err.name().ends_with('…'));
    assert!(err.name().len() <= 64 + '…'.len_utf8());
    assert!(err.to_string().len() < 200);
}

// ------------------------------------------------------------------- JSON

#[test]
fn malformed_json_is_an_error() {
    let cases = [
        "",
        " ",
        "{",
        "}",
        "{\"type\"",
        "{\"type\":",
        "{\"type\": \"task.created\"",
        "{\"type\": \"task.created\"}}",
        "{\"type\": \"task.created\"} trailing",
        "{'type': 'task.created'}",
        "{type: \"task.created\"}",
        "{\"type\": \"task.created\", \"data\": {\"a\": NaN}}",
        "{\"type\": \"task.created\", \"data\": \"\\ud800\"}",
        "{\"type\": \"task.created\", \"data\": \"\u{1}\"}",
        "{\"type\": \"task.created\", \"data\": \"unterminated}",
        "{\"type\": \"task.created\", \"type\": \"task.failed\"}",
        "\u{feff}{\"type\": \"task.created\"}",
        "nul\0l",
    ];
    for json in cases {
        assert!(decode(json).is_err(), "{json:?} decoded");
    }
}

#[test]
fn wrong_field_types_are_errors() {
    let fields = [
        ("type", json!(1)),
        ("type", json!(["task.created"])),
        ("id", json!(5)),
        ("id", json!("")),
        ("id", json!("0190f3a4-1b2c-7d3e-8f40")),
        ("id", json!({"uuid": "x"})),
        ("source_agent_id", json!("1")),
        ("circle_id", json!(1.0)),
        ("circle_id", json!(-1.5)),
        ("project_id", json!(u64::MAX)),
        ("project_id", json!([1])),
        ("timestamp", json!(0)),
        ("timestamp", json!("")),
        ("timestamp", json!("2026-11-23")),
        ("timestamp", json!("2026-13-01T00:00:00Z")),
        ("timestamp", json!("2026-11-23T25:00:00Z")),
    ];
    for (field, value) in fields {
        let mut object = json!({"type": "task.created"});
        object[field] = value.clone();
        let text = object.to_string();
        assert!(decode(&text).is_err(), "{field} = {value} decoded");
    }
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    for depth in [1_000usize, 100_000] {
        let arrays = format!(
            "{{\"type\": \"task.created\", \"data\": {}{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(decode(&arrays).is_err(), "{depth} nested arrays decoded");
        let objects = format!(
            "{{\"type\": \"task.created\", \"data\": {}1{}}}",
            "{\"a\":".repeat(depth),
            "}".repeat(depth)
        );
        assert!(decode(&objects).is_err(), "{depth} nested objects decoded");
    }
    // Unclosed nesting too.
    assert!(decode(&format!(
        "{{\"type\": \"task.created\", \"data\": {}",
        "[".repeat(100_000)
    ))
    .is_err());
}

#[test]
fn moderately_nested_json_decodes_and_round_trips() {
    let depth = 100;
    let json = format!(
        "{{\"type\": \"task.created\", \"data\": {}{}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let event = decode(&json).unwrap();
    let mut value = &event.data;
    let mut levels = 0;
    while let Some(inner) = value.as_array().and_then(|a| a.first()) {
        value = inner;
        levels += 1;
    }
    assert_eq!(levels, depth - 1);
    assert_eq!(Event::from_json(&event.to_json().unwrap()).unwrap(), event);
}

#[test]
fn a_10_mb_payload_decodes_and_round_trips() {
    let big = "a".repeat(10 << 20);
    let json = json!({"type": "memory.created", "data": {"content": big}}).to_string();
    let event = decode(&json).unwrap();
    assert_eq!(event.data["content"].as_str().unwrap().len(), 10 << 20);
    let again = Event::from_json(&event.to_json().unwrap()).unwrap();
    assert_eq!(again, event);

    // And it goes through the bus like any other event.
    let bus = EventBus::builder().history_capacity(2).build();
    bus.subscribe(EventType::MemoryCreated, |e: &Event| {
        assert_eq!(e.data["content"].as_str().map(str::len), Some(10 << 20));
    });
    assert_eq!(bus.publish_blocking(event).delivered, 1);
}

#[test]
fn many_fields_and_a_long_array_decode() {
    let array: Vec<u32> = (0..200_000).collect();
    let mut data = serde_json::Map::new();
    for n in 0..10_000 {
        data.insert(format!("k{n}"), json!(n));
    }
    data.insert("array".into(), json!(array));
    let event = decode(&json!({"type": "task.created", "data": data}).to_string()).unwrap();
    assert_eq!(event.data["array"].as_array().unwrap().len(), 200_000);
    assert_eq!(event.data["k9999"], 9999);
}

#[test]
fn non_object_data_is_kept_as_given() {
    // `data` is an object by convention, not by rule: other JSON values decode.
    for data in [json!([1, 2]), json!("text"), json!(5), json!(true)] {
        let event = decode(&json!({"type": "task.created", "data": data}).to_string()).unwrap();
        assert_eq!(event.data, data);
    }
}

// -------------------------------------------------------------------- ids

#[test]
fn invalid_event_ids_are_errors() {
    for text in [
        "",
        "not-a-uuid",
        "0190f3a4-1b2c-7d3e-8f40-123456789ab",
        "0190f3a4-1b2c-7d3e-8f40-123456789abcd",
        "0190f3a4-1b2c-7d3e-8f40-12345678zabc",
        "{0190f3a4-1b2c-7d3e-8f40-123456789abc",
    ] {
        let err = text.parse::<EventId>().unwrap_err();
        assert!(err.to_string().starts_with("invalid event id"), "{err}");
        assert!(decode(&json!({"type": "task.created", "id": text}).to_string()).is_err());
    }
    // Any well-formed UUID is accepted as given, whatever its version.
    let nil = "00000000-0000-0000-0000-000000000000";
    let event = decode(&json!({"type": "task.created", "id": nil}).to_string()).unwrap();
    assert_eq!(event.id.to_string(), nil);
}

// ------------------------------------------------------------- timestamps

#[test]
fn timestamps_outside_rfc3339_cannot_be_encoded() {
    let before_epoch = UNIX_EPOCH - Duration::from_secs(1);
    let after_9999 = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
    let last_second = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    for at in [before_epoch, after_9999] {
        let mut event = Event::new(EventType::SystemError);
        event.timestamp = at;
        let result = std::panic::catch_unwind(|| event.to_json()).expect("to_json panicked");
        let err = result.unwrap_err();
        let cause = std::error::Error::source(&err).expect("serde's error");
        assert!(cause.to_string().contains("timestamp"), "{err}: {cause}");
        assert!(serde_json::to_string(&event).is_err());
    }
    let mut event = Event::new(EventType::SystemError);
    event.timestamp = last_second;
    let json = event.to_json().unwrap();
    assert!(json.contains("9999-12-31T23:59:59.000000000Z"), "{json}");
    assert_eq!(Event::from_json(&json).unwrap(), event);
}

#[test]
fn out_of_range_timestamps_in_json_are_errors() {
    for text in [
        "1969-12-31T23:59:59Z",
        "10000-01-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
    ] {
        let json = json!({"type": "task.created", "timestamp": text}).to_string();
        assert!(decode(&json).is_err(), "{text} decoded");
    }
}

#[test]
fn a_field_of_the_wrong_json_type_names_what_was_expected() {
    for (field, expected) in [
        ("id", "expected an event id as a UUID string"),
        ("type", "expected a dotted event type name"),
        ("timestamp", "expected an RFC 3339 UTC timestamp"),
    ] {
        let mut json = json!({"type": "task.created"});
        json[field] = json!(42);
        let err = decode(&json.to_string()).unwrap_err();
        let cause = std::error::Error::source(&err)
            .expect("the serde error is the cause")
            .to_string();
        assert!(
            cause.contains("invalid type: integer `42`") && cause.contains(expected),
            "{field}: {cause}"
        );
    }
}

#[test]
fn an_event_with_a_pre_epoch_timestamp_still_publishes() {
    let bus = EventBus::new();
    let mut event = Event::new(EventType::SystemError);
    event.timestamp = UNIX_EPOCH - Duration::from_secs(3600);
    bus.subscribe(EventType::SystemError, |_e: &Event| {});
    assert_eq!(bus.publish_blocking(event).delivered, 1);
    assert_eq!(bus.history(&HistoryQuery::new()).len(), 1);
}

// ------------------------------------------------------------ capacities

#[test]
fn zero_history_capacity_turns_history_off() {
    let bus = EventBus::builder().history_capacity(0).try_build().unwrap();
    assert_eq!(bus.history_capacity(), 0);
    bus.publish_blocking(Event::new(EventType::TaskCreated));
    assert!(bus
        .history(&HistoryQuery::new().limit(usize::MAX))
        .is_empty());
    assert_eq!(bus.stats().history_size, 0);
}

#[test]
fn enormous_history_capacity_is_a_typed_error() {
    for requested in [MAX_HISTORY_CAPACITY + 1, usize::MAX / 2, usize::MAX] {
        let err = EventBus::builder()
            .history_capacity(requested)
            .try_build()
            .unwrap_err();
        assert_eq!(
            err,
            BuildError::HistoryCapacityTooLarge {
                requested,
                max: MAX_HISTORY_CAPACITY
            }
        );
        assert!(err.to_string().contains(&requested.to_string()), "{err}");
    }
}

#[test]
fn the_maximum_history_capacity_itself_is_accepted() {
    let bus = EventBus::builder()
        .history_capacity(MAX_HISTORY_CAPACITY)
        .try_build()
        .expect("the documented maximum is a valid capacity");
    assert_eq!(bus.history_capacity(), MAX_HISTORY_CAPACITY);
}

#[test]
fn build_lowers_an_enormous_capacity_to_the_maximum() {
    let bus = EventBus::builder().history_capacity(usize::MAX).build();
    assert_eq!(bus.history_capacity(), MAX_HISTORY_CAPACITY);
    bus.publish_blocking(Event::new(EventType::TaskCreated));
    assert_eq!(bus.stats().history_size, 1);
}

#[test]
fn history_limits_at_the_extremes() {
    let bus = EventBus::builder().history_capacity(3).build();
    assert!(bus.history(&HistoryQuery::new().limit(0)).is_empty());
    assert!(bus
        .history(&HistoryQuery::new().limit(usize::MAX))
        .is_empty());
    for _ in 0..5 {
        bus.publish_blocking(Event::new(EventType::TaskCreated));
    }
    assert!(bus.history(&HistoryQuery::new().limit(0)).is_empty());
    assert_eq!(bus.history(&HistoryQuery::new().limit(usize::MAX)).len(), 3);
    assert_eq!(
        bus.history(
            &HistoryQuery::new()
                .event_type(EventType::TaskFailed)
                .limit(usize::MAX)
        )
        .len(),
        0
    );
    assert_eq!(
        bus.history(
            &HistoryQuery::new()
                .circle_id(i64::MIN)
                .project_id(i64::MAX)
                .limit(usize::MAX)
        )
        .len(),
        0
    );
}

#[test]
fn stream_capacity_zero_is_one() {
    let bus = EventBus::new();
    let mut stream = bus.stream(EventType::TaskCreated, 0);
    assert_eq!(stream.capacity(), 1);
    bus.publish_blocking(Event::new(EventType::TaskCreated));
    bus.publish_blocking(Event::new(EventType::TaskCreated));
    assert_eq!(stream.try_recv(), Err(TryRecvError::Lagged(1)));
    assert!(stream.try_recv().is_ok());
}
