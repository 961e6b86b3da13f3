//! Three OS processes on one bus through the bridge.

mod common;

use std::time::Duration;

use agentbus_testkit::{NatsPeer, NatsServer};
use common::assert_exactly_once_in_order;

agentbus_testkit::nats_peer_entry!();

const PER_PEER: u64 = 5_000;

fn three_processes(mode: &str) {
    let Some(server) = NatsServer::start_or_skip("three_processes") else {
        return;
    };
    let names = ["p1", "p2", "p3"];
    let mut peers: Vec<NatsPeer> = names
        .iter()
        .map(|name| NatsPeer::start(&server.url(), name, mode, &[]))
        .collect();
    for peer in &mut peers {
        peer.send(&format!("publish {PER_PEER}"));
    }
    // Each subscriber sees its own events (published locally) and the other
    // two processes' events.
    let expected = (names.len() as u64 * PER_PEER) as usize;
    for peer in &peers {
        assert!(
            peer.wait_received(expected, Duration::from_secs(60)),
            "{} saw {} of {expected}",
            peer.name,
            peer.total_received()
        );
    }
    // Anything echoed or duplicated would arrive shortly after.
    for peer in &mut peers {
        peer.send("flush");
        peer.wait_line("flushed", Duration::from_secs(30));
    }
    std::thread::sleep(Duration::from_millis(500));
    for peer in &mut peers {
        let received = peer.received();
        assert_eq!(
            received.len(),
            names.len(),
            "{}: origins {:?}",
            peer.name,
            received.keys()
        );
        for origin in names {
            // For its own origin this says: delivered locally once, and
            // never came back from NATS.
            assert_exactly_once_in_order(&peer.name, origin, &received[origin], PER_PEER);
        }
        let stats = peer.exit();
        assert_eq!(stats["sent"], PER_PEER, "{}: {stats:?}", peer.name);
        assert_eq!(stats["received"], 2 * PER_PEER, "{}: {stats:?}", peer.name);
        assert_eq!(stats["incoming_lost"], 0, "{}: {stats:?}", peer.name);
    }
}

#[test]
fn core_three_processes_each_event_once_in_order_never_back() {
    three_processes("core");
}

#[test]
fn jetstream_three_processes_each_event_once_in_order_never_back() {
    three_processes("jetstream");
}
