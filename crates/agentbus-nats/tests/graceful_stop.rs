//! Stopping a JetStream bridge: after a graceful stop, what a consumer's
//! first life delivered is never handed to its next life, even when the
//! server is too slow to read the last acks before the process exits;
//! dropping a bridge stops it without waiting for the server.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use agentbus::{Event, EventBus, EventType};
use agentbus_nats::{BridgeConfig, NatsBridge};
use agentbus_testkit::{NatsPeer, NatsServer};

agentbus_testkit::nats_peer_entry!();

const STREAM: u64 = 20_000;

/// Longer than the peer's ack_wait (3 s), shorter than the stop's 10 s.
const PAUSE: Duration = Duration::from_secs(4);

/// The server freezes (SIGSTOP) just as the consumer stops, for longer than
/// the peer's ack_wait (3 s): with fire-and-forget acks the process exits
/// with its last acks unread, the server's ack_wait timers fire on resume
/// and the next life gets those events again. The stop must wait until the
/// server has confirmed them.
#[test]
fn a_graceful_stop_waits_until_the_server_has_its_last_acks() {
    let Some(server) =
        NatsServer::start_or_skip("a_graceful_stop_waits_until_the_server_has_its_last_acks")
    else {
        return;
    };
    let mut publisher = NatsPeer::start(&server.url(), "publisher", "jetstream", &[]);
    let mut first = NatsPeer::start(&server.url(), "consumer", "jetstream", &[]);
    publisher.send(&format!("publish {STREAM}"));
    assert!(first.wait_received(STREAM as usize / 4, Duration::from_secs(60)));

    server.pause();
    let stopping = Instant::now();
    first.send("exit");
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(PAUSE);
            server.resume();
        });
        first.wait_line("bye", Duration::from_secs(30));
    });
    eprintln!(
        "the first life's graceful stop took {:?} (server frozen for {PAUSE:?})",
        stopping.elapsed()
    );
    let before = first.received().remove("publisher").unwrap_or_default();
    assert!((before.len() as u64) < STREAM, "stopped mid-stream");

    let second = NatsPeer::start(&server.url(), "consumer", "jetstream", &[]);
    let rest = STREAM as usize - before.len();
    let complete = second.wait_received(rest, Duration::from_secs(60));
    // Time for redeliveries (ack_wait is 3 s) to show up.
    std::thread::sleep(Duration::from_secs(4));
    let after = second.received().remove("publisher").unwrap_or_default();
    let first_life: HashSet<u64> = before.iter().copied().collect();
    let again: Vec<u64> = after
        .iter()
        .copied()
        .filter(|seq| first_life.contains(seq))
        .collect();
    assert!(
        again.is_empty(),
        "{} events the first life delivered were delivered again after its graceful stop: {:?}",
        again.len(),
        &again[..again.len().min(20)]
    );
    assert!(complete, "the second life saw {} of {rest}", after.len());
    let mut all: Vec<u64> = before.iter().chain(&after).copied().collect();
    all.sort_unstable();
    common::assert_exactly_once_in_order("consumer (both lives)", "publisher", &all, STREAM);
}

/// With the server frozen, a graceful stop would wait 10 s for the acks of
/// what is buffered; dropping the bridge returns at once, and the bridge
/// still stops (its subscription to the local bus ends).
#[test]
fn dropping_a_bridge_stops_it_without_waiting() {
    let Some(server) = NatsServer::start_or_skip("dropping_a_bridge_stops_it_without_waiting")
    else {
        return;
    };
    let rt = common::runtime();
    let bus = EventBus::new();
    let bridge = rt
        .block_on(NatsBridge::connect(
            &server.url(),
            &bus,
            BridgeConfig::default().name("dropped").jetstream(true),
        ))
        .unwrap();
    assert_eq!(bus.stats().active_subscribers, 1);

    server.pause();
    for _ in 0..10 {
        bus.publish_blocking(Event::new(EventType::TaskCompleted));
    }
    let dropping = Instant::now();
    drop(bridge);
    let took = dropping.elapsed();
    server.resume();
    assert!(
        took < Duration::from_secs(3),
        "dropping the bridge took {took:?}"
    );
    assert!(
        common::wait_until(Duration::from_secs(30), || bus.stats().active_subscribers
            == 0),
        "the dropped bridge still subscribes to the bus"
    );
}
