//! `agentbus replay`: a stored range published again, in order.

mod common;

use std::time::Duration;

use common::{json_lines, run, run_ok, Server};

/// A stopped server's SQLite file holding `count` task.created events with
/// `data.n` = 1..=count; returns their ids in sequence order.
fn stored_events(path: &std::path::Path, count: usize) -> Vec<String> {
    let mut server = Server::sqlite(path);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.json");
    let events: Vec<_> = (1..=count)
        .map(|n| serde_json::json!({"type": "task.created", "circle_id": n % 2, "data": {"n": n}}))
        .collect();
    std::fs::write(&file, serde_json::to_string(&events).unwrap()).unwrap();
    run_ok(&server.url, &["publish", "--file", file.to_str().unwrap()]);
    let ids = json_lines(&run_ok(
        &server.url,
        &["history", "--json", "--limit", "1000"],
    ))
    .iter()
    .map(|e| e["id"].as_str().unwrap().to_owned())
    .collect();
    assert!(server.process.terminate(Duration::from_secs(30)).success());
    ids
}

#[test]
fn replay_prints_a_range_in_order() {
    let (_dir, path) = common::sqlite_file();
    let ids = stored_events(&path, 6);
    let store = format!("sqlite:{}", path.display());

    let output = run(&[
        "replay", "--store", &store, "--from", "2", "--to", "4", "--json",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let replayed = json_lines(&String::from_utf8(output.stdout).unwrap());
    let replayed_ids: Vec<_> = replayed.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(
        replayed_ids,
        ids[1..4].iter().map(String::as_str).collect::<Vec<_>>()
    );
    let sequences: Vec<_> = replayed
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(sequences, [2, 3, 4]);
    let summary = String::from_utf8(output.stderr).unwrap();
    assert!(
        summary.contains("replayed 3 events (sequences 2..=4)"),
        "{summary}"
    );

    // Filters apply; without --to the range ends at the store's last sequence.
    let odd = run(&[
        "replay", "--store", &store, "--circle", "1", "--json", "--from", "3",
    ]);
    let odd = json_lines(&String::from_utf8(odd.stdout).unwrap());
    let numbers: Vec<_> = odd
        .iter()
        .map(|e| e["data"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 5]);
}

#[test]
fn replay_into_a_server_keeps_ids_and_stores_nothing_twice() {
    let (_dir, path) = common::sqlite_file();
    let ids = stored_events(&path, 25);
    let store = format!("sqlite:{}", path.display());
    let target = Server::start(&["--store", "memory"]);

    for _ in 0..2 {
        let output = run(&[
            "replay",
            "--store",
            &store,
            "--to-url",
            &target.url,
            "--batch",
            "10",
            "--quiet",
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let there = json_lines(&run_ok(
        &target.url,
        &["history", "--json", "--limit", "1000"],
    ));
    let there_ids: Vec<_> = there
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(there_ids, ids);
}

#[test]
fn replay_of_a_missing_or_broken_store_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("not-a-db");
    std::fs::write(&bogus, b"this is not a SQLite database, not even close").unwrap();
    let output = run(&["replay", "--store", &format!("sqlite:{}", bogus.display())]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot open the store sqlite:"),
        "{stderr}"
    );
}
