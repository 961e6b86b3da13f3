//! Two buses in one test process, each with a bridge to one real
//! nats-server: events cross once each way, and never come back.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentbus::{Event, EventBus, EventId, EventType};
use agentbus_nats::{BridgeConfig, NatsBridge};
use agentbus_testkit::NatsServer;
use common::{flushed, runtime, shut_down, wait_until};

/// Records the ids of the `task.completed` events a bus's subscribers see.
fn recorder(bus: &EventBus) -> Arc<Mutex<Vec<EventId>>> {
    let seen: Arc<Mutex<Vec<EventId>>> = Arc::default();
    let sink = Arc::clone(&seen);
    bus.subscribe(EventType::TaskCompleted, move |event: &Event| {
        sink.lock().unwrap().push(event.id);
    });
    seen
}

fn crosses_both_ways_once(jetstream: bool) {
    let Some(server) = NatsServer::start_or_skip("crosses_both_ways_once") else {
        return;
    };
    let rt = runtime();
    let (a, b) = (EventBus::new(), EventBus::new());
    let (seen_a, seen_b) = (recorder(&a), recorder(&b));
    let config = |name: &str| BridgeConfig::default().name(name).jetstream(jetstream);
    let bridge_a = rt
        .block_on(NatsBridge::connect(&server.url(), &a, config("a")))
        .expect("a connects");
    let bridge_b = rt
        .block_on(NatsBridge::connect(&server.url(), &b, config("b")))
        .expect("b connects");

    let from_a = Event::new(EventType::TaskCompleted).with_data(serde_json::json!({"n": 1}));
    let from_b = Event::new(EventType::TaskCompleted).with_circle(7);
    a.publish_blocking(from_a.clone());
    b.publish_blocking(from_b.clone());

    assert!(
        wait_until(Duration::from_secs(10), || seen_a.lock().unwrap().len()
            == 2
            && seen_b.lock().unwrap().len() == 2),
        "both events on both buses: a saw {:?}, b saw {:?}",
        seen_a.lock().unwrap(),
        seen_b.lock().unwrap()
    );
    // Give an echo time to show up, then check nothing came twice.
    flushed(&rt, &bridge_a);
    flushed(&rt, &bridge_b);
    std::thread::sleep(Duration::from_millis(300));
    // Each bus saw each event once (in either order: two publishers).
    let mut both = vec![from_a.id, from_b.id];
    both.sort();
    for seen in [&seen_a, &seen_b] {
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(seen, both);
    }

    let received = b.history(&agentbus::HistoryQuery::new());
    let copy = received
        .iter()
        .find(|e| e.id == from_a.id)
        .expect("a's event on b");
    assert_eq!(**copy, from_a, "the event arrives whole");

    // A bridge's own message comes back to it only through its JetStream
    // consumer (in core mode the server is asked not to echo): skipped on
    // receipt, and counted.
    let echoes = u64::from(jetstream);
    assert!(
        wait_until(Duration::from_secs(10), || bridge_a.stats().echoes_skipped
            == echoes
            && bridge_b.stats().echoes_skipped == echoes),
        "echoes skipped: a {}, b {}, expected {echoes} each",
        bridge_a.stats().echoes_skipped,
        bridge_b.stats().echoes_skipped
    );
    let (stats_a, stats_b) = (bridge_a.stats(), bridge_b.stats());
    assert_eq!((stats_a.sent, stats_a.received), (1, 1), "{stats_a:?}");
    assert_eq!((stats_b.sent, stats_b.received), (1, 1), "{stats_b:?}");
    assert!(stats_a.connected && stats_b.connected);
    // A bridge goes by its configured name, and its Debug output shows the
    // name and the counters (both caught by no test before a cargo-mutants
    // sample of this crate).
    assert_eq!((bridge_a.name(), bridge_b.name()), ("a", "b"));
    let shown = format!("{bridge_a:?}");
    assert!(
        shown.starts_with("NatsBridge")
            && shown.contains("name: \"a\"")
            && shown.contains("sent: 1"),
        "{shown}"
    );
    // A stats handle reads the same counters without holding the bridge,
    // also once the bridge is gone.
    let handle = bridge_a.stats_handle();
    assert_eq!(handle.snapshot(), bridge_a.stats());
    let shown = format!("{handle:?}");
    assert!(
        shown.starts_with("StatsHandle") && shown.contains("sent: 1"),
        "{shown}"
    );
    let final_a = shut_down(&rt, bridge_a);
    assert!(!final_a.connected);
    assert_eq!(handle.snapshot(), final_a);
    shut_down(&rt, bridge_b);
}

#[test]
fn core_events_cross_both_ways_once() {
    crosses_both_ways_once(false);
}

#[test]
fn jetstream_events_cross_both_ways_once() {
    crosses_both_ways_once(true);
}

#[test]
fn an_event_a_handler_publishes_in_reaction_goes_out() {
    let Some(server) =
        NatsServer::start_or_skip("an_event_a_handler_publishes_in_reaction_goes_out")
    else {
        return;
    };
    let rt = runtime();
    let (a, b) = (EventBus::new(), EventBus::new());
    // On b, each incoming task.completed causes a task.started.
    let reactor = b.clone();
    b.subscribe(EventType::TaskCompleted, move |event: &Event| {
        reactor.publish_blocking(Event::new(EventType::TaskStarted).caused_by(event));
    });
    let started: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = Arc::clone(&started);
    a.subscribe(EventType::TaskStarted, move |event: &Event| {
        sink.lock().unwrap().push(event.clone());
    });
    let bridge_a = rt
        .block_on(NatsBridge::connect(
            &server.url(),
            &a,
            BridgeConfig::default().name("a"),
        ))
        .unwrap();
    let bridge_b = rt
        .block_on(NatsBridge::connect(
            &server.url(),
            &b,
            BridgeConfig::default().name("b"),
        ))
        .unwrap();
    let cause = Event::new(EventType::TaskCompleted);
    a.publish_blocking(cause.clone());
    assert!(
        wait_until(Duration::from_secs(10), || started.lock().unwrap().len()
            == 1),
        "the reaction came back: a {:?}, b {:?}",
        bridge_a.stats(),
        bridge_b.stats()
    );
    std::thread::sleep(Duration::from_millis(200));
    let started = started.lock().unwrap();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].causation_id, Some(cause.id));
}

#[test]
fn connect_to_nothing_is_an_error() {
    let rt = runtime();
    let bus = EventBus::new();
    // Port 1: privileged, so no test's server is there.
    let result = rt.block_on(NatsBridge::connect(
        "nats://127.0.0.1:1",
        &bus,
        BridgeConfig::default(),
    ));
    let err = result.expect_err("nothing listens there");
    assert_eq!(err.to_string(), "cannot connect to nats server");
    assert!(std::error::Error::source(&err).is_some());
    assert_eq!(bus.stats().active_subscribers, 0, "nothing left subscribed");
}

#[test]
fn a_bad_prefix_or_name_is_refused() {
    let rt = runtime();
    let bus = EventBus::new();
    for config in [
        BridgeConfig::default().prefix("a.>"),
        BridgeConfig::default().prefix(""),
        BridgeConfig::default().name("two words"),
        BridgeConfig::default().name("dotted.name"),
    ] {
        let err = rt
            .block_on(NatsBridge::connect("nats://127.0.0.1:1", &bus, config))
            .expect_err("refused before connecting");
        assert!(
            err.to_string().starts_with("invalid bridge config"),
            "{err}"
        );
    }
}

#[test]
fn two_bridges_on_one_bus_do_not_ping_pong_or_relay() {
    let Some(server) =
        NatsServer::start_or_skip("two_bridges_on_one_bus_do_not_ping_pong_or_relay")
    else {
        return;
    };
    let rt = runtime();
    // x is on two subject spaces, y only on the first, z only on the second.
    let (x, y, z) = (EventBus::new(), EventBus::new(), EventBus::new());
    let (seen_x, seen_y, seen_z) = (recorder(&x), recorder(&y), recorder(&z));
    let connect = |bus: &EventBus, name: &str, prefix: &str| {
        rt.block_on(NatsBridge::connect(
            &server.url(),
            bus,
            BridgeConfig::default().name(name).prefix(prefix),
        ))
        .unwrap()
    };
    let x_one = connect(&x, "x1", "one");
    let x_two = connect(&x, "x2", "two");
    let y_one = connect(&y, "y", "one");
    let z_two = connect(&z, "z", "two");

    let from_x = Event::new(EventType::TaskCompleted);
    let from_y = Event::new(EventType::TaskCompleted);
    x.publish_blocking(from_x.clone());
    y.publish_blocking(from_y.clone());
    assert!(wait_until(Duration::from_secs(10), || {
        seen_x.lock().unwrap().len() == 2
            && seen_y.lock().unwrap().len() == 2
            && seen_z.lock().unwrap().len() == 1
    }));
    for bridge in [&x_one, &x_two, &y_one, &z_two] {
        flushed(&rt, bridge);
    }
    std::thread::sleep(Duration::from_millis(500));
    // x's event reached y and z once each and never came back; y's reached
    // x once and went no further (x is not a relay: z never sees it).
    let sorted = |mut ids: Vec<EventId>| {
        ids.sort();
        ids
    };
    assert_eq!(
        sorted(seen_x.lock().unwrap().clone()),
        sorted(vec![from_x.id, from_y.id])
    );
    assert_eq!(
        sorted(seen_y.lock().unwrap().clone()),
        sorted(vec![from_x.id, from_y.id])
    );
    assert_eq!(*seen_z.lock().unwrap(), vec![from_x.id]);
    assert_eq!((x_one.stats().sent, x_two.stats().sent), (1, 1));
    assert_eq!((y_one.stats().sent, z_two.stats().sent), (1, 0));
}

/// A peer's events are never lost to this bus's guards: they were let in
/// by the guards of the bus they were published on. Local publishes still
/// meet the guards, and what they reject never reaches NATS.
#[test]
fn a_peers_events_pass_this_bus_guards_and_rejected_ones_never_leave() {
    let Some(server) = NatsServer::start_or_skip("a_peers_events_pass_this_bus_guards") else {
        return;
    };
    let rt = runtime();
    let a = EventBus::new();
    // b lets in one event per hour, and never the same content twice.
    let b = EventBus::builder()
        .guard(agentbus_guard::RateLimit::global(
            1,
            Duration::from_secs(3600),
        ))
        .guard(agentbus_guard::Dedup::window(Duration::from_secs(3600)))
        .build();
    let (seen_a, seen_b) = (recorder(&a), recorder(&b));
    let bridge_a = rt
        .block_on(NatsBridge::connect(
            &server.url(),
            &a,
            BridgeConfig::default().name("a"),
        ))
        .expect("a connects");
    let bridge_b = rt
        .block_on(NatsBridge::connect(
            &server.url(),
            &b,
            BridgeConfig::default().name("b"),
        ))
        .expect("b connects");

    let same = || Event::new(EventType::TaskCompleted).with_data(serde_json::json!({"n": 1}));
    let from_a: Vec<Event> = (0..10).map(|_| same()).collect();
    for event in &from_a {
        a.publish_blocking(event.clone());
    }
    assert!(
        wait_until(Duration::from_secs(10), || seen_b.lock().unwrap().len()
            == 10),
        "b saw {} of a's 10 events",
        seen_b.lock().unwrap().len()
    );
    // Local publishes on b meet its guards: the first passes, the rest not.
    let local = Event::new(EventType::TaskCompleted).with_circle(1);
    assert!(b.try_publish_blocking(local.clone()).is_ok());
    let kept_out = Event::new(EventType::TaskCompleted).with_circle(2);
    assert!(b.try_publish_blocking(kept_out.clone()).is_err());
    assert!(wait_until(Duration::from_secs(10), || seen_a
        .lock()
        .unwrap()
        .contains(&local.id)));
    flushed(&rt, &bridge_b);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!seen_a.lock().unwrap().contains(&kept_out.id));
    assert_eq!(bridge_b.stats().sent, 1);
    assert_eq!(b.stats().events_rejected, 1);
    shut_down(&rt, bridge_a);
    shut_down(&rt, bridge_b);
}

/// A handler reacting to an inbound event runs on the bridge's own thread,
/// which is the one that makes room in a full outgoing buffer: there a
/// `Wait` bridge drops and counts instead of waiting for itself. On one
/// worker thread, with room for one event, a burst of reactions would
/// otherwise hang the bridge.
#[test]
fn a_reaction_on_the_bridge_thread_to_a_full_buffer_drops_instead_of_waiting() {
    let Some(server) = NatsServer::start_or_skip(
        "a_reaction_on_the_bridge_thread_to_a_full_buffer_drops_instead_of_waiting",
    ) else {
        return;
    };
    let rt = runtime();
    let (a, b) = (EventBus::new(), EventBus::new());
    let reactor = b.clone();
    b.subscribe(EventType::TaskCreated, move |event: &Event| {
        for _ in 0..20 {
            reactor.publish_blocking(Event::new(EventType::TaskStarted).caused_by(event));
        }
    });
    let config = |name: &str| {
        BridgeConfig::default()
            .name(name)
            .jetstream(true)
            .worker_threads(1)
            .outgoing_buffer(1)
    };
    let bridge_a = rt
        .block_on(NatsBridge::connect(&server.url(), &a, config("a")))
        .unwrap();
    let bridge_b = rt
        .block_on(NatsBridge::connect(&server.url(), &b, config("b")))
        .unwrap();
    a.publish_blocking(Event::new(EventType::TaskCreated));
    assert!(
        wait_until(Duration::from_secs(10), || bridge_b
            .stats()
            .outgoing_dropped
            > 0),
        "the reactions found the buffer full and were dropped: {:?}",
        bridge_b.stats()
    );
    // The bridge still runs: the next event crosses.
    let later = Arc::new(Mutex::new(0));
    let sink = Arc::clone(&later);
    a.subscribe(EventType::TaskCompleted, move |_: &Event| {
        *sink.lock().unwrap() += 1;
    });
    b.publish_blocking(Event::new(EventType::TaskCompleted));
    assert!(
        wait_until(Duration::from_secs(10), || *later.lock().unwrap() == 1),
        "b still sends: {:?}",
        bridge_b.stats()
    );
    shut_down(&rt, bridge_a);
    shut_down(&rt, bridge_b);
}

/// Core mode: shutting down a receiver stops taking messages in even while
/// a backlog keeps arriving (what is left is dropped, at most once): it does
/// not first work through the backlog.
#[test]
fn a_core_receiver_shuts_down_under_a_flood_without_working_through_it() {
    let Some(server) = NatsServer::start_or_skip(
        "a_core_receiver_shuts_down_under_a_flood_without_working_through_it",
    ) else {
        return;
    };
    let rt = runtime();
    let (a, b) = (EventBus::new(), EventBus::new());
    let handled = Arc::new(Mutex::new(0u64));
    let sink = Arc::clone(&handled);
    b.subscribe(EventType::TaskCompleted, move |_: &Event| {
        *sink.lock().unwrap() += 1;
        std::thread::sleep(Duration::from_millis(1));
    });
    let bridge_a = rt
        .block_on(NatsBridge::connect(
            &server.url(),
            &a,
            BridgeConfig::default().name("flooder"),
        ))
        .unwrap();
    let bridge_b = rt
        .block_on(NatsBridge::connect(
            &server.url(),
            &b,
            BridgeConfig::default().name("flooded"),
        ))
        .unwrap();
    // A backlog of about 20 s of handling.
    for _ in 0..20_000 {
        a.publish_blocking(Event::new(EventType::TaskCompleted));
    }
    flushed(&rt, &bridge_a);
    assert!(wait_until(Duration::from_secs(10), || *handled
        .lock()
        .unwrap()
        > 10));
    let started = std::time::Instant::now();
    let stopped = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), bridge_b.shutdown()).await
    });
    assert!(
        stopped.is_ok(),
        "the receiver still worked through its backlog after 5 s ({} handled)",
        handled.lock().unwrap()
    );
    assert!(*handled.lock().unwrap() < 20_000);
    assert!(started.elapsed() < Duration::from_secs(5));
    shut_down(&rt, bridge_a);
}
