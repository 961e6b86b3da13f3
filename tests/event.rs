//! `EventType` and `Event`: names, ids, builders and the JSON form.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentbus::{Event, EventId, EventType, ParseEventTypeError, SubscriptionId};
use serde_json::{json, Value};

/// The specification's names, in its order.
const SPEC_NAMES: [&str; 24] = [
    "agent.started",
    "agent.stopped",
    "agent.task.assigned",
    "agent.task.completed",
    "agent.task.failed",
    "agent.tool.executed",
    "memory.created",
    "memory.shared",
    "memory.recalled",
    "circle.created",
    "circle.started",
    "circle.stopped",
    "circle.member.added",
    "circle.member.removed",
    "task.created",
    "task.assigned",
    "task.started",
    "task.completed",
    "task.failed",
    "task.conflict.detected",
    "conversation.message",
    "conversation.turn.complete",
    "system.error",
    "system.warning",
];

#[test]
fn smoke() {
    let event = Event::new(EventType::TaskCompleted).with_data(json!({"task_id": 123}));
    let decoded = Event::from_json(&event.to_json().unwrap()).unwrap();
    assert_eq!(decoded, event);
}

#[test]
fn all_holds_every_type_in_spec_order() {
    assert_eq!(EventType::COUNT, 24);
    assert_eq!(EventType::ALL.len(), EventType::COUNT);
    let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    assert_eq!(names, SPEC_NAMES);
    let variants = [
        EventType::AgentStarted,
        EventType::AgentStopped,
        EventType::AgentTaskAssigned,
        EventType::AgentTaskCompleted,
        EventType::AgentTaskFailed,
        EventType::AgentToolExecuted,
        EventType::MemoryCreated,
        EventType::MemoryShared,
        EventType::MemoryRecalled,
        EventType::CircleCreated,
        EventType::CircleStarted,
        EventType::CircleStopped,
        EventType::CircleMemberAdded,
        EventType::CircleMemberRemoved,
        EventType::TaskCreated,
        EventType::TaskAssigned,
        EventType::TaskStarted,
        EventType::TaskCompleted,
        EventType::TaskFailed,
        EventType::TaskConflictDetected,
        EventType::ConversationMessage,
        EventType::ConversationTurnComplete,
        EventType::SystemError,
        EventType::SystemWarning,
    ];
    assert_eq!(EventType::ALL, variants);
}

#[test]
fn as_str_of_multi_dot_names() {
    assert_eq!(EventType::AgentToolExecuted.as_str(), "agent.tool.executed");
    assert_eq!(
        EventType::ConversationTurnComplete.as_str(),
        "conversation.turn.complete"
    );
    assert_eq!(
        EventType::TaskConflictDetected.as_str(),
        "task.conflict.detected"
    );
    assert_eq!(
        EventType::CircleMemberRemoved.as_str(),
        "circle.member.removed"
    );
}

#[test]
fn index_is_position_in_all() {
    for (position, t) in EventType::ALL.iter().enumerate() {
        assert_eq!(t.index(), position, "{t:?}");
        assert_eq!(EventType::ALL[t.index()], *t);
    }
}

#[test]
fn from_str_display_and_serde_round_trip_for_every_type() {
    let mut seen = HashSet::new();
    for t in EventType::ALL {
        let name = t.as_str();
        assert!(seen.insert(name), "duplicate name {name}");
        assert_eq!(name.parse::<EventType>().unwrap(), t);
        assert_eq!(t.to_string(), name);
        assert_eq!(format!("{t}"), name);
        assert_eq!(serde_json::to_value(t).unwrap(), Value::String(name.into()));
        let back: EventType = serde_json::from_value(json!(name)).unwrap();
        assert_eq!(back, t);
    }
}

#[test]
fn unknown_type_name_is_a_typed_error() {
    for bad in [
        "",
        "task",
        "task.finished",
        "Task.Completed",
        "TaskCompleted",
        " task.completed",
        "task.completed ",
        "task_completed",
    ] {
        let err: ParseEventTypeError = bad.parse::<EventType>().unwrap_err();
        assert_eq!(err.name(), bad);
        assert!(err.to_string().contains("unknown event type"), "{err}");
    }
    assert!(serde_json::from_value::<EventType>(json!("task.finished")).is_err());
    assert!(serde_json::from_value::<EventType>(json!(17)).is_err());
}

#[test]
fn new_sets_id_timestamp_and_empty_data() {
    let before = SystemTime::now();
    let event = Event::new(EventType::AgentStarted);
    let after = SystemTime::now();
    assert_eq!(event.event_type, EventType::AgentStarted);
    assert!(event.timestamp >= before && event.timestamp <= after);
    assert_eq!(event.data, json!({}));
    assert_eq!(event.source_agent_id, None);
    assert_eq!(event.circle_id, None);
    assert_eq!(event.project_id, None);
    let millis = event
        .timestamp
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert_eq!(event.id.timestamp_millis(), millis);
    assert_eq!(event.id.as_uuid().get_version_num(), 7);
}

#[test]
fn ids_from_one_thread_strictly_increase() {
    let ids: Vec<EventId> = (0..10_000)
        .map(|_| Event::new(EventType::TaskCreated).id)
        .collect();
    for pair in ids.windows(2) {
        assert!(pair[0] < pair[1], "{:?} !< {:?}", pair[0], pair[1]);
    }
}

#[test]
fn ids_are_unique_across_threads() {
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                (0..5_000)
                    .map(|_| Event::new(EventType::TaskCreated).id)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all = HashSet::new();
    for thread in threads {
        for id in thread.join().unwrap() {
            assert!(all.insert(id), "duplicate id {id}");
        }
    }
    assert_eq!(all.len(), 20_000);
}

/// Each thread seeds its 74-bit counter at random; the UUID carries the
/// counter's top 12 bits between the version and the variant (RFC 9562's
/// `rand_a`), so across threads that field is random too, and every id is a
/// well-formed v7 UUID.
#[test]
fn ids_are_v7_uuids_whose_counter_is_seeded_at_random_per_thread() {
    let ids: Vec<u128> = (0..16)
        .map(|_| {
            std::thread::spawn(|| Event::new(EventType::TaskCreated).id.as_uuid().as_u128())
                .join()
                .unwrap()
        })
        .collect();
    for &id in &ids {
        assert_eq!((id >> 76) & 0xf, 7, "version of {id:032x}");
        assert_eq!((id >> 62) & 0b11, 0b10, "variant of {id:032x}");
    }
    let rand_a: Vec<u128> = ids.iter().map(|id| (id >> 64) & 0xfff).collect();
    // 16 random 12-bit values: all equal, or all below 4 (the counter's top
    // 10 bits never seeded), with odds under 2^-150.
    assert!(rand_a.iter().any(|&bits| bits != rand_a[0]), "{rand_a:x?}");
    assert!(rand_a.iter().any(|&bits| bits > 3), "{rand_a:x?}");
}

#[test]
fn event_id_text_round_trip() {
    let id = Event::new(EventType::TaskCreated).id;
    let text = id.to_string();
    assert_eq!(text.len(), 36);
    assert_eq!(text.parse::<EventId>().unwrap(), id);
    assert_eq!(format!("{id:?}"), format!("EventId({text})"));
}

#[test]
fn builders_set_their_fields() {
    let event = Event::new(EventType::TaskCompleted)
        .with_data(json!({"task_id": 123, "result": "success"}))
        .with_source_agent(1)
        .with_circle(5)
        .with_project(7);
    assert_eq!(event.data, json!({"task_id": 123, "result": "success"}));
    assert_eq!(event.source_agent_id, Some(1));
    assert_eq!(event.circle_id, Some(5));
    assert_eq!(event.project_id, Some(7));
    let negative = Event::new(EventType::TaskCompleted).with_source_agent(i64::MIN);
    assert_eq!(negative.source_agent_id, Some(i64::MIN));
}

#[test]
fn json_shape_is_exact() {
    let at = UNIX_EPOCH + Duration::new(1_795_996_470, 123_456_789);
    let mut event = Event::new(EventType::TaskCompleted)
        .with_data(json!({"task_id": 123}))
        .with_source_agent(1)
        .with_circle(5);
    event.timestamp = at;
    let json: Value = serde_json::from_str(&event.to_json().unwrap()).unwrap();
    let object = json.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "causation_id",
            "circle_id",
            "correlation_id",
            "data",
            "id",
            "project_id",
            "source_agent_id",
            "timestamp",
            "type"
        ]
    );
    assert_eq!(json["id"], Value::String(event.id.to_string()));
    assert_eq!(json["type"], "task.completed");
    assert_eq!(json["data"], json!({"task_id": 123}));
    assert_eq!(json["source_agent_id"], 1);
    assert_eq!(json["circle_id"], 5);
    assert_eq!(json["project_id"], Value::Null);
    assert_eq!(json["correlation_id"], Value::Null);
    assert_eq!(json["causation_id"], Value::Null);
    assert_eq!(json["timestamp"], "2026-11-29T23:54:30.123456789Z");
}

#[test]
fn timestamp_is_rfc3339_utc_with_nanoseconds() {
    for at in [
        UNIX_EPOCH,
        UNIX_EPOCH + Duration::new(1, 1),
        UNIX_EPOCH + Duration::new(1_795_996_470, 0),
        SystemTime::now(),
    ] {
        let mut event = Event::new(EventType::SystemWarning);
        event.timestamp = at;
        let json: Value = serde_json::from_str(&event.to_json().unwrap()).unwrap();
        let text = json["timestamp"].as_str().unwrap();
        // YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ
        assert_eq!(text.len(), 30, "{text}");
        assert!(text.ends_with('Z'), "{text}");
        assert_eq!(&text[10..11], "T");
        assert_eq!(&text[19..20], ".");
        assert_eq!(humantime::parse_rfc3339(text).unwrap(), at);
    }
    let mut epoch = Event::new(EventType::SystemWarning);
    epoch.timestamp = UNIX_EPOCH;
    assert!(epoch
        .to_json()
        .unwrap()
        .contains("\"1970-01-01T00:00:00.000000000Z\""));
}

#[test]
fn round_trip_is_exact_including_nanoseconds() {
    let mut event = Event::new(EventType::ConversationTurnComplete)
        .with_data(json!({"nested": {"list": [1, 2.5, "x", null, true]}, "u": "é✓"}))
        .with_source_agent(-3)
        .with_project(i64::MAX);
    event.timestamp = UNIX_EPOCH + Duration::new(1_700_000_000, 987_654_321);
    let back = Event::from_json(&event.to_json().unwrap()).unwrap();
    assert_eq!(back, event);
    assert_eq!(back.timestamp, event.timestamp);
    assert_eq!(back.id, event.id);

    for t in EventType::ALL {
        let event = Event::new(t).with_circle(1);
        assert_eq!(Event::from_json(&event.to_json().unwrap()).unwrap(), event);
    }
}

/// Decoding reads a timestamp exactly as `humantime::parse_rfc3339` does,
/// the form the crate writes (read by a shorter path) and every other one:
/// the same time, or an error for the same input.
#[test]
fn timestamps_decode_as_humantime_reads_them() {
    let mut texts: Vec<String> = Vec::new();
    // Every ~13.7 days from 1970 to 9999, odd seconds and nanoseconds, so
    // every month, day and leap-year rule is crossed.
    let mut seconds = 0u64;
    while seconds < 253_402_300_800 {
        let at = UNIX_EPOCH + Duration::new(seconds, (seconds % 1_000_000_007) as u32);
        texts.push(humantime::format_rfc3339_nanos(at).to_string());
        seconds += 1_183_333 + seconds % 7;
    }
    texts.extend(
        [
            "1970-01-01T00:00:00.000000000Z",
            "2000-02-29T12:00:00.000000001Z",
            "2100-02-28T23:59:59.999999999Z",
            "2100-03-01T00:00:00.000000000Z",
            "9999-12-31T23:59:59.999999999Z",
            // Not the written form, or out of range: humantime's answer.
            "2026-12-04T00:00:60.000000000Z",
            "2100-02-29T00:00:00.000000000Z",
            "2026-02-30T00:00:00.000000000Z",
            "2026-13-01T00:00:00.000000000Z",
            "2026-00-01T00:00:00.000000000Z",
            "2026-01-00T00:00:00.000000000Z",
            "2026-01-01T24:00:00.000000000Z",
            "2026-01-01T00:60:00.000000000Z",
            "1969-12-31T23:59:59.999999999Z",
            "2026-01-01T00:00:00.00000000xZ",
            "2026-01-01T00:00:00+000000000Z",
            "2026-01-01 00:00:00.000000000Z",
            "2026-01-01T00:00:00.123Z",
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.000000000+00:00",
            "+026-01-01T00:00:00.000000000Z",
        ]
        .map(str::to_owned),
    );
    for text in texts {
        let decoded = Event::from_json(&format!(
            r#"{{"type":"task.created","timestamp":"{text}"}}"#
        ))
        .map(|event| event.timestamp)
        .map_err(|_| ());
        let expected = humantime::parse_rfc3339(&text).map_err(|_| ());
        assert_eq!(decoded, expected, "{text}");
    }
}

#[test]
fn serde_value_round_trip() {
    let event = Event::new(EventType::MemoryShared).with_circle(9);
    let value = serde_json::to_value(&event).unwrap();
    let back: Event = serde_json::from_value(value).unwrap();
    assert_eq!(back, event);
}

#[test]
fn decode_fills_missing_id_timestamp_and_data() {
    let before = SystemTime::now();
    let a = Event::from_json(r#"{"type": "memory.shared"}"#).unwrap();
    let b = Event::from_json(r#"{"type": "memory.shared"}"#).unwrap();
    let after = SystemTime::now();
    assert_eq!(a.event_type, EventType::MemoryShared);
    assert_eq!(a.data, json!({}));
    assert_eq!(
        (a.source_agent_id, a.circle_id, a.project_id),
        (None, None, None)
    );
    assert!(a.timestamp >= before && a.timestamp <= after);
    assert_ne!(a.id, b.id, "each decode gets a fresh id");
}

/// A decoded event without an id gets one from the real clock: a claimed
/// `timestamp` in 9999 (or 1999) dates neither its own id nor, through the
/// thread's monotonic id clock, the later ids of the thread.
#[test]
fn ids_take_their_time_from_the_real_clock_not_a_decoded_timestamp() {
    let now_millis = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let before = now_millis();
    let future =
        Event::from_json(r#"{"type": "task.created", "timestamp": "9999-12-31T23:59:59Z"}"#)
            .unwrap();
    let past = Event::from_json(r#"{"type": "task.created", "timestamp": "1999-01-01T00:00:00Z"}"#)
        .unwrap();
    let fresh = Event::new(EventType::TaskCreated);
    let decoded = Event::from_json(r#"{"type": "task.created"}"#).unwrap();
    let after = now_millis();
    assert_eq!(
        future.timestamp,
        UNIX_EPOCH + Duration::from_secs(253_402_300_799),
        "the claimed timestamp itself is kept"
    );
    for (name, event) in [
        ("future", &future),
        ("past", &past),
        ("fresh", &fresh),
        ("decoded", &decoded),
    ] {
        let millis = event.id.timestamp_millis();
        assert!(
            (before..=after).contains(&millis),
            "{name}: id dated {millis}, expected {before}..={after}"
        );
    }
    assert!(future.id < past.id && past.id < fresh.id && fresh.id < decoded.id);
}

#[test]
fn decode_keeps_given_fields_and_accepts_nulls() {
    let json = r#"{"id": "0190f3a4-1b2c-7d3e-8f40-123456789abc", "type": "task.failed",
                   "data": {"why": "timeout"}, "source_agent_id": null, "circle_id": 2,
                   "project_id": null, "timestamp": "2026-11-23T23:54:30.000000001Z",
                   "extra_field": [1, 2]}"#;
    let event = Event::from_json(json).unwrap();
    assert_eq!(event.id.to_string(), "0190f3a4-1b2c-7d3e-8f40-123456789abc");
    assert_eq!(event.event_type, EventType::TaskFailed);
    assert_eq!(event.data, json!({"why": "timeout"}));
    assert_eq!(event.source_agent_id, None);
    assert_eq!(event.circle_id, Some(2));
    assert_eq!(
        event.timestamp,
        humantime::parse_rfc3339("2026-11-23T23:54:30.000000001Z").unwrap()
    );
}

#[test]
fn causal_ids_round_trip_through_json() {
    let root = Event::new(EventType::TaskCompleted);
    let call = Event::new(EventType::AgentToolExecuted).caused_by(&root);
    let memory = Event::new(EventType::MemoryShared).caused_by(&call);
    for event in [&root, &call, &memory] {
        let json = event.to_json().unwrap();
        let back = Event::from_json(&json).unwrap();
        assert_eq!(&back, event);
        let value: Value = serde_json::from_str(&json).unwrap();
        let text = |id: Option<EventId>| id.map_or(Value::Null, |id| id.to_string().into());
        assert_eq!(value["correlation_id"], text(event.correlation_id));
        assert_eq!(value["causation_id"], text(event.causation_id));
    }
    assert_eq!(memory.causation_id, Some(call.id));
    assert_eq!(memory.correlation_id, Some(root.id));
    let only_chain = Event::new(EventType::MemoryRecalled).with_correlation(root.id);
    assert_eq!(
        Event::from_json(&only_chain.to_json().unwrap()).unwrap(),
        only_chain
    );
}

#[test]
fn json_without_causal_ids_decodes_to_none() {
    let absent = Event::from_json(r#"{"type": "task.created"}"#).unwrap();
    assert_eq!((absent.correlation_id, absent.causation_id), (None, None));
    let null = Event::from_json(
        r#"{"type": "task.created", "correlation_id": null, "causation_id": null}"#,
    )
    .unwrap();
    assert_eq!((null.correlation_id, null.causation_id), (None, None));
    let given = Event::from_json(
        r#"{"type": "task.created", "correlation_id": "0190f3a4-1b2c-7d3e-8f40-123456789abc"}"#,
    )
    .unwrap();
    assert_eq!(
        given.correlation_id.map(|id| id.to_string()).as_deref(),
        Some("0190f3a4-1b2c-7d3e-8f40-123456789abc")
    );
    assert_eq!(given.causation_id, None);
    for bad in [
        r#"{"type": "task.created", "causation_id": "not-a-uuid"}"#,
        r#"{"type": "task.created", "correlation_id": 7}"#,
    ] {
        assert!(Event::from_json(bad).is_err(), "{bad}");
    }
}

#[test]
fn decode_requires_type() {
    let err = Event::from_json(r#"{"data": {}}"#).unwrap_err();
    // The message says what failed; its source says why.
    let cause = std::error::Error::source(&err).expect("the parser's error");
    assert!(cause.to_string().contains("type"), "{err}: {cause}");
    assert!(Event::from_json(r#"{"type": null}"#).is_err());
}

#[test]
fn decode_rejects_bad_input_without_panicking() {
    let cases = [
        r#"{"type": "memory.forgotten"}"#,
        r#"{"type": 5}"#,
        r#"{"type": "task.created", "circle_id": "five"}"#,
        r#"{"type": "task.created", "circle_id": 1.5}"#,
        r#"{"type": "task.created", "source_agent_id": true}"#,
        r#"{"type": "task.created", "project_id": 99999999999999999999}"#,
        r#"{"type": "task.created", "id": "not-a-uuid"}"#,
        r#"{"type": "task.created", "id": 12}"#,
        r#"{"type": "task.created", "timestamp": "yesterday"}"#,
        r#"{"type": "task.created", "timestamp": 1700000000}"#,
        r#"{"type": "task.created""#,
        r#"{"type": "task.created",}"#,
        "",
        "null",
        "[]",
        "\"task.created\"",
        "{",
        "}{",
    ];
    for json in cases {
        let result = std::panic::catch_unwind(|| Event::from_json(json));
        match result {
            Ok(Err(err)) => assert!(!err.to_string().is_empty()),
            Ok(Ok(event)) => panic!("{json:?} decoded to {event:?}"),
            Err(_) => panic!("{json:?} panicked"),
        }
    }
    let err = Event::from_json("{\n  \"type\": \"memory.forgotten\"\n}").unwrap_err();
    assert_eq!(err.line(), 2);
    assert!(err.column() > 0);
}

fn assert_traits<T: Send + Sync + Clone + PartialEq + std::fmt::Debug + 'static>() {}
fn assert_id_traits<
    T: Copy + Eq + std::hash::Hash + std::fmt::Debug + std::fmt::Display + Send + Sync,
>() {
}

#[test]
fn event_and_ids_have_the_pinned_traits() {
    assert_traits::<Event>();
    assert_id_traits::<EventId>();
    assert_id_traits::<SubscriptionId>();
    assert_id_traits::<EventType>();
    let event = Event::new(EventType::TaskCreated);
    let copy = event.clone();
    assert_eq!(copy, event);
    assert_ne!(Event::new(EventType::TaskCreated), event);
}

#[test]
fn floats_in_data_round_trip_exactly() {
    let floats = [
        0.1 + 0.2,
        1.0 / 3.0,
        f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
        -123_456.789e-5,
        2f64.powi(60) + 1.0,
    ];
    let event = Event::new(EventType::AgentToolExecuted).with_data(json!({ "floats": floats }));
    let back = Event::from_json(&event.to_json().unwrap()).unwrap();
    assert_eq!(back, event);
    let decoded: Vec<f64> = back.data["floats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    for (a, b) in decoded.iter().zip(floats) {
        assert_eq!(a.to_bits(), b.to_bits());
    }
}
