//! Delivery as the API shows it: a `POST` answers once the bus's handlers
//! ran, async ones included; `/api/stats` counts retries, timeouts and dead
//! letters; `/api/dead-letters` lists, shows, redrives and discards them.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentbus::{Event, EventBus, EventType, Retry};
use agentbus_store::{Recorder, SqliteStore};
use agentbus_web::{DeadLettersPage, WebApi};
use common::*;
use tokio::sync::Semaphore;

async fn page(server: &Server, path: &str) -> DeadLettersPage {
    let reply = get(&server.url(path)).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.error());
    serde_json::from_value(reply.json()).unwrap()
}

/// Posts one event to a server over `bus` (whose async handler waits for
/// `release`) and checks the reply waits for the handler: none while it
/// is held, then a 200 once it has finished.
async fn post_waits_for_the_held_handler(
    api: WebApi,
    started: &Semaphore,
    release: &Semaphore,
    finished: &AtomicBool,
) {
    let server = Server::start(api).await;
    let url = server.url("/api/events");
    let mut post =
        tokio::spawn(async move { post_json(&url, r#"{"type":"task.completed"}"#).await });
    tokio::time::timeout(Duration::from_secs(20), started.acquire())
        .await
        .expect("the handler starts")
        .unwrap()
        .forget();
    // The handler is held: the reply must wait for it.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut post)
            .await
            .is_err(),
        "the POST answered while its async handler was still running"
    );
    release.add_permits(1);
    let reply = tokio::time::timeout(Duration::from_secs(20), post)
        .await
        .expect("the POST answers once the handler finished")
        .unwrap();
    reply.assert_status(200);
    assert!(
        finished.swap(false, Ordering::SeqCst),
        "the reply came before the handler finished"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_answers_only_once_its_slow_async_handler_finished() {
    let bus = EventBus::new();
    let started = Arc::new(Semaphore::new(0));
    let release = Arc::new(Semaphore::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    bus.subscribe_async(EventType::TaskCompleted, {
        let (started, release, finished) = (
            Arc::clone(&started),
            Arc::clone(&release),
            Arc::clone(&finished),
        );
        move |_e: Arc<Event>| {
            let (started, release, finished) = (
                Arc::clone(&started),
                Arc::clone(&release),
                Arc::clone(&finished),
            );
            async move {
                started.add_permits(1);
                release.acquire().await.unwrap().forget();
                finished.store(true, Ordering::SeqCst);
            }
        }
    });
    // Without a store, then with one (the durable path publishes apart).
    post_waits_for_the_held_handler(WebApi::new(bus.clone()), &started, &release, &finished).await;
    let recorder = Recorder::attach(&bus, SqliteStore::open_in_memory().unwrap());
    post_waits_for_the_held_handler(
        WebApi::new(bus.clone()).store(recorder),
        &started,
        &release,
        &finished,
    )
    .await;
}

#[tokio::test]
async fn stats_count_retries_and_dead_letters() {
    let bus = EventBus::new();
    bus.subscription(EventType::TaskCompleted)
        .name("metrics exporter")
        .retry(Retry::attempts(3).delay(Duration::from_millis(1)))
        .handler(|_e: &Event| -> Result<(), String> { Err("exporter down".into()) });
    let server = Server::start(WebApi::new(bus.clone())).await;

    let before = get(&server.url("/api/stats")).await.json();
    assert_eq!(
        (before["retries"].as_u64(), before["dead_letters"].as_u64()),
        (Some(0), Some(0))
    );

    assert_eq!(
        bus.publish(Event::new(EventType::TaskCompleted))
            .await
            .retrying,
        1
    );
    tokio::time::timeout(Duration::from_secs(10), bus.settled())
        .await
        .expect("the retries finish");

    let after = get(&server.url("/api/stats")).await.json();
    assert_eq!(after["retries"], 2);
    assert_eq!(after["retries_pending"], 0);
    assert_eq!(after["dead_lettered"], 1);
    assert_eq!(after["dead_letters"], 1);
    assert_eq!(after["timed_out"], 0);
}

#[tokio::test]
async fn dead_letters_are_listed_paged_shown_redriven_and_discarded() {
    let bus = EventBus::new();
    let fixed = Arc::new(AtomicBool::new(false));
    let is_fixed = Arc::clone(&fixed);
    bus.subscription(EventType::TaskCompleted)
        .name("exporter")
        .handler(move |_e: &Event| -> Result<(), String> {
            if is_fixed.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err("exporter down".into())
            }
        });
    let unix_millis = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let before = unix_millis();
    for circle in 0..3 {
        bus.publish(Event::new(EventType::TaskCompleted).with_circle(circle))
            .await;
    }
    let after = unix_millis();
    let server = Server::start(WebApi::new(bus.clone())).await;

    let first = page(&server, "/api/dead-letters?subscription=exporter&limit=2").await;
    assert_eq!(first.dead_letters.len(), 2);
    assert_eq!(first.dead_letters[0].error, "exporter down");
    assert_eq!(
        first.dead_letters[0].subscription.as_deref(),
        Some("exporter")
    );
    assert_eq!(first.dead_letters[0].event.circle_id, Some(0));
    // Times in milliseconds since the Unix epoch.
    let letter = &first.dead_letters[0];
    assert!(
        (before..=after).contains(&letter.first_failed_at_ms)
            && (letter.first_failed_at_ms..=after).contains(&letter.last_failed_at_ms),
        "{before}..={after}: {letter:?}"
    );
    let next = first.next.expect("a second page");
    let second = page(&server, &format!("/api/dead-letters?after={next}")).await;
    assert_eq!(second.dead_letters.len(), 1);
    assert_eq!(second.next, None);
    let other = get(&server.url("/api/dead-letters?subscription=nobody"))
        .await
        .json();
    assert_eq!(other["dead_letters"].as_array().map(Vec::len), Some(0));

    let id = first.dead_letters[0].id;
    let one = get(&server.url(&format!("/api/dead-letters/{id}"))).await;
    assert_eq!(one.json()["attempts"], 1);

    // Still failing: 409, the letter stays with one attempt more.
    let redrive = server.url(&format!("/api/dead-letters/{id}/redrive"));
    let again = request("POST", &redrive, &[], "").await;
    assert_eq!(again.status, 409);
    assert!(again.error().contains("exporter down"), "{}", again.error());
    assert_eq!(
        get(&server.url(&format!("/api/dead-letters/{id}")))
            .await
            .json()["attempts"],
        2
    );

    fixed.store(true, Ordering::SeqCst);
    let delivered = request("POST", &redrive, &[], "").await;
    assert_eq!(delivered.status, 200);
    assert_eq!(delivered.json()["redriven"], id);
    assert_eq!(request("POST", &redrive, &[], "").await.status, 404);
    assert_eq!(
        get(&server.url(&format!("/api/dead-letters/{id}")))
            .await
            .status,
        404
    );

    let discard = server.url(&format!("/api/dead-letters/{}", first.dead_letters[1].id));
    assert_eq!(request("DELETE", &discard, &[], "").await.status, 204);
    assert_eq!(request("DELETE", &discard, &[], "").await.status, 404);
    assert_eq!(bus.dead_letters().len(), 1);
}

/// `order=desc` lists the newest first (what the dashboard shows), and its
/// `next` is the `before` of the following page.
#[tokio::test]
async fn dead_letters_are_listed_newest_first_with_order_desc() {
    let bus = EventBus::new();
    bus.subscription(EventType::TaskCompleted)
        .handler(|_e: &Event| -> Result<(), String> { Err("down".into()) });
    for circle in 0..3 {
        bus.publish(Event::new(EventType::TaskCompleted).with_circle(circle))
            .await;
    }
    let server = Server::start(WebApi::new(bus)).await;
    let circles = |page: &DeadLettersPage| -> Vec<Option<i64>> {
        page.dead_letters
            .iter()
            .map(|l| l.event.circle_id)
            .collect()
    };
    let first = page(&server, "/api/dead-letters?order=desc&limit=2").await;
    assert_eq!(circles(&first), [Some(2), Some(1)]);
    let next = first.next.expect("a second page");
    let second = page(
        &server,
        &format!("/api/dead-letters?order=desc&before={next}"),
    )
    .await;
    assert_eq!((circles(&second), second.next), (vec![Some(0)], None));
    let ascending = page(&server, "/api/dead-letters?order=asc").await;
    assert_eq!(circles(&ascending), [Some(0), Some(1), Some(2)]);
}

#[tokio::test]
async fn bad_dead_letter_requests_get_a_json_400() {
    let server = Server::start(WebApi::new(EventBus::new())).await;
    for path in [
        "/api/dead-letters?limit=0",
        "/api/dead-letters?limit=1001",
        "/api/dead-letters?after=x",
        "/api/dead-letters?before=-1",
        "/api/dead-letters?order=newest",
        "/api/dead-letters?type=task.nonsense",
        "/api/dead-letters?colour=red",
        "/api/dead-letters/not-a-number",
    ] {
        let reply = get(&server.url(path)).await;
        assert_eq!(reply.status, 400, "{path}");
        assert!(!reply.error().is_empty(), "{path}");
    }
    let doc = get(&server.url("/api/openapi.json")).await.json();
    for path in [
        "/api/dead-letters",
        "/api/dead-letters/{id}",
        "/api/dead-letters/{id}/redrive",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
    }
}
