//! Reliable delivery as the API shows it: `/api/stats` counts retries,
//! timeouts and dead letters; `/api/dead-letters` lists, shows, redrives
//! and discards them.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentbus::{Event, EventBus, EventType, Retry};
use agentbus_web::{DeadLettersPage, WebApi};
use common::*;

async fn page(server: &Server, path: &str) -> DeadLettersPage {
    let reply = get(&server.url(path)).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.error());
    serde_json::from_value(reply.json()).unwrap()
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
    for circle in 0..3 {
        bus.publish(Event::new(EventType::TaskCompleted).with_circle(circle))
            .await;
    }
    let server = Server::start(WebApi::new(bus.clone())).await;

    let first = page(&server, "/api/dead-letters?subscription=exporter&limit=2").await;
    assert_eq!(first.dead_letters.len(), 2);
    assert_eq!(first.dead_letters[0].error, "exporter down");
    assert_eq!(
        first.dead_letters[0].subscription.as_deref(),
        Some("exporter")
    );
    assert_eq!(first.dead_letters[0].event.circle_id, Some(0));
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
