//! `agentbus serve --nats`: two servers bridged through a real nats-server
//! (agentbus-testkit's, on a free loopback port; skipped when it is not
//! installed, unless `AGENTBUS_REQUIRE_SERVICES=1`).

mod common;

use std::time::{Duration, Instant};

use agentbus_testkit::NatsServer;
use common::{json_lines, run_ok, Running, Server};

fn bridged(jetstream: bool) {
    let Some(nats) = NatsServer::start_or_skip("agentbus serve --nats") else {
        return;
    };
    let url = nats.url();
    let mut args_a = vec!["--store", "memory", "--nats", &url, "--nats-name", "a"];
    let mut args_b = vec!["--store", "memory", "--nats", &url, "--nats-name", "b"];
    if jetstream {
        args_a.push("--jetstream");
        args_b.push("--jetstream");
    }
    let a = Server::start(&args_a);
    let b = Server::start(&args_b);

    let reply = run_ok(
        &a.url,
        &[
            "publish",
            "task.completed",
            "--data",
            r#"{"task_id": 9}"#,
            "--json",
        ],
    );
    let id = serde_json::from_str::<serde_json::Value>(&reply).unwrap()["ids"][0]
        .as_str()
        .unwrap()
        .to_owned();

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let there = json_lines(&run_ok(&b.url, &["history", "--json"]));
        if let Some(event) = there.iter().find(|e| e["id"] == id.as_str()) {
            assert_eq!(event["data"]["task_id"], 9);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the event never reached the other server: {there:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Not echoed back to its origin.
    std::thread::sleep(Duration::from_millis(300));
    let here = json_lines(&run_ok(&a.url, &["history", "--json"]));
    assert_eq!(here.len(), 1, "{here:?}");

    // Each server's /metrics has its bridge's counters.
    let sent = metrics(&a.url);
    assert!(sent.contains("\nagentbus_nats_sent_total 1\n"), "{sent}");
    assert!(
        sent.contains("agentbus_nats_lost_total{reason=\"outgoing_dropped\"} 0"),
        "{sent}"
    );
    let received = metrics(&b.url);
    assert!(
        received.contains("\nagentbus_nats_received_total 1\n"),
        "{received}"
    );
}

/// The body of `GET {url}/metrics` (Prometheus text), over HTTP/1.0.
fn metrics(url: &str) -> String {
    use std::io::{Read, Write};
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {authority}\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.0 200"), "{reply}");
    reply
}

#[test]
fn two_servers_share_events_over_core_nats() {
    bridged(false);
}

#[test]
fn two_servers_share_events_over_jetstream() {
    bridged(true);
}

#[test]
fn an_unreachable_nats_server_is_a_clear_startup_error() {
    let port = agentbus_testkit::free_port();
    let mut command = common::agentbus();
    command.args([
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--store",
        "none",
        "--nats",
        &format!("nats://127.0.0.1:{port}"),
    ]);
    let mut process = Running::spawn(command);
    let status = process.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1));
    let line = process.stderr_line(Duration::from_secs(5), |line| line.starts_with("error:"));
    assert!(
        line.contains("cannot bridge to NATS at nats://127.0.0.1:"),
        "{line}"
    );
}

#[test]
fn the_bridged_nats_url_is_logged_without_its_password() {
    let Some(nats) = NatsServer::start_with_args_or_skip(
        "agentbus serve --nats logs no password",
        &["--user", "ann", "--pass", "natspass"],
    ) else {
        return;
    };
    let url = nats.url();
    let with_password = url.replacen("nats://", "nats://ann:natspass@", 1);
    let mut command = common::agentbus();
    command.env("RUST_LOG", "info").args([
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--store",
        "none",
        "--nats",
        &with_password,
    ]);
    let process = Running::spawn(command);
    let first = process.stdout_line(Duration::from_secs(60), |line| line.contains("http://"));
    let bridged = process.stderr_line(Duration::from_secs(30), |line| {
        line.contains("bridged to NATS")
    });
    assert!(bridged.contains("nats://ann:***@127.0.0.1:"), "{bridged}");
    for line in [first, bridged] {
        assert!(!line.contains("natspass"), "{line}");
    }
}
