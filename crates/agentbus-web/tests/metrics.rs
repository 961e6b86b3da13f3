//! `GET /metrics`: behind the token, valid for `promtool check metrics`,
//! counting what happened, and scraped by a real Prometheus server.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agentbus::{Event, EventBus, EventType};
use agentbus_store::{Recorder, SqliteStore};
use agentbus_testkit::{services_required, Prometheus};
use agentbus_web::WebApi;
use common::*;

async fn scrape(server: &Server, token: &str, accept: &str) -> Reply {
    let bearer = format!("Bearer {token}");
    request(
        "GET",
        &server.url("/metrics"),
        &[("authorization", &bearer), ("accept", accept)],
        Vec::new(),
    )
    .await
}

/// `promtool check metrics` on `text`: `None` when promtool is not
/// installed (and services are not required), else its verdict.
fn promtool_check(text: &str) -> Option<(bool, String)> {
    use std::io::Write;
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            assert!(!services_required(), "promtool cannot run: {error}");
            eprintln!("SKIPPED promtool check: {error} (install with .ci/install/prometheus.sh)");
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    Some((output.status.success(), said))
}

#[tokio::test]
async fn metrics_need_the_token_count_events_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, SqliteStore::open(dir.path().join("m.db")).unwrap());
    let server = Server::start(
        WebApi::new(bus.clone())
            .store(recorder)
            .token(Some("secret".into())),
    )
    .await;
    assert_eq!(get(&server.url("/metrics")).await.status, 401);
    // With a store the hub counts what is committed after it read the
    // store's last sequence, which it does on its own task once started: an
    // event committed before that is history, not counted. Wait until a
    // probe (a type asserted nowhere below) is counted, so the hub is live.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut probes = 0;
    loop {
        bus.publish(Event::new(EventType::AgentStarted)).await;
        probes += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let text =
            String::from_utf8(scrape(&server, "secret", "text/plain").await.body.to_vec()).unwrap();
        if text.contains("agentbus_events_published_total{type=\"agent.started\"}") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the hub never counted a probe:\n{text}"
        );
    }

    let reply = post_json_with_token(
        &server,
        r#"[{"type":"task.created"},{"type":"task.created"},{"type":"memory.shared"}]"#,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.error());
    bus.subscribe(EventType::TaskFailed, |_e: &Event| -> Result<(), String> {
        Err("no".into())
    });
    bus.publish(Event::new(EventType::TaskFailed)).await;

    // The hub counts per type as it drains: wait for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let reply = scrape(&server, "secret", "application/openmetrics-text").await;
        assert_eq!(reply.status, 200);
        assert!(reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),);
        let text = String::from_utf8(reply.body.to_vec()).unwrap();
        if text.contains("agentbus_events_published_total{type=\"task.failed\"} 1") {
            break text;
        }
        assert!(Instant::now() < deadline, "never counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for line in [
        "agentbus_events_published_total{type=\"task.created\"} 2",
        "agentbus_events_published_total{type=\"memory.shared\"} 1",
        "agentbus_handler_errors_total 1",
        "agentbus_live_clients{transport=\"websocket\"} 0",
        &format!("agentbus_store_committed_total {}", 4 + probes),
        "agentbus_store_commit_latency_seconds_count 1",
        "# TYPE agentbus_store_lag gauge",
        "# EOF",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
    // Without asking for OpenMetrics: the Prometheus text format, which
    // promtool checks.
    let reply = scrape(&server, "secret", "text/plain").await;
    assert_eq!(
        reply.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    assert!(
        text.contains("# TYPE agentbus_store_committed_total counter"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");
    if let Some((ok, said)) = promtool_check(&text) {
        assert!(ok, "promtool check metrics failed: {said}\n{text}");
    }
}

async fn post_json_with_token(server: &Server, body: &str) -> Reply {
    request(
        "POST",
        &server.url("/api/events"),
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer secret"),
        ],
        body.to_owned(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_endpoint() {
    let bus = EventBus::new();
    let server = Server::start(WebApi::new(bus.clone()).token(Some("scraper".into()))).await;
    for _ in 0..3 {
        bus.publish(Event::new(EventType::AgentStarted)).await;
    }
    let port = server.addr.port();
    let Some(prometheus) = tokio::task::spawn_blocking(move || {
        Prometheus::start_or_skip(
            "a_real_prometheus_scrapes_the_endpoint",
            port,
            Some("scraper"),
        )
    })
    .await
    .unwrap() else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = prometheus.query("agentbus_events_published_total{type=\"agent.started\"}");
        let result = &reply["data"]["result"];
        if let Some(sample) = result.get(0) {
            assert_eq!(sample["value"][1], "3", "{reply}");
            assert_eq!(sample["metric"]["job"], "agentbus");
            break;
        }
        assert!(Instant::now() < deadline, "never scraped: {reply}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let up = prometheus.query("up");
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
}
