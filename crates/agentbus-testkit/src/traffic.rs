//! Events for tests to publish.

use std::time::Duration;

use agentbus::{Event, EventBus, EventType};
use serde_json::json;

/// An event numbered `n`: its type, circle and source agent cycle with `n`
/// (four types, three circles, five agents; project 7), and its data holds
/// `n` and a nested value, so filters, ordering and round trips all have
/// something to look at.
pub fn numbered(n: u64) -> Event {
    let types = [
        EventType::TaskCreated,
        EventType::TaskAssigned,
        EventType::TaskCompleted,
        EventType::MemoryShared,
    ];
    Event::new(types[(n % 4) as usize])
        .with_data(json!({"n": n, "nested": {"list": [1, 2.5, "three"], "ok": true}}))
        .with_circle((n % 3) as i64)
        .with_source_agent((n % 5) as i64)
        .with_project(7)
}

/// Agents in three circles at work on `bus` for `duration`: tasks created,
/// assigned, worked on with tools, completed or failed, memories shared
/// (each a causal chain), conversation and the odd warning, about 200
/// events a second.
pub async fn simulate(bus: EventBus, duration: Duration) {
    let end = tokio::time::Instant::now() + duration;
    let mut task = 0u64;
    while tokio::time::Instant::now() < end {
        task += 1;
        let circle = (task % 3 + 1) as i64;
        let agent = (task % 7 + 1) as i64;
        let created = Event::new(EventType::TaskCreated)
            .with_data(json!({"task_id": task, "title": format!("implement feature #{task}")}))
            .with_circle(circle)
            .with_project(42);
        let assigned = Event::new(EventType::AgentTaskAssigned)
            .with_data(json!({"task_id": task}))
            .with_source_agent(agent)
            .with_circle(circle)
            .caused_by(&created);
        let tool = Event::new(EventType::AgentToolExecuted)
            .with_data(json!({"tool": "run_tests", "passed": 41 + task % 5}))
            .with_source_agent(agent)
            .with_circle(circle)
            .caused_by(&assigned);
        let done = if task.is_multiple_of(11) {
            Event::new(EventType::TaskFailed)
                .with_data(json!({"task_id": task, "error": "timeout"}))
        } else {
            Event::new(EventType::TaskCompleted)
                .with_data(json!({"task_id": task, "result": "success"}))
        }
        .with_source_agent(agent)
        .with_circle(circle)
        .caused_by(&tool);
        let memory = Event::new(EventType::MemoryShared)
            .with_data(json!({"summary": format!("feature #{task} lives in module {}", task % 9)}))
            .with_source_agent(agent)
            .with_circle(circle)
            .caused_by(&done);
        for event in [created, assigned, tool, done, memory] {
            bus.publish(event).await;
        }
        if task.is_multiple_of(3) {
            bus.publish(
                Event::new(EventType::ConversationMessage)
                    .with_data(json!({"text": "review please"}))
                    .with_source_agent(agent)
                    .with_circle(circle),
            )
            .await;
        }
        if task.is_multiple_of(17) {
            bus.publish(
                Event::new(EventType::SystemWarning).with_data(json!({"message": "slow handler"})),
            )
            .await;
        }
        if task.is_multiple_of(23) {
            bus.publish(
                Event::new(EventType::CircleMemberAdded)
                    .with_circle(circle)
                    .with_source_agent(agent + 10),
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
