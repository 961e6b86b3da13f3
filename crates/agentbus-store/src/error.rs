//! [`StoreError`]: what every store, recorder and catch-up operation returns.

use std::error::Error as StdError;
use std::sync::Arc;

use thiserror::Error;

/// The cause of a [`StoreError`], shared so the error can be cloned to every
/// waiter of a failed flush.
pub type Cause = Arc<dyn StdError + Send + Sync + 'static>;

/// Why a store, recorder or catch-up operation failed.
///
/// Messages are lowercase and name *what* and *where* (a path, a sequence);
/// the underlying driver error is in [`source()`](std::error::Error::source),
/// not repeated in the message.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file exists but is not a SQLite database (or is encrypted or
    /// truncated beyond repair). Nothing was written to it.
    #[error("`{path}` is not an agentbus store: not a sqlite database")]
    NotADatabase {
        /// The file that was opened.
        path: String,
        /// The driver's error.
        #[source]
        source: Cause,
    },
    /// The store was written by a newer agentbus with a schema this build
    /// does not know. Nothing was written to it.
    #[error("store `{location}` has schema version {found}, newer than {supported}, the newest this build reads")]
    SchemaTooNew {
        /// The file path or the database the store lives in.
        location: String,
        /// The version found in the store.
        found: i64,
        /// The newest version this build understands.
        supported: i64,
    },
    /// A stored row names an event type this build does not know (written by
    /// a newer build). Other rows stay readable: page around it with
    /// [`ReadQuery::after`](crate::ReadQuery::after).
    #[error("stored event {sequence} has unknown event type `{event_type}`")]
    UnknownEventType {
        /// The sequence of the row.
        sequence: u64,
        /// The type name found in the row.
        event_type: String,
    },
    /// A stored row does not decode to an event (a corrupt id or payload).
    /// Other rows stay readable.
    #[error("stored event {sequence} cannot be decoded: bad {field}")]
    Corrupt {
        /// The sequence of the row.
        sequence: u64,
        /// The column that failed to decode.
        field: &'static str,
        /// The decoder's error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// A stored dead letter does not decode (its event is of a type from a
    /// newer build, or corrupt). Other letters stay readable: page around
    /// it with [`DeadLetterQuery::after`](agentbus::DeadLetterQuery::after).
    #[error("stored dead letter {id} cannot be decoded")]
    CorruptDeadLetter {
        /// The letter's id.
        id: u64,
        /// The decoder's error.
        #[source]
        source: Option<Cause>,
    },
    /// An event cannot be stored: its timestamp is outside what the store
    /// represents (nanoseconds since 1970 in an `i64`: years 1970 to 2262).
    #[error("event {id} has a timestamp the store cannot represent")]
    TimestampOutOfRange {
        /// The event's id.
        id: String,
    },
    /// The backend failed (I/O error, disk full, connection refused or cut,
    /// a query error). Writes are retried by the [`Recorder`](crate::Recorder).
    #[error("{backend} {operation} failed")]
    Backend {
        /// `"sqlite"` or `"postgres"`.
        backend: &'static str,
        /// What was being done: `"open"`, `"append"`, `"read"`, ...
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: Cause,
    },
    /// The backend refuses the data of a batch (a value too large, or one
    /// the database cannot represent): retrying cannot help. The
    /// [`Recorder`](crate::Recorder) then writes the batch's events one at a
    /// time and skips those refused, counting them in
    /// [`RecorderStats::rejected`](crate::RecorderStats::rejected). A custom
    /// [`EventStore`](crate::EventStore) returns this for events it will
    /// never accept.
    #[error("{backend} rejected the batch's data")]
    Rejected {
        /// `"sqlite"`, `"postgres"`, or a custom store's name.
        backend: &'static str,
        /// The database's error.
        #[source]
        source: Cause,
    },
    /// [`Recorder::flush`](crate::Recorder::flush) could not make everything
    /// durable: the writer's latest attempt failed. The events stay queued
    /// and the writer keeps retrying; a later flush succeeds once the store
    /// is back.
    #[error("flush failed: the store rejected the recorder's last write; events stay queued and are retried")]
    FlushFailed {
        /// The error of the last failed attempt.
        #[source]
        source: Arc<StoreError>,
    },
    /// The recorder dropped this many events since the previous flush under
    /// [`Overflow::DropNewest`](crate::Overflow::DropNewest), so not
    /// everything published before the flush is stored. Everything else is.
    #[error("{count} events were dropped because the recorder's queue was full")]
    EventsDropped {
        /// Events dropped since the previous flush.
        count: u64,
    },
    /// A store opened for reading ([`open_existing`](super::open_existing),
    /// [`SqliteStore::open_existing`](crate::SqliteStore::open_existing),
    /// [`PostgresStore::connect_existing`](crate::PostgresStore::connect_existing))
    /// does not exist: no such file, or a database without the agentbus
    /// schema. Nothing was created.
    #[error("store `{location}` does not exist")]
    NotFound {
        /// The file path, or the database (`host:port/database`).
        location: String,
    },
    /// A string that is no [`StoreLocation`](crate::StoreLocation), or one
    /// whose backend was left out of this build.
    #[error("unsupported store location `{location}`: expected `sqlite:PATH`, `postgres://...` or `memory`")]
    UnsupportedLocation {
        /// The location given, its secrets redacted.
        location: String,
    },
    /// An event tracked with [`Recorder::track`](crate::Recorder::track)
    /// was not recorded: the store refused it (counted in
    /// [`RecorderStats::rejected`](crate::RecorderStats::rejected)), the
    /// overflow policy dropped it, or it was not published before
    /// [`Tracked::commit`](crate::Tracked::commit). The other tracked events
    /// were handled as usual.
    #[error("event {index} ({id}) was not recorded")]
    NotRecorded {
        /// Its position among the tracked ids.
        index: usize,
        /// The event's id.
        id: String,
    },
    /// The recorder's writer has stopped (closed, or its thread is gone).
    #[error("the recorder is closed")]
    Closed,
}

impl StoreError {
    pub(crate) fn backend(
        backend: &'static str,
        operation: &'static str,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        StoreError::Backend {
            backend,
            operation,
            source: Arc::new(source),
        }
    }
}

impl StoreError {
    /// The sequence of the stored row this error is about, for errors that
    /// name one ([`UnknownEventType`](Self::UnknownEventType),
    /// [`Corrupt`](Self::Corrupt)): read on with `ReadQuery::after(sequence)`.
    pub fn sequence(&self) -> Option<u64> {
        match self {
            StoreError::UnknownEventType { sequence, .. }
            | StoreError::Corrupt { sequence, .. } => Some(*sequence),
            _ => None,
        }
    }
}
