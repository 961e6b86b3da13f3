//! Several processes, one bus: a bridge from an [`agentbus`] bus to NATS,
//! in core mode (at most once, fastest) or JetStream mode (durable, at least
//! once on the wire, once to handlers).
//!
//! A [`NatsBridge`] joins a local [`EventBus`](agentbus::EventBus) to a NATS
//! server. Events published on the local bus go out on subject
//! `<prefix>.<dotted type>` (`agentbus.task.completed` with the default
//! prefix) as the event's JSON ([`Event::to_json`](agentbus::Event::to_json));
//! events arriving on those subjects from other processes are published on
//! the local bus, where every subscriber sees them like local ones.
//! [`BridgeConfig`] chooses which types go out and which come in (all by
//! default), and can narrow both to a [scope](BridgeConfig::scope): any of
//! some [`EventFilter`](agentbus::EventFilter)s, e.g. some circles or
//! projects.
//!
//! # Behaviour
//!
//! **Headers.** Each message carries `Agentbus-Origin` (the bridge's
//! [`name`](BridgeConfig::name)) and the event id: in core mode as
//! `Agentbus-Event-Id`, with `Agentbus-Seq: <instance> <n>` (a token unique
//! to the connected sending bridge, and its sequence number for the event's
//! type, from 1); in JetStream mode as `Nats-Msg-Id`, which the server
//! deduplicates on.
//!
//! **No echo, no loops.** An event that came in from NATS is published
//! locally with a thread-local mark that every bridge's outgoing filter
//! checks: no bridge in the process sends it out again, so two bridges on one
//! bus never ping-pong and a process is never a relay (join NATS systems
//! with NATS's own gateways or leaf nodes). Events that handlers publish *in
//! reaction* are new events and do go out. Messages whose origin or instance
//! is this bridge's own are skipped on receipt
//! ([`BridgeStats::echoes_skipped`]); in core mode the client also asks the
//! server not to echo. Give each process its own name; two bridges on one
//! bus should use different prefixes (on the same prefix each would take in
//! the other's events).
//!
//! **The publish path.** The bridge subscribes to the local bus with a
//! bounded stream: a local publish pays a filter call (the echo check, the
//! scope's filters) and a push of the event's `Arc` onto a
//! lock-free queue, nothing else; encoding and I/O happen on the bridge's own
//! thread. Event types that do not go out cost nothing.
//!
//! **Core mode** ([`Mode::Core`], the default): at most once, in each
//! publisher's order (one connection to one server keeps order). Losses are
//! never silent: a full outgoing buffer drops its oldest event and counts it
//! ([`BridgeStats::outgoing_dropped`]); on the receiving side, the gaps in
//! each sender's per-type sequence numbers count exactly what never arrived,
//! whether the client's subscription buffer dropped it
//! ([`subscription_capacity`](BridgeConfig::subscription_capacity), its
//! slow-consumer signals are in [`BridgeStats::slow_consumer_signals`]), the
//! server dropped a slow consumer's messages, or the connection was down
//! ([`BridgeStats::incoming_lost`], counted when the next event of that type
//! from that sender arrives). A sender's drops plus its receivers' losses are
//! the whole loss.
//!
//! **JetStream mode** ([`Mode::JetStream`]): the bridge creates or binds a
//! file-backed stream over `<prefix>.>` (named after the prefix in upper
//! case, [`stream_name`](BridgeConfig::stream_name)), publishes with
//! `Nats-Msg-Id` set to the event id, and keeps up to
//! [`acks_in_flight`](BridgeConfig::acks_in_flight) publish acks outstanding
//! instead of awaiting each. An event counts as sent when the server has
//! stored it; one whose ack fails or times out is sent again, with everything
//! behind it (the server drops duplicates within its window: 2 minutes, or
//! the stream's [`max_age`](BridgeConfig::max_age) if shorter). It
//! consumes through a durable pull consumer named after the bridge, acks each
//! message once the local publish has finished (every handler ran), and so
//! resumes where it stopped after a restart of the process or of the server.
//! Redeliveries (an ack lost in a crash) are dropped by a window of recently
//! delivered ids ([`dedup_window`](BridgeConfig::dedup_window)), so local
//! handlers see each event once. Per-publisher order holds while nothing
//! fails; after a server restart or a process restart, events that were in
//! flight can arrive after newer ones. A new consumer starts with events
//! published after it was created ([`StartFrom`]).
//!
//! **Servers and credentials.** [`NatsBridge::connect`] takes one server
//! (`nats://host:port`, `tls://`, `ws://`, `wss://`, or `host:port`) or a
//! comma-separated list, tried in turn. Credentials written in the URL
//! authenticate: `nats://user:password@host` (percent-escaped) or
//! `nats://token@host`; the servers of a list share one set. They are
//! taken out of the URLs before the NATS client sees them, so no error and
//! no log line (the client's included) shows them; the agentbus crates print
//! a server list only through [`agentbus::Redacted`].
//!
//! **Disconnects.** The client reconnects on its own, with backoff from 10 ms
//! doubling to [`max_reconnect_delay`](BridgeConfig::max_reconnect_delay),
//! forever; [`BridgeStats::connected`] and
//! [`BridgeStats::disconnects`] show it. Core mode keeps publishing into the
//! client's buffer meanwhile (what does not make it is counted as above). In
//! JetStream mode local events are held in a bounded buffer
//! ([`outgoing_buffer`](BridgeConfig::outgoing_buffer)) and sent on
//! reconnection; the consumer is re-bound once the server is back.
//!
//! **Overflow** (JetStream): what a local publish does when the outgoing
//! buffer is full is the [`Overflow`] policy: wait for room (the default;
//! nothing lost), or drop the oldest or the newest and count it. Core mode
//! always drops the oldest and counts.
//!
//! **Bad input.** A message that is not an event (not UTF-8, not JSON, the
//! wrong shape, a type that does not match its subject), of an event type
//! this build does not know, or larger than
//! [`max_event_bytes`](BridgeConfig::max_event_bytes), is counted
//! ([`BridgeStats::rejected_invalid`], [`rejected_unknown_type`](BridgeStats::rejected_unknown_type),
//! [`rejected_oversized`](BridgeStats::rejected_oversized)), logged with
//! `tracing` (the first ten, then every thousandth) and skipped (in
//! JetStream, acked, so it does not come back). The bridge keeps running.
//!
//! **Threads.** A bridge runs on a Tokio runtime of its own
//! ([`worker_threads`](BridgeConfig::worker_threads), 2 by default), so it
//! works whatever runtime (or none) the application uses, and a publisher
//! waiting for room never blocks the threads that make it.
//!
//! **Handlers.** Incoming events are published one at a time on the bridge's
//! runtime, awaiting each publish: a slow handler
//! slows the bridge's intake (core mode: then the client's buffer fills and
//! drops, counted; JetStream: the server waits). Failing handlers are the
//! bus's business (counted in its stats); the event is still acked.
//!
//! **Guards.** A bus's [guards](agentbus::Guard) (schemas, a dedup window,
//! rate limits) check events where they enter the system: at the bus they
//! are first published on. Events arriving from NATS were let in there, so
//! the bridge publishes them past this bus's guards
//! ([`EventBus::publish_unguarded`](agentbus::EventBus::publish_unguarded)):
//! a peer's event is never dropped because this bus has other schemas, a
//! dedup window that already saw similar content, or a rate limit used up
//! by local publishers. Each bus thus stores and shows the same events.
//! Repeats of the same message are still caught by the bridge's own
//! dedup of redeliveries ([`duplicates_skipped`](BridgeStats::duplicates_skipped)). The bridge's outgoing
//! side only sees events that passed the local guards: nothing rejected
//! here is ever sent.
//!
//! **Stopping.** [`NatsBridge::shutdown`] stops taking local events, sends
//! what is buffered (JetStream: waits up to 10 s for the acks), hands back
//! messages received but not yet delivered, flushes (up to 10 s) and closes. Dropping the
//! bridge stops it without waiting. In JetStream mode it also waits (up to
//! 10 s) until the server confirms it has processed the consumer's last acks
//! (a double ack, answered once every earlier ack on the connection is
//! processed): plain acks are fire-and-forget, and a server too slow to read
//! them before the process exits would hand the next life of the consumer
//! events this one delivered.
//!
//! # Example
//!
//! Two buses (in two processes, usually) sharing their events:
//!
//! ```no_run
//! use agentbus::{Event, EventBus, EventType};
//! use agentbus_nats::{BridgeConfig, NatsBridge};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = EventBus::new();
//! bus.subscribe(EventType::TaskCompleted, |e: &Event| {
//!     println!("task {} done (circle {:?})", e.data["task_id"], e.circle_id);
//! });
//! let bridge = NatsBridge::connect(
//!     "nats://127.0.0.1:4222",
//!     &bus,
//!     BridgeConfig::default().name("worker-1").jetstream(true),
//! )
//! .await?;
//!
//! // Seen by the handler above and by every other bridged process.
//! bus.publish(Event::new(EventType::TaskCompleted).with_circle(5)).await;
//!
//! bridge.flush().await; // stored by the server
//! let stats = bridge.shutdown().await;
//! assert_eq!(stats.sent, 1);
//! # Ok(())
//! # }
//! ```
//!
//! `examples/two_processes.rs` runs two processes against one server.

mod bridge;
mod config;
mod context;
mod dedup;
mod echo;
mod error;
mod incoming;
mod outgoing;
mod servers;
mod stats;
mod wire;

pub use crate::{
    bridge::NatsBridge,
    config::{BridgeConfig, Mode, Overflow, StartFrom},
    error::ConnectError,
    stats::{BridgeStats, StatsHandle},
};
