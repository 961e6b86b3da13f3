//! Record a bus into a SQLite file, then replay a range into a fresh bus
//! for debugging, with ids, timestamps and causal ids intact.
//!
//! `cargo run -p agentbus-store --example record_and_replay [PATH]`

use agentbus::{Event, EventBus, EventType};
use agentbus_store::{replay, EventStore, ReadQuery, Recorder, SqliteStore};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = std::env::args()
        .nth(1)
        .map_or_else(|| dir.path().join("events.db"), Into::into);

    // Record: everything published on `bus` from now on goes to the file.
    let bus = EventBus::new();
    let store = SqliteStore::open(&path)?;
    let recorder = Recorder::attach(&bus, store.clone());
    let task = Event::new(EventType::TaskCompleted)
        .with_data(json!({"task_id": 123, "output_file": "results.json"}))
        .with_source_agent(1)
        .with_circle(5);
    let tool = Event::new(EventType::AgentToolExecuted)
        .with_data(json!({"tool_name": "fs_write", "params": {"path": "results.json"}}))
        .with_source_agent(2)
        .with_circle(5)
        .caused_by(&task);
    let memory = Event::new(EventType::MemoryShared)
        .with_data(json!({"content": "results.json holds the benchmark"}))
        .with_circle(5)
        .caused_by(&tool);
    for event in [task.clone(), tool, memory] {
        bus.publish(event).await;
    }
    let last = recorder.flush().await?;
    println!("recorded {last} events in {}", path.display());

    // Later, or in another process: replay the chain into a fresh bus.
    let debug = EventBus::new();
    debug.subscribe_all(|event: &Event| {
        println!(
            "  replayed {} {} caused by {:?}",
            event.event_type,
            event.id,
            event.causation_id.map(|id| id.to_string())
        );
    });
    let replayed = replay(&store, &ReadQuery::new(), &debug).await?;
    println!(
        "replayed {} events, up to sequence {}",
        replayed.events, replayed.last_sequence
    );

    // The chain the task started: every event caused, directly or not, by it.
    let chain = store
        .read(&ReadQuery::new().correlation_id(task.id))
        .await?;
    println!("{} events follow from task {}", chain.len(), task.id);
    recorder.close().await?;
    Ok(())
}
