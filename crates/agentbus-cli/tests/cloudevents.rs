//! `--format cloudevents` with the real binary against a real server:
//! `publish` reads and sends CloudEvents JSON, `tail` prints CloudEvents
//! JSON lines and resumes by their `agentbussequence`.

mod common;

use std::time::Duration;

use common::{agentbus, json_lines, run_ok, Running, Server};

const WAIT: Duration = Duration::from_secs(30);
const ID: &str = "0190b3a4-5b6c-7d8e-9f00-112233445566";
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn publish_and_tail_speak_cloudevents() {
    let server = Server::start(&["--store", "memory"]);
    let mut tail = Running::spawn({
        let mut command = agentbus();
        command.args([
            "tail",
            "--format",
            "cloudevents",
            "--count",
            "3",
            "--after",
            "0",
            "--url",
            &server.url,
        ]);
        command
    });
    tail.stderr_line(WAIT, |line| {
        line.contains("following") && line.contains("format=cloudevents")
    });

    // A file of CloudEvents: one per line, unicode data, extensions.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cloudevents.ndjson");
    let lines = [
        format!(
            r#"{{"specversion":"1.0","id":"{ID}","type":"task.completed","source":"/agentbus/circles/5/agents/1","time":"2026-11-23T23:54:30.123456789Z","datacontenttype":"application/json","agentbusproject":"7","traceparent":"{PARENT}","data":{{"task_id":123,"note":"é ✓"}}}}"#
        ),
        r#"{"specversion":"1.0","id":"0190b3a4-5b6c-7d8e-9f00-112233445567","type":"memory.shared","source":"/agentbus","subject":"ignored"}"#.to_owned(),
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = run_ok(
        &server.url,
        &[
            "publish",
            "--format",
            "cloudevents",
            "--file",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.contains("published 2 events"), "{out}");
    assert!(out.contains("sequences 1..=2"), "{out}");
    // One event built from flags, sent as a structured CloudEvent.
    let out = run_ok(
        &server.url,
        &[
            "publish",
            "--format",
            "cloudevents",
            "task.failed",
            "--circle",
            "9",
        ],
    );
    assert!(out.contains("published task.failed"), "{out}");

    // Stored as the core's events, with every mapped field.
    let history = json_lines(&run_ok(&server.url, &["history", "--json"]));
    assert_eq!(history.len(), 3);
    assert_eq!(history[0]["id"], ID);
    assert_eq!(history[0]["type"], "task.completed");
    assert_eq!(
        (
            history[0]["circle_id"].as_i64(),
            history[0]["source_agent_id"].as_i64()
        ),
        (Some(5), Some(1))
    );
    assert_eq!(history[0]["project_id"], 7);
    assert_eq!(history[0]["timestamp"], "2026-11-23T23:54:30.123456789Z");
    assert_eq!(history[0]["traceparent"], PARENT);
    assert_eq!(history[0]["data"]["note"], "é ✓");
    assert_eq!(history[2]["circle_id"], 9);

    // tail printed each as one CloudEvents JSON line.
    assert!(tail.wait(WAIT).success());
    let printed: Vec<serde_json::Value> = (0..3)
        .map(|_| json_lines(&tail.stdout_line(WAIT, |_| true)).remove(0))
        .collect();
    assert_eq!(printed[0]["specversion"], "1.0");
    assert_eq!(printed[0]["id"], ID);
    assert_eq!(printed[0]["source"], "/agentbus/circles/5/agents/1");
    assert_eq!(printed[0]["agentbusproject"], "7");
    assert_eq!(printed[0]["agentbussequence"], "1");
    assert_eq!(printed[0]["data"]["task_id"], 123);
    assert_eq!(printed[1]["type"], "memory.shared");
    assert_eq!(printed[2]["source"], "/agentbus/circles/9");
    assert_eq!(printed[2]["agentbussequence"], "3");
}

#[test]
fn a_bad_cloudevent_in_a_file_publishes_none() {
    let server = Server::start(&["--store", "memory"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cloudevents.ndjson");
    std::fs::write(
        &file,
        format!(
            "{{\"specversion\":\"1.0\",\"id\":\"{ID}\",\"type\":\"task.created\",\"source\":\"/agentbus\"}}\n\
             {{\"specversion\":\"1.0\",\"id\":\"{ID}\",\"type\":\"com.example.order\",\"source\":\"/agentbus\"}}\n"
        ),
    )
    .unwrap();
    let output = agentbus()
        .args(["publish", "--format", "cloudevents", "--file"])
        .arg(&file)
        .args(["--url", &server.url])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("event 1 (line 2) is not a valid event")
            && stderr.contains("attribute `type`: unknown event type \"com.example.order\""),
        "{stderr}"
    );
    let history = run_ok(&server.url, &["history", "--json"]);
    assert!(
        history.trim().is_empty(),
        "nothing was published: {history}"
    );
}
