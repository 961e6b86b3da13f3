//! With a SQLite store: durable POST with sequences, reads from the store,
//! WebSocket `after` and SSE `Last-Event-ID` resume with no gap and no
//! duplicate, refill instead of lag, restart on the same file.

mod common;

use std::time::Duration;

use agentbus::EventBus;
use agentbus_store::{EventStore, ReadQuery, Recorder, SqliteStore};
use agentbus_web::WebApi;
use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

fn stored_api(path: &std::path::Path) -> (EventBus, Recorder, WebApi) {
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, SqliteStore::open(path).unwrap());
    let api = WebApi::new(bus.clone()).store(recorder.clone());
    (bus, recorder, api)
}

fn batch(n: usize, circle: i64) -> String {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"type": "task.created", "circle_id": circle, "data": {"n": i}}))
        .collect();
    serde_json::to_string(&events).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_is_durable_and_returns_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let (_bus, recorder, api) = stored_api(&path);
    let server = Server::start(api).await;

    let reply = post_json(&server.url("/api/events"), &batch(3, 1)).await;
    reply.assert_status(200);
    let body = reply.json();
    assert_eq!(body["sequences"], json!([1, 2, 3]));

    // Durable before the reply: a second handle on the file sees them.
    let other = SqliteStore::open(&path).unwrap();
    let stored = other.read(&ReadQuery::new()).await.unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[0].event.id.to_string(), body["ids"][0]);

    // Posting the same ids again stores nothing twice.
    let again = format!(
        "[{}]",
        (0..3)
            .map(|i| format!(r#"{{"type":"task.created","id":{}}}"#, body["ids"][i]))
            .collect::<Vec<_>>()
            .join(",")
    );
    let retry = post_json(&server.url("/api/events"), &again).await;
    assert_eq!(retry.status, 200);
    assert_eq!(retry.json()["sequences"], json!([null, null, null]));
    assert_eq!(recorder.flush().await.unwrap(), 3);

    let page = get(&server.url("/api/events?limit=2")).await.json();
    assert_eq!(page["events"][0]["sequence"], 1);
    assert_eq!(page["events"][1]["sequence"], 2);
    assert_eq!(page["next"], 2);
    let rest = get(&server.url("/api/events?limit=2&after=2")).await.json();
    assert_eq!(rest["events"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next"], Value::Null);
    let newest = get(&server.url("/api/events?order=desc&limit=1"))
        .await
        .json();
    assert_eq!(newest["events"][0]["sequence"], 3);
    let older = get(&server.url("/api/events?order=desc&limit=5&before=3"))
        .await
        .json();
    assert_eq!(older["events"][0]["sequence"], 2);

    let id = body["ids"][1].as_str().unwrap();
    let one = get(&server.url(&format!("/api/events/{id}"))).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["sequence"], 2);

    let stats = get(&server.url("/api/stats")).await.json();
    assert_eq!(stats["store"]["last_sequence"], 3);
    assert_eq!(stats["store_lag"], 0);
}

/// Resume from every point of a stream that is still being written: each
/// client sees exactly the sequences after its cursor, once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_after_catches_up_then_goes_live_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let (_bus, _recorder, api) = stored_api(&dir.path().join("events.db"));
    let server = Server::start(api).await;
    let reply = post_json(&server.url("/api/events"), &batch(50, 1)).await;
    assert_eq!(reply.status, 200);

    let mut from_10 = connect_ws(&server.ws_url("/ws?after=10")).await;
    let mut circle_2 = connect_ws(&server.ws_url("/ws?after=0&circle_id=2")).await;
    // Publish more while the backlog is being read.
    let writer = {
        let url = server.url("/api/events");
        tokio::spawn(async move {
            for round in 0..10 {
                let reply = post_json(&url, &batch(10, 1 + round % 2)).await;
                assert_eq!(reply.status, 200);
            }
        })
    };
    let mut expected = 11;
    while expected <= 150 {
        let event = next_json(&mut from_10, Duration::from_secs(10)).await;
        assert_eq!(event["sequence"], expected, "{event}");
        expected += 1;
    }
    writer.await.unwrap();
    // Circle 2 got rounds 1, 3, 5, 7, 9: sequences 61..=70, 81..=90, ...
    let mut seen = Vec::new();
    while seen.len() < 50 {
        let event = next_json(&mut circle_2, Duration::from_secs(10)).await;
        assert_eq!(event["circle_id"], 2);
        seen.push(event["sequence"].as_u64().unwrap());
    }
    let wanted: Vec<u64> = (0..5).flat_map(|r| (61 + 20 * r)..(71 + 20 * r)).collect();
    assert_eq!(seen, wanted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_last_event_id_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (_bus, _recorder, api) = stored_api(&dir.path().join("events.db"));
    let server = Server::start(api).await;
    assert_eq!(
        post_json(&server.url("/api/events"), &batch(5, 1))
            .await
            .status,
        200
    );

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<hyper::body::Bytes>>();
    let request = hyper::Request::get(server.url("/api/stream"))
        .header("last-event-id", "3")
        .body(http_body_util::Empty::new())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = http_body_util::BodyStream::new(response.into_body());
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while text.matches("\n\n").count() < 2 {
        let frame = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("sse events in time")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    let ids: Vec<&str> = text
        .lines()
        .filter_map(|line| {
            line.strip_prefix("id: ")
                .or_else(|| line.strip_prefix("id:"))
        })
        .collect();
    assert_eq!(ids, ["4", "5"], "{text}");
}

/// A client that stops reading is refilled from the store when it reads
/// again: no `lagged` message, no missing sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_websocket_client_is_refilled_not_lagged() {
    let dir = tempfile::tempdir().unwrap();
    let (_bus, _recorder, api) = stored_api(&dir.path().join("events.db"));
    let server = Server::start(api.client_buffer(16)).await;
    let mut slow = connect_ws(&server.ws_url("/ws?after=0")).await;
    let padding = "x".repeat(4096);
    for _ in 0..20 {
        let events: Vec<Value> = (0..100)
            .map(|_| json!({"type": "memory.created", "data": {"pad": padding}}))
            .collect();
        let reply = post_json(
            &server.url("/api/events"),
            &serde_json::to_string(&events).unwrap(),
        )
        .await;
        assert_eq!(reply.status, 200);
    }
    for expected in 1..=2000u64 {
        let event = next_json(&mut slow, Duration::from_secs(10)).await;
        assert!(event.get("lagged").is_none(), "{event}");
        assert_eq!(event["sequence"], expected);
    }
}

/// `correlation_id` returns the whole causal chain, its first event included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn causal_chain_includes_its_root() {
    use agentbus::{Event, EventType};
    let dir = tempfile::tempdir().unwrap();
    let (_bus, _recorder, api) = stored_api(&dir.path().join("events.db"));
    let server = Server::start(api).await;
    let root = Event::new(EventType::TaskCreated);
    let child = Event::new(EventType::TaskAssigned).caused_by(&root);
    let grandchild = Event::new(EventType::TaskCompleted).caused_by(&child);
    let unrelated = Event::new(EventType::TaskCreated);
    let body = serde_json::to_string(&[&root, &child, &unrelated, &grandchild]).unwrap();
    assert_eq!(
        post_json(&server.url("/api/events"), &body).await.status,
        200
    );
    let chain = get(&server.url(&format!("/api/events?correlation_id={}", root.id)))
        .await
        .json();
    let ids: Vec<&str> = chain["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            root.id.to_string(),
            child.id.to_string(),
            grandchild.id.to_string()
        ]
    );

    // Paging through the chain, either way, gives the root exactly once.
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = get(&server.url(&format!(
            "/api/events?correlation_id={}&limit=1&after={after}",
            root.id
        )))
        .await
        .json();
        paged.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(paged, ids);
    let newest_first = get(&server.url(&format!(
        "/api/events?correlation_id={}&order=desc",
        root.id
    )))
    .await
    .json();
    let reversed: Vec<&str> = newest_first["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(reversed, ids.iter().rev().copied().collect::<Vec<_>>());
    // Other filters apply to the root like to the rest of the chain.
    let completed = get(&server.url(&format!(
        "/api/events?correlation_id={}&type=task.completed",
        root.id
    )))
    .await
    .json();
    assert_eq!(
        completed["events"][0]["id"].as_str(),
        Some(grandchild.id.to_string().as_str())
    );
    assert_eq!(completed["events"].as_array().unwrap().len(), 1);
}

/// `GET /api/events/{id}` reads the store by id: an event whose id says
/// nothing about its timestamp, long gone from the bus history, is found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_by_id_is_read_from_the_store_after_history_forgot_it() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::builder().history_capacity(2).build();
    let recorder = Recorder::attach(
        &bus,
        SqliteStore::open(dir.path().join("events.db")).unwrap(),
    );
    let server = Server::start(WebApi::new(bus.clone()).store(recorder.clone())).await;

    // Its own id (minted elsewhere, years before its timestamp) and an old
    // timestamp: neither points at the other.
    let id = "01890a5d-ac96-774b-bcce-b302099a8057";
    let old = json!({
        "type": "task.completed",
        "id": id,
        "timestamp": "2001-09-09T01:46:40.123456789Z",
        "circle_id": 4,
        "data": {"result": "done"}
    });
    let reply = post_json(&server.url("/api/events"), &old.to_string()).await;
    reply.assert_status(200);
    assert_eq!(reply.json()["sequences"], json!([1]));
    // Push it out of the two-event history.
    assert_eq!(
        post_json(&server.url("/api/events"), &batch(3, 1))
            .await
            .status,
        200
    );
    assert!(bus
        .history(&agentbus::HistoryQuery::new().limit(usize::MAX))
        .iter()
        .all(|event| event.id.to_string() != id));

    let one = get(&server.url(&format!("/api/events/{id}"))).await;
    assert_eq!(one.status, 200, "{}", String::from_utf8_lossy(&one.body));
    let event = one.json();
    assert_eq!(event["id"], id);
    assert_eq!(event["sequence"], 1);
    assert_eq!(event["timestamp"], "2001-09-09T01:46:40.123456789Z");
    assert_eq!(event["circle_id"], 4);
    assert_eq!(event["data"], json!({"result": "done"}));
    // The newest events read by id too.
    let newest = get(&server.url("/api/events?order=desc&limit=1"))
        .await
        .json();
    let newest_id = newest["events"][0]["id"].as_str().unwrap();
    let by_id = get(&server.url(&format!("/api/events/{newest_id}"))).await;
    assert_eq!(by_id.json()["sequence"], 4);

    // An unknown id is a JSON 404; a malformed one a JSON 400.
    let unknown = get(&server.url("/api/events/01890a5d-ac96-774b-bcce-b302099a8058")).await;
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.error().contains("no event with id"),
        "{}",
        unknown.error()
    );
    let malformed = get(&server.url("/api/events/not-a-uuid")).await;
    assert_eq!(malformed.status, 400);
    assert!(
        malformed.error().contains("not-a-uuid"),
        "{}",
        malformed.error()
    );
}

/// A client that connects while the hub is still finding where the store
/// ends (its first read is late here) gets what is committed after it
/// connected: the handshake waits until the hub broadcasts every commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_connected_before_the_hub_knows_the_stores_end_misses_nothing() {
    let bus = EventBus::new();
    let store = agentbus_testkit::store::LateEnd::new(
        SqliteStore::open_in_memory().unwrap(),
        Duration::from_secs(2),
    );
    let recorder = Recorder::attach(&bus, store);
    let server = Server::start(WebApi::new(bus.clone()).store(recorder)).await;
    let mut socket = connect_ws(&server.ws_url("/ws")).await;
    let reply = post_json(&server.url("/api/events"), r#"{"type":"task.created"}"#).await;
    reply.assert_status(200);
    let live = next_json(&mut socket, ARRIVAL).await;
    assert_eq!(
        (live["type"].as_str(), live["sequence"].as_u64()),
        (Some("task.created"), Some(1))
    );
}

/// A store that cannot say where it ends at first (not reachable yet): the
/// hub retries until it can, and live clients then get every commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_retries_reading_where_the_store_ends_until_it_can() {
    let bus = EventBus::new();
    let store =
        agentbus_testkit::store::LateEnd::failing(SqliteStore::open_in_memory().unwrap(), 3);
    let recorder = Recorder::attach(&bus, store);
    let server = Server::start(WebApi::new(bus.clone()).store(recorder)).await;
    let mut socket = connect_ws(&server.ws_url("/ws")).await;
    let reply = post_json(&server.url("/api/events"), r#"{"type":"task.created"}"#).await;
    reply.assert_status(200);
    let live = next_json(&mut socket, ARRIVAL).await;
    assert_eq!(
        (live["type"].as_str(), live["sequence"].as_u64()),
        (Some("task.created"), Some(1))
    );
}

/// A client resuming behind more than one page of the store's reads
/// (1,000 events a page) gets the whole backlog, in order, then goes live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_longer_than_a_page_is_refilled_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (_bus, _recorder, api) = stored_api(&dir.path().join("events.db"));
    let server = Server::start(api).await;
    for _ in 0..3 {
        let reply = post_json(&server.url("/api/events"), &batch(1_000, 1)).await;
        reply.assert_status(200);
    }
    let mut socket = connect_ws(&server.ws_url("/ws?after=10")).await;
    let post = post_json(&server.url("/api/events"), &batch(1, 1)).await;
    assert_eq!(post.status, 200);
    for expected in 11..=3_001u64 {
        let frame = next_json(&mut socket, ARRIVAL).await;
        assert_eq!(frame["sequence"], expected, "{frame}");
    }
}

/// Resuming from 0 on an empty store: nothing to refill, the first event
/// arrives live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_from_zero_on_an_empty_store_goes_live() {
    let dir = tempfile::tempdir().unwrap();
    let (_bus, _recorder, api) = stored_api(&dir.path().join("events.db"));
    let server = Server::start(api).await;
    let mut socket = connect_ws(&server.ws_url("/ws?after=0")).await;
    let post = post_json(&server.url("/api/events"), &batch(2, 1)).await;
    assert_eq!(post.status, 200);
    for expected in 1..=2u64 {
        assert_eq!(next_json(&mut socket, ARRIVAL).await["sequence"], expected);
    }
}
