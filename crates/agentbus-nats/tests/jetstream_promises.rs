//! What a JetStream bridge promises at a given moment: `flush` returns only
//! once the server has stored everything published before it, and a
//! consumer whose server stays away past its pull expiry (so that re-binding
//! fails, more than once) binds again when the server is back.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use agentbus::{Event, EventBus, EventType};
use agentbus_nats::{BridgeConfig, NatsBridge};
use agentbus_testkit::NatsServer;
use common::{bridged_pair, runtime, wait_until, BridgedPair};

#[test]
fn jetstream_flush_returns_once_the_server_stored_everything() {
    let Some(server) =
        NatsServer::start_or_skip("jetstream_flush_returns_once_the_server_stored_everything")
    else {
        return;
    };
    let rt = runtime();
    let bus = EventBus::new();
    let bridge = rt
        .block_on(NatsBridge::connect(
            &server.url(),
            &bus,
            BridgeConfig::default()
                .name("flusher")
                .prefix("flushed")
                .jetstream(true),
        ))
        .unwrap();
    // A plain client, connected beforehand: the check after `flush` is one
    // round trip.
    let mut stream = rt.block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        async_nats::jetstream::new(client)
            .get_stream("FLUSHED")
            .await
            .unwrap()
    });
    const EVENTS: u64 = 5_000;
    for n in 0..EVENTS {
        bus.publish_blocking(
            Event::new(EventType::TaskCompleted).with_data(serde_json::json!({ "n": n })),
        );
    }
    rt.block_on(bridge.flush());
    // Read at once: nothing may still be on its way.
    let sent = bridge.stats().sent;
    let stored = rt.block_on(stream.info()).unwrap().state.messages;
    assert_eq!((sent, stored), (EVENTS, EVENTS));
}

#[test]
fn a_jetstream_consumer_binds_again_after_failed_attempts_while_the_server_was_away() {
    let Some(mut server) = NatsServer::start_or_skip(
        "a_jetstream_consumer_binds_again_after_failed_attempts_while_the_server_was_away",
    ) else {
        return;
    };
    let rt = runtime();
    let config = |name: &str| {
        BridgeConfig::default()
            .name(name)
            .jetstream(true)
            .max_reconnect_delay(Duration::from_millis(200))
            .ack_timeout(Duration::from_millis(500))
    };
    // `b`'s bridge is kept (bound), not dropped with the pattern.
    let BridgedPair {
        a,
        bridge_a,
        bridge_b: _bridge_b,
        received,
    } = bridged_pair(&rt, &server.url(), config);

    // Away past the pull request's 5 s expiry and the missed heartbeats:
    // the consumer's stream ends and its first re-binds fail.
    server.kill();
    std::thread::sleep(Duration::from_secs(12));
    server.restart();

    for _ in 0..10 {
        a.publish_blocking(Event::new(EventType::TaskCompleted));
    }
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), bridge_a.flush())
            .await
            .expect("a stores its events once the server is back")
    });
    assert!(
        wait_until(Duration::from_secs(30), || received.load(Ordering::Relaxed)
            == 11),
        "b received {} of 11",
        received.load(Ordering::Relaxed)
    );
}
