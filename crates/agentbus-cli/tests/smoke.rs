//! The binary's surface: help, usage errors, runtime errors, and the client
//! commands against a real `agentbus serve`.

mod common;

use common::{json_lines, run, run_ok, Server};

const COMMANDS: &[&str] = &[
    "serve", "demo", "publish", "tail", "history", "replay", "stats", "dlq",
];

#[test]
fn help_works_for_every_command() {
    let top = run(&["--help"]);
    assert!(top.status.success());
    let text = String::from_utf8_lossy(&top.stdout);
    for command in COMMANDS {
        assert!(
            text.contains(command),
            "--help does not list {command}: {text}"
        );
        let output = run(&[command, "--help"]);
        assert!(output.status.success(), "{command} --help failed");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains("Usage: agentbus"), "{command} --help: {help}");
    }
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    for (args, expected) in [
        (&["frobnicate"][..], "unrecognized subcommand"),
        (&["publish"], "TYPE"),
        (&["publish", "task.finished"], "task.finished"),
        (
            &["publish", "task.completed", "--data", "{not json"],
            "not JSON",
        ),
        (&["publish", "task.completed", "--circle", "five"], "five"),
        (&["history", "--limit", "0"], "limit"),
        (&["tail", "--url", "https://example.org"], "plain http"),
        (&["serve", "--addr", "localhost"], "addr"),
        (&["serve", "--store", "mysql://db"], "expected sqlite:PATH"),
        (&["replay", "--store", "memory"], "nothing to replay"),
        (&["demo", "--duration", "soon"], "duration"),
        (&["stats", "--token", "two words"], "without spaces"),
    ] {
        let output = run(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: {stderr:?} lacks {expected:?}"
        );
    }
}

#[test]
fn a_runtime_error_is_one_line_on_stderr_and_exit_1() {
    // A port nothing listens on: bind one, note it, close it.
    let port = agentbus_testkit::free_port();
    let output = run(&["stats", "--url", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.starts_with("error: cannot read the stats: cannot reach http://127.0.0.1:"),
        "{stderr}"
    );
    assert!(stderr.to_lowercase().contains("refused"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn publish_history_and_stats_against_a_server() {
    let (_dir, path) = common::sqlite_file();
    let server = Server::sqlite(&path);
    let url = &server.url;

    let first = run_ok(
        url,
        &[
            "publish",
            "task.completed",
            "--data",
            r#"{"task_id": 123}"#,
            "--circle",
            "5",
            "--agent",
            "1",
        ],
    );
    assert!(first.starts_with("published task.completed "), "{first}");
    assert!(first.contains("(sequence 1)"), "{first}");
    let reply: serde_json::Value = serde_json::from_str(&run_ok(
        url,
        &["publish", "memory.shared", "--circle", "7", "--json"],
    ))
    .unwrap();
    assert_eq!(reply["sequences"], serde_json::json!([2]));
    let shared_id = reply["ids"][0].as_str().unwrap().to_owned();

    // A follow-up joins the chain of the event it names.
    run_ok(
        url,
        &["publish", "memory.recalled", "--caused-by", &shared_id],
    );

    let all = json_lines(&run_ok(url, &["history", "--json"]));
    assert_eq!(all.len(), 3);
    assert_eq!(all[0]["type"], "task.completed");
    assert_eq!(all[0]["data"]["task_id"], 123);
    assert_eq!(all[0]["circle_id"], 5);
    assert_eq!(all[0]["source_agent_id"], 1);
    assert_eq!(
        all.iter()
            .map(|e| e["sequence"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(all[2]["causation_id"], shared_id.as_str());
    assert_eq!(all[2]["correlation_id"], shared_id.as_str());

    let circle_7 = json_lines(&run_ok(url, &["history", "--json", "--circle", "7"]));
    assert_eq!(circle_7.len(), 1);
    assert_eq!(circle_7[0]["id"], shared_id.as_str());
    let chain = json_lines(&run_ok(
        url,
        &["history", "--json", "--correlation", &shared_id],
    ));
    // The chain: its root, then what it caused.
    let chain_ids: Vec<_> = chain.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(
        chain_ids,
        [all[1]["id"].clone(), all[2]["id"].clone()],
        "{chain:?}"
    );

    // Paging: one event per page, followed to the end.
    let paged = json_lines(&run_ok(
        url,
        &["history", "--json", "--limit", "1", "--all"],
    ));
    assert_eq!(paged, all);
    let text = run_ok(url, &["history", "--type", "task.completed"]);
    assert_eq!(text.lines().count(), 1);
    assert!(
        text.contains("#1") && text.contains("circle=5") && text.contains(r#"{"task_id":123}"#),
        "{text}"
    );

    let stats: serde_json::Value =
        serde_json::from_str(&run_ok(url, &["stats", "--json"])).unwrap();
    assert!(stats.is_object(), "{stats}");
    assert!(
        stats.to_string().contains('3'),
        "three events published: {stats}"
    );
    let stats_text = run_ok(url, &["stats"]);
    assert!(!stats_text.trim().is_empty());
}

#[test]
fn one_bad_event_in_a_file_publishes_none() {
    let server = Server::start(&["--store", "memory"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    std::fs::write(
        &file,
        "{\"type\": \"task.created\"}\n{\"type\": \"task.created\", \"circle_id\": \"five\"}\n",
    )
    .unwrap();
    let output = common::agentbus()
        .args([
            "publish",
            "--file",
            file.to_str().unwrap(),
            "--url",
            &server.url,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("event 1 (line 2) is not a valid event"),
        "{stderr}"
    );
    let history = run_ok(&server.url, &["history", "--json"]);
    assert!(
        history.trim().is_empty(),
        "nothing was published: {history}"
    );
}

#[test]
fn publish_a_file_in_batches() {
    let server = Server::start(&["--store", "memory"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let lines: String = (0..250)
        .map(|i| format!("{{\"type\": \"task.created\", \"data\": {{\"task_id\": {i}}}}}\n"))
        .collect();
    std::fs::write(&file, lines).unwrap();
    let out = run_ok(
        &server.url,
        &[
            "publish",
            "--file",
            file.to_str().unwrap(),
            "--batch",
            "100",
        ],
    );
    assert!(out.contains("published 250 events"), "{out}");
    assert!(out.contains("sequences 1..=250"), "{out}");
    let all = json_lines(&run_ok(
        &server.url,
        &["history", "--json", "--all", "--limit", "1000"],
    ));
    assert_eq!(all.len(), 250);
    assert_eq!(all[249]["data"]["task_id"], 249);
}

#[test]
fn a_token_is_sent_when_given() {
    let server = Server::start(&["--store", "memory", "--token", "s3cret"]);
    let refused = common::agentbus()
        .args(["stats", "--url", &server.url])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"));
    let ok = common::agentbus()
        .args(["stats", "--url", &server.url])
        .env("AGENTBUS_TOKEN", "s3cret")
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn a_busy_address_is_a_clear_startup_error() {
    let first = Server::start(&["--store", "none"]);
    let addr = first.url.trim_start_matches("http://");
    let output = run(&["serve", "--addr", addr, "--store", "none"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let error = stderr
        .lines()
        .find(|line| line.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        error.starts_with(&format!("error: cannot listen on {addr}: ")),
        "{stderr}"
    );
    assert!(error.to_lowercase().contains("in use"), "{stderr}");
}

#[test]
fn a_closed_stdout_ends_history_quietly() {
    use std::io::Read;
    let server = Server::start(&["--store", "memory"]);
    for n in 0..5 {
        run_ok(
            &server.url,
            &[
                "publish",
                "task.created",
                "--data",
                &format!("{{\"n\": {n}}}"),
            ],
        );
    }
    let mut child = common::agentbus()
        .args(["history", "--url", &server.url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
