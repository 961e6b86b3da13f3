//! Mounts the agentbus API and dashboard in your own axum server, next to
//! your own routes, and publishes simulated agent traffic so the dashboard
//! has something to show.
//!
//! ```text
//! cargo run -p agentbus-web --example mount
//! # open http://127.0.0.1:7878/bus    (the dashboard)
//! # curl http://127.0.0.1:7878/hello  (your own route)
//! ```
//!
//! Set `AGENTBUS_EXAMPLE_SECONDS` to stop after that many seconds.

use std::time::Duration;

use agentbus::{Event, EventBus, EventType};
use axum::routing::get;
use axum::Router;
use serde_json::json;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let bus = EventBus::new();
    let api = agentbus_web::WebApi::new(bus.clone()).router();
    let app = Router::new()
        .route("/hello", get(|| async { "your own route" }))
        .nest("/bus", api);

    let addr = std::env::var("AGENTBUS_ADDR").unwrap_or_else(|_| "127.0.0.1:7878".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("dashboard: http://{}/bus", listener.local_addr()?);

    tokio::spawn(simulate(bus));
    let server = axum::serve(listener, app);
    match std::env::var("AGENTBUS_EXAMPLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seconds) => {
            let _ = tokio::time::timeout(Duration::from_secs(seconds), server).await;
            Ok(())
        }
        None => server.await,
    }
}

/// Agents in two circles working through tasks, sharing memories and
/// sometimes failing.
async fn simulate(bus: EventBus) {
    let mut tick = tokio::time::interval(Duration::from_millis(40));
    for task in 1u64.. {
        let circle = (task % 2 + 1) as i64;
        let agent = (task % 5 + 1) as i64;
        let created = Event::new(EventType::TaskCreated)
            .with_data(json!({"task_id": task, "title": format!("refactor module {task}")}))
            .with_circle(circle)
            .with_project(7);
        let assigned = Event::new(EventType::TaskAssigned)
            .with_data(json!({"task_id": task, "agent_id": agent}))
            .with_source_agent(agent)
            .with_circle(circle)
            .caused_by(&created);
        let tool = Event::new(EventType::AgentToolExecuted)
            .with_data(json!({"tool": "edit_file", "path": format!("src/module_{task}.rs")}))
            .with_source_agent(agent)
            .with_circle(circle)
            .caused_by(&assigned);
        let outcome = if task.is_multiple_of(9) {
            Event::new(EventType::TaskFailed)
                .with_data(json!({"task_id": task, "error": "tests failed"}))
        } else {
            Event::new(EventType::TaskCompleted)
                .with_data(json!({"task_id": task, "result": "success"}))
        }
        .with_source_agent(agent)
        .with_circle(circle)
        .caused_by(&tool);
        let memory = Event::new(EventType::MemoryShared)
            .with_data(
                json!({"summary": format!("module {task} uses the new API"), "scope": "circle"}),
            )
            .with_source_agent(agent)
            .with_circle(circle)
            .caused_by(&outcome);
        for event in [created, assigned, tool, outcome, memory] {
            bus.publish(event).await;
            tick.tick().await;
        }
        if task.is_multiple_of(4) {
            bus.publish(
                Event::new(EventType::ConversationMessage)
                    .with_data(
                        json!({"from": agent, "text": "done with my part, who takes the review?"}),
                    )
                    .with_circle(circle),
            )
            .await;
        }
        if task.is_multiple_of(13) {
            bus.publish(
                Event::new(EventType::TaskConflictDetected)
                    .with_data(json!({"file": "src/lib.rs", "agents": [agent, agent % 5 + 1]}))
                    .with_circle(circle),
            )
            .await;
        }
    }
}
