//! Core mode under overload: what the bridges report lost is what was lost.

use std::time::Duration;

use agentbus_testkit::{NatsPeer, NatsServer};

agentbus_testkit::nats_peer_entry!();

const BURST: u64 = 50_000;

#[test]
fn core_reported_losses_equal_actual_losses() {
    let Some(server) = NatsServer::start_or_skip("core_reported_losses_equal_actual_losses") else {
        return;
    };
    let mut sender = NatsPeer::start(&server.url(), "sender", "core", &[]);
    // A slow consumer with a small client buffer: the client drops.
    let mut receiver = NatsPeer::start(
        &server.url(),
        "receiver",
        "core",
        &[
            ("AGENTBUS_PEER_SUBSCRIPTION_CAPACITY", "64".to_owned()),
            ("AGENTBUS_PEER_HANDLER_SPIN_US", "20".to_owned()),
        ],
    );
    sender.send(&format!("publish {BURST}"));
    sender.wait_line("published", Duration::from_secs(60));
    sender.send("flush");
    sender.wait_line("flushed", Duration::from_secs(60));
    // Wait for the receiver to settle.
    let mut last = usize::MAX;
    while receiver.total_received() != last {
        last = receiver.total_received();
        std::thread::sleep(Duration::from_millis(500));
    }
    // A loss is found at the next event from the same sender: send one more
    // at a time until one arrives (on an idle receiver the first does).
    let mut published = BURST;
    for _ in 0..20 {
        let before = receiver.total_received();
        sender.send("publish 1");
        sender.wait_line("published", Duration::from_secs(10));
        published += 1;
        if receiver.wait_received(before + 1, Duration::from_secs(2)) {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(200));

    let received = receiver
        .received()
        .remove("sender")
        .unwrap_or_default()
        .len() as u64;
    let sender_stats = sender.exit();
    let receiver_stats = receiver.exit();
    let actual = published - received;
    let reported = sender_stats["outgoing_dropped"]
        + sender_stats["outgoing_rejected"]
        + receiver_stats["incoming_lost"];
    eprintln!(
        "published {published}, received {received}, lost {actual}; reported: sender {sender_stats:?}, receiver {receiver_stats:?}"
    );
    assert!(
        actual > 0,
        "the receiver was overloaded ({received} of {published} arrived)"
    );
    assert_eq!(reported, actual, "reported losses equal actual losses");
    assert!(
        receiver_stats["slow_consumer_signals"] > 0,
        "the client's signals were seen"
    );
}
