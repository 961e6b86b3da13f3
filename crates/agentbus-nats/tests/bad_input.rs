//! Bad input from NATS, and local events NATS will not take: counted,
//! logged, skipped; the bridge keeps running.
//!
//! Each test runs under the testkit's deadline: a publish that waits for
//! ever for room (a broken reservation) cannot be timed out from the
//! publishing thread, so the binary fails after 30 s instead of hanging.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentbus::{Event, EventBus, EventType};
use agentbus_nats::{BridgeConfig, NatsBridge};
use agentbus_testkit::deadline::deadline;
use agentbus_testkit::logs::ProcessLogs;
use agentbus_testkit::NatsServer;
use bytes::Bytes;
use common::{runtime, shut_down, wait_until};

fn bad_input_is_counted_and_skipped(jetstream: bool) {
    let _deadline = deadline();
    // One capture at a time in the process: the core run reads the log.
    let logs = (!jetstream).then(ProcessLogs::start);
    let Some(server) = NatsServer::start_or_skip("bad_input_is_counted_and_skipped") else {
        return;
    };
    let rt = runtime();
    let bus = EventBus::new();
    let delivered = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&delivered);
    bus.subscribe_all(move |_e: &Event| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let bridge = rt
        .block_on(NatsBridge::connect(
            &server.url(),
            &bus,
            BridgeConfig::default()
                .name("victim")
                .jetstream(jetstream)
                .max_event_bytes(4096)
                .ack_wait(Duration::from_secs(1)),
        ))
        .expect("connects");
    let raw = rt
        .block_on(async_nats::connect(server.url()))
        .expect("raw client connects");

    let valid = |event: Event| Bytes::from(event.to_json().unwrap());
    let big = Event::new(EventType::TaskCompleted)
        .with_data(serde_json::json!({"blob": "x".repeat(8192)}));
    let messages: Vec<(&str, Bytes)> = vec![
        // Not an event.
        (
            "agentbus.task.completed",
            Bytes::from_static(b"not json at all"),
        ),
        (
            "agentbus.task.completed",
            Bytes::from_static(b"{\"no\": \"type\"}"),
        ),
        (
            "agentbus.task.completed",
            Bytes::from_static(b"{\"type\": \"task.completed\", \"circle_id\": \"five\"}"),
        ),
        (
            "agentbus.task.completed",
            Bytes::from_static(&[0xff, 0xfe, 0x00]),
        ),
        (
            "agentbus.task.completed",
            valid(Event::new(EventType::TaskFailed)),
        ),
        // Unknown types, by subject or by payload.
        (
            "agentbus.memory.forgotten",
            Bytes::from_static(b"{\"type\": \"memory.forgotten\"}"),
        ),
        (
            "agentbus.task.completed",
            Bytes::from_static(b"{\"type\": \"task.teleported\"}"),
        ),
        // Oversized.
        ("agentbus.task.completed", valid(big)),
        // And then a good one.
        (
            "agentbus.task.completed",
            valid(Event::new(EventType::TaskCompleted).with_circle(1)),
        ),
    ];
    rt.block_on(async {
        for (subject, payload) in messages {
            raw.publish(subject, payload).await.unwrap();
        }
        raw.flush().await.unwrap();
    });

    assert!(
        wait_until(Duration::from_secs(10), || delivered
            .load(Ordering::Relaxed)
            == 1),
        "the good event arrives after the bad ones"
    );
    let expect = |stats: agentbus_nats::BridgeStats| {
        assert_eq!(stats.rejected_invalid, 5, "{stats:?}");
        assert_eq!(stats.rejected_unknown_type, 2, "{stats:?}");
        assert_eq!(stats.rejected_oversized, 1, "{stats:?}");
        assert_eq!(stats.received, 1, "{stats:?}");
    };
    assert!(wait_until(Duration::from_secs(5), || bridge
        .stats()
        .rejected_oversized
        == 1));
    expect(bridge.stats());
    if let Some(logs) = logs {
        // The first few skips are logged (then every thousandth).
        let logs = logs.finish();
        assert!(
            logs.lines().any(
                |line| line.contains("message from NATS skipped") && line.contains("skipped=1")
            ),
            "{logs}"
        );
    }
    if jetstream {
        // Skipped messages are acked too: nothing comes back after ack_wait.
        std::thread::sleep(Duration::from_millis(2500));
        expect(bridge.stats());
    }

    // Still running: an event published locally goes out, one from NATS comes in.
    let mut sub = rt.block_on(raw.subscribe("agentbus.task.started")).unwrap();
    // A round trip, so the server has the subscription before the publish.
    let _ = rt.block_on(raw.request("_test_sync", Bytes::new()));
    bus.publish_blocking(Event::new(EventType::TaskStarted));
    let out = rt.block_on(async {
        use futures_util::StreamExt;
        tokio::time::timeout(Duration::from_secs(10), sub.next()).await
    });
    let out = out.expect("the local event went out").expect("a message");
    assert!(Event::from_json(std::str::from_utf8(&out.payload).unwrap()).is_ok());
    rt.block_on(raw.publish(
        "agentbus.task.completed",
        valid(Event::new(EventType::TaskCompleted)),
    ))
    .unwrap();
    assert!(wait_until(Duration::from_secs(10), || delivered
        .load(Ordering::Relaxed)
        == 3));
    shut_down(&rt, bridge);
}

#[test]
fn core_bad_input_is_counted_and_skipped() {
    bad_input_is_counted_and_skipped(false);
}

#[test]
fn jetstream_bad_input_is_counted_and_skipped() {
    bad_input_is_counted_and_skipped(true);
}

/// An event under `max_event_bytes` but over the server's own payload
/// limit is refused by the server every time: JetStream counts it as
/// rejected and skips it, and what follows goes out (it was sent again for
/// ever, everything behind it waiting, before session 12).
#[test]
fn jetstream_skips_an_event_larger_than_the_server_takes() {
    let _deadline = deadline();
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "max_payload: 4096\n").unwrap();
    let config_path = config.path().to_str().unwrap().to_owned();
    let Some(server) = NatsServer::start_with_args_or_skip(
        "jetstream_skips_an_event_larger_than_the_server_takes",
        &["-c", &config_path],
    ) else {
        return;
    };
    let rt = runtime();
    let (bus, bridge) = common::bridged(
        &rt,
        &server.url(),
        BridgeConfig::default()
            .name("oversized")
            .prefix("oversized")
            .jetstream(true),
    );
    let large = "x".repeat(10_000);
    bus.publish_blocking(
        Event::new(EventType::TaskCompleted).with_data(serde_json::json!({ "text": large })),
    );
    bus.publish_blocking(Event::new(EventType::TaskCompleted));
    let flushed =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), bridge.flush()).await });
    assert!(flushed.is_ok(), "flush returned: {:?}", bridge.stats());
    let stats = bridge.stats();
    assert_eq!((stats.sent, stats.outgoing_rejected), (1, 1), "{stats:?}");
    shut_down(&rt, bridge);
}

/// `max_event_bytes` is the largest event sent and taken in: one of exactly
/// that size as JSON goes out and is received, one byte more is counted as
/// rejected and not sent.
#[test]
fn an_event_of_max_event_bytes_goes_out_and_one_byte_more_does_not() {
    let _deadline = deadline();
    let Some(server) = NatsServer::start_or_skip(
        "an_event_of_max_event_bytes_goes_out_and_one_byte_more_does_not",
    ) else {
        return;
    };
    let with_text = |text: &str| {
        Event::new(EventType::TaskCompleted).with_data(serde_json::json!({ "text": text }))
    };
    let fits = with_text("exactly");
    let limit = fits.to_json().unwrap().len();
    let over = with_text("exactly!");
    assert_eq!(over.to_json().unwrap().len(), limit + 1);
    let rt = runtime();
    // JetStream, so the receiver's consumer exists before anything is sent
    // (a core subscription may not be registered with the server yet).
    let sized = |name: &str| {
        BridgeConfig::default()
            .name(name)
            .prefix("sized")
            .jetstream(true)
            .max_event_bytes(limit)
    };
    let (bus, bridge) = common::bridged(&rt, &server.url(), sized("sized"));
    // A receiver with the same limit takes the one that fits.
    let (receiving, receiver) = common::bridged(&rt, &server.url(), sized("receiver"));
    let received = common::counter(&receiving);
    bus.publish_blocking(fits);
    bus.publish_blocking(over);
    common::flushed(&rt, &bridge);
    let stats = bridge.stats();
    assert_eq!((stats.sent, stats.outgoing_rejected), (1, 1), "{stats:?}");
    assert!(
        wait_until(Duration::from_secs(10), || received.load(Ordering::Relaxed)
            == 1),
        "the receiver took the one that fits: {:?}",
        receiver.stats()
    );
    assert_eq!(receiver.stats().rejected_oversized, 0);
    shut_down(&rt, bridge);
    shut_down(&rt, receiver);
}
