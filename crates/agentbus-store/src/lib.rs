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
//!   still publishing it. After a commit the writer watches the queue for
//!   50 µs (yielding its core) before it sleeps; while bursts keep coming
//!   (the last quiet period was under 5 ms) it keeps looking for 5 ms,
//!   sleeping ~20 µs plus the OS timer's slack (~70 µs on Linux) between
//!   looks, and only then sleeps until woken. So only the first event
//!   after a quiet of more than 5 ms pays for waking it (5–15 µs on a VM),
//!   and an event during the watch waits at most one look (~70 µs) to be
//!   taken. The watch costs about 14,000 short wake-ups a second while
//!   traffic flows (~15 % of a core on a 2-vCPU VM), nothing once it
//!   stops. No async runtime is needed to attach one.
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
//! # Dead letters
//!
//! A recorder over a store that keeps them (both backends:
//! [`EventStore::dead_letter_store`]) also keeps the bus's
//! [dead letters](agentbus::DeadLetters), so they survive a restart:
//!
//! - **What is stored.** Each letter whole, in its own table (schema
//!   version 3): its id, the event (its JSON form, so neither retention nor
//!   an event the recorder dropped or has not written yet loses it), the
//!   subscription's number and name, the error, the attempts and both
//!   times ([`DeadLetterStore`]). The store mirrors the bus: a letter is
//!   put when kept, rewritten when a redrive fails again, and removed when
//!   redriven, discarded, dropped for room beyond the bus's
//!   [`dead_letter_capacity`](agentbus::EventBusBuilder::dead_letter_capacity),
//!   or forgotten by [`EventBus::reset`](agentbus::EventBus::reset). So the
//!   store never holds more letters than the bus.
//! - **Off the handler's thread.** The bus tells the recorder the id of each
//!   changed letter ([`agentbus::DeadLetterSink`]): one push into a bounded
//!   lock-free queue (4,096 ids) and a wake-up. The recorder's writer
//!   thread reads each letter's state back from the bus and writes the
//!   changes in one transaction, between batches of events. When the queue
//!   of ids is full nothing waits and nothing is dropped: the writer
//!   rewrites every letter in one transaction instead. So the recorder's
//!   [`Overflow`] policy, which is about events, never applies to dead
//!   letters.
//! - **Durable when flushed.** A change is durable once a
//!   [`flush`](Recorder::flush) issued after it has returned (the same rule
//!   and the same crash guarantees as events, below); a crash before that
//!   may lose it. A failed write is logged, fails the waiting flushes
//!   ([`StoreError::FlushFailed`]) and is retried with the recorder's
//!   backoff, rewriting every letter; events keep flowing meanwhile.
//! - **Restored on attach.** [`Recorder::attach`] puts the stored letters
//!   back into the bus ([`DeadLetters::restore`](agentbus::DeadLetters::restore)):
//!   with SQLite before it returns; with PostgreSQL (whose reads are async)
//!   on the writer thread before it writes any change, so at the latest
//!   when the first [`flush`](Recorder::flush) returns. A letter keeps its
//!   id, unless the bus gave that id out already (letters kept before the
//!   recorder was attached): then it gets the next free id and is stored
//!   under it. New letters get ids above the restored ones. Beyond the
//!   bus's capacity the oldest letters are dropped, from the store too. A
//!   row that does not decode is logged and left in the store.
//! - **Redrive after a restart** goes to the live subscription with the
//!   letter's [name](agentbus::SubscriptionBuilder::name); a letter of a
//!   subscription without one fails with
//!   [`RedriveError::Unnamed`](agentbus::RedriveError::Unnamed) and stays
//!   (discard it). A letter redriven is removed from the store by the
//!   writer's next commit: a crash between the delivery and that commit
//!   brings it back, so across a crash a redrive is at least once.
//! - Dead letters of one store belong to one bus at a time: two buses
//!   recording into one store give out the same ids, and the later write of
//!   an id wins.
//!
//! ```
//! use agentbus::{DeadLetterQuery, Event, EventBus, EventType};
//! use agentbus_store::{Recorder, SqliteStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), agentbus_store::StoreError> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("events.db");
//! let bus = EventBus::new();
//! bus.subscription(EventType::TaskCompleted)
//!     .name("exporter")
//!     .handler(|_e: &Event| -> Result<(), String> { Err("exporter down".into()) });
//! let recorder = Recorder::attach(&bus, SqliteStore::open(&path)?);
//! bus.publish(Event::new(EventType::TaskCompleted)).await;
//! recorder.flush().await?; // the dead letter is durable
//! recorder.close().await?;
//!
//! // After a restart: a new bus, the stored letter back under its id.
//! let bus = EventBus::new();
//! bus.subscription(EventType::TaskCompleted)
//!     .name("exporter")
//!     .handler(|_e: &Event| -> Result<(), String> { Ok(()) });
//! let recorder = Recorder::attach(&bus, SqliteStore::open(&path)?);
//! let dead = bus.dead_letters();
//! let letters = dead.list(&DeadLetterQuery::new());
//! assert_eq!(letters[0].error(), "exporter down");
//! dead.redrive(letters[0].id()).await.unwrap(); // found by name
//! recorder.flush().await?; // and gone from the store
//! # Ok(()) }
//! ```
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
