//! A lock-free, low-latency, in-process event bus for agent runtimes.
//!
//! Agents, circles (teams of agents), a memory system and dashboards publish
//! typed [`Event`]s once; the bus fans each one out to every matching
//! subscriber, sync or async, and keeps a bounded history for debugging.
//!
//! # Behaviour
//!
//! - **Publishing takes no lock.** Each [`EventType`] has its own
//!   copy-on-write subscriber table, loaded with one atomic read; subscribing
//!   and unsubscribing swap in a new table without ever blocking publishers.
//! - **Exactly once, in order.** Every subscriber of the event's type whose
//!   filter passes is called once per publish; sequential publishes reach each
//!   handler in publish order.
//! - **Sync handlers run inline** on the publishing thread; **async handlers**
//!   of one publish run concurrently and [`EventBus::publish`] awaits them.
//!   With only sync subscribers no executor is involved.
//! - **Failures are isolated.** A handler that returns `Err` or panics, or a
//!   filter that panics, is counted and logged (`tracing`, `WARN`); all other
//!   handlers still run and publish never panics.
//! - **Unsubscribe during dispatch.** After [`EventBus::unsubscribe`] returns,
//!   later publishes never call the handler; one already running on another
//!   thread may call it once more. The handler is dropped when the last such
//!   publish ends, or, for a [`Publisher`], at its next publish.
//! - **Hot paths** publish through a [`Publisher`] (one per thread or task),
//!   which skips arc-swap's per-publish protocol by keeping its own
//!   references to the tables.
//! - **History overflow.** The ring keeps exactly the newest `capacity`
//!   events (default 1000) and releases older ones; see [`HistoryQuery`].
//! - **Slow consumers.** An [`EventStream`] never blocks publishers: when its
//!   buffer is full it drops the oldest event and reports how many it missed.
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

mod bus;
mod dispatch;
mod error;
mod event;
mod event_type;
mod executor;
mod handler;
mod history;
mod id;
mod publisher;
mod scope;
mod stats;
mod stream;
mod subscription;
mod sync;
mod table;
mod wire;

pub use crate::{
    bus::{event_bus, EventBus, EventBusBuilder, WeakEventBus},
    dispatch::PublishOutcome,
    error::{
        BuildError, DecodeEventError, DecodeEventErrorKind, EncodeEventError, Lagged,
        ParseEventIdError, ParseEventTypeError, TryRecvError,
    },
    event::Event,
    event_type::{EventType, EventTypeSet, EventTypeSetIter},
    handler::HandlerResult,
    history::{HistoryQuery, DEFAULT_HISTORY_CAPACITY, MAX_HISTORY_CAPACITY},
    id::{EventId, SubscriptionId},
    publisher::Publisher,
    stats::BusStats,
    stream::EventStream,
    subscription::{SubscriptionBuilder, SubscriptionGuard},
};
