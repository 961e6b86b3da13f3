//! Guards for [`agentbus`]: checks that decide, before anything else
//! happens to an event, whether it enters the bus at all.
//!
//! - [`Schemas`]: the event's data must match the JSON Schema of its type.
//! - [`Dedup`]: a repeat of an event let in within a window is kept out.
//! - [`RateLimit`]: a quota per source agent, circle, event type or for the
//!   whole bus.
//!
//! Each is an [`agentbus::Guard`]: add it with
//! [`EventBusBuilder::guard`](agentbus::EventBusBuilder::guard). What a
//! rejection does (nothing reaches history, handlers, stores, web clients
//! or NATS; it is counted in [`BusStats`](agentbus::BusStats)) is stated on
//! [`Guard`](agentbus::Guard). Each guard also keeps its own counter, and
//! clones of a guard share it, so keep a clone to read it.
//!
//! **Order.** Guards run in the order added. Put the stateless and cheap
//! ones first and [`Dedup`] last: a schema error or a rate limit then costs
//! the dedup window nothing (an event rejected after [`Dedup`] let it in is
//! withdrawn from the window anyway, so its retry is not a duplicate).
//!
//! ```
//! use agentbus::{Event, EventBus, EventType};
//! use agentbus_guard::{Dedup, RateLimit, Schemas};
//! use serde_json::json;
//! use std::time::Duration;
//!
//! # futures::executor::block_on(async {
//! let schemas = Schemas::new()
//!     .schema(EventType::TaskCompleted, json!({"type": "object", "required": ["task_id"]}))?
//!     .strict();
//! let bus = EventBus::builder()
//!     .guard(schemas)
//!     .guard(RateLimit::per_agent(100, Duration::from_secs(1)).burst(20))
//!     .guard(Dedup::window(Duration::from_secs(1)))
//!     .build();
//! let event = Event::new(EventType::TaskCompleted).with_data(json!({"task_id": 1}));
//! match bus.try_publish(event).await {
//!     Ok(outcome) => assert_eq!(outcome.delivered, 0),
//!     Err(rejected) => panic!("{rejected}"),
//! }
//! # Ok::<(), agentbus_guard::SchemaError>(())
//! # }).unwrap();
//! ```
#![warn(missing_docs)]

mod clock;
mod content_key;
mod dedup;
mod error;
mod rate_limit;
mod schemas;
mod window_lock;

pub use crate::{
    clock::Clock,
    dedup::{Dedup, DEFAULT_DEDUP_CAPACITY},
    error::SchemaError,
    rate_limit::{Per, RateLimit},
    schemas::Schemas,
};
