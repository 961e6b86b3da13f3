//! A lock-free, low-latency, in-process event bus for agent runtimes.
//!
//! Agents, circles (teams of agents), a memory system and dashboards publish
//! typed [`Event`]s once; the bus fans each one out to every matching
//! subscriber, sync or async, and keeps a bounded history for debugging.
//!
//! Publishing takes no lock: each [`EventType`] has a copy-on-write
//! subscriber table swapped with one atomic write, and the history is a
//! lock-free ring. A handler that fails or panics is counted and logged,
//! never felt by the others. Every event can carry its causal chain
//! ([`Event::correlation_id`], [`Event::causation_id`]).
//!
//! The behaviour is stated once, in [`docs::semantics`]; [`docs::tour`]
//! shows the whole API, [`docs::design`] how it is built and
//! [`docs::reliability`] how it is checked and what it does with bad input.
//!
//! # Quick start
//!
//! ```
//! use agentbus::{event_bus, Event, EventType};
//! use serde_json::json;
//! use std::sync::Arc;
//!
//! # futures::executor::block_on(async {
//! event_bus().subscribe_async(EventType::TaskCompleted, |event: Arc<Event>| async move {
//!     println!(
//!         "task {} completed by agent {:?}",
//!         event.data["task_id"], event.source_agent_id
//!     );
//! });
//!
//! let outcome = event_bus()
//!     .publish(
//!         Event::new(EventType::TaskCompleted)
//!             .with_data(json!({"task_id": 123, "result": "success"}))
//!             .with_source_agent(1)
//!             .with_circle(5),
//!     )
//!     .await;
//! assert_eq!(outcome.failed, 0);
//! # });
//! ```
//!
//! # Trace context
//!
//! An event can carry the W3C trace context of the span that published it
//! ([`Event::trace_context`], [`TraceContext`]); an event published from
//! inside a handler without one inherits the handled event's, as it
//! inherits its causal ids. The store, the NATS bridge and the web API keep
//! and pass it on.
//!
//! # Feature `tracing`
//!
//! Off by default: without it none of this is compiled and a publish pays
//! nothing. With it, each publish and each handler call get `tracing`
//! spans named and attributed as OpenTelemetry's messaging conventions say:
//!
//! - `publish {type}` (`otel.kind = "producer"`) around the history record
//!   and the synchronous fan-out of one publish, on the publishing thread;
//! - `process {type}` (`otel.kind = "consumer"`) around each handler call,
//!   a child of the publish span, entered again for every later poll of an
//!   async handler's future.
//!
//! Both carry `messaging.system = "agentbus"`, `messaging.operation.type`,
//! `messaging.destination.name` (the event type), `messaging.message.id`
//! and `messaging.message.conversation_id` (the event's chain: its
//! correlation id, or its own id when it starts the chain); the process
//! span also `agentbus.subscription`. When the event has a trace context,
//! both record `traceparent` and `tracestate` as fields of those names, for
//! an OpenTelemetry layer to link the process span to the context the
//! event was published under: `examples/opentelemetry.rs` exports the spans
//! through `tracing-opentelemetry` and does that linking with a small
//! `tracing-subscriber` layer (`cargo run --example opentelemetry --features
//! tracing`). `tracing` span names are static, so the
//! OpenTelemetry name is the `otel.name` field (which `tracing-opentelemetry`
//! uses as the span's name); the `tracing` names are `publish` and
//! `process`. An async handler's span is found with `Span::current()` when
//! it starts, so a subscriber must track the current span (the
//! `tracing-subscriber` registry does).
#![warn(missing_docs)]
// Only the history ring (raw `Arc` pointers in 128-bit words), the hazard
// slots (raw table pointers) and `membarrier` need `unsafe`.
#![deny(unsafe_code)]

pub mod docs;

mod bus;
mod cause;
mod delivery;
mod dispatch;
mod error;
mod event;
mod event_type;
mod executor;
mod filter;
mod guard;
mod handler;
mod hazard;
mod history;
mod id;
mod inner;
mod order;
mod overflow;
mod publisher;
mod redact;
mod scope;
#[cfg(feature = "tracing")]
mod spans;
mod stats;
mod stream;
mod subscription;
mod sync;
mod table;
mod trace;
mod wire;

pub use crate::{
    bus::{event_bus, EventBus, EventBusBuilder, WeakEventBus},
    cause::with_cause,
    delivery::{
        DeadLetter, DeadLetterId, DeadLetterQuery, DeadLetterSink, DeadLetters,
        DeadLettersRestored, RedriveError, Retry, DEFAULT_DEAD_LETTER_CAPACITY,
    },
    dispatch::PublishOutcome,
    error::{
        BuildError, DecodeEventError, DecodeEventErrorKind, EncodeEventError, Lagged,
        ParseEventIdError, ParseEventTypeError, ParseTraceContextError, TryRecvError,
    },
    event::Event,
    event_type::{EventType, EventTypeSet, EventTypeSetIter},
    filter::EventFilter,
    guard::{Admission, Guard, Rejected, Rejection, Violation},
    handler::HandlerResult,
    history::{HistoryQuery, DEFAULT_HISTORY_CAPACITY, MAX_HISTORY_CAPACITY},
    id::{EventId, SubscriptionId},
    order::Order,
    overflow::{wait_for_room, Overflow},
    publisher::Publisher,
    redact::Redacted,
    stats::{BusStats, TypeStats},
    stream::EventStream,
    subscription::{SubscriptionBuilder, SubscriptionGuard},
    trace::{TraceContext, TraceParent, TraceState, MAX_TRACESTATE_LEN},
};
