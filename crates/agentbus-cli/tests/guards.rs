//! `agentbus serve` with guards, and `agentbus schema check`.

mod common;

use std::time::Duration;

use common::{json_lines, run, run_ok, Server};

fn schema_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("task.completed.json"),
        r#"{"type": "object", "required": ["task_id"], "properties": {"task_id": {"type": "integer"}}}"#,
    )
    .unwrap();
    dir
}

fn publish(url: &str, args: &[&str]) -> std::process::Output {
    common::agentbus()
        .args(["publish"])
        .args(args)
        .args(["--url", url])
        .output()
        .unwrap()
}

#[test]
fn serve_with_schemas_dedup_and_a_rate_limit() {
    let schemas = schema_dir();
    let (_dir, path) = common::sqlite_file();
    let store = format!("sqlite:{}", path.display());
    let server = Server::start(&[
        "--store",
        &store,
        "--schemas",
        schemas.path().to_str().unwrap(),
        "--dedup",
        "1h",
        "--rate-limit",
        "3/h",
        "--rate-limit-by",
        "agent",
        "--burst",
        "3",
    ]);
    let url = &server.url;
    run_ok(
        url,
        &[
            "publish",
            "task.completed",
            "--agent",
            "1",
            "--data",
            r#"{"task_id": 1}"#,
        ],
    );

    let invalid = publish(
        url,
        &[
            "task.completed",
            "--agent",
            "2",
            "--data",
            r#"{"task_id": "x"}"#,
        ],
    );
    assert_eq!(invalid.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&invalid.stderr);
    assert!(
        stderr.contains("422") && stderr.contains("/task_id"),
        "{stderr}"
    );

    // The same content again: a duplicate, not published.
    run_ok(
        url,
        &[
            "publish",
            "task.completed",
            "--agent",
            "1",
            "--data",
            r#"{"task_id": 1}"#,
        ],
    );
    // Agent 3's burst of 3, then a 429.
    for n in 0..3 {
        let data = format!(r#"{{"task_id": {n}}}"#);
        run_ok(
            url,
            &["publish", "task.completed", "--agent", "3", "--data", &data],
        );
    }
    let limited = publish(
        url,
        &[
            "task.completed",
            "--agent",
            "3",
            "--data",
            r#"{"task_id": 9}"#,
        ],
    );
    assert_eq!(limited.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&limited.stderr);
    assert!(stderr.contains("429"), "{stderr}");

    let stats: serde_json::Value =
        serde_json::from_str(&run_ok(url, &["stats", "--json"])).unwrap();
    assert_eq!(stats["events_published"], 4);
    assert_eq!(stats["events_rejected"], 3);
    assert_eq!(stats["events_deduplicated"], 1);
    assert_eq!(stats["events_rate_limited"], 1);
    assert_eq!(stats["events_invalid"], 1);
    let stored = json_lines(&run_ok(url, &["history", "--json", "--limit", "100"]));
    assert_eq!(stored.len(), 4);
}

#[test]
fn bad_guard_flags_are_usage_errors() {
    for args in [
        &["serve", "--rate-limit", "0/s"][..],
        &["serve", "--rate-limit", "100"],
        &["serve", "--strict"],
        &["serve", "--burst", "5"],
    ] {
        let output = run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn schema_check_lists_the_stored_events_the_schemas_would_reject() {
    let schemas = schema_dir();
    let (_dir, path) = common::sqlite_file();
    let store = format!("sqlite:{}", path.display());
    let mut server = Server::sqlite(&path);
    run_ok(
        &server.url,
        &["publish", "task.completed", "--data", r#"{"task_id": 1}"#],
    );
    let bad = run_ok(
        &server.url,
        &[
            "publish",
            "task.completed",
            "--data",
            r#"{"task_id": "x"}"#,
            "--json",
        ],
    );
    let bad_id = json_lines(&bad)[0]["ids"][0].as_str().unwrap().to_owned();
    run_ok(&server.url, &["publish", "agent.started"]);
    assert!(server.process.terminate(Duration::from_secs(30)).success());

    let dir = schemas.path().to_str().unwrap();
    let output = run(&["schema", "check", dir, "--store", &store, "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let rejected = json_lines(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["id"], bad_id.as_str());
    assert_eq!(rejected[0]["sequence"], 2);
    assert_eq!(rejected[0]["violations"][0]["pointer"], "/task_id");
    assert!(String::from_utf8_lossy(&output.stderr).contains("1 stored event(s) would be rejected"));

    // Strict: agent.started has no schema either.
    let output = run(&[
        "schema", "check", dir, "--store", &store, "--strict", "--json",
    ]);
    assert_eq!(
        json_lines(&String::from_utf8_lossy(&output.stdout)).len(),
        2
    );

    // A store whose events all pass: exit 0.
    let (_clean_dir, clean) = common::sqlite_file();
    let mut server = Server::sqlite(&clean);
    run_ok(
        &server.url,
        &["publish", "task.completed", "--data", r#"{"task_id": 2}"#],
    );
    assert!(server.process.terminate(Duration::from_secs(30)).success());
    let output = run(&[
        "schema",
        "check",
        dir,
        "--store",
        &format!("sqlite:{}", clean.display()),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "all 1 stored events pass\n"
    );
}
