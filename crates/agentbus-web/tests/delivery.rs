//! Reliable delivery as the API shows it: `/api/stats` counts retries,
//! timeouts and dead letters.

mod common;

use std::time::Duration;

use agentbus::{Event, EventBus, EventType, Retry};
use agentbus_web::WebApi;
use common::*;

#[tokio::test]
async fn stats_count_retries_and_dead_letters() {
    let bus = EventBus::new();
    bus.subscription(EventType::TaskCompleted)
        .name("metrics exporter")
        .retry(Retry::attempts(3).delay(Duration::from_millis(1)))
        .handler(|_e: &agentbus::Event| -> Result<(), String> { Err("exporter down".into()) });
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
