//! The three guards on one bus: a schema error, a duplicate and a rate
//! limit, each told apart by `try_publish`.
//!
//! `cargo run -p agentbus-guard --example guards`

use std::time::Duration;

use agentbus::{Event, EventBus, EventType};
use agentbus_guard::{Dedup, RateLimit, Schemas};
use serde_json::json;

fn main() -> Result<(), agentbus_guard::SchemaError> {
    let schemas = Schemas::spec_examples();
    let limit = RateLimit::per_agent(3, Duration::from_secs(1));
    let dedup = Dedup::window(Duration::from_secs(1));
    let bus = EventBus::builder()
        .guard(schemas.clone())
        .guard(limit.clone())
        .guard(dedup.clone())
        .build();
    bus.subscribe_all(|event: &Event| println!("delivered {} {}", event.event_type, event.data));

    let task = |agent: i64, data: serde_json::Value| {
        Event::new(EventType::TaskCompleted)
            .with_source_agent(agent)
            .with_data(data)
    };
    let attempts = [
        task(1, json!({"task_id": 1, "result": "success"})),
        task(1, json!({"task_id": 1, "result": "success"})), // a repeat
        task(1, json!({"id": 2, "r": "ok"})),                // the spec's "bad" example
        task(2, json!({"task_id": 3})),
        task(2, json!({"task_id": 4})),
        task(2, json!({"task_id": 5})),
        task(2, json!({"task_id": 6})), // agent 2's fourth within a second
    ];
    futures::executor::block_on(async {
        for event in attempts {
            if let Err(rejected) = bus.try_publish(event).await {
                println!("{rejected}");
            }
        }
    });
    let stats = bus.stats();
    println!(
        "published {}, rejected {} (duplicates {}, rate limited {}, invalid {})",
        stats.events_published,
        stats.events_rejected,
        stats.events_deduplicated,
        stats.events_rate_limited,
        stats.events_invalid
    );
    assert_eq!(
        (
            dedup.deduplicated(),
            limit.rate_limited(),
            schemas.invalid()
        ),
        (1, 1, 1)
    );
    Ok(())
}
