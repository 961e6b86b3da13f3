//! `agentbus tail` against a real server: live events, filters, resume.

mod common;

use std::time::Duration;

use common::{agentbus, json_lines, run_ok, Running, Server};

const WAIT: Duration = Duration::from_secs(30);

fn tail(url: &str, args: &[&str]) -> Running {
    let mut command = agentbus();
    command.arg("tail").args(args).args(["--url", url]);
    let process = Running::spawn(command);
    process.stderr_line(WAIT, |line| {
        line.contains("following") && line.contains("ws://")
    });
    process
}

#[test]
fn tail_prints_published_events_that_pass_its_filter() {
    let server = Server::start(&["--store", "memory"]);
    let mut json = tail(
        &server.url,
        &[
            "--json",
            "--count",
            "1",
            "--type",
            "task.completed",
            "--after",
            "0",
        ],
    );
    let mut text = tail(
        &server.url,
        &["--count", "2", "--circle", "5", "--color", "always"],
    );

    run_ok(&server.url, &["publish", "memory.shared", "--circle", "7"]);
    run_ok(
        &server.url,
        &[
            "publish",
            "task.completed",
            "--circle",
            "5",
            "--data",
            r#"{"task_id": 7}"#,
        ],
    );
    run_ok(&server.url, &["publish", "task.failed", "--circle", "5"]);

    assert!(json.wait(WAIT).success());
    let line = json.stdout_line(WAIT, |_| true);
    let event = &json_lines(&line)[0];
    assert_eq!(event["type"], "task.completed");
    assert_eq!(event["data"]["task_id"], 7);
    assert_eq!(event["sequence"], 2);

    assert!(text.wait(WAIT).success());
    let completed = text.stdout_line(WAIT, |_| true);
    let failed = text.stdout_line(WAIT, |_| true);
    assert!(
        completed.contains("task.completed") && completed.contains(r#"{"task_id":7}"#),
        "{completed}"
    );
    // Failures are bold red; --color always colours even into a pipe.
    assert!(failed.contains("\u{1b}[1;31mtask.failed"), "{failed:?}");
}

#[test]
fn tail_reconnects_and_resumes_after_a_server_restart() {
    let (_dir, path) = common::sqlite_file();
    let mut server = Server::sqlite(&path);
    let addr = server.url.trim_start_matches("http://").to_owned();
    let mut follower = tail(&server.url, &["--json", "--count", "3", "--after", "0"]);

    run_ok(
        &server.url,
        &["publish", "task.created", "--data", r#"{"n": 1}"#],
    );
    follower.stdout_line(WAIT, |line| line.contains(r#""n":1"#));
    assert!(server.process.terminate(WAIT).success());

    // Published while the tail is disconnected: it must arrive after the restart.
    let restarted = Server::start_at(&addr, &["--store", &format!("sqlite:{}", path.display())]);
    run_ok(
        &restarted.url,
        &["publish", "task.created", "--data", r#"{"n": 2}"#],
    );
    follower.stderr_line(WAIT, |line| line.contains("resumed"));
    run_ok(
        &restarted.url,
        &["publish", "task.created", "--data", r#"{"n": 3}"#],
    );

    let rest = [
        follower.stdout_line(WAIT, |_| true),
        follower.stdout_line(WAIT, |_| true),
    ];
    assert!(follower.wait(WAIT).success());
    let events = json_lines(&rest.join("\n"));
    let numbers: Vec<_> = events
        .iter()
        .map(|e| e["data"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 3], "no gap, no duplicate");
    let sequences: Vec<_> = events
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(sequences, [2, 3]);
}

#[test]
fn tail_without_a_server_fails_at_once() {
    let port = agentbus_testkit::free_port();
    let output = common::run(&["tail", "--url", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: cannot connect to ws://127.0.0.1:"),
        "{stderr}"
    );
}

#[test]
fn tail_sends_the_token_and_reports_a_refusal() {
    let server = Server::start(&["--store", "memory", "--token", "s3cret"]);
    let refused = common::run(&["tail", "--url", &server.url]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.starts_with("error: ws://127.0.0.1:") && stderr.contains("answered 401"),
        "{stderr}"
    );

    let mut command = agentbus();
    command
        .args([
            "tail",
            "--json",
            "--count",
            "1",
            "--after",
            "0",
            "--url",
            &server.url,
        ])
        .env("AGENTBUS_TOKEN", "s3cret");
    let mut follower = Running::spawn(command);
    follower.stderr_line(WAIT, |line| line.contains("following"));
    let publish = agentbus()
        .args([
            "publish",
            "agent.started",
            "--url",
            &server.url,
            "--token",
            "s3cret",
        ])
        .output()
        .unwrap();
    assert!(publish.status.success());
    let line = follower.stdout_line(WAIT, |_| true);
    assert_eq!(json_lines(&line)[0]["type"], "agent.started");
    assert!(follower.wait(WAIT).success());
}
