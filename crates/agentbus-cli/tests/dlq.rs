//! `agentbus dlq` against a real server whose bus has a failing handler,
//! and against `agentbus serve --store` showing the dead letters an earlier
//! process kept in the store.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use std::time::{Duration, Instant};

use agentbus::{DeadLetterQuery, Event, EventBus, EventType};
use agentbus_store::{Recorder, SqliteStore};
use agentbus_web::WebApi;
use common::{json_lines, run_ok, sqlite_file, Server};

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

/// Dead letters kept in a SQLite store by one process are listed, shown and
/// discarded (in the store too) by `agentbus serve --store` and `dlq`; a
/// redrive names the subscription it cannot find.
#[test]
fn dlq_sees_the_dead_letters_a_store_kept() {
    let (_dir, path) = sqlite_file();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let bus = EventBus::new();
        bus.subscription(EventType::TaskCompleted)
            .name("exporter")
            .handler(|_e: &Event| -> Result<(), String> { Err("exporter down".into()) });
        let recorder = Recorder::attach(&bus, SqliteStore::open(&path).unwrap());
        bus.publish(Event::new(EventType::TaskCompleted)).await;
        bus.publish(Event::new(EventType::TaskCompleted)).await;
        recorder.close().await.unwrap();
    });

    let server = Server::sqlite(&path);
    let listed = json_lines(&run_ok(&server.url, &["dlq", "list", "--json"]));
    let ids: Vec<u64> = listed.iter().map(|l| l["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1, 2], "{listed:?}");
    assert_eq!(listed[0]["subscription"], "exporter", "{listed:?}");
    assert_eq!(listed[0]["error"], "exporter down", "{listed:?}");

    let redrive = common::agentbus()
        .args(["dlq", "redrive", "1", "--url", &server.url])
        .output()
        .unwrap();
    assert!(!redrive.status.success());
    let stderr = String::from_utf8_lossy(&redrive.stderr);
    assert!(stderr.contains("no subscription exporter"), "{stderr}");

    assert_eq!(
        run_ok(&server.url, &["dlq", "discard", "1"]),
        "discarded 1\n"
    );
    let store = SqliteStore::open_existing(&path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stored = store
            .read_dead_letters_blocking(&DeadLetterQuery::new())
            .unwrap();
        let stored: Vec<u64> = stored.iter().map(|l| l.id().get()).collect();
        if stored == [2] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the discard never reached the store: {stored:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
