//! Two processes, one bus: this program starts a copy of itself, both join
//! their buses to NATS, and they talk through ordinary publishes and
//! subscriptions.
//!
//! ```text
//! nats-server -js &
//! cargo run -p agentbus-nats --example two_processes -- nats://127.0.0.1:4222
//! ```
//!
//! The coordinator publishes three `task.assigned` events; the worker (the
//! child process) answers each with a `task.completed` caused by it; the
//! coordinator prints the answers and stops the worker. Add `--jetstream`
//! for the durable mode.

use std::sync::mpsc;
use std::time::Duration;

use agentbus::{Event, EventBus, EventType};
use agentbus_nats::{BridgeConfig, NatsBridge};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .iter()
        .skip(1)
        .find(|a| a.starts_with("nats://"))
        .cloned()
        .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned());
    let jetstream = args.iter().any(|a| a == "--jetstream");
    if args.iter().any(|a| a == "--worker") {
        worker(&url, jetstream).await
    } else {
        coordinator(&url, jetstream).await
    }
}

async fn coordinator(url: &str, jetstream: bool) -> Result<(), Box<dyn std::error::Error>> {
    let bus = EventBus::new();
    let (answers, answered) = mpsc::channel();
    bus.subscribe(EventType::TaskCompleted, move |e: &Event| {
        let _ = answers.send(e.clone());
    });
    let config = BridgeConfig::default()
        .name("coordinator")
        .jetstream(jetstream);
    let bridge = NatsBridge::connect(url, &bus, config).await?;

    // The worker: this same program with --worker.
    let mut worker = std::process::Command::new(std::env::current_exe()?)
        .args([url, "--worker"])
        .args(jetstream.then_some("--jetstream"))
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    // It prints a line once its bridge is connected.
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(worker.stdout.take().expect("piped")),
        &mut ready,
    )?;

    for task_id in 1..=3 {
        bus.publish(
            Event::new(EventType::TaskAssigned)
                .with_data(serde_json::json!({"task_id": task_id, "to": "worker"})),
        )
        .await;
    }
    for _ in 1..=3 {
        let answer = answered.recv_timeout(Duration::from_secs(10))?;
        println!(
            "coordinator: task {} completed by {} (caused by {:?})",
            answer.data["task_id"], answer.data["by"], answer.causation_id
        );
    }
    // Stopping the circle stops the worker.
    bus.publish(Event::new(EventType::CircleStopped)).await;
    worker.wait()?;
    let stats = bridge.shutdown().await;
    println!(
        "coordinator: sent {}, received {}",
        stats.sent, stats.received
    );
    Ok(())
}

async fn worker(url: &str, jetstream: bool) -> Result<(), Box<dyn std::error::Error>> {
    let bus = EventBus::new();
    let replies = bus.clone();
    bus.subscribe(EventType::TaskAssigned, move |task: &Event| {
        // A new event caused by the incoming one: it goes out.
        replies.publish_blocking(
            Event::new(EventType::TaskCompleted)
                .with_data(serde_json::json!({"task_id": task.data["task_id"], "by": "worker"}))
                .caused_by(task),
        );
    });
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let stop = std::sync::Mutex::new(Some(stop));
    bus.subscribe(EventType::CircleStopped, move |_e: &Event| {
        if let Some(stop) = stop.lock().unwrap().take() {
            let _ = stop.send(());
        }
    });
    let config = BridgeConfig::default().name("worker").jetstream(jetstream);
    let bridge = NatsBridge::connect(url, &bus, config).await?;
    println!("ready");
    let _ = stopped.await;
    bridge.shutdown().await;
    Ok(())
}
