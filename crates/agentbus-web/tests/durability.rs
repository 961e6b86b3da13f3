//! With a store that stalls or cannot hold an event: the server keeps
//! answering, a `POST` gets a 503 in bounded time or a 400 at the door, and
//! a 200 always means stored.
//!
//! Every test runs under the testkit's deadline: a handler that loops for
//! ever (on a worker the test's own timeouts may share) fails the binary
//! instead of hanging it.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use agentbus::{Event, EventBus, EventType};
use agentbus_store::{EventStore, ReadQuery, Recorder, SqliteStore};
use agentbus_testkit::deadline::deadline;
use agentbus_web::WebApi;
use common::*;

/// A JSON array of `n` events with fresh ids, so posting it again is a retry.
fn batch_with_ids(n: usize) -> String {
    let events: Vec<String> = (0..n)
        .map(|i| {
            let id = Event::new(EventType::TaskCreated).id;
            format!(
                r#"{{"id":"{id}","type":"task.created","data":{{"n":{i},"pad":"{}"}}}}"#,
                "x".repeat(512)
            )
        })
        .collect();
    format!("[{}]", events.join(","))
}

/// Answers well inside `patience`, or the test fails (instead of hanging).
async fn answered(what: &str, reply: impl std::future::Future<Output = Reply>) -> Reply {
    tokio::time::timeout(Duration::from_secs(20), reply)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer in 20 s: the server is blocked"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_gets_posts_a_503_while_health_stats_and_reads_answer() {
    let _deadline = deadline();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).unwrap();
    let bus = EventBus::new();
    // A small queue, so three batches fill it while the writer is stuck.
    let recorder = Recorder::builder()
        .capacity(8)
        .max_batch(8)
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(50))
        .attach(&bus, store.clone());
    let api = WebApi::new(bus.clone())
        .store(recorder.clone())
        .durable_timeout(Duration::from_secs(2));
    // One worker: a POST blocking it would stop every other request.
    let server = ThreadServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), move || api);
    // Declared after the server, so it is released first, even when an
    // assertion fails: a server blocked on the store can then stop.
    let lock = rusqlite::Connection::open(&path).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let batches: Vec<String> = (0..3).map(|_| batch_with_ids(20)).collect();
    let posts: Vec<_> = batches
        .iter()
        .map(|body| {
            let url = server.url("/api/events");
            let body = body.clone();
            tokio::spawn(async move { post_json(&url, &body).await })
        })
        .collect();
    // While the posts wait for the store, the server answers.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let health = answered("health", get(&server.url("/api/health"))).await;
    assert_eq!(health.status, 200);
    let stats = answered("stats", get(&server.url("/api/stats"))).await;
    assert_eq!(stats.status, 200);
    assert!(stats.json()["store_lag"].as_u64().unwrap() > 0);
    let read = answered("read", get(&server.url("/api/events"))).await;
    assert_eq!(read.status, 200, "{}", String::from_utf8_lossy(&read.body));

    let mut published_before_503 = 0;
    for post in posts {
        let reply = answered("post", async { post.await.unwrap() }).await;
        reply.assert_status(503);
        let error = reply.error();
        assert!(
            error.contains("posting them") && error.contains("again with the same ids is safe")
                || error.contains("nothing was published"),
            "{error}"
        );
        if !error.contains("nothing was published") {
            published_before_503 += 1;
        }
    }
    assert!(published_before_503 > 0, "some events were published");

    // Once the store is back, what was published commits, and retrying
    // every batch stores each event exactly once.
    lock.execute_batch("COMMIT").unwrap();
    tokio::time::timeout(Duration::from_secs(30), recorder.flush())
        .await
        .expect("the writer resumes")
        .unwrap();
    assert!(!store.read(&ReadQuery::new()).await.unwrap().is_empty());
    for body in &batches {
        let reply = answered("retry", post_json(&server.url("/api/events"), body)).await;
        reply.assert_status(200);
    }
    let stored = store.read(&ReadQuery::new().limit(1000)).await.unwrap();
    assert_eq!(stored.len(), 60, "each event once");
    drop(lock);
    drop(server);
}

fn stored_server_api(store: impl EventStore) -> (EventBus, Recorder, WebApi) {
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, store);
    let api = WebApi::new(bus.clone()).store(recorder.clone());
    (bus, recorder, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timestamp_the_store_cannot_hold_is_refused_at_the_door() {
    let _deadline = deadline();
    let store = SqliteStore::open_in_memory().unwrap();
    let (bus, recorder, api) = stored_server_api(store.clone());
    let server = Server::start(api).await;
    let url = server.url("/api/events");

    // Year 2300 is valid JSON and RFC 3339, but past what the store holds.
    let reply = post_json(
        &url,
        r#"[{"type":"task.created"},{"type":"task.created","timestamp":"2300-01-01T00:00:00Z"}]"#,
    )
    .await;
    reply.assert_status(400);
    assert_eq!(
        reply.error(),
        "event 1: field `timestamp`: the store holds timestamps from 1970-01-01T00:00:00Z \
         to 2262-04-11T23:47:16.854775807Z"
    );
    let single = post_json(
        &url,
        r#"{"type":"task.created","timestamp":"2262-04-12T00:00:00Z"}"#,
    )
    .await;
    assert_eq!(single.status, 400);
    assert!(single
        .error()
        .starts_with("field `timestamp`: the store holds"));

    // Nothing of either request was published or stored.
    assert_eq!(recorder.flush().await.unwrap(), 0);
    assert_eq!(bus.stats().events_published, 0);
    let stats = get(&server.url("/api/stats")).await.json();
    assert_eq!(stats["store"]["rejected"], 0, "{stats}");

    // The last instant the store holds is accepted and stored.
    let edge = post_json(
        &url,
        r#"{"type":"task.created","timestamp":"2262-04-11T23:47:16.854775807Z"}"#,
    )
    .await;
    assert_eq!(edge.status, 200, "{}", String::from_utf8_lossy(&edge.body));
    assert_eq!(edge.json()["sequences"], serde_json::json!([1]));
}

/// The reply is the 500 of a batch whose event 1 the store refused.
fn assert_event_1_refused(reply: &Reply) {
    reply.assert_status(500);
    assert!(
        reply
            .error()
            .starts_with("event 1: was published but the store refused it"),
        "{}",
        reply.error()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_database_refuses_on_write_gets_a_500_naming_it() {
    let _deadline = deadline();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).unwrap();
    // From outside, as another program could: SQLite itself now refuses
    // events whose data holds "poison" ("string or blob too big", a value
    // over its size limit), which `EventStore::check` cannot foresee.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON agentbus_events \
             WHEN instr(NEW.data, 'poison') > 0 BEGIN SELECT zeroblob(2000000000); END",
        )
        .unwrap();
    let (bus, _recorder, api) = stored_server_api(store.clone());
    let server = Server::start(api).await;
    let body = r#"[{"type":"task.created"},{"type":"task.created","data":{"poison":1}},{"type":"task.created"}]"#;

    let reply = post_json(&server.url("/api/events"), body).await;
    assert_event_1_refused(&reply);
    assert_eq!(bus.stats().events_published, 3);
    let stats = get(&server.url("/api/stats")).await.json();
    assert_eq!(stats["store"]["rejected"], 1, "{stats}");
    assert_eq!(stats["store"]["committed"], 2, "{stats}");
    // The batch's other events are stored, the refused one is not.
    let stored = store.read(&ReadQuery::default()).await.unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(
        stored.iter().all(|s| s.event.data.get("poison").is_none()),
        "{stored:?}"
    );
}

/// A real SQLite store that refuses, at write time, events whose data holds
/// `"poison"`: what a database refusing a value does (and what
/// [`EventStore::check`] cannot foresee).
#[derive(Clone)]
struct Refusing(SqliteStore);

impl EventStore for Refusing {
    fn append<'a>(
        &'a self,
        events: &'a [std::sync::Arc<Event>],
    ) -> agentbus_store::BoxFuture<'a, Result<agentbus_store::Appended, agentbus_store::StoreError>>
    {
        if events
            .iter()
            .any(|event| event.data.get("poison").is_some())
        {
            return Box::pin(async {
                Err(agentbus_store::StoreError::Rejected {
                    backend: "refusing",
                    source: std::sync::Arc::new(std::io::Error::other("poison")),
                })
            });
        }
        self.0.append(events)
    }

    fn read<'a>(
        &'a self,
        query: &'a ReadQuery,
    ) -> agentbus_store::BoxFuture<
        'a,
        Result<Vec<agentbus_store::StoredEvent>, agentbus_store::StoreError>,
    > {
        self.0.read(query)
    }

    fn get(
        &self,
        id: agentbus::EventId,
    ) -> agentbus_store::BoxFuture<
        '_,
        Result<Option<agentbus_store::StoredEvent>, agentbus_store::StoreError>,
    > {
        self.0.get(id)
    }

    fn last_sequence(
        &self,
    ) -> agentbus_store::BoxFuture<'_, Result<u64, agentbus_store::StoreError>> {
        self.0.last_sequence()
    }

    fn prune<'a>(
        &'a self,
        retention: &'a agentbus_store::Retention,
    ) -> agentbus_store::BoxFuture<'a, Result<u64, agentbus_store::StoreError>> {
        self.0.prune(retention)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_sequences_mean_only_already_stored() {
    let _deadline = deadline();
    let (_bus, _recorder, api) =
        stored_server_api(Refusing(SqliteStore::open_in_memory().unwrap()));
    let server = Server::start(api).await;
    let url = server.url("/api/events");
    let good = Event::new(EventType::TaskCreated).id;
    let bad = Event::new(EventType::TaskCreated).id;
    let body = format!(
        r#"[{{"id":"{good}","type":"task.created"}},{{"id":"{bad}","type":"task.created","data":{{"poison":1}}}}]"#
    );

    // The store refuses event 1 after it was published: not a 200.
    let reply = post_json(&url, &body).await;
    assert_event_1_refused(&reply);
    let stats = get(&server.url("/api/stats")).await.json();
    assert_eq!(stats["store"]["rejected"], 1, "{stats}");
    assert_eq!(stats["store"]["committed"], 1, "{stats}");

    // A retry of the stored one: `null`, it was already stored.
    let retry = post_json(
        &url,
        &format!(r#"[{{"id":"{good}","type":"task.created"}}]"#),
    )
    .await;
    assert_eq!(
        retry.status,
        200,
        "{}",
        String::from_utf8_lossy(&retry.body)
    );
    assert_eq!(retry.json()["sequences"], serde_json::json!([null]));
    // The same id twice in one body: stored once, the repeat is `null`.
    let twice = Event::new(EventType::TaskCreated).id;
    let reply = post_json(
        &url,
        &format!(
            r#"[{{"id":"{twice}","type":"task.created"}},{{"id":"{twice}","type":"task.created"}}]"#
        ),
    )
    .await;
    reply.assert_status(200);
    assert_eq!(reply.json()["sequences"], serde_json::json!([2, null]));
}

/// A batch larger than the recorder's queue is published in parts, one
/// reservation each, and every event is stored, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_the_recorders_queue_is_stored_in_parts() {
    let _deadline = deadline();
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .capacity(8)
        .attach(&bus, SqliteStore::open_in_memory().unwrap());
    let server = Server::start(WebApi::new(bus).store(recorder)).await;
    let reply = answered(
        "a batch of 50 through a queue of 8",
        post_json(&server.url("/api/events"), &batch_with_ids(50)),
    )
    .await;
    reply.assert_status(200);
    let sequences: Vec<u64> = serde_json::from_value(reply.json()["sequences"].clone()).unwrap();
    assert_eq!(sequences, (1..=50).collect::<Vec<u64>>());
}
