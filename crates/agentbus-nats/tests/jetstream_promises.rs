//! What a JetStream bridge promises at a given moment: `flush` returns only
//! once the server has stored everything published before it, a consumer
//! whose server stays away past its pull expiry (so that re-binding fails,
//! more than once) binds again when the server is back, an event whose
//! handlers fail is acked all the same, and a message the stream holds twice
//! reaches the handlers once.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentbus::{Event, EventBus, EventType};
use agentbus_nats::{BridgeConfig, NatsBridge};
use agentbus_testkit::NatsServer;
use common::{bridged_pair, counter, runtime, wait_until, BridgedPair};

#[test]
fn jetstream_flush_returns_once_the_server_stored_everything() {
    let Some(server) =
        NatsServer::start_or_skip("jetstream_flush_returns_once_the_server_stored_everything")
    else {
        return;
    };
    let rt = runtime();
    let (bus, bridge) = common::bridged(
        &rt,
        &server.url(),
        BridgeConfig::default()
            .name("flusher")
            .prefix("flushed")
            .jetstream(true),
    );
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

#[test]
fn an_event_whose_handlers_fail_is_still_acked_not_redelivered() {
    let Some(server) =
        NatsServer::start_or_skip("an_event_whose_handlers_fail_is_still_acked_not_redelivered")
    else {
        return;
    };
    let rt = runtime();
    let (a, b) = (EventBus::new(), EventBus::new());
    let calls = Arc::new(AtomicU64::new(0));
    b.subscribe(EventType::TaskCompleted, {
        let calls = Arc::clone(&calls);
        move |_e: &Event| -> Result<(), String> {
            calls.fetch_add(1, Ordering::SeqCst);
            Err("the handler's database is down".into())
        }
    });
    // A short ack wait and no id window: an event left unacked would reach
    // `b`'s handler again within a second.
    let config = |name: &str| {
        BridgeConfig::default()
            .name(name)
            .prefix("failing")
            .jetstream(true)
            .ack_wait(Duration::from_secs(1))
            .dedup_window(0)
    };
    let bridge_a = rt
        .block_on(NatsBridge::connect(&server.url(), &a, config("a")))
        .unwrap();
    let _bridge_b = rt
        .block_on(NatsBridge::connect(&server.url(), &b, config("b")))
        .unwrap();

    const EVENTS: u64 = 5;
    for _ in 0..EVENTS {
        a.publish_blocking(Event::new(EventType::TaskCompleted));
    }
    rt.block_on(bridge_a.flush());
    assert!(
        wait_until(Duration::from_secs(20), || calls.load(Ordering::SeqCst)
            >= EVENTS),
        "b's handler ran {} times of {EVENTS}",
        calls.load(Ordering::SeqCst)
    );
    // Three ack waits: time for the server to deliver anything unacked again.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(calls.load(Ordering::SeqCst), EVENTS, "redelivered");
    assert_eq!(b.stats().handler_errors, EVENTS);
    let info = rt.block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            async_nats::jetstream::new(client)
                .get_stream("FAILING")
                .await
                .unwrap()
                .get_consumer("b")
                .await
                .unwrap();
        consumer.info().await.unwrap().clone()
    });
    assert_eq!(
        (
            info.num_ack_pending,
            info.num_redelivered,
            info.ack_floor.stream_sequence
        ),
        (0, 0, EVENTS),
        "b's consumer: every event acked once, none redelivered"
    );
}

#[test]
fn a_message_the_stream_holds_twice_reaches_the_handlers_once() {
    let Some(server) =
        NatsServer::start_or_skip("a_message_the_stream_holds_twice_reaches_the_handlers_once")
    else {
        return;
    };
    let rt = runtime();
    let bus = EventBus::new();
    let seen = counter(&bus);
    let bridge = rt
        .block_on(NatsBridge::connect(
            &server.url(),
            &bus,
            BridgeConfig::default()
                .name("reader")
                .prefix("repeats")
                .jetstream(true),
        ))
        .unwrap();
    // Published twice without `Nats-Msg-Id`, so the server stores both
    // copies, then a last event: the handlers see the first once.
    let repeated = Event::new(EventType::TaskCompleted).to_json().unwrap();
    let last = Event::new(EventType::TaskCompleted).to_json().unwrap();
    rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
        for payload in [&repeated, &repeated, &last] {
            js.publish("repeats.task.completed", payload.clone().into())
                .await
                .unwrap()
                .await
                .expect("stored");
        }
    });
    assert!(
        wait_until(Duration::from_secs(20), || bridge.stats().received == 2),
        "{:?}",
        bridge.stats()
    );
    let stats = bridge.stats();
    assert_eq!(stats.duplicates_skipped, 1, "{stats:?}");
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}
