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
