//! What the `agentbus` command costs on top of the raw operations it wraps,
//! side by side in one run (release build):
//!
//! - `agentbus publish --file` (read, validate, POST in batches of 1000 into
//!   `agentbus serve` over SQLite) against posting the same pre-encoded
//!   batches with an in-process HTTP client to an identical server;
//! - `agentbus replay --quiet` (read the SQLite store in pages of 1000 and
//!   publish each event on a fresh bus) against reading the same pages with
//!   `SqliteStore::read` in-process.
//!
//! ```sh
//! cargo bench -p agentbus-cli --bench cli            # EVENTS=100000 by default
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agentbus_store::{EventStore, ReadQuery, SqliteStore};

const BATCH: usize = 1000;

struct Serve(Child, String);

impl Serve {
    fn start(db: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_agentbus"))
            .args(["serve", "--addr", "127.0.0.1:0", "--store"])
            .arg(format!("sqlite:{}", db.display()))
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start agentbus serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .expect("the server prints its URL")
            .trim_end_matches('/')
            .to_owned();
        Self(child, url)
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn event_json(n: usize) -> serde_json::Value {
    serde_json::json!({
        "type": "task.completed",
        "circle_id": n % 7,
        "source_agent_id": n % 13,
        "data": {"task_id": n, "result": "success", "duration_ms": 1234}
    })
}

fn rate(events: usize, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64()
}

fn main() {
    let events: usize = std::env::var("EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let lines: String = (0..events)
        .map(|n| format!("{}\n", event_json(n)))
        .collect();
    std::fs::write(&file, lines).unwrap();

    // The command: publish --file.
    let cli_db = dir.path().join("cli.db");
    let server = Serve::start(&cli_db);
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_agentbus"))
        .args(["publish", "--file"])
        .arg(&file)
        .args(["--batch", &BATCH.to_string(), "--url", &server.1])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    let cli_publish = started.elapsed();
    assert!(status.success());
    server.stop();

    // The raw baseline: the same batches, pre-encoded, from an in-process client.
    let raw_db = dir.path().join("raw.db");
    let server = Serve::start(&raw_db);
    let bodies: Vec<String> = (0..events)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|chunk| {
            serde_json::to_string(&chunk.iter().map(|&n| event_json(n)).collect::<Vec<_>>())
                .unwrap()
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let raw_publish = runtime.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("{}/api/events", server.1);
        let started = Instant::now();
        for body in bodies {
            let response = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
            let _ = response.bytes().await.unwrap();
        }
        started.elapsed()
    });
    server.stop();

    // The command: replay into a fresh bus.
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_agentbus"))
        .args(["replay", "--quiet", "--store"])
        .arg(format!("sqlite:{}", cli_db.display()))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let cli_replay = started.elapsed();
    assert!(status.success());

    // The raw baseline: the same pages, read in-process.
    let raw_replay = runtime.block_on(async {
        let store = SqliteStore::open(&raw_db).unwrap();
        let started = Instant::now();
        let mut after = 0;
        let mut read = 0;
        loop {
            let page = store
                .read(&ReadQuery::new().after(after).limit(BATCH))
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = last.sequence;
            read += page.len();
        }
        assert_eq!(read, events);
        started.elapsed()
    });

    println!("| {events} events, batches of {BATCH} | command | raw baseline | command / raw |");
    println!("|---|---|---|---|");
    println!(
        "| publish into serve (SQLite, durable) | {:.0} events/s | {:.0} events/s | {:.2}x |",
        rate(events, cli_publish),
        rate(events, raw_publish),
        rate(events, cli_publish) / rate(events, raw_publish)
    );
    println!(
        "| replay from SQLite | {:.0} events/s | {:.0} events/s (read only) | {:.2}x |",
        rate(events, cli_replay),
        rate(events, raw_replay),
        rate(events, cli_replay) / rate(events, raw_replay)
    );
}
