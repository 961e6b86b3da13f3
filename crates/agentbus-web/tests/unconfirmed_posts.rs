//! A `POST` the store cannot confirm: every event published and queued,
//! but the store failing every write, or committing after the durable
//! timeout. The client gets a 503 that says so, never a 200, and what was
//! published is stored once in the end.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use agentbus::{Event, EventBus, EventType};
use agentbus_store::{Recorder, SqliteStore};
use agentbus_testkit::store::{read_all, Throttled};
use agentbus_web::WebApi;
use common::*;

/// A server whose recorder writes to `store`, with a 1 s durable timeout.
async fn server_over(store: Arc<Throttled<SqliteStore>>) -> (EventBus, Recorder, Server) {
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(50))
        .attach(&bus, store);
    let api = WebApi::new(bus.clone())
        .store(recorder.clone())
        .durable_timeout(Duration::from_secs(1));
    (bus, recorder, Server::start(api).await)
}

/// Three events with fresh ids (they fit the recorder's queue, so all are
/// published), and the body posting them.
fn three_events() -> (Vec<String>, String) {
    let ids: Vec<String> = (0..3)
        .map(|_| Event::new(EventType::TaskCreated).id.to_string())
        .collect();
    let body = format!(
        "[{}]",
        ids.iter()
            .map(|id| format!(r#"{{"id":"{id}","type":"task.created"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    (ids, body)
}

/// The ids `store` holds, in sequence order.
async fn stored_ids(store: &Throttled<SqliteStore>) -> Vec<String> {
    read_all(store)
        .await
        .iter()
        .map(|stored| stored.event.id.to_string())
        .collect()
}

/// The reply is the 503 of events published but not confirmed durable.
fn assert_unconfirmed(reply: &Reply) {
    reply.assert_status(503);
    let error = reply.error();
    assert!(
        error.contains("the events were published but are not confirmed durable")
            && error.contains("posting them again with the same ids is safe"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_whose_store_fails_every_write_gets_a_503_not_a_200() {
    let store = Arc::new(Throttled::new(
        SqliteStore::open_in_memory().unwrap(),
        Duration::ZERO,
    ));
    store.failing.store(true, Ordering::SeqCst);
    let (bus, recorder, server) = server_over(Arc::clone(&store)).await;
    let url = server.url("/api/events");
    let (ids, body) = three_events();

    assert_unconfirmed(&post_json(&url, &body).await);
    assert_eq!(bus.stats().events_published, 3);
    let stats = get(&server.url("/api/stats")).await.json();
    assert!(stats["store"]["errors"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(stats["store"]["committed"], 0, "{stats}");
    assert!(stats["store"]["last_error"].is_string(), "{stats}");

    // The store comes back: the queued events commit, and the retry is a
    // 200 naming them already stored (nothing is stored twice).
    store.failing.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(20), recorder.flush())
        .await
        .expect("the writer resumes")
        .unwrap();
    let retry = post_json(&url, &body).await;
    assert_eq!(
        retry.status,
        200,
        "{}",
        String::from_utf8_lossy(&retry.body)
    );
    assert_eq!(
        retry.json()["sequences"],
        serde_json::json!([null, null, null])
    );
    assert_eq!(stored_ids(&store).await, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_whose_store_commits_after_the_durable_timeout_gets_a_503_not_a_200() {
    // Each write takes 3 s: the commit comes after the 1 s timeout.
    let store = Arc::new(Throttled::new(
        SqliteStore::open_in_memory().unwrap(),
        Duration::from_secs(3),
    ));
    let (_bus, recorder, server) = server_over(Arc::clone(&store)).await;
    let (ids, body) = three_events();

    let reply = post_json(&server.url("/api/events"), &body).await;
    assert_unconfirmed(&reply);
    assert!(
        reply.error().starts_with("not committed within 1s;"),
        "{}",
        reply.error()
    );
    // Published, so committed in the end.
    tokio::time::timeout(Duration::from_secs(20), recorder.flush())
        .await
        .expect("the writer finishes")
        .unwrap();
    assert_eq!(stored_ids(&store).await, ids);
}
