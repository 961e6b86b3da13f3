//! `GET /metrics`: behind the token, valid for `promtool check metrics`,
//! counting what happened, and scraped by a real Prometheus server.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::{Event, EventBus, EventType, Rejection, Retry};
use agentbus_store::{Recorder, SqliteStore};
use agentbus_testkit::{services_required, Prometheus};
use agentbus_web::WebApi;
use common::*;
use serde_json::json;

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

/// A guard that rejects by the event's `data.reject`: `"duplicate"`,
/// `"rate_limited"` or anything else (a custom rejection).
fn rejecting_guard(event: &Event) -> Result<(), Rejection> {
    match event.data.get("reject").and_then(|reason| reason.as_str()) {
        None => Ok(()),
        Some("duplicate") => Err(Rejection::Duplicate { of: event.id }),
        Some("rate_limited") => Err(Rejection::RateLimited {
            retry_after: Duration::from_secs(1),
        }),
        Some("invalid") => Err(Rejection::Invalid {
            violations: vec![agentbus::Violation::new("/task_id", "missing")],
        }),
        Some(other) => Err(Rejection::custom("test", other)),
    }
}

#[tokio::test]
async fn metrics_need_the_token_count_events_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::builder().guard(rejecting_guard).build();
    let recorder = Recorder::attach(&bus, SqliteStore::open(dir.path().join("m.db")).unwrap());
    // A failure before the API exists: in the bus-wide handler errors, in
    // no per-type sample (the per-type table starts with `WebApi::new`).
    let early = bus.subscribe(
        EventType::ConversationMessage,
        |_e: &Event| -> Result<(), String> { Err("before the API".into()) },
    );
    bus.publish(Event::new(EventType::ConversationMessage))
        .await;
    bus.unsubscribe(early);
    let server = Server::start(
        WebApi::new(bus.clone())
            .store(recorder)
            .token(Some("secret".into())),
    )
    .await;
    assert_eq!(get(&server.url("/metrics")).await.status, 401);

    bus.subscribe(EventType::TaskCreated, |_e: &Event| {});
    bus.subscribe(EventType::TaskFailed, |_e: &Event| -> Result<(), String> {
        Err("no".into())
    });
    // Fails every attempt: one retry, then a dead letter.
    bus.subscription(EventType::AgentTaskFailed)
        .retry(Retry::attempts(2).delay(Duration::from_millis(1)))
        .handler(|_e: &Event| -> Result<(), String> { Err("always".into()) });
    // Never finishes: one timed-out attempt.
    bus.subscription(EventType::SystemError)
        .timeout(Duration::from_millis(10))
        .async_handler(|_e: Arc<Event>| std::future::pending::<()>());
    let reply = post_json_with_token(
        &server,
        r#"[{"type":"task.created"},{"type":"task.created"},{"type":"memory.shared"}]"#,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.error());
    bus.publish(Event::new(EventType::TaskFailed)).await;
    bus.publish(Event::new(EventType::AgentTaskFailed)).await;
    bus.publish(Event::new(EventType::SystemError)).await;
    for reason in ["duplicate", "duplicate", "rate_limited", "invalid", "mine"] {
        let event = Event::new(EventType::TaskCreated).with_data(json!({ "reject": reason }));
        assert!(bus.try_publish(event).await.is_err());
    }
    bus.settled().await;

    let reply = scrape(&server, "secret", "application/openmetrics-text").await;
    assert_eq!(reply.status, 200);
    assert!(reply.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    for line in [
        "agentbus_events_published_total{type=\"task.created\"} 2",
        "agentbus_events_published_total{type=\"memory.shared\"} 1",
        "agentbus_events_published_total{type=\"task.failed\"} 1",
        // The recorder is a subscriber too: one more delivery per event.
        "agentbus_events_delivered_total{type=\"task.created\"} 4",
        "agentbus_events_delivered_total{type=\"task.failed\"} 1",
        "agentbus_events_failed_total{type=\"task.failed\"} 1",
        "agentbus_events_failed_total{type=\"agent.task.failed\"} 1",
        "agentbus_events_failed_total{type=\"system.error\"} 1",
        "agentbus_events_failed_total{type=\"memory.shared\"} 0",
        "agentbus_handler_errors_total 4",
        "agentbus_events_rejected_total{reason=\"duplicate\"} 2",
        "agentbus_events_rejected_total{reason=\"rate_limited\"} 1",
        "agentbus_events_rejected_total{reason=\"invalid\"} 1",
        "agentbus_events_rejected_total{reason=\"custom\"} 1",
        "agentbus_delivery_retries_total 1",
        "agentbus_delivery_retries_pending 0",
        "agentbus_delivery_timed_out_total 1",
        // Every failure given up on: the four counted in handler errors.
        "agentbus_dead_lettered_total 4",
        "agentbus_dead_letters 4",
        "agentbus_live_clients{transport=\"websocket\"} 0",
        "agentbus_store_committed_total 7",
        "agentbus_store_commit_latency_seconds_count 1",
        "# TYPE agentbus_store_lag gauge",
        "# EOF",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
    assert!(!text.contains("conversation.message"), "{text}");

    // Without asking for OpenMetrics: the Prometheus text format, which
    // promtool checks.
    let reply = scrape(&server, "secret", "text/plain").await;
    assert_eq!(
        reply.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    for family in [
        "agentbus_store_committed_total counter",
        "agentbus_events_delivered_total counter",
        "agentbus_events_failed_total counter",
        "agentbus_events_rejected_total counter",
        "agentbus_dead_letters gauge",
    ] {
        assert!(text.contains(&format!("# TYPE {family}")), "{text}");
    }
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
    bus.subscribe(EventType::AgentStarted, |_e: &Event| {});
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
    // The same scrape holds the per-type deliveries: to the handler and to
    // the web API's own stream (a subscriber like any other), 2 × 3.
    let delivered = prometheus.query("agentbus_events_delivered_total{type=\"agent.started\"}");
    assert_eq!(
        delivered["data"]["result"][0]["value"][1], "6",
        "{delivered}"
    );
    let up = prometheus.query("up");
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
}

/// The application's own metrics, added as a collector.
#[derive(Debug)]
struct Answers(prometheus_client::metrics::counter::Counter);

impl prometheus_client::collector::Collector for Answers {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric;
        let metric = encoder.encode_descriptor(
            "deep_thought_answers",
            "Answers given",
            None,
            self.0.metric_type(),
        )?;
        self.0.encode(metric)
    }
}

#[tokio::test]
async fn an_added_collector_is_read_on_every_scrape_after_the_apis_own_metrics() {
    let answers = prometheus_client::metrics::counter::Counter::<u64>::default();
    let server = Server::start(
        WebApi::new(EventBus::new())
            .token(Some("secret".into()))
            .metrics_collector(Answers(answers.clone())),
    )
    .await;
    for expected in [0, 42] {
        let reply = scrape(&server, "secret", "application/openmetrics-text").await;
        assert_eq!(reply.status, 200);
        let text = String::from_utf8(reply.body.to_vec()).unwrap();
        let line = format!("deep_thought_answers_total {expected}");
        let at = text
            .find(&line)
            .unwrap_or_else(|| panic!("no `{line}` in:\n{text}"));
        let own = text.find("agentbus_handler_errors_total").unwrap();
        assert!(own < at, "the API's metrics come first:\n{text}");
        answers.inc_by(42);
    }
}

/// Every type with a count has its series, whatever the mix: one
/// published with no subscriber (the hub's own subscription delivers it),
/// one whose three handlers all fail (more failures than publishes and
/// deliveries together).
#[tokio::test]
async fn every_type_with_a_count_has_its_series() {
    let bus = EventBus::new();
    let server = Server::start(WebApi::new(bus.clone()).token(Some("secret".into()))).await;
    for _ in 0..3 {
        bus.subscribe(EventType::TaskFailed, |_e: &Event| -> Result<(), String> {
            Err("no".into())
        });
    }
    bus.publish(Event::new(EventType::MemoryCreated)).await;
    bus.publish(Event::new(EventType::TaskFailed)).await;
    let reply = scrape(&server, "secret", "application/openmetrics-text").await;
    assert_eq!(reply.status, 200);
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    for line in [
        "agentbus_events_published_total{type=\"memory.created\"} 1",
        "agentbus_events_delivered_total{type=\"memory.created\"} 1",
        "agentbus_events_failed_total{type=\"memory.created\"} 0",
        "agentbus_events_published_total{type=\"task.failed\"} 1",
        "agentbus_events_delivered_total{type=\"task.failed\"} 1",
        "agentbus_events_failed_total{type=\"task.failed\"} 3",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
    assert!(
        !text.contains("task.created"),
        "a type with no count:\n{text}"
    );
}
