//! Connection loss: reconnection with backoff, and JetStream's bounded
//! outgoing buffer with its overflow policy.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentbus::{Event, EventBus, EventType};
use agentbus_nats::{BridgeConfig, NatsBridge, Overflow};
use agentbus_testkit::{threads, NatsServer};
use common::{bridged_pair, counter, flushed, runtime, wait_until, BridgedPair};

fn config(name: &str) -> BridgeConfig {
    BridgeConfig::default()
        .name(name)
        .max_reconnect_delay(Duration::from_millis(100))
        .ack_timeout(Duration::from_millis(500))
        .ack_wait(Duration::from_secs(1))
}

#[test]
fn core_reconnects_and_counts_what_was_lost_meanwhile() {
    let Some(mut server) =
        NatsServer::start_or_skip("core_reconnects_and_counts_what_was_lost_meanwhile")
    else {
        return;
    };
    let rt = runtime();
    let BridgedPair {
        a,
        bridge_a,
        bridge_b,
        received,
    } = bridged_pair(&rt, &server.url(), config);

    server.kill();
    assert!(wait_until(Duration::from_secs(10), || !bridge_a
        .stats()
        .connected));
    for _ in 0..100 {
        a.publish_blocking(Event::new(EventType::TaskCompleted));
    }
    server.restart();
    assert!(wait_until(Duration::from_secs(20), || bridge_a
        .stats()
        .connected
        && bridge_b.stats().connected));
    // After the reconnection events flow again; send until one arrives.
    let mut published = 101;
    let arrived = wait_until(Duration::from_secs(20), || {
        let before = received.load(Ordering::Relaxed);
        a.publish_blocking(Event::new(EventType::TaskCompleted));
        published += 1;
        wait_until(Duration::from_millis(200), || {
            received.load(Ordering::Relaxed) > before
        })
    });
    assert!(arrived, "events flow after the reconnection");
    std::thread::sleep(Duration::from_millis(300));
    let (stats_a, stats_b) = (bridge_a.stats(), bridge_b.stats());
    assert!(stats_a.disconnects >= 1 && stats_b.disconnects >= 1);
    let got = received.load(Ordering::Relaxed);
    assert_eq!(
        got + stats_a.outgoing_dropped + stats_b.incoming_lost,
        published,
        "every event arrived or was counted lost: {stats_a:?} {stats_b:?}"
    );
}

/// Publishes `count` events from a plain thread; returns how many calls
/// have returned so far, live.
fn publish_in_background(
    bus: &EventBus,
    count: u64,
) -> (Arc<AtomicU64>, std::thread::JoinHandle<()>) {
    let done = Arc::new(AtomicU64::new(0));
    let (bus, progress) = (bus.clone(), Arc::clone(&done));
    let handle = std::thread::spawn(move || {
        for _ in 0..count {
            bus.publish_blocking(Event::new(EventType::TaskCompleted));
            progress.fetch_add(1, Ordering::Relaxed);
        }
    });
    (done, handle)
}

/// Bus `a` bridged over JetStream with an outgoing buffer of `buffer`
/// events and `overflow`, and `b` bridged beside it; then the server killed
/// and `a`'s bridge seen disconnected. Returns `a` and both bridges.
fn jetstream_pair_cut_off(
    rt: &tokio::runtime::Runtime,
    server: &mut NatsServer,
    buffer: usize,
    overflow: Overflow,
    b: &EventBus,
) -> (EventBus, NatsBridge, NatsBridge) {
    let a = EventBus::new();
    let js = |name: &str| config(name).jetstream(true).outgoing_buffer(buffer);
    let bridge_a = rt
        .block_on(NatsBridge::connect(
            &server.url(),
            &a,
            js("a").overflow(overflow),
        ))
        .unwrap();
    let bridge_b = rt
        .block_on(NatsBridge::connect(&server.url(), b, js("b")))
        .unwrap();
    server.kill();
    assert!(wait_until(Duration::from_secs(10), || !bridge_a
        .stats()
        .connected));
    (a, bridge_a, bridge_b)
}

#[test]
fn jetstream_wait_policy_holds_publishers_while_disconnected_and_loses_nothing() {
    let Some(mut server) = NatsServer::start_or_skip(
        "jetstream_wait_policy_holds_publishers_while_disconnected_and_loses_nothing",
    ) else {
        return;
    };
    let rt = runtime();
    let b = EventBus::new();
    let received = counter(&b);
    let (a, bridge_a, bridge_b) = jetstream_pair_cut_off(&rt, &mut server, 100, Overflow::Wait, &b);
    let (done, publisher) = publish_in_background(&a, 300);
    std::thread::sleep(Duration::from_secs(1));
    let while_down = done.load(Ordering::Relaxed);
    assert!(
        while_down <= 100,
        "publishers wait once 100 are buffered ({while_down} returned)"
    );
    assert!(
        while_down >= 90,
        "the buffer takes events while down ({while_down} returned)"
    );

    server.restart();
    publisher.join().unwrap();
    flushed(&rt, &bridge_a);
    assert!(
        wait_until(Duration::from_secs(30), || received.load(Ordering::Relaxed)
            == 300),
        "all 300 arrive ({} did)",
        received.load(Ordering::Relaxed)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(received.load(Ordering::Relaxed), 300, "and none twice");
    let stats = bridge_a.stats();
    assert_eq!((stats.sent, stats.outgoing_dropped), (300, 0), "{stats:?}");
    drop(bridge_b);
}

#[test]
fn jetstream_drop_policy_never_blocks_and_counts_what_it_dropped() {
    let Some(mut server) =
        NatsServer::start_or_skip("jetstream_drop_policy_never_blocks_and_counts_what_it_dropped")
    else {
        return;
    };
    let rt = runtime();
    let b = EventBus::new();
    let received = counter(&b);
    let (a, bridge_a, _bridge_b) =
        jetstream_pair_cut_off(&rt, &mut server, 100, Overflow::DropOldest, &b);
    let (done, publisher) = publish_in_background(&a, 1000);
    assert!(
        wait_until(Duration::from_secs(10), || done.load(Ordering::Relaxed)
            == 1000),
        "publishers never wait under DropOldest"
    );
    publisher.join().unwrap();
    server.restart();
    flushed(&rt, &bridge_a);
    let stats = bridge_a.stats();
    // At most the buffer (100) and the window taken from it (100) are kept.
    assert!(stats.outgoing_dropped >= 800, "{stats:?}");
    assert_eq!(stats.sent + stats.outgoing_dropped, 1000, "{stats:?}");
    assert!(wait_until(Duration::from_secs(30), || received
        .load(Ordering::Relaxed)
        == stats.sent));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        received.load(Ordering::Relaxed),
        stats.sent,
        "what was sent arrived once"
    );
}

/// While the server is away, a JetStream consumer tries to bind again with
/// a doubling pause (up to `max_reconnect_delay`), not in a loop: the
/// bridge's threads use next to no CPU meanwhile.
#[cfg(target_os = "linux")]
#[test]
fn a_jetstream_bridge_waits_between_rebinds_while_the_server_is_away() {
    let Some(mut server) = NatsServer::start_or_skip(
        "a_jetstream_bridge_waits_between_rebinds_while_the_server_is_away",
    ) else {
        return;
    };
    let rt = runtime();
    let (_bus, bridge) = common::bridged(
        &rt,
        &server.url(),
        BridgeConfig::default().name("patient").jetstream(true),
    );
    server.kill();
    assert!(wait_until(Duration::from_secs(10), || !bridge
        .stats()
        .connected));
    // Past the first few quick attempts.
    std::thread::sleep(Duration::from_millis(500));
    let cpu = || -> Duration {
        threads::named("agentbus-nats-patient")
            .iter()
            .map(|task| threads::cpu(task))
            .sum()
    };
    let before = cpu();
    std::thread::sleep(Duration::from_secs(2));
    let spent = cpu() - before;
    assert!(
        spent < Duration::from_millis(300),
        "the bridge's threads used {spent:?} of CPU in 2 s with the server away"
    );
}

/// JetStream with `Overflow::DropNewest`: with the server away, the events
/// already buffered are kept and the ones published into a full buffer are
/// dropped, so the first arrive once it is back and the last never do.
#[test]
fn jetstream_drop_newest_keeps_the_first_events_and_drops_the_last() {
    let Some(mut server) = NatsServer::start_or_skip(
        "jetstream_drop_newest_keeps_the_first_events_and_drops_the_last",
    ) else {
        return;
    };
    const EVENTS: i64 = 100;
    let rt = runtime();
    let b = EventBus::new();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    b.subscribe(EventType::TaskCompleted, move |event: &Event| {
        sink.lock()
            .unwrap()
            .push(event.data["n"].as_i64().unwrap_or(-1));
    });
    let (a, bridge_a, _bridge_b) =
        jetstream_pair_cut_off(&rt, &mut server, 10, Overflow::DropNewest, &b);
    for n in 0..EVENTS {
        a.publish_blocking(
            Event::new(EventType::TaskCompleted).with_data(serde_json::json!({ "n": n })),
        );
    }
    server.restart();
    flushed(&rt, &bridge_a);
    let sent = bridge_a.stats().sent;
    assert!(wait_until(
        Duration::from_secs(30),
        || seen.lock().unwrap().len() as u64 == sent
    ));
    let seen = seen.lock().unwrap().clone();
    assert!(seen.contains(&0), "the first event was kept: {seen:?}");
    assert!(
        !seen.contains(&(EVENTS - 1)),
        "the last event was dropped: {seen:?}"
    );
    assert_eq!(sent + bridge_a.stats().outgoing_dropped, EVENTS as u64);
}
