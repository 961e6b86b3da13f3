//! What the bridge's tests share besides the services (those come from
//! agentbus-testkit): a runtime, polling, and the exactly-once check.
#![allow(dead_code)] // each test file uses a different part

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::{Event, EventBus, EventType};
use agentbus_nats::{BridgeConfig, BridgeStats, NatsBridge};

/// A tokio runtime for a test body.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Counts the `TaskCompleted` events `bus`'s handlers see.
pub fn counter(bus: &EventBus) -> Arc<AtomicU64> {
    let count = Arc::new(AtomicU64::new(0));
    let sink = Arc::clone(&count);
    bus.subscribe(EventType::TaskCompleted, move |_e: &Event| {
        sink.fetch_add(1, Ordering::Relaxed);
    });
    count
}

/// How long a bridge may take to shut down or flush in a test before it
/// fails.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

/// `bridge.shutdown()`, or a failed test once [`SHUTDOWN_DEADLINE`] has
/// passed (the wait yields, so a timeout bounds it): a bridge that never
/// stops fails the test instead of hanging it.
pub fn shut_down(rt: &tokio::runtime::Runtime, bridge: NatsBridge) -> BridgeStats {
    rt.block_on(async { tokio::time::timeout(SHUTDOWN_DEADLINE, bridge.shutdown()).await })
        .unwrap_or_else(|_| panic!("the bridge did not shut down within {SHUTDOWN_DEADLINE:?}"))
}

/// `bridge.flush()`, or a failed test once [`SHUTDOWN_DEADLINE`] has
/// passed: a flush that never returns fails the test instead of hanging it.
pub fn flushed(rt: &tokio::runtime::Runtime, bridge: &NatsBridge) {
    rt.block_on(async { tokio::time::timeout(SHUTDOWN_DEADLINE, bridge.flush()).await })
        .unwrap_or_else(|_| panic!("the bridge did not flush within {SHUTDOWN_DEADLINE:?}"));
}

/// A new bus bridged through the server at `url` with `config`.
pub fn bridged(
    rt: &tokio::runtime::Runtime,
    url: &str,
    config: BridgeConfig,
) -> (EventBus, NatsBridge) {
    let bus = EventBus::new();
    let bridge = rt.block_on(NatsBridge::connect(url, &bus, config)).unwrap();
    (bus, bridge)
}

/// Two buses `a` and `b` bridged through the server at `url`, each bridge
/// with `config(its name)`, once a first `TaskCompleted` from `a` has reached
/// `b`: the bridges, and the count of `b`'s `TaskCompleted` events (1).
pub struct BridgedPair {
    pub a: EventBus,
    pub bridge_a: NatsBridge,
    pub bridge_b: NatsBridge,
    pub received: Arc<AtomicU64>,
}

pub fn bridged_pair(
    rt: &tokio::runtime::Runtime,
    url: &str,
    config: impl Fn(&str) -> BridgeConfig,
) -> BridgedPair {
    let (a, b) = (EventBus::new(), EventBus::new());
    let received = counter(&b);
    let bridge_a = rt
        .block_on(NatsBridge::connect(url, &a, config("a")))
        .unwrap();
    let bridge_b = rt
        .block_on(NatsBridge::connect(url, &b, config("b")))
        .unwrap();
    a.publish_blocking(Event::new(EventType::TaskCompleted));
    assert!(wait_until(Duration::from_secs(10), || received
        .load(Ordering::Relaxed)
        == 1));
    BridgedPair {
        a,
        bridge_a,
        bridge_b,
        received,
    }
}

/// Polls `condition` until it holds or `timeout` passes; `true` if it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts `seqs` is exactly `0..count` in order: each once, none missing.
pub fn assert_exactly_once_in_order(who: &str, from: &str, seqs: &[u64], count: u64) {
    let expected: Vec<u64> = (0..count).collect();
    if seqs != expected.as_slice() {
        let mut sorted = seqs.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        panic!(
            "{who} from {from}: {} events, {} distinct, expected {count} in order (first ones: {:?})",
            seqs.len(),
            sorted.len(),
            &seqs[..seqs.len().min(20)]
        );
    }
}
