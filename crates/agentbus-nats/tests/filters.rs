//! What crosses the bridge: event types out and in, circles and projects.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentbus::{Event, EventBus, EventFilter, EventType, EventTypeSet};
use agentbus_nats::{BridgeConfig, NatsBridge};
use agentbus_testkit::NatsServer;
use common::{flushed, runtime, wait_until};

/// The type and circle of each event a bus's subscribers saw.
type Seen = Arc<Mutex<Vec<(EventType, Option<i64>)>>>;

fn recorder(bus: &EventBus) -> Seen {
    let seen: Seen = Arc::default();
    let sink = Arc::clone(&seen);
    bus.subscribe_all(move |e: &Event| sink.lock().unwrap().push((e.event_type, e.circle_id)));
    seen
}

/// Waits until `seen` holds as many events as `expected`, a little longer
/// for any that should not have crossed, then compares.
fn assert_crossed(seen: &Seen, expected: &[(EventType, Option<i64>)]) {
    assert!(wait_until(Duration::from_secs(10), || seen
        .lock()
        .unwrap()
        .len()
        >= expected.len()));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(*seen.lock().unwrap(), expected);
}

#[test]
fn types_and_circles_choose_what_crosses() {
    let Some(server) = NatsServer::start_or_skip("types_and_circles_choose_what_crosses") else {
        return;
    };
    let rt = runtime();
    let (a, b) = (EventBus::new(), EventBus::new());
    let seen_b = recorder(&b);
    let out_types: EventTypeSet = [
        EventType::TaskCompleted,
        EventType::TaskFailed,
        EventType::MemoryShared,
    ]
    .into_iter()
    .collect();
    let in_types: EventTypeSet = [EventType::TaskCompleted, EventType::MemoryShared]
        .into_iter()
        .collect();
    let bridge_a = rt
        .block_on(NatsBridge::connect(
            &server.url(),
            &a,
            BridgeConfig::default()
                .name("a")
                .outgoing_types(out_types)
                .circles([5]),
        ))
        .unwrap();
    let bridge_b = rt
        .block_on(NatsBridge::connect(
            &server.url(),
            &b,
            BridgeConfig::default()
                .name("b")
                .incoming_types(in_types)
                .projects([9]),
        ))
        .unwrap();

    let publish = |t: EventType, circle: Option<i64>, project: Option<i64>| {
        let mut e = Event::new(t);
        e.circle_id = circle;
        e.project_id = project;
        a.publish_blocking(e);
    };
    publish(EventType::TaskCompleted, Some(5), Some(9)); // crosses
    publish(EventType::TaskCompleted, Some(6), Some(9)); // other circle: not sent
    publish(EventType::TaskCompleted, None, Some(9)); // no circle: not sent
    publish(EventType::TaskFailed, Some(5), Some(9)); // sent, not taken in (type)
    publish(EventType::TaskStarted, Some(5), Some(9)); // type not sent
    publish(EventType::MemoryShared, Some(5), Some(8)); // sent, left out (project)
    publish(EventType::MemoryShared, Some(5), Some(9)); // crosses
    flushed(&rt, &bridge_a);
    assert_crossed(
        &seen_b,
        &[
            (EventType::TaskCompleted, Some(5)),
            (EventType::MemoryShared, Some(5)),
        ],
    );
    assert_eq!(bridge_a.stats().sent, 4);
    let stats_b = bridge_b.stats();
    assert_eq!((stats_b.received, stats_b.filtered), (2, 1), "{stats_b:?}");
}

#[test]
fn a_scope_lets_through_what_any_of_its_filters_matches() {
    let Some(server) =
        NatsServer::start_or_skip("a_scope_lets_through_what_any_of_its_filters_matches")
    else {
        return;
    };
    let rt = runtime();
    let (a, b) = (EventBus::new(), EventBus::new());
    let seen_b = recorder(&b);
    let task = Event::new(EventType::TaskCreated).with_circle(1);
    // Out: circle 5's events, or the chain `task` starts; in: no failures.
    let bridge_a = rt
        .block_on(NatsBridge::connect(
            &server.url(),
            &a,
            BridgeConfig::default().name("a").scope([
                EventFilter::new().circle_id(5),
                EventFilter::new().correlation_id(task.id),
            ]),
        ))
        .unwrap();
    let all_but_failures: EventTypeSet = EventType::ALL
        .iter()
        .copied()
        .filter(|t| *t != EventType::TaskFailed)
        .collect();
    let bridge_b = rt
        .block_on(NatsBridge::connect(
            &server.url(),
            &b,
            BridgeConfig::default()
                .name("b")
                .scope([EventFilter::new().event_type(all_but_failures)]),
        ))
        .unwrap();

    a.publish_blocking(Event::new(EventType::TaskStarted).with_circle(5)); // crosses
    a.publish_blocking(Event::new(EventType::TaskStarted).with_circle(6)); // not sent
    a.publish_blocking(Event::new(EventType::TaskFailed).with_circle(5)); // left out by b
    a.publish_blocking(task.clone()); // crosses: it starts the chain
    a.publish_blocking(Event::new(EventType::TaskCompleted).caused_by(&task)); // crosses
    a.publish_blocking(Event::new(EventType::TaskCompleted)); // not sent
    flushed(&rt, &bridge_a);
    assert_crossed(
        &seen_b,
        &[
            (EventType::TaskStarted, Some(5)),
            (EventType::TaskCreated, Some(1)),
            (EventType::TaskCompleted, None),
        ],
    );
    assert_eq!(bridge_a.stats().sent, 4);
    let stats_b = bridge_b.stats();
    assert_eq!((stats_b.received, stats_b.filtered), (3, 1), "{stats_b:?}");
}

#[test]
fn a_custom_prefix_uses_its_own_subjects() {
    let Some(server) = NatsServer::start_or_skip("a_custom_prefix_uses_its_own_subjects") else {
        return;
    };
    let rt = runtime();
    let (a, b, c) = (EventBus::new(), EventBus::new(), EventBus::new());
    let (seen_b, seen_c) = (recorder(&b), recorder(&c));
    let connect = |bus: &EventBus, name: &str, prefix: &str| {
        rt.block_on(NatsBridge::connect(
            &server.url(),
            bus,
            BridgeConfig::default().name(name).prefix(prefix),
        ))
        .unwrap()
    };
    let bridge_a = connect(&a, "a", "team.one");
    let _b = connect(&b, "b", "team.one");
    let _c = connect(&c, "c", "team.two");
    a.publish_blocking(Event::new(EventType::TaskCreated));
    flushed(&rt, &bridge_a);
    assert!(wait_until(Duration::from_secs(10), || seen_b
        .lock()
        .unwrap()
        .len()
        == 1));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        seen_c.lock().unwrap().is_empty(),
        "another prefix is another bus"
    );
}
