//! The demo's simulated agents on an in-process bus, without a server:
//! prints the narration and the causal chain of the first conflict.
//!
//! ```sh
//! cargo run -p agentbus-cli --example scenarios
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentbus::{Event, EventBus, EventType, EventTypeSet, HistoryQuery};
use agentbus_cli::{Demo, DemoConfig};

#[tokio::main]
async fn main() {
    let bus = EventBus::new();
    let conflict: Arc<Mutex<Option<Event>>> = Arc::default();
    let first_conflict = Arc::clone(&conflict);
    let _narrator = bus.guard(bus.subscription(EventTypeSet::all()).handler(
        move |event: &Event| {
            if let Some(line) = Demo::narrate(event) {
                println!("{:<24} {line}", event.event_type.as_str());
            }
            if event.event_type == EventType::TaskConflictDetected {
                first_conflict
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| event.clone());
            }
        },
    ));

    let demo = Demo::install(
        &bus,
        DemoConfig {
            pace: Duration::from_millis(60),
        },
    );
    demo.run(tokio::time::sleep(Duration::from_secs(3))).await;

    let Some(conflict) = conflict.lock().unwrap().clone() else {
        println!("no conflict yet");
        return;
    };
    println!("\nthe chain of the first conflict:");
    let root = conflict
        .correlation_id
        .expect("reactions are caused by what they react to");
    let mut chain: Vec<_> = bus
        .history(&HistoryQuery::new().limit(1000))
        .into_iter()
        .filter(|event| event.id == root || event.correlation_id == Some(root))
        .collect();
    chain.sort_by_key(|event| event.timestamp);
    for event in chain {
        println!("  {} {}", event.event_type.as_str(), event.id);
    }
}
