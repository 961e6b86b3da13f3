//! Durable events for [`agentbus`]: an embedded SQLite store by default,
//! PostgreSQL for audit trails, lossless catch-up, replay and projections.
//!
//! (Full behaviour documentation follows in this crate's docs.)
#![warn(missing_docs)]

mod catch_up;
mod error;
#[cfg(feature = "postgres")]
mod postgres;
mod projection;
mod query;
mod recorder;
mod replay;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;
mod stored;
mod writer;

#[cfg(feature = "postgres")]
pub use crate::postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use crate::sqlite::{SqliteOptions, SqliteStore, Synchronous};
pub use crate::{
    catch_up::CatchUp,
    error::{Cause, StoreError},
    projection::Projection,
    query::{Order, ReadQuery, DEFAULT_READ_LIMIT},
    recorder::{Overflow, Recorder, RecorderBuilder, RecorderStats},
    replay::{replay, Replayed},
    store::{Appended, BoxFuture, EventStore, Retention},
    stored::StoredEvent,
};
