//! Durable events for [`agentbus`]: an embedded SQLite store by default,
//! PostgreSQL for audit trails, lossless catch-up, replay and projections.
//!
//! A [`Recorder`] attached to a bus writes every event published on it to an
//! [`EventStore`]; each stored event gets a global `sequence`, the cursor
//! that reads ([`ReadQuery`]), catch-up streams
//! ([`Recorder::subscribe_from`]), [`replay`] and [`Projection`]s resume
//! from.
//!
//! # What is stored
//!
//! Every field of every [`Event`](agentbus::Event) published on the bus
//! after [`Recorder::attach`]: id, type, data (as JSON), agent, circle,
//! project, correlation and causation ids, and the timestamp to the
//! nanosecond; a round trip is exact. Each stored event gets the next
//! sequence: starting at 1, gap-free, ascending in commit order, never
//! reused (also after pruning). Events are unique by id: storing one whose
//! id is already there is a no-op, so a replay into a recorded bus, or a
//! batch retried after a lost commit reply, is never stored twice.
//!
//! Backends, with one schema and one behaviour (one conformance suite runs
//! against both):
//!
//! - [`SqliteStore`] (feature `sqlite`): one file in WAL mode, bundled
//!   SQLite, created and migrated on open; or in memory.
//! - [`PostgresStore`] (feature `postgres`): a pool of tokio-postgres
//!   connections; batches go in with binary `COPY`.
//!
//! Both features are on by default. `Arc<dyn EventStore>` works wherever a
//! store does, for a backend chosen at run time; [`open`] makes one from a
//! location string (`sqlite:PATH`, `postgres://...`, `memory`), and
//! [`open_existing`] does for readers, never creating a SQLite file.
//!
//! # The recorder
//!
//! - **Hand-off only on the publishing thread.** The recorder is a sync
//!   subscriber that pushes the event's `Arc` into a bounded lock-free queue
//!   (and reads one flag): no I/O, no lock, no allocation. A writer thread of
//!   its own commits batches: up to 1000 events (tunable), formed while the
//!   previous batch commits, so a lone event commits at once and batches
//!   grow under load. A burst is taken once it stops growing (the writer
//!   looks every 5 µs, at most 250 µs), never popped from under the thread
//!   still publishing it, and the writer watches the queue for 50 µs after
//!   a commit before it sleeps: only the first event after a longer quiet
//!   pays for waking it. No async runtime is needed to attach one.
//! - **Overflow is a policy chosen at attach time** ([`Overflow`], the
//!   core's): `Wait` (the default) makes publishers wait for room, so they
//!   slow to the store's pace and nothing is lost; `DropNewest` and
//!   `DropOldest` never block, count each drop in
//!   [`RecorderStats::dropped`], log it, and make the next
//!   [`flush`](Recorder::flush) return [`StoreError::EventsDropped`].
//!   The queue never grows past its capacity (65,536 by default).
//!   Under `Wait` a publisher waits on its own thread; an async publisher
//!   that must never block its thread (a handler on a Tokio worker) first
//!   awaits [`Recorder::reserve`], which waits for room without blocking,
//!   under whatever timeout it chooses.
//! - **Flush.** [`Recorder::flush`] resolves once every event published
//!   before the call is committed, and returns the store's last sequence.
//! - **Errors and retries.** A failed write (disk full, PostgreSQL down, a
//!   connection cut mid-batch) is retried with backoff (10 ms doubling to
//!   1 s); the events stay queued in order; handlers keep receiving events.
//!   The error is logged (`tracing`, `WARN`), kept in
//!   [`RecorderStats::last_error`], and returned by every flush waiting
//!   while an attempt fails ([`StoreError::FlushFailed`]); a flush after the
//!   store is back succeeds. An event the store can never hold (a
//!   timestamp outside 1970..2262, or data the database refuses:
//!   [`StoreError::Rejected`]) is skipped, counted in
//!   [`RecorderStats::rejected`] and logged at `ERROR`, and the rest of its
//!   batch is stored: one bad event never stalls the recorder.
//! - **Retention**, optional: a maximum count and/or age, pruned by the
//!   writer in the background ([`RecorderBuilder::retention`]).
//! - **Closing.** [`Recorder::close`] unsubscribes and commits what was
//!   handed off. Dropping the last handle does the same in the background;
//!   if the store still fails after a few attempts then, the rest is
//!   abandoned with an `ERROR` log (it was never acknowledged as durable).
//!
//! # Durability
//!
//! An event is durable once a [`flush`](Recorder::flush) issued after its
//! publish has returned. With SQLite's default [`Synchronous::Normal`] it
//! then survives a crash or `SIGKILL` of the process; a power loss or OS
//! crash may roll back the last commits (never corrupting the file).
//! [`Synchronous::Full`] fsyncs every commit, so it survives a power loss
//! too. With PostgreSQL it survives whatever the server's settings promise
//! for a committed transaction (with the default `fsync` and
//! `synchronous_commit`, a power loss too). Events not yet flushed may be
//! lost in a crash, never half-written: a batch commits whole or not at all.
//!
//! # Reading back
//!
//! - [`EventStore::read`] with a [`ReadQuery`]: a sequence range, type,
//!   circle, agent, project, correlation and time filters, either order,
//!   paged by sequence. A correlation filter selects a whole causal chain,
//!   its root included, as the bus history does
//!   ([`ReadQuery::correlation_id`]).
//! - [`EventStore::get`]: one event by id, from the unique index on ids.
//! - [`Recorder::subscribe_from`]: the stored events after a sequence, then
//!   live ones as they commit, with no gap and no duplicate at the seam; a
//!   consumer that falls behind is refilled from the store instead of
//!   losing events (the lossless sibling of
//!   [`EventStream`](agentbus::EventStream)).
//! - [`replay`]: publish a stored range into a bus, in order, ids kept.
//! - [`Projection`]: fold stored events into a state, resumable from a
//!   `(state, sequence)` snapshot.
//!
//! A row that does not decode (a type from a newer build) is a typed error
//! naming its sequence ([`StoreError::UnknownEventType`],
//! [`StoreError::Corrupt`]); the rows around it stay readable. A file that
//! is not SQLite and a store of a newer schema are refused on open
//! ([`StoreError::NotADatabase`], [`StoreError::SchemaTooNew`]) without
//! writing to them.
//!
//! # Example
//!
//! ```
//! use agentbus::{Event, EventBus, EventType};
//! use agentbus_store::{EventStore, ReadQuery, Recorder, SqliteStore};
//! use futures_util::StreamExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), agentbus_store::StoreError> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("events.db");
//! let bus = EventBus::new();
//! let store = SqliteStore::open(&path)?;
//! let recorder = Recorder::attach(&bus, store.clone());
//!
//! bus.publish(Event::new(EventType::TaskCreated).with_circle(5)).await;
//! bus.publish(Event::new(EventType::TaskCompleted).with_circle(5)).await;
//! let last = recorder.flush().await?; // both are durable now
//! assert_eq!(last, 2);
//!
//! let done = store
//!     .read(&ReadQuery::new().event_type(EventType::TaskCompleted).circle_id(5))
//!     .await?;
//! assert_eq!(done[0].sequence, 2);
//!
//! // Resume after sequence 1: the stored backlog, then live events.
//! let mut stream = recorder.subscribe_from(1, ReadQuery::new());
//! assert_eq!(stream.next().await.unwrap()?.sequence, 2);
//! bus.publish(Event::new(EventType::TaskFailed)).await;
//! assert_eq!(stream.next().await.unwrap()?.sequence, 3);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod catch_up;
mod dead_letters;
mod error;
mod location;
mod open;
#[cfg(feature = "postgres")]
mod postgres;
mod projection;
mod query;
mod recorder;
mod replay;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;
mod stored;
mod tracked;

#[cfg(feature = "postgres")]
pub use crate::postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use crate::sqlite::{SqliteOptions, SqliteStore, Synchronous};
pub use crate::{
    catch_up::CatchUp,
    dead_letters::{DeadLetterChanges, DeadLetterStore},
    error::{Cause, StoreError},
    location::{is_postgres_location, ParseStoreLocationError, StoreLocation},
    open::{open, open_existing},
    projection::Projection,
    query::ReadQuery,
    recorder::{Overflow, Recorder, RecorderBuilder, RecorderStats, Reservation},
    replay::{replay, Replayed},
    store::{Appended, BoxFuture, EventStore, Retention},
    stored::StoredEvent,
    tracked::Tracked,
};
/// The order of a read: the core's, re-exported so that this crate's
/// earlier name keeps working.
pub use agentbus::Order;
