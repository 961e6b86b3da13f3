//! The three guards on one bus, as the crate docs show them.

use std::time::Duration;

use agentbus::{Event, EventBus, EventType, HistoryQuery};
use agentbus_guard::{Dedup, RateLimit, Schemas};
use serde_json::json;

#[test]
fn smoke() {
    let schemas = Schemas::new()
        .schema(
            EventType::TaskCompleted,
            json!({"type": "object", "required": ["task_id"]}),
        )
        .unwrap();
    let limit = RateLimit::per_agent(100, Duration::from_secs(1)).burst(20);
    let dedup = Dedup::window(Duration::from_secs(1));
    let bus = EventBus::builder()
        .guard(schemas.clone())
        .guard(limit.clone())
        .guard(dedup.clone())
        .build();
    let task = |id: i64| {
        Event::new(EventType::TaskCompleted)
            .with_source_agent(1)
            .with_data(json!({"task_id": id}))
    };
    assert!(bus.try_publish_blocking(task(1)).is_ok());
    assert_eq!(
        bus.try_publish_blocking(task(1))
            .unwrap_err()
            .reason()
            .kind(),
        "duplicate"
    );
    let invalid = Event::new(EventType::TaskCompleted).with_data(json!({}));
    assert_eq!(
        bus.try_publish_blocking(invalid)
            .unwrap_err()
            .reason()
            .kind(),
        "invalid"
    );
    assert_eq!(bus.history(&HistoryQuery::new()).len(), 1);
    assert_eq!(
        (
            schemas.invalid(),
            limit.rate_limited(),
            dedup.deduplicated()
        ),
        (1, 0, 1)
    );
    let stats = bus.stats();
    assert_eq!(
        (
            stats.events_published,
            stats.events_rejected,
            stats.events_deduplicated,
            stats.events_invalid
        ),
        (1, 2, 1, 1)
    );
}
