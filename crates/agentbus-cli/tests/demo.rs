//! `agentbus demo`: runs for `--duration`, serves the API meanwhile, and
//! its scenarios show up as causal chains; its metrics exporter's retries
//! succeed and its dead letters are redriven.

mod common;

use std::time::{Duration, Instant};

use common::demo;

async fn events(url: &str, query: &str) -> Vec<serde_json::Value> {
    let page: serde_json::Value = reqwest::get(format!("{url}/api/events?{query}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["events"].as_array().cloned().unwrap_or_default()
}

/// Polls `/api/events?{query}` until an event passes `wanted`, or panics
/// naming `what` once `deadline` has passed.
fn wait_for_event(
    runtime: &tokio::runtime::Runtime,
    url: &str,
    query: &str,
    deadline: Instant,
    what: &str,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    loop {
        let found = runtime.block_on(events(url, query));
        if let Some(event) = found.into_iter().find(&wanted) {
            return event;
        }
        assert!(Instant::now() < deadline, "no {what} within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn json(url: &str) -> (u16, serde_json::Value) {
    let reply = reqwest::get(url).await.unwrap();
    let status = reply.status().as_u16();
    (status, reply.json().await.unwrap_or_default())
}

/// The exporter's outage dead-letters an event, the script redrives it
/// once the backend "recovers" (the letter is gone, a `system.warning`
/// caused by the event says so), and some of its retries succeed: more
/// retries than the dead-lettered and still-retrying deliveries can
/// account for (two each, at three attempts).
#[test]
fn the_demo_retries_and_redrives_a_dead_letter() {
    let (mut process, url) = demo(&["--duration", "8s", "--pace", "40ms"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);

    let announced = wait_for_event(
        &runtime,
        &url,
        "type=system.warning&limit=100",
        deadline,
        "dead letter redriven",
        |warning| warning["data"]["redriven"].is_u64(),
    );
    let letter = announced["data"]["redriven"].as_u64().unwrap();
    let (status, _) = runtime.block_on(json(&format!("{url}/api/dead-letters/{letter}")));
    assert_eq!(status, 404, "the redriven letter {letter} is still held");
    let event_id = announced["data"]["event_id"].as_str().unwrap();
    assert_eq!(announced["causation_id"], event_id);
    let (status, event) = runtime.block_on(json(&format!("{url}/api/events/{event_id}")));
    assert_eq!(
        (status, event["type"].as_str()),
        (200, Some("task.completed"))
    );

    loop {
        let (_, stats) = runtime.block_on(json(&format!("{url}/api/stats")));
        let count = |name: &str| stats[name].as_u64().unwrap();
        assert!(count("dead_lettered") >= 1, "{stats}");
        if count("retries") > 2 * (count("dead_lettered") + count("retries_pending")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no retry succeeded within 30 s: {stats}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let status = process.wait(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    let out = process.rest_of_stdout(Duration::from_secs(10)).join("\n");
    for expected in [
        "metrics exporter: backend down",
        "metrics exporter recovered: dead letter",
    ] {
        assert!(
            out.contains(expected),
            "{expected:?} missing from the demo's output:\n{out}"
        );
    }
    let finished = out
        .lines()
        .find(|line| line.contains("demo finished"))
        .expect("the closing line");
    assert!(
        finished.contains(" redriven)") && !finished.contains("(0 redriven)"),
        "{finished}"
    );
}

#[test]
fn the_demo_plays_its_scenarios_and_exits_0() {
    let (mut process, url) = demo(&["--duration", "6s", "--pace", "40ms"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();

    // Wait for a conflict: it ends the longest chain of a round.
    let deadline = Instant::now() + Duration::from_secs(30);
    let conflict = wait_for_event(
        &runtime,
        &url,
        "type=task.conflict.detected&limit=1",
        deadline,
        "conflict",
        |_| true,
    );
    assert_eq!(conflict["data"]["file_path"], "src/db/pool.rs");
    assert_ne!(conflict["data"]["agent1_id"], conflict["data"]["agent2_id"]);

    // The chain: task.created -> task.assigned -> task.started -> agent.tool.executed -> conflict.
    let root = conflict["correlation_id"]
        .as_str()
        .expect("the conflict belongs to a chain");
    let chain = runtime.block_on(events(&url, &format!("correlation_id={root}&limit=100")));
    let types: Vec<&str> = chain.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for expected in [
        "task.assigned",
        "task.started",
        "agent.tool.executed",
        "task.conflict.detected",
    ] {
        assert!(
            types.contains(&expected),
            "{expected} missing from the chain {types:?}"
        );
    }
    let cause = conflict["causation_id"].as_str().unwrap();
    let tool = chain
        .iter()
        .find(|e| e["id"] == cause)
        .expect("the conflict's cause is in its chain");
    assert_eq!(tool["type"], "agent.tool.executed");
    let root_event: serde_json::Value = runtime
        .block_on(async {
            reqwest::get(format!("{url}/api/events/{root}"))
                .await
                .unwrap()
                .json()
                .await
        })
        .unwrap();
    assert_eq!(root_event["type"], "task.created");

    // Knowledge sharing: the recall is caused by the share (stamped by the
    // bus from `with_cause`).
    let recalled = wait_for_event(
        &runtime,
        &url,
        "type=memory.recalled&limit=1",
        deadline,
        "memory.recalled",
        |_| true,
    );
    let shared = runtime.block_on(events(&url, "type=memory.shared&limit=1"));
    assert_eq!(recalled["causation_id"], shared[0]["id"]);
    assert_eq!(recalled["correlation_id"], shared[0]["correlation_id"]);
    assert_eq!(recalled["circle_id"], 7);

    let status = process.wait(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    let out = process.rest_of_stdout(Duration::from_secs(10)).join("\n");
    for expected in [
        "joined circle 5",
        "assigned to agent",
        "conflict: agent 1 (Ada) and agent 2 (Brook)",
        "shared with circle 7",
        "handler failed",
        "demo finished",
    ] {
        assert!(
            out.contains(expected),
            "{expected:?} missing from the demo's output:\n{out}"
        );
    }
}
