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
#![warn(missing_docs)]
// Only the history ring needs `unsafe` (raw `Arc` pointers in 128-bit words).
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
mod handler;
mod history;
mod id;
mod inner;
mod order;
mod overflow;
mod publisher;
mod redact;
mod scope;
mod stats;
mod stream;
mod subscription;
mod sync;
mod table;
mod wire;

pub use crate::{
    bus::{event_bus, EventBus, EventBusBuilder, WeakEventBus},
    cause::with_cause,
    delivery::{
        DeadLetter, DeadLetterId, DeadLetterQuery, DeadLetters, RedriveError, Retry,
        DEFAULT_DEAD_LETTER_CAPACITY,
    },
    dispatch::PublishOutcome,
    error::{
        BuildError, DecodeEventError, DecodeEventErrorKind, EncodeEventError, Lagged,
        ParseEventIdError, ParseEventTypeError, TryRecvError,
    },
    event::Event,
    event_type::{EventType, EventTypeSet, EventTypeSetIter},
    filter::EventFilter,
    handler::HandlerResult,
    history::{HistoryQuery, DEFAULT_HISTORY_CAPACITY, MAX_HISTORY_CAPACITY},
    id::{EventId, SubscriptionId},
    order::Order,
    overflow::{wait_for_room, Overflow},
    publisher::Publisher,
    redact::Redacted,
    stats::BusStats,
    stream::EventStream,
    subscription::{SubscriptionBuilder, SubscriptionGuard},
};
