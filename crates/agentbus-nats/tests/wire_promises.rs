//! What the crate docs promise about the wire and about where a new
//! consumer starts: each message's headers (origin, sequence, event id;
//! `Nats-Msg-Id` in JetStream), and a new JetStream consumer starting with
//! the events published after it was created unless told otherwise.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use agentbus::{Event, EventBus, EventType};
use agentbus_nats::{BridgeConfig, NatsBridge, StartFrom};
use agentbus_testkit::logs::ProcessLogs;
use agentbus_testkit::NatsServer;
use common::{counter, flushed, runtime, shut_down, wait_until};
use futures_util::StreamExt;

/// Core mode: `Agentbus-Origin` is the bridge's name, `Agentbus-Event-Id`
/// the event id, `Agentbus-Seq` `<instance> <n>` counting from 1 per type.
#[test]
fn core_messages_carry_origin_event_id_and_per_type_sequence() {
    let Some(server) =
        NatsServer::start_or_skip("core_messages_carry_origin_event_id_and_per_type_sequence")
    else {
        return;
    };
    let rt = runtime();
    let mut messages = rt.block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        let subscriber = client.subscribe("agentbus.>").await.unwrap();
        client.flush().await.unwrap();
        (client, subscriber)
    });
    let (bus, bridge) = common::bridged(&rt, &server.url(), BridgeConfig::default().name("sender"));
    let sent = [
        Event::new(EventType::TaskStarted),
        Event::new(EventType::TaskCompleted),
        Event::new(EventType::TaskStarted),
    ];
    for event in &sent {
        bus.publish_blocking(event.clone());
    }
    flushed(&rt, &bridge);
    let mut instance = None;
    for (event, expected_seq) in sent.iter().zip([1u64, 1, 2]) {
        let message = rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(10), messages.1.next()).await
            })
            .expect("the message arrives")
            .expect("the subscription is open");
        assert_eq!(
            message.subject.as_str(),
            format!("agentbus.{}", event.event_type.as_str())
        );
        let headers = message.headers.expect("headers");
        assert_eq!(headers.get("Agentbus-Origin").unwrap().as_str(), "sender");
        assert_eq!(
            headers.get("Agentbus-Event-Id").unwrap().as_str(),
            event.id.to_string()
        );
        let seq = headers.get("Agentbus-Seq").unwrap().as_str().to_owned();
        let (token, n) = seq.split_once(' ').expect("`<instance> <n>`");
        assert_eq!(n.parse::<u64>().unwrap(), expected_seq, "{seq}");
        assert!(!token.is_empty());
        assert_eq!(
            *instance.get_or_insert_with(|| token.to_owned()),
            token,
            "one instance token per connected bridge"
        );
        assert_eq!(
            Event::from_json_slice(&message.payload).unwrap().id,
            event.id
        );
    }
    shut_down(&rt, bridge);
}

/// JetStream: the event id is the `Nats-Msg-Id`, so the server drops a
/// second copy of the same event.
#[test]
fn jetstream_messages_carry_the_event_id_as_nats_msg_id() {
    let Some(server) =
        NatsServer::start_or_skip("jetstream_messages_carry_the_event_id_as_nats_msg_id")
    else {
        return;
    };
    let rt = runtime();
    let (bus, bridge) = common::bridged(
        &rt,
        &server.url(),
        BridgeConfig::default().name("sender").jetstream(true),
    );
    let event = Event::new(EventType::TaskStarted);
    bus.publish_blocking(event.clone());
    // The same event again (a replay, say): stored once.
    bus.publish_blocking(event.clone());
    flushed(&rt, &bridge);
    rt.block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        let mut stream = async_nats::jetstream::new(client)
            .get_stream("AGENTBUS")
            .await
            .unwrap();
        assert_eq!(
            stream.info().await.unwrap().state.messages,
            1,
            "stored once"
        );
        let stored = stream.get_raw_message(1).await.unwrap();
        assert_eq!(
            stored.headers.get("Nats-Msg-Id").unwrap().as_str(),
            event.id.to_string()
        );
        assert_eq!(
            stored.headers.get("Agentbus-Origin").unwrap().as_str(),
            "sender"
        );
    });
    shut_down(&rt, bridge);
}

/// A new durable consumer starts with events published after it was
/// created ([`StartFrom::New`], the default); [`StartFrom::All`] takes what
/// the stream already holds.
#[test]
fn a_new_consumer_starts_after_its_creation_unless_told_all() {
    let Some(server) =
        NatsServer::start_or_skip("a_new_consumer_starts_after_its_creation_unless_told_all")
    else {
        return;
    };
    let rt = runtime();
    let sender_bus = EventBus::new();
    let sender = rt
        .block_on(NatsBridge::connect(
            &server.url(),
            &sender_bus,
            BridgeConfig::default().name("sender").jetstream(true),
        ))
        .unwrap();
    for _ in 0..3 {
        sender_bus.publish_blocking(Event::new(EventType::TaskCompleted));
    }
    flushed(&rt, &sender);

    let join = |name: &str, start: StartFrom| {
        let bus = EventBus::new();
        let seen = counter(&bus);
        let bridge = rt
            .block_on(NatsBridge::connect(
                &server.url(),
                &bus,
                BridgeConfig::default()
                    .name(name)
                    .jetstream(true)
                    .start_from(start),
            ))
            .unwrap();
        (bus, seen, bridge)
    };
    let (_new_bus, new_seen, new_bridge) = join("newcomer", StartFrom::New);
    let (_all_bus, all_seen, all_bridge) = join("historian", StartFrom::All);

    sender_bus.publish_blocking(Event::new(EventType::TaskCompleted));
    flushed(&rt, &sender);
    assert!(
        wait_until(Duration::from_secs(10), || all_seen.load(Ordering::Relaxed)
            == 4
            && new_seen.load(Ordering::Relaxed) == 1),
        "StartFrom::All saw {} of 4, StartFrom::New {} of 1",
        all_seen.load(Ordering::Relaxed),
        new_seen.load(Ordering::Relaxed)
    );
    // Nothing older trickles in later.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(new_seen.load(Ordering::Relaxed), 1);
    assert_eq!(all_seen.load(Ordering::Relaxed), 4);
    for bridge in [new_bridge, all_bridge, sender] {
        shut_down(&rt, bridge);
    }
}

/// Core mode: `flush` returns once every event published before it was
/// handed to the client and the client flushed, so `sent` counts them all
/// the moment it returns.
#[test]
fn core_flush_returns_once_everything_published_before_it_was_sent() {
    let Some(server) = NatsServer::start_or_skip(
        "core_flush_returns_once_everything_published_before_it_was_sent",
    ) else {
        return;
    };
    const EVENTS: u64 = 20_000;
    let rt = runtime();
    let (bus, bridge) = common::bridged(
        &rt,
        &server.url(),
        BridgeConfig::default().name("drained").prefix("drained"),
    );
    for _ in 0..EVENTS {
        bus.publish_blocking(Event::new(EventType::TaskCompleted));
    }
    flushed(&rt, &bridge);
    let stats = bridge.stats();
    assert_eq!(
        stats.sent + stats.outgoing_dropped,
        EVENTS,
        "all sent (or dropped and counted) when flush returns: {stats:?}"
    );
    shut_down(&rt, bridge);
}

/// JetStream with `Overflow::Wait`: a buffer far smaller than what is
/// published holds the publisher back while the server acks, and every
/// slot taken is given back, so a long run of events all goes out.
#[test]
fn a_small_jetstream_buffer_is_reused_for_ever() {
    let Some(server) = NatsServer::start_or_skip("a_small_jetstream_buffer_is_reused_for_ever")
    else {
        return;
    };
    const EVENTS: u64 = 500;
    let rt = runtime();
    let (bus, bridge) = common::bridged(
        &rt,
        &server.url(),
        BridgeConfig::default()
            .name("reused")
            .prefix("reused")
            .jetstream(true)
            .outgoing_buffer(4),
    );
    let publisher = std::thread::spawn(move || {
        for _ in 0..EVENTS {
            bus.publish_blocking(Event::new(EventType::TaskCompleted));
        }
    });
    assert!(
        wait_until(Duration::from_secs(30), || bridge.stats().sent == EVENTS),
        "every event went out through 4 slots: {:?}",
        bridge.stats()
    );
    publisher.join().unwrap();
    assert_eq!(bridge.stats().outgoing_dropped, 0);
    shut_down(&rt, bridge);
}

/// Core mode: events that all arrive, in order, are not reported lost: no
/// loss is counted and no loss warning is logged.
#[test]
fn core_events_that_all_arrive_are_not_reported_lost() {
    let Some(server) =
        NatsServer::start_or_skip("core_events_that_all_arrive_are_not_reported_lost")
    else {
        return;
    };
    let rt = runtime();
    let logs = ProcessLogs::start();
    let common::BridgedPair {
        a,
        bridge_a,
        bridge_b,
        received,
    } = common::bridged_pair(&rt, &server.url(), |name| {
        BridgeConfig::default().name(name).prefix("complete")
    });
    for _ in 0..20 {
        a.publish_blocking(Event::new(EventType::TaskCompleted));
    }
    flushed(&rt, &bridge_a);
    assert!(wait_until(Duration::from_secs(10), || received
        .load(Ordering::Relaxed)
        == 21));
    let logs = logs.finish();
    assert_eq!(bridge_b.stats().incoming_lost, 0);
    assert!(
        !logs.contains("lost before they arrived"),
        "a loss was reported: {logs}"
    );
    shut_down(&rt, bridge_a);
    shut_down(&rt, bridge_b);
}

/// JetStream: a graceful stop sends everything published before it (the
/// stream holds it all when `shutdown` returns, no `flush` first), and a
/// receiver's stop confirms its last ack without a false warning that the
/// server did not.
#[test]
fn a_jetstream_graceful_stop_sends_what_came_before_it_and_confirms_the_last_ack() {
    let Some(server) = NatsServer::start_or_skip(
        "a_jetstream_graceful_stop_sends_what_came_before_it_and_confirms_the_last_ack",
    ) else {
        return;
    };
    const EVENTS: u64 = 2_000;
    let rt = runtime();
    let config = |name: &str| {
        BridgeConfig::default()
            .name(name)
            .prefix("stopping")
            .jetstream(true)
    };
    let (receiving, receiver) = common::bridged(&rt, &server.url(), config("receiver"));
    let received = counter(&receiving);
    let (bus, sender) = common::bridged(&rt, &server.url(), config("sender"));
    for _ in 0..EVENTS {
        bus.publish_blocking(Event::new(EventType::TaskCompleted));
    }
    let stats = shut_down(&rt, sender);
    let stored = rt.block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        let mut stream = async_nats::jetstream::new(client)
            .get_stream("STOPPING")
            .await
            .unwrap();
        stream.info().await.unwrap().state.messages
    });
    assert_eq!((stats.sent, stored), (EVENTS, EVENTS), "{stats:?}");

    assert!(
        wait_until(Duration::from_secs(30), || received.load(Ordering::Relaxed)
            == EVENTS),
        "received {} of {EVENTS}",
        received.load(Ordering::Relaxed)
    );
    let logs = ProcessLogs::start();
    let stats = shut_down(&rt, receiver);
    let logs = logs.finish();
    assert_eq!(stats.received, EVENTS);
    assert!(
        !logs.contains("did not confirm the final jetstream acks"),
        "a confirmed final ack was reported unconfirmed: {logs}"
    );
}
