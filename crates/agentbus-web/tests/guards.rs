//! The bus's guards at `POST /api/events`: 422 naming the event and the
//! JSON pointer, 429 with `Retry-After`, duplicates reported per event and
//! told apart from "already stored", and nothing rejected reaching history,
//! the store or a web client.

mod common;

use std::time::Duration;

use agentbus::{Event, EventBus, EventType, HistoryQuery};
use agentbus_guard::{Clock, Dedup, RateLimit, Schemas};
use agentbus_store::{EventStore, ReadQuery, Recorder, SqliteStore};
use agentbus_web::{PublishReply, RejectedReply, WebApi};
use common::*;
use serde_json::json;

fn schemas() -> Schemas {
    Schemas::new()
        .schema(
            EventType::TaskCompleted,
            json!({"type": "object", "required": ["task_id"], "properties": {"task_id": {"type": "integer"}}}),
        )
        .unwrap()
}

#[tokio::test]
async fn a_schema_error_is_a_422_naming_the_event_and_the_pointer_and_nothing_is_published() {
    let bus = EventBus::builder().guard(schemas()).build();
    let server = Server::start(WebApi::new(bus.clone())).await;
    let body = json!([
        {"type": "task.completed", "data": {"task_id": 1}},
        {"type": "task.completed", "data": {"task_id": "one"}},
    ]);
    let reply = post_json(&server.url("/api/events"), &body.to_string()).await;
    assert_eq!(reply.status, 422);
    let rejected: RejectedReply = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(rejected.reason, "invalid");
    assert_eq!(rejected.index, Some(1));
    assert_eq!(rejected.violations.len(), 1);
    assert_eq!(rejected.violations[0].pointer, "/task_id");
    assert_eq!(
        rejected.error,
        r#"event 1: invalid data: at /task_id: "one" is not of type "integer"; nothing of this request was published"#
    );
    assert!(bus.history(&HistoryQuery::new()).is_empty());
    assert_eq!(bus.stats().events_published, 0);

    // A single event: no index.
    let reply = post_json(
        &server.url("/api/events"),
        r#"{"type": "task.completed", "data": {}}"#,
    )
    .await;
    assert_eq!(reply.status, 422);
    let rejected: RejectedReply = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        (rejected.index, rejected.violations[0].pointer.as_str()),
        (None, "")
    );
}

#[tokio::test]
async fn a_rate_limited_request_is_a_429_with_retry_after() {
    let bus = EventBus::builder()
        .guard(RateLimit::global(2, Duration::from_secs(10)))
        .build();
    let server = Server::start(WebApi::new(bus.clone())).await;
    let event = r#"{"type": "agent.started"}"#;
    let three = format!("[{event},{event},{event}]");
    let reply = post_json(&server.url("/api/events"), &three).await;
    assert_eq!(reply.status, 429);
    // One event every 5 s; the burst of 2 is used: the third may go in 5 s.
    assert_eq!(reply.headers["retry-after"], "5");
    let rejected: RejectedReply = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(rejected.reason, "rate_limited");
    assert_eq!(rejected.index, Some(2));
    assert!(
        (4_900..=5_000).contains(&rejected.retry_after_ms.unwrap()),
        "{rejected:?}"
    );
    // All or nothing: the two let in were not published.
    assert_eq!(bus.stats().events_published, 0);
    assert_eq!(bus.stats().events_rate_limited, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_reported_per_event_and_told_apart_from_already_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.db")).unwrap();
    let clock = Clock::manual();
    let bus = EventBus::builder()
        .guard(Dedup::window(Duration::from_secs(1)).clock(clock.clone()))
        .build();
    let recorder = Recorder::builder().attach(&bus, store.clone());
    let server = Server::start(WebApi::new(bus.clone()).store(recorder)).await;
    let mut watcher = connect_ws(&server.ws_url("/ws")).await;

    let first = Event::new(EventType::TaskCompleted)
        .with_source_agent(1)
        .with_data(json!({"task_id": 7}));
    let repeat = Event::new(EventType::TaskCompleted)
        .with_source_agent(1)
        .with_data(json!({"task_id": 7}));
    let other = Event::new(EventType::TaskCompleted)
        .with_source_agent(1)
        .with_data(json!({"task_id": 8}));
    let body = format!(
        "[{},{},{}]",
        first.to_json().unwrap(),
        repeat.to_json().unwrap(),
        other.to_json().unwrap()
    );
    let reply = post_json(&server.url("/api/events"), &body).await;
    reply.assert_status(200);
    let reply: PublishReply = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(reply.ids, [first.id, repeat.id, other.id]);
    let sequences = reply.sequences.unwrap();
    assert!(sequences[0].is_some() && sequences[1].is_none() && sequences[2].is_some());
    assert_eq!(reply.duplicate_of, Some(vec![None, Some(first.id), None]));

    // After the window, the same id again: not a duplicate, already stored.
    clock.advance(Duration::from_secs(1));
    let reply = post_json(&server.url("/api/events"), &first.to_json().unwrap()).await;
    assert_eq!(reply.status, 200);
    let reply: PublishReply = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(reply.sequences, Some(vec![None]));
    assert_eq!(reply.duplicate_of, None);

    // The store and the web client saw the first and the other, never the
    // repeat (the re-posted first is not stored twice).
    let stored: Vec<_> = store
        .read(&ReadQuery::new())
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.event.id)
        .collect();
    assert_eq!(stored.len(), 2);
    assert!(stored.contains(&first.id) && stored.contains(&other.id));
    // The web client: the first, the other, then a marker posted last; the
    // repeat never came in between.
    let marker = Event::new(EventType::SystemWarning);
    let reply = post_json(&server.url("/api/events"), &marker.to_json().unwrap()).await;
    assert_eq!(reply.status, 200);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let message = next_json(&mut watcher, Duration::from_secs(10)).await;
        seen.push(message["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        seen,
        [first.id, other.id, marker.id].map(|id| id.to_string())
    );
    assert_eq!(bus.stats().events_deduplicated, 1);
}
