//! A bridge runs on a runtime of its own: an application with no Tokio
//! runtime at all connects, publishes, flushes and shuts bridges down from
//! plain threads, driving the futures with a minimal executor.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use agentbus::{Event, EventBus, EventType};
use agentbus_nats::{BridgeConfig, NatsBridge};
use agentbus_testkit::deadline::deadline;
use agentbus_testkit::NatsServer;
use common::{counter, wait_until};
use futures::executor::block_on;

const EVENTS: u64 = 100;

/// Connects a bridge named `name` over `bus` without any Tokio runtime on
/// the calling thread.
fn connect_without_a_runtime(url: &str, bus: &EventBus, name: &str) -> NatsBridge {
    assert!(
        tokio::runtime::Handle::try_current().is_err(),
        "this thread must have no Tokio runtime"
    );
    block_on(NatsBridge::connect(
        url,
        bus,
        BridgeConfig::default()
            .name(name)
            .prefix("plain")
            .jetstream(true),
    ))
    .unwrap()
}

#[test]
fn bridges_work_from_plain_threads_without_any_runtime() {
    let Some(server) =
        NatsServer::start_or_skip("bridges_work_from_plain_threads_without_any_runtime")
    else {
        return;
    };
    // No runtime here to time a hanging flush or shutdown out: the
    // process's watchdog fails the test instead.
    let _deadline = deadline();
    let url = server.url();
    let receiving = EventBus::new();
    let received = counter(&receiving);
    let receiver = connect_without_a_runtime(&url, &receiving, "receiver");

    let sender = std::thread::spawn(move || {
        let bus = EventBus::new();
        let bridge = connect_without_a_runtime(&url, &bus, "sender");
        block_on(async {
            for n in 0..EVENTS {
                bus.publish(
                    Event::new(EventType::TaskCompleted).with_data(serde_json::json!({ "n": n })),
                )
                .await;
            }
            bridge.flush().await;
            bridge.shutdown().await
        })
    });
    let sent = sender.join().expect("the sending thread ran to its end");
    assert_eq!(sent.sent, EVENTS);
    assert!(
        wait_until(Duration::from_secs(20), || received.load(Ordering::Relaxed)
            == EVENTS),
        "received {} of {EVENTS}",
        received.load(Ordering::Relaxed)
    );
    let stats = block_on(receiver.shutdown());
    assert_eq!(stats.received, EVENTS);
}
