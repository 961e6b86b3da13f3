//! Schemas: from code and from a directory, drafts 2020-12 and 7, strict,
//! every violation with its pointer, the shipped examples.

use agentbus::{Event, EventType, Guard, Rejection, Violation};
use agentbus_guard::{SchemaError, Schemas};
use serde_json::json;

fn task(data: serde_json::Value) -> Event {
    Event::new(EventType::TaskCompleted).with_data(data)
}

#[test]
fn every_violation_is_reported_with_its_pointer() {
    let schemas = Schemas::new()
        .schema(
            EventType::TaskCompleted,
            json!({
                "type": "object",
                "required": ["task_id"],
                "properties": {
                    "task_id": {"type": "integer"},
                    "tags": {"type": "array", "items": {"type": "string"}}
                }
            }),
        )
        .unwrap();
    let Err(Rejection::Invalid { mut violations }) =
        schemas.check(&task(json!({"task_id": "x", "tags": ["a", 2]})))
    else {
        panic!("expected invalid");
    };
    violations.sort_by(|a, b| a.pointer.cmp(&b.pointer));
    assert_eq!(
        violations,
        [
            Violation::new("/tags/1", r#"2 is not of type "string""#),
            Violation::new("/task_id", r#""x" is not of type "integer""#),
        ]
    );
    assert_eq!(schemas.invalid(), 1);
}

#[test]
fn draft_7_and_2020_12_are_both_understood() {
    // `items` as an array is draft 7's tuple form; 2020-12 uses `prefixItems`.
    let draft7 = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"pair": {"items": [{"type": "integer"}, {"type": "string"}]}}
    });
    let draft2020 = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"pair": {"prefixItems": [{"type": "integer"}, {"type": "string"}]}}
    });
    for schema in [draft7, draft2020] {
        let schemas = Schemas::new()
            .schema(EventType::TaskCompleted, schema)
            .unwrap();
        assert!(schemas.check(&task(json!({"pair": [1, "a"]}))).is_ok());
        assert!(schemas.check(&task(json!({"pair": ["a", 1]}))).is_err());
    }
}

#[test]
fn strict_rejects_types_without_a_schema() {
    let lenient = Schemas::new();
    assert!(lenient.check(&Event::new(EventType::AgentStarted)).is_ok());
    let strict = Schemas::new().strict();
    let Err(Rejection::Invalid { violations }) = strict.check(&Event::new(EventType::AgentStarted))
    else {
        panic!("expected invalid");
    };
    assert_eq!(violations[0].pointer, "");
    assert!(violations[0].message.contains("agent.started"));
}

#[test]
fn a_directory_of_schemas() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("task.completed.json"),
        r#"{"type": "object", "required": ["task_id"]}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("README.md"), "not a schema").unwrap();
    let schemas = Schemas::from_dir(dir.path()).unwrap();
    assert_eq!(
        schemas.event_types().collect::<Vec<_>>(),
        [EventType::TaskCompleted]
    );
    assert!(schemas.check(&task(json!({}))).is_err());

    std::fs::write(dir.path().join("task.finished.json"), "{}").unwrap();
    let err = Schemas::from_dir(dir.path()).unwrap_err();
    assert!(matches!(err, SchemaError::UnknownType { .. }), "{err}");
    std::fs::remove_file(dir.path().join("task.finished.json")).unwrap();

    std::fs::write(dir.path().join("task.failed.json"), "{oops").unwrap();
    let err = Schemas::from_dir(dir.path()).unwrap_err();
    assert!(matches!(err, SchemaError::Json { .. }), "{err}");
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn a_bad_schema_or_a_remote_ref_is_a_compile_error() {
    let bad = Schemas::new().schema(EventType::TaskCompleted, json!({"type": 12}));
    assert!(matches!(bad, Err(SchemaError::Compile { .. })));
    // Nothing is fetched: a remote $ref cannot compile.
    let remote = Schemas::new().schema(
        EventType::TaskCompleted,
        json!({"$ref": "https://example.com/task.json"}),
    );
    assert!(matches!(remote, Err(SchemaError::Compile { .. })));
}

#[test]
fn the_shipped_examples_accept_the_specifications_examples() {
    let schemas = Schemas::spec_examples();
    let ok = [
        (
            EventType::TaskCompleted,
            json!({"task_id": 123, "result": "success", "duration_ms": 1234}),
        ),
        (
            EventType::TaskCompleted,
            json!({"task_id": 123, "output_file": "results.json"}),
        ),
        (
            EventType::TaskCreated,
            json!({"task_id": 1, "circle_id": 5, "required_competencies": ["rust"]}),
        ),
        (
            EventType::AgentToolExecuted,
            json!({"tool_name": "fs_write", "params": {"path": "a.rs"}}),
        ),
        (
            EventType::TaskConflictDetected,
            json!({"file_path": "a.rs", "agent1_id": 1, "agent2_id": 2}),
        ),
        (EventType::MemoryShared, json!({"content": "x"})),
    ];
    for (event_type, data) in ok {
        let event = Event::new(event_type).with_data(data);
        assert!(schemas.check(&event).is_ok(), "{event_type}");
    }
    // The spec's "bad" example.
    assert!(schemas
        .check(&task(json!({"id": 123, "r": "ok", "d": 1234})))
        .is_err());
}

/// Without `$schema` a schema is read as draft 2020-12; drafts 2019-09, 6
/// and 4 are understood too (each by a keyword the others read otherwise).
#[test]
fn the_draft_comes_from_schema_and_defaults_to_2020_12() {
    let pair = |schema: serde_json::Value| {
        Schemas::new()
            .schema(EventType::TaskCompleted, schema)
            .unwrap()
    };
    // 2020-12 reads `prefixItems`; an older draft ignores it.
    let tuple = json!({"properties": {"pair": {"prefixItems": [{"type": "integer"}]}}});
    let default = pair(tuple.clone());
    assert!(default.check(&task(json!({"pair": ["a"]}))).is_err());
    let mut draft_2019 = tuple;
    draft_2019["$schema"] = json!("https://json-schema.org/draft/2019-09/schema");
    let draft_2019 = pair(draft_2019);
    assert!(draft_2019.check(&task(json!({"pair": ["a"]}))).is_ok());
    // Draft 4's `exclusiveMaximum` is a boolean beside `maximum`; from
    // draft 6 on it is a number of its own.
    let draft_4 = pair(json!({
        "$schema": "http://json-schema.org/draft-04/schema#",
        "properties": {"n": {"maximum": 3, "exclusiveMaximum": true}}
    }));
    assert!(draft_4.check(&task(json!({"n": 3}))).is_err());
    assert!(draft_4.check(&task(json!({"n": 2}))).is_ok());
    let draft_6 = pair(json!({
        "$schema": "http://json-schema.org/draft-06/schema#",
        "properties": {"n": {"exclusiveMaximum": 3}}
    }));
    assert!(draft_6.check(&task(json!({"n": 3}))).is_err());
    assert!(draft_6.check(&task(json!({"n": 2}))).is_ok());
}

/// A `$ref` inside the schema itself resolves.
#[test]
fn a_local_ref_resolves() {
    let schemas = Schemas::new()
        .schema(
            EventType::TaskCompleted,
            json!({
                "$defs": {"id": {"type": "integer"}},
                "properties": {"task_id": {"$ref": "#/$defs/id"}}
            }),
        )
        .unwrap();
    assert!(schemas.check(&task(json!({"task_id": 1}))).is_ok());
    assert!(schemas.check(&task(json!({"task_id": "1"}))).is_err());
}

/// Formats are annotations: a string that is no email passes `"format":
/// "email"`.
#[test]
fn formats_are_not_checked() {
    let schemas = Schemas::new()
        .schema(
            EventType::TaskCompleted,
            json!({"properties": {"to": {"type": "string", "format": "email"}}}),
        )
        .unwrap();
    assert!(schemas.check(&task(json!({"to": "not an email"}))).is_ok());
    assert!(schemas.check(&task(json!({"to": 1}))).is_err());
}

/// Clones share the counter; `validate` reports without counting.
#[test]
fn clones_share_the_counter_and_validate_does_not_count() {
    let schemas = Schemas::new()
        .schema(EventType::TaskCompleted, json!({"required": ["task_id"]}))
        .unwrap();
    let clone = schemas.clone();
    assert!(clone.check(&task(json!({}))).is_err());
    assert!(schemas.check(&task(json!({}))).is_err());
    assert_eq!(schemas.validate(&task(json!({}))).unwrap_err().len(), 1);
    assert!(schemas.validate(&task(json!({"task_id": 1}))).is_ok());
    assert_eq!((schemas.invalid(), clone.invalid()), (2, 2));
}

/// What a set of schemas prints: its types, strictness and counter.
#[test]
fn schemas_debug_as_their_types_strictness_and_counter() {
    let schemas = Schemas::new()
        .schema(EventType::TaskCompleted, json!({"required": ["task_id"]}))
        .unwrap()
        .strict();
    assert!(schemas.is_strict() && !Schemas::new().is_strict());
    let _ = schemas.check(&task(json!({})));
    assert_eq!(
        format!("{schemas:?}"),
        "Schemas { event_types: [TaskCompleted], strict: true, invalid: 1 }"
    );
}
