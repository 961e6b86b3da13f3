//! The specification's Quick Start, in Rust.
//!
//! Run with `cargo run --release --example quickstart`.

use std::sync::Arc;

use agentbus::{event_bus, Event, EventType, HistoryQuery};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Subscribe to events; the returned id is what `unsubscribe` takes.
    let subscription =
        event_bus().subscribe_async(EventType::TaskCompleted, |event: Arc<Event>| async move {
            let agent = event
                .source_agent_id
                .map_or_else(|| "?".to_owned(), |id| id.to_string());
            println!("task {} completed by agent {agent}", event.data["task_id"]);
        });

    // Publish an event; the future resolves once every handler has run.
    let outcome = event_bus()
        .publish(
            Event::new(EventType::TaskCompleted)
                .with_data(json!({"task_id": 123, "result": "success"}))
                .with_source_agent(1)
                .with_circle(5),
        )
        .await;
    println!(
        "publish: delivered to {} handler(s), {} failed",
        outcome.delivered, outcome.failed
    );

    // Every published event is kept in a bounded history, newest first.
    let recent = event_bus().history(&HistoryQuery::new().event_type(EventType::TaskCompleted));
    println!("history: {} task.completed event(s)", recent.len());
    for event in &recent {
        match event.to_json() {
            Ok(json) => println!("  {json}"),
            Err(err) => println!("  (not encodable: {err})"),
        }
    }

    event_bus().unsubscribe(subscription);
    let stats = event_bus().stats();
    println!(
        "stats: {} published, {} delivered, {} handler errors, {} subscribers, {} in history",
        stats.events_published,
        stats.events_delivered,
        stats.handler_errors,
        stats.active_subscribers,
        stats.history_size,
    );
}
