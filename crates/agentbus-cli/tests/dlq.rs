//! `agentbus dlq` against a real server whose bus has a failing handler.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use agentbus::{Event, EventBus, EventType};
use agentbus_web::WebApi;
use common::{json_lines, run_ok};

/// Serves `bus` on a free loopback port from a thread of its own; the
/// server lives as long as the test process.
fn serve(bus: &EventBus) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let api = WebApi::new(bus.clone());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            agentbus_web::serve(listener, api.router()).await
        })
    });
    url
}

#[test]
fn dlq_lists_shows_redrives_and_discards() {
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
    for _ in 0..2 {
        bus.publish_blocking(Event::new(EventType::TaskCompleted));
    }
    let url = serve(&bus);

    let text = run_ok(&url, &["dlq", "list", "--subscription", "exporter"]);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains("exporter  task.completed  exporter down"),
        "{text}"
    );
    let letters = json_lines(&run_ok(&url, &["dlq", "list", "--json", "--limit", "1"]));
    assert_eq!(letters.len(), 1);
    let id = letters[0]["id"].as_u64().unwrap().to_string();

    let shown = run_ok(&url, &["dlq", "show", &id]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["attempts"], 1);

    let failed = common::agentbus()
        .args(["dlq", "redrive", &id, "--url", &url])
        .output()
        .unwrap();
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("exporter down"));

    fixed.store(true, Ordering::SeqCst);
    assert_eq!(
        run_ok(&url, &["dlq", "redrive", &id]),
        format!("redriven {id}\n")
    );
    let gone = common::agentbus()
        .args(["dlq", "show", &id, "--url", &url])
        .output()
        .unwrap();
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains(&format!("no dead letter with id {id}")));

    let other = json_lines(&run_ok(&url, &["dlq", "list", "--json"]));
    let other = other[0]["id"].as_u64().unwrap().to_string();
    assert_eq!(
        run_ok(&url, &["dlq", "discard", &other]),
        format!("discarded {other}\n")
    );
    assert!(bus.dead_letters().is_empty());
}
