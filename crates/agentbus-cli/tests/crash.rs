//! Crash: `agentbus serve` over SQLite is SIGKILLed while clients POST;
//! after a restart every event whose POST got a 200 is readable.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;

const CLIENTS: usize = 4;
const BATCH: usize = 5;
const ROUNDS: usize = 5;

/// Posts batches from `CLIENTS` tasks until `stop`, recording the ids of
/// every batch answered 200.
async fn post_until(
    url: String,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    round: usize,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for worker in 0..CLIENTS {
        let (client, url, stop, acked) = (client.clone(), url.clone(), stop.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let events: Vec<_> = (0..BATCH)
                    .map(|i| {
                        n += 1;
                        serde_json::json!({"type": "task.created", "data": {"round": round, "worker": worker, "n": n, "i": i}})
                    })
                    .collect();
                let Ok(response) = client.post(format!("{url}/api/events")).json(&events).send().await else {
                    // The server is gone: nothing more will be acknowledged.
                    break;
                };
                if response.status() != reqwest::StatusCode::OK {
                    break;
                }
                let Ok(reply) = response.json::<serde_json::Value>().await else { break };
                let ids = reply["ids"].as_array().expect("ids").iter().map(|id| id.as_str().unwrap().to_owned());
                acked.lock().unwrap().extend(ids);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// Every stored event, paged through `GET /api/events`.
async fn stored(url: &str) -> Vec<(u64, String)> {
    let client = reqwest::Client::new();
    let mut after = 0u64;
    let mut all = Vec::new();
    loop {
        let page: serde_json::Value = client
            .get(format!("{url}/api/events?after={after}&limit=1000"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = page["events"].as_array().unwrap();
        if events.is_empty() {
            return all;
        }
        for event in events {
            all.push((
                event["sequence"].as_u64().unwrap(),
                event["id"].as_str().unwrap().to_owned(),
            ));
        }
        after = all.last().unwrap().0;
    }
}

#[test]
fn every_acknowledged_event_survives_sigkill() {
    let (_dir, path) = common::sqlite_file();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    for round in 0..ROUNDS {
        let mut server = Server::sqlite(&path);
        let stop = Arc::new(AtomicBool::new(false));
        let posting = runtime.spawn(post_until(
            server.url.clone(),
            stop.clone(),
            acked.clone(),
            round,
        ));
        // Kill at a different point each round, once some events are in.
        let before = acked.lock().unwrap().len();
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked.lock().unwrap().len() < before + 100 * (round + 1) {
            assert!(
                Instant::now() < deadline,
                "the server acknowledged too little"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        server.process.kill();
        stop.store(true, Ordering::Relaxed);
        runtime.block_on(posting).unwrap();
    }

    let server = Server::sqlite(&path);
    let stored = runtime.block_on(stored(&server.url));
    let sequences: Vec<u64> = stored.iter().map(|(sequence, _)| *sequence).collect();
    assert_eq!(
        sequences,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "gap-free sequences"
    );
    let stored_ids: HashSet<&str> = stored.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(stored_ids.len(), stored.len(), "no duplicates");
    let acked = acked.lock().unwrap();
    let lost: Vec<_> = acked
        .iter()
        .filter(|id| !stored_ids.contains(id.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    eprintln!(
        "{} acknowledged, {} stored over {ROUNDS} kills",
        acked.len(),
        stored.len()
    );
}
