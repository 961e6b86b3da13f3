//! [`SqliteStore`]: the embedded backend, one SQLite file in WAL mode.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use agentbus::{DeadLetter, DeadLetterQuery, Event, EventId};
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::dead_letters::{clamp_id, DeadLetterChanges, DeadLetterStore, LetterColumns, LetterRow};
use crate::error::StoreError;
use crate::query::ReadQuery;
use crate::sql::{self, clamp_nanos, clamp_sequence, Dialect, Parameter};
use crate::store::{blocking, Appended, BoxFuture, EventStore, Retention};
use crate::stored::{corrupt, timestamp_nanos, Columns, StoredEvent};

/// The schema version this build writes and reads (`PRAGMA user_version`):
/// 1 is [`SCHEMA`], 2 adds the trace-context columns
/// ([`sql::ADD_TRACE_CONTEXT`]), 3 the dead letters
/// ([`sql::ADD_DEAD_LETTERS`]). Opening an older file migrates it.
pub(crate) const SQLITE_SCHEMA_VERSION: i64 = 3;

/// Version 1 of the schema; later versions are steps applied on top.
const SCHEMA: &str = "
CREATE TABLE agentbus_events (
    sequence        INTEGER PRIMARY KEY,
    id              BLOB NOT NULL UNIQUE,
    event_type      TEXT NOT NULL,
    source_agent_id INTEGER,
    circle_id       INTEGER,
    project_id      INTEGER,
    correlation_id  BLOB,
    causation_id    BLOB,
    timestamp_ns    INTEGER NOT NULL,
    data            TEXT NOT NULL
);
CREATE INDEX agentbus_events_correlation ON agentbus_events (correlation_id)
    WHERE correlation_id IS NOT NULL;
CREATE TABLE agentbus_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO agentbus_meta (key, value) VALUES ('last_sequence', 0);
";

const INSERT: &str = "INSERT INTO agentbus_events (sequence, id, event_type, source_agent_id, \
    circle_id, project_id, correlation_id, causation_id, timestamp_ns, data, traceparent, \
    tracestate) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
    ON CONFLICT (id) DO NOTHING";

/// How hard SQLite works to make a commit survive a power loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Synchronous {
    /// `synchronous=NORMAL` (the default): a commit survives a crash of the
    /// process; a power loss or OS crash may lose the last commits before
    /// the next WAL checkpoint, never corrupting the file.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is fsynced and survives a power loss
    /// too, at the cost of one fsync per batch.
    Full,
}

/// Options for [`SqliteStore::open_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SqliteOptions {
    /// The durability setting of every commit.
    pub synchronous: Synchronous,
}

/// The embedded store: one SQLite file (bundled SQLite), created and
/// migrated on open, in WAL mode so readers never block the writer.
///
/// A cheap handle: clones share the connections. Writes go through one
/// connection; reads of a file store use their own read-only connections and
/// run concurrently with writes. Blocking SQLite calls run on Tokio's blocking
/// pool when called inside a Tokio runtime, inline otherwise.
///
/// Another process may open the same file: SQLite's locking keeps writers
/// apart, and the sequence counter lives in the file.
///
/// ```
/// use agentbus::{Event, EventId, EventType};
/// use agentbus_store::{EventStore, ReadQuery, SqliteStore};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), agentbus_store::StoreError> {
/// let dir = tempfile::tempdir().unwrap();
/// let store = SqliteStore::open(dir.path().join("events.db"))?;
/// let event = Arc::new(Event::new(EventType::TaskCreated).with_circle(5));
/// store.append(&[Arc::clone(&event), Arc::clone(&event)]).await?; // the repeat is skipped
/// assert_eq!(store.last_sequence().await?, 1);
/// let stored = store.read(&ReadQuery::new().circle_id(5)).await?;
/// assert_eq!(stored[0].event, event);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The file, for messages; `:memory:` for an in-memory store.
    location: String,
    writer: Mutex<Connection>,
    /// Idle read-only connections (file stores only).
    readers: Mutex<Vec<Connection>>,
    file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("location", &self.inner.location)
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn sqlite_error(operation: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |error| match error.sqlite_error_code() {
        // A value over SQLite's size limits: no retry will store it.
        Some(ErrorCode::TooBig) => StoreError::Rejected {
            backend: "sqlite",
            source: Arc::new(error),
        },
        _ => StoreError::backend("sqlite", operation, error),
    }
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the store at `path`, with
    /// [`Synchronous::Normal`].
    ///
    /// Fails with [`StoreError::NotADatabase`] for a file that is not SQLite
    /// and [`StoreError::SchemaTooNew`] for a store written by a newer
    /// build; neither writes to the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// [`open`](Self::open) with options.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let location = path.display().to_string();
        let connection = Connection::open(path).map_err(sqlite_error("open"))?;
        Self::init(connection, location, Some(path.to_path_buf()), options)
    }

    /// [`open`](Self::open) for reading an existing store: a missing file,
    /// or a SQLite file without the agentbus schema, is
    /// [`StoreError::NotFound`]; nothing is created. The file is still opened
    /// read-write (WAL needs its `-shm` file) and migrated if older.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let location = path.display().to_string();
        let flags = OpenFlags::default() - OpenFlags::SQLITE_OPEN_CREATE;
        let connection = Connection::open_with_flags(path, flags).map_err(|error| {
            match error.sqlite_error_code() {
                Some(ErrorCode::CannotOpen) if !path.exists() => StoreError::NotFound {
                    location: location.clone(),
                },
                _ => sqlite_error("open")(error),
            }
        })?;
        // A file without the schema (empty, or another program's database)
        // would get it from `init`; a file that is not SQLite fails there.
        let version = connection.query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0));
        if matches!(version, Ok(0)) {
            return Err(StoreError::NotFound { location });
        }
        Self::init(
            connection,
            location,
            Some(path.to_path_buf()),
            SqliteOptions::default(),
        )
    }

    /// A store in memory, gone when the last handle is dropped: for tests and
    /// for `--store memory`.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let connection = Connection::open_in_memory().map_err(sqlite_error("open"))?;
        Self::init(
            connection,
            ":memory:".to_owned(),
            None,
            SqliteOptions::default(),
        )
    }

    fn init(
        mut connection: Connection,
        location: String,
        file: Option<std::path::PathBuf>,
        options: SqliteOptions,
    ) -> Result<Self, StoreError> {
        let not_a_database = |error: rusqlite::Error| match error.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => StoreError::NotADatabase {
                path: location.clone(),
                source: Arc::new(error),
            },
            _ => StoreError::backend("sqlite", "open", error),
        };
        // The first statement that reads the file is where a non-SQLite file
        // shows; setting WAL changes nothing if that fails.
        connection
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(&not_a_database)?;
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(&not_a_database)?;
        if version > SQLITE_SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                location,
                found: version,
                supported: SQLITE_SCHEMA_VERSION,
            });
        }
        let _mode: String = connection
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(&not_a_database)?;
        let synchronous = match options.synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        connection
            .pragma_update(None, "synchronous", synchronous)
            .map_err(&not_a_database)?;
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&not_a_database)?;
        // Read again under the write lock: another process may have migrated.
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(&not_a_database)?;
        if version > SQLITE_SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                location,
                found: version,
                supported: SQLITE_SCHEMA_VERSION,
            });
        }
        if version == 0 {
            tx.execute_batch(SCHEMA).map_err(sqlite_error("migrate"))?;
        }
        if version < 2 {
            tx.execute_batch(sql::ADD_TRACE_CONTEXT)
                .map_err(sqlite_error("migrate"))?;
        }
        if version < 3 {
            tx.execute_batch(sql::ADD_DEAD_LETTERS)
                .map_err(sqlite_error("migrate"))?;
        }
        if version < SQLITE_SCHEMA_VERSION {
            tx.pragma_update(None, "user_version", SQLITE_SCHEMA_VERSION)
                .map_err(sqlite_error("migrate"))?;
        }
        tx.commit().map_err(sqlite_error("migrate"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                location,
                writer: Mutex::new(connection),
                readers: Mutex::new(Vec::new()),
                file,
            }),
        })
    }

    /// Where the store lives: its path, or `:memory:`.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// [`EventStore::append`] on the calling thread.
    pub fn append_blocking(&self, events: &[Arc<Event>]) -> Result<Appended, StoreError> {
        let mut connection = lock(&self.inner.writer);
        append(&mut connection, events)
    }

    /// [`EventStore::read`] on the calling thread.
    pub fn read_blocking(&self, query: &ReadQuery) -> Result<Vec<StoredEvent>, StoreError> {
        self.with_reader(|connection| read(connection, query))
    }

    /// [`EventStore::get`] on the calling thread.
    pub fn get_blocking(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.with_reader(|connection| get(connection, id))
    }

    /// [`EventStore::last_sequence`] on the calling thread.
    pub fn last_sequence_blocking(&self) -> Result<u64, StoreError> {
        self.with_reader(last_sequence)
    }

    /// [`DeadLetterStore::write_dead_letters`] on the calling thread.
    pub fn write_dead_letters_blocking(
        &self,
        changes: &DeadLetterChanges,
    ) -> Result<(), StoreError> {
        let mut connection = lock(&self.inner.writer);
        write_dead_letters(&mut connection, changes)
    }

    /// [`DeadLetterStore::read_dead_letters`] on the calling thread.
    pub fn read_dead_letters_blocking(
        &self,
        query: &DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.with_reader(|connection| read_dead_letters(connection, query))
    }

    /// [`EventStore::prune`] on the calling thread.
    pub fn prune_blocking(&self, retention: &Retention) -> Result<u64, StoreError> {
        let mut connection = lock(&self.inner.writer);
        prune(&mut connection, retention, SystemTime::now())
    }

    fn with_reader<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let Some(file) = &self.inner.file else {
            return work(&lock(&self.inner.writer));
        };
        let idle = lock(&self.inner.readers).pop();
        let connection = match idle {
            Some(connection) => connection,
            None => {
                let connection = Connection::open_with_flags(
                    file,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(sqlite_error("open"))?;
                connection
                    .busy_timeout(std::time::Duration::from_secs(10))
                    .map_err(sqlite_error("open"))?;
                connection
            }
        };
        let result = work(&connection);
        lock(&self.inner.readers).push(connection);
        result
    }
}

fn last_sequence(connection: &Connection) -> Result<u64, StoreError> {
    let last: i64 = connection
        .prepare_cached("SELECT value FROM agentbus_meta WHERE key = 'last_sequence'")
        .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
        .map_err(sqlite_error("read"))?;
    Ok(last as u64)
}

fn append(connection: &mut Connection, events: &[Arc<Event>]) -> Result<Appended, StoreError> {
    let failed = sqlite_error("append");
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&failed)?;
    let mut last = last_sequence(&tx)?;
    let mut sequences = Vec::with_capacity(events.len());
    {
        let mut insert = tx.prepare_cached(INSERT).map_err(&failed)?;
        let mut data = String::new();
        let mut traceparent = String::new();
        for event in events {
            let timestamp = timestamp_nanos(event)?;
            data.clear();
            // Writing a `Value` to a String cannot fail.
            let _ = write!(data, "{}", event.data);
            let trace_context = event.trace_context.as_ref();
            if let Some(context) = trace_context {
                traceparent.clear();
                let _ = write!(traceparent, "{}", context.traceparent);
            }
            let inserted = insert
                .execute(params![
                    (last + 1) as i64,
                    &event.id.as_uuid().as_bytes()[..],
                    event.event_type.as_str(),
                    event.source_agent_id,
                    event.circle_id,
                    event.project_id,
                    event.correlation_id.map(|id| id.as_uuid().into_bytes()),
                    event.causation_id.map(|id| id.as_uuid().into_bytes()),
                    timestamp,
                    data.as_str(),
                    trace_context.map(|_| traceparent.as_str()),
                    trace_context
                        .and_then(|context| context.tracestate.as_ref())
                        .map(|state| state.as_str()),
                ])
                .map_err(&failed)?;
            if inserted == 1 {
                last += 1;
                sequences.push(Some(last));
            } else {
                sequences.push(None);
            }
        }
    }
    tx.execute(
        "UPDATE agentbus_meta SET value = ?1 WHERE key = 'last_sequence'",
        [last as i64],
    )
    .map_err(&failed)?;
    tx.commit().map_err(&failed)?;
    Ok(Appended {
        sequences,
        last_sequence: last,
    })
}

fn get(connection: &Connection, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
    let failed = sqlite_error("read");
    let mut statement = connection
        .prepare_cached(&sql::select_by_id(Dialect::Sqlite))
        .map_err(&failed)?;
    let mut rows = statement
        .query([&id.as_uuid().as_bytes()[..]])
        .map_err(&failed)?;
    rows.next().map_err(&failed)?.map(decode_row).transpose()
}

fn read(connection: &Connection, query: &ReadQuery) -> Result<Vec<StoredEvent>, StoreError> {
    let failed = sqlite_error("read");
    let Some(select) = sql::select(query, Dialect::Sqlite) else {
        return Ok(Vec::new());
    };
    let mut statement = connection.prepare_cached(&select.sql).map_err(&failed)?;
    let mut rows = statement
        .query(rusqlite::params_from_iter(select.parameters.iter()))
        .map_err(&failed)?;
    let mut events = Vec::new();
    while let Some(row) = rows.next().map_err(&failed)? {
        events.push(decode_row(row)?);
    }
    Ok(events)
}

impl rusqlite::ToSql for Parameter {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value};
        Ok(ToSqlOutput::Owned(match self {
            Parameter::Integer(value) => Value::Integer(*value),
            Parameter::Id(id) => Value::Blob(id.as_uuid().as_bytes().to_vec()),
            Parameter::Text(text) => Value::Text(text.clone()),
            Parameter::Types(_) => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    "SQLite takes a type list in the SQL, not as a parameter".into(),
                ))
            }
        }))
    }
}

fn uuid_column(
    row: &rusqlite::Row<'_>,
    index: usize,
    sequence: u64,
    field: &'static str,
) -> Result<Option<uuid::Uuid>, StoreError> {
    let bytes: Option<&[u8]> = row
        .get_ref(index)
        .and_then(|value| value.as_blob_or_null().map_err(Into::into))
        .map_err(|error| corrupt(sequence, field, Some(Arc::new(error))))?;
    bytes
        .map(|bytes| {
            uuid::Uuid::from_slice(bytes)
                .map_err(|error| corrupt(sequence, field, Some(Arc::new(error))))
        })
        .transpose()
}

/// A nullable `TEXT` column, borrowed from the row.
fn text_column<'r>(row: &'r rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Option<&'r str>> {
    row.get_ref(index)
        .and_then(|value| value.as_str_or_null().map_err(Into::into))
}

fn decode_row(row: &rusqlite::Row<'_>) -> Result<StoredEvent, StoreError> {
    let failed = sqlite_error("read");
    let sequence = row.get::<_, i64>(0).map_err(&failed)? as u64;
    let column = |field: &'static str| {
        move |error: rusqlite::Error| corrupt(sequence, field, Some(Arc::new(error)))
    };
    let id = uuid_column(row, 1, sequence, "id")?.ok_or_else(|| corrupt(sequence, "id", None))?;
    let event_type = row
        .get_ref(2)
        .and_then(|value| value.as_str().map_err(Into::into))
        .map_err(column("event_type"))?;
    let data_text = row
        .get_ref(9)
        .and_then(|value| value.as_str().map_err(Into::into))
        .map_err(column("data"))?;
    let data = serde_json::from_str(data_text)
        .map_err(|error| corrupt(sequence, "data", Some(Arc::new(error))))?;
    Columns {
        sequence,
        id,
        event_type,
        data,
        source_agent_id: row.get(3).map_err(column("source_agent_id"))?,
        circle_id: row.get(4).map_err(column("circle_id"))?,
        project_id: row.get(5).map_err(column("project_id"))?,
        correlation_id: uuid_column(row, 6, sequence, "correlation_id")?,
        causation_id: uuid_column(row, 7, sequence, "causation_id")?,
        timestamp_nanos: row.get(8).map_err(column("timestamp"))?,
        traceparent: text_column(row, 10).map_err(column("traceparent"))?,
        tracestate: text_column(row, 11).map_err(column("tracestate"))?,
    }
    .decode()
}

fn write_dead_letters(
    connection: &mut Connection,
    changes: &DeadLetterChanges,
) -> Result<(), StoreError> {
    let failed = sqlite_error("write dead letters");
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&failed)?;
    if changes.clear {
        tx.execute("DELETE FROM agentbus_dead_letters", [])
            .map_err(&failed)?;
    }
    {
        let mut upsert = tx
            .prepare_cached(&sql::upsert_dead_letter(Dialect::Sqlite))
            .map_err(&failed)?;
        for row in changes.put.iter().filter_map(LetterRow::encode) {
            let letter = row.letter;
            upsert
                .execute(params![
                    row.id(),
                    row.event,
                    letter.event().event_type.as_str(),
                    clamp_sequence(letter.subscription_id().get()),
                    letter.subscription_name(),
                    letter.error(),
                    i64::from(letter.attempts()),
                    row.first_failed_ns,
                    row.last_failed_ns,
                ])
                .map_err(&failed)?;
        }
        let mut delete = tx
            .prepare_cached("DELETE FROM agentbus_dead_letters WHERE id = ?1")
            .map_err(&failed)?;
        for &id in &changes.remove {
            delete.execute([clamp_id(id)]).map_err(&failed)?;
        }
    }
    tx.commit().map_err(&failed)
}

fn read_dead_letters(
    connection: &Connection,
    query: &DeadLetterQuery,
) -> Result<Vec<DeadLetter>, StoreError> {
    let failed = sqlite_error("read dead letters");
    let select = sql::select_dead_letters(query, Dialect::Sqlite);
    let mut statement = connection.prepare_cached(&select.sql).map_err(&failed)?;
    let mut rows = statement
        .query(rusqlite::params_from_iter(select.parameters.iter()))
        .map_err(&failed)?;
    let mut letters = Vec::new();
    while let Some(row) = rows.next().map_err(&failed)? {
        let id: i64 = row.get(0).map_err(&failed)?;
        let corrupt = |error: rusqlite::Error| StoreError::CorruptDeadLetter {
            id: id as u64,
            source: Some(Arc::new(error)),
        };
        letters.push(
            LetterColumns {
                id,
                event: text_column(row, 1).map_err(corrupt)?.unwrap_or_default(),
                subscription_number: row.get(3).map_err(corrupt)?,
                subscription_name: text_column(row, 4).map_err(corrupt)?,
                error: text_column(row, 5).map_err(corrupt)?.unwrap_or_default(),
                attempts: row.get(6).map_err(corrupt)?,
                first_failed_ns: row.get(7).map_err(corrupt)?,
                last_failed_ns: row.get(8).map_err(corrupt)?,
            }
            .decode()?,
        );
    }
    Ok(letters)
}

fn prune(
    connection: &mut Connection,
    retention: &Retention,
    now: SystemTime,
) -> Result<u64, StoreError> {
    let failed = sqlite_error("prune");
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&failed)?;
    let mut removed = 0;
    if let Some(max_events) = retention.max_events {
        let last = last_sequence(&tx)?;
        let keep_from = last.saturating_sub(max_events);
        removed += tx
            .execute(
                "DELETE FROM agentbus_events WHERE sequence <= ?1",
                [clamp_sequence(keep_from)],
            )
            .map_err(&failed)? as u64;
    }
    if let Some(cutoff) = retention.cutoff(now) {
        // Remove the prefix before the first event young enough to keep, so
        // what remains is one contiguous range of sequences.
        let first_kept: Option<i64> = tx
            .query_row(
                "SELECT min(sequence) FROM agentbus_events WHERE timestamp_ns >= ?1",
                [clamp_nanos(cutoff)],
                |row| row.get(0),
            )
            .optional()
            .map_err(&failed)?
            .flatten();
        removed += match first_kept {
            Some(first) => tx.execute("DELETE FROM agentbus_events WHERE sequence < ?1", [first]),
            None => tx.execute("DELETE FROM agentbus_events", []),
        }
        .map_err(&failed)? as u64;
    }
    tx.commit().map_err(&failed)?;
    Ok(removed)
}

impl EventStore for SqliteStore {
    fn append<'a>(
        &'a self,
        events: &'a [Arc<Event>],
    ) -> BoxFuture<'a, Result<Appended, StoreError>> {
        let store = self.clone();
        let events = events.to_vec();
        Box::pin(blocking(move || store.append_blocking(&events)))
    }

    fn append_inline(&self, events: &[Arc<Event>]) -> Option<Result<Appended, StoreError>> {
        Some(self.append_blocking(events))
    }

    fn read<'a>(
        &'a self,
        query: &'a ReadQuery,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>> {
        let store = self.clone();
        let query = query.clone();
        Box::pin(blocking(move || store.read_blocking(&query)))
    }

    fn get(&self, id: EventId) -> BoxFuture<'_, Result<Option<StoredEvent>, StoreError>> {
        let store = self.clone();
        Box::pin(blocking(move || store.get_blocking(id)))
    }

    fn last_sequence(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        let store = self.clone();
        Box::pin(blocking(move || store.last_sequence_blocking()))
    }

    fn prune<'a>(&'a self, retention: &'a Retention) -> BoxFuture<'a, Result<u64, StoreError>> {
        let store = self.clone();
        let retention = *retention;
        Box::pin(blocking(move || store.prune_blocking(&retention)))
    }

    fn dead_letter_store(&self) -> Option<&dyn DeadLetterStore> {
        Some(self)
    }
}

impl DeadLetterStore for SqliteStore {
    fn write_dead_letters<'a>(
        &'a self,
        changes: &'a DeadLetterChanges,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let store = self.clone();
        let changes = changes.clone();
        Box::pin(blocking(move || {
            store.write_dead_letters_blocking(&changes)
        }))
    }

    fn write_dead_letters_inline(
        &self,
        changes: &DeadLetterChanges,
    ) -> Option<Result<(), StoreError>> {
        Some(self.write_dead_letters_blocking(changes))
    }

    fn read_dead_letters<'a>(
        &'a self,
        query: &'a DeadLetterQuery,
    ) -> BoxFuture<'a, Result<Vec<DeadLetter>, StoreError>> {
        let store = self.clone();
        let query = query.clone();
        Box::pin(blocking(move || store.read_dead_letters_blocking(&query)))
    }

    fn read_dead_letters_inline(
        &self,
        query: &DeadLetterQuery,
    ) -> Option<Result<Vec<DeadLetter>, StoreError>> {
        Some(self.read_dead_letters_blocking(query))
    }
}
