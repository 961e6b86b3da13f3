//! Settings no other test changes, each seen doing what its docs say: the
//! mode, the stream's name and age, the publish-ack window and the bridge's
//! worker threads.

mod common;

use std::time::Duration;

use agentbus::{Event, EventFilter, EventType, EventTypeSet};
use agentbus_nats::{BridgeConfig, Mode};
use agentbus_testkit::{threads, NatsServer};
use async_nats::jetstream::consumer::AckPolicy;
use async_nats::jetstream::stream::StorageType;
use common::{bridged, flushed, runtime, shut_down, wait_until};

/// A JetStream bridge makes a file-backed stream under the name and age
/// given, and a durable consumer named after the bridge that acks
/// explicitly, with the ack wait given, on the one subject of the types
/// it takes in.
#[test]
fn jetstream_mode_makes_the_stream_and_consumer_configured() {
    let Some(server) =
        NatsServer::start_or_skip("jetstream_mode_makes_the_stream_and_consumer_configured")
    else {
        return;
    };
    let rt = runtime();
    let (bus, bridge) = bridged(
        &rt,
        &server.url(),
        BridgeConfig::default()
            .name("archivist")
            .prefix("archived")
            .mode(Mode::JetStream)
            .stream_name("TEAM_ARCHIVE")
            .max_age(Duration::from_secs(90))
            .incoming_types(EventTypeSet::from(EventType::TaskCompleted))
            .ack_wait(Duration::from_secs(7)),
    );
    for _ in 0..3 {
        bus.publish_blocking(Event::new(EventType::TaskCompleted));
    }
    flushed(&rt, &bridge);
    let (stream, consumer, default_named) = rt.block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        let jetstream = async_nats::jetstream::new(client);
        let mut named = jetstream.get_stream("TEAM_ARCHIVE").await.unwrap();
        let stream = named.info().await.unwrap().clone();
        let consumer = named
            .consumer_info("archivist")
            .await
            .unwrap()
            .config
            .clone();
        let default_named = jetstream.get_stream("ARCHIVED").await.is_ok();
        (stream, consumer, default_named)
    });
    assert_eq!(stream.config.subjects, ["archived.>"]);
    assert_eq!(stream.config.max_age, Duration::from_secs(90));
    assert_eq!(stream.config.storage, StorageType::File);
    assert_eq!(stream.state.messages, 3, "the stream holds what was sent");
    assert!(!default_named, "no stream under the default name");
    assert_eq!(consumer.durable_name.as_deref(), Some("archivist"));
    assert_eq!(consumer.ack_policy, AckPolicy::Explicit);
    assert_eq!(consumer.ack_wait, Duration::from_secs(7));
    assert_eq!(consumer.filter_subject, "archived.task.completed");
    assert!(
        consumer.max_ack_pending > 1_000,
        "more unacknowledged messages in flight than the server's default: {}",
        consumer.max_ack_pending
    );
}

/// With the server stopped, a bridge has exactly `acks_in_flight` events
/// sent and not acknowledged; the first ack timeout sends those again, and
/// only those. Read as soon as that first timeout is counted (the next is
/// a whole timeout later), the count is the window.
#[test]
fn no_more_than_acks_in_flight_events_wait_for_their_ack() {
    let Some(server) =
        NatsServer::start_or_skip("no_more_than_acks_in_flight_events_wait_for_their_ack")
    else {
        return;
    };
    const WINDOW: u64 = 4;
    const BACKLOG: u64 = 200;
    let rt = runtime();
    let (bus, bridge) = bridged(
        &rt,
        &server.url(),
        BridgeConfig::default()
            .name("windowed")
            .prefix("windowed")
            .jetstream(true)
            .acks_in_flight(WINDOW as usize)
            .ack_timeout(Duration::from_secs(1)),
    );
    server.pause();
    for _ in 0..BACKLOG {
        bus.publish_blocking(Event::new(EventType::TaskCompleted));
    }
    assert!(
        wait_until(Duration::from_secs(10), || bridge.stats().resent > 0),
        "the window is sent again on its ack timeout"
    );
    let during = bridge.stats();
    server.resume();
    flushed(&rt, &bridge);
    let after = bridge.stats();
    assert_eq!(
        during.sent, 0,
        "nothing is acknowledged by a stopped server"
    );
    assert_eq!(
        during.resent, WINDOW,
        "the first timeout sends again exactly the window that waited"
    );
    assert_eq!(
        after.sent, BACKLOG,
        "everything arrives once the server is back"
    );
}

/// The bridge's runtime has the worker threads asked for: the threads named
/// after the bridge are its own thread, its workers and, for a moment, a
/// blocking-pool thread (the address lookup).
#[cfg(target_os = "linux")]
#[test]
fn a_bridge_runs_on_the_worker_threads_asked_for() {
    let Some(server) = NatsServer::start_or_skip("a_bridge_runs_on_the_worker_threads_asked_for")
    else {
        return;
    };
    let rt = runtime();
    const WORKERS: usize = 5;
    let (_bus, bridge) = bridged(
        &rt,
        &server.url(),
        BridgeConfig::default()
            .name("quintet")
            .worker_threads(WORKERS),
    );
    // The kernel keeps 15 bytes of a name: "agentbus-nats-q", the bridge
    // name's first letter being unique in this file.
    let named = || threads::named("agentbus-nats-quintet").len();
    let own_and_workers = 1 + WORKERS;
    assert!(
        wait_until(Duration::from_secs(10), || named() >= own_and_workers),
        "{} threads of the bridge, want its own and {WORKERS} workers",
        named()
    );
    assert!(named() <= own_and_workers + 1);
    shut_down(&rt, bridge);
}

/// A config tells its subject prefix, and its `Debug` shows the settings
/// that say what crosses and how.
#[test]
fn a_config_shows_its_prefix_and_settings() {
    let config = BridgeConfig::default()
        .name("shown")
        .prefix("displayed")
        .mode(Mode::JetStream)
        .outgoing_buffer(77);
    assert_eq!(config.subject_prefix(), "displayed");
    let shown = format!("{config:?}");
    for part in [
        "BridgeConfig",
        "name: Some(\"shown\")",
        "prefix: \"displayed\"",
        "mode: JetStream",
        "outgoing_buffer: 77",
    ] {
        assert!(shown.contains(part), "{part} in {shown}");
    }
}

/// The scope's filters as set: none by default (every event crosses), an
/// empty list kept as one (nothing crosses), and `circles` then `projects`
/// one filter per pair, equal ones once.
#[test]
fn a_scope_reads_back_as_its_filters() {
    assert_eq!(BridgeConfig::default().scope_filters(), None);
    assert_eq!(
        BridgeConfig::default().scope([]).scope_filters(),
        Some(&[][..])
    );
    let narrowed = BridgeConfig::default().circles([5, 6, 5]).projects([9]);
    assert_eq!(
        narrowed.scope_filters(),
        Some(
            &[
                EventFilter::new().circle_id(5).project_id(9),
                EventFilter::new().circle_id(6).project_id(9),
            ][..]
        )
    );
}

/// Without a stream name, the stream is named after the prefix: letters in
/// capitals, digits, `-` and `_` kept, anything else (a dot) `_`.
#[test]
fn the_default_stream_name_is_the_prefix_in_capitals() {
    let Some(server) =
        NatsServer::start_or_skip("the_default_stream_name_is_the_prefix_in_capitals")
    else {
        return;
    };
    let rt = runtime();
    let (_bus, bridge) = bridged(
        &rt,
        &server.url(),
        BridgeConfig::default()
            .name("capitals")
            .prefix("Team-7_x.v2")
            .jetstream(true),
    );
    let found = rt.block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        async_nats::jetstream::new(client)
            .get_stream("TEAM-7_X_V2")
            .await
            .is_ok()
    });
    assert!(found, "a stream named TEAM-7_X_V2");
    shut_down(&rt, bridge);
}
