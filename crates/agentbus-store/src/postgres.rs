//! [`PostgresStore`]: the audit-trail backend, PostgreSQL through a pool of
//! tokio-postgres connections, batches written with binary COPY.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agentbus::{DeadLetter, DeadLetterQuery, Event, EventId};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::dead_letters::{clamp_id, DeadLetterChanges, DeadLetterStore, LetterColumns, LetterRow};
use crate::error::StoreError;
use crate::query::ReadQuery;
use crate::sql::{self, clamp_nanos, Dialect, Parameter};
use crate::store::{Appended, BoxFuture, EventStore, Retention};
use crate::stored::{timestamp_nanos, Columns, StoredEvent};

/// The schema version this build writes and reads (`agentbus_meta`): 1 is
/// [`SCHEMA`], 2 adds the trace-context columns
/// ([`sql::ADD_TRACE_CONTEXT`]), 3 the dead letters
/// ([`sql::ADD_DEAD_LETTERS`]). Connecting to an older database migrates it.
pub(crate) const POSTGRES_SCHEMA_VERSION: i64 = 3;

/// Serialises migrations of concurrent first connections.
const MIGRATION_LOCK: i64 = 0x6167_656e_7462_7573;

/// Version 1 of the schema; later versions are steps applied on top.
const SCHEMA: &str = "
CREATE TABLE agentbus_events (
    sequence        BIGINT PRIMARY KEY,
    id              UUID NOT NULL UNIQUE,
    event_type      TEXT NOT NULL,
    source_agent_id BIGINT,
    circle_id       BIGINT,
    project_id      BIGINT,
    correlation_id  UUID,
    causation_id    UUID,
    timestamp_ns    BIGINT NOT NULL,
    data            JSON NOT NULL
);
CREATE INDEX agentbus_events_correlation ON agentbus_events (correlation_id)
    WHERE correlation_id IS NOT NULL;
INSERT INTO agentbus_meta (key, value) VALUES ('schema_version', 1), ('last_sequence', 0);
";

const COPY: &str = "COPY agentbus_events (sequence, id, event_type, source_agent_id, circle_id, \
    project_id, correlation_id, causation_id, timestamp_ns, data, traceparent, tracestate) \
    FROM STDIN BINARY";

const COPY_TYPES: [Type; 12] = [
    Type::INT8,
    Type::UUID,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::UUID,
    Type::UUID,
    Type::INT8,
    Type::JSON,
    Type::TEXT,
    Type::TEXT,
];

/// The PostgreSQL store: one table of events and one of metadata in the
/// database of the URL, created and migrated on connect.
///
/// A cheap handle: clones share one connection pool (up to 16 connections,
/// 5 s to connect). Writers serialise on the metadata row that holds the
/// sequence counter, so sequences stay gap-free and in commit order with
/// several processes writing; readers never wait for writers. A connection
/// the server closed is replaced on its next use, so the store recovers by
/// itself once the server is back.
///
/// ```no_run
/// use agentbus::EventBus;
/// use agentbus_store::{PostgresStore, Recorder};
///
/// # async fn demo() -> Result<(), agentbus_store::StoreError> {
/// let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/events").await?;
/// let recorder = Recorder::attach(&EventBus::new(), store.clone());
/// recorder.flush().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    location: Arc<str>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("location", &self.location)
            .finish()
    }
}

fn pg_error(operation: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |error| {
        // Class 22 (data exception) and 54 (program limit exceeded, e.g. a
        // row too large): the data itself is refused, no retry will help.
        let refused = error
            .code()
            .is_some_and(|code| code.code().starts_with("22") || code.code().starts_with("54"));
        if refused && operation == "append" {
            StoreError::Rejected {
                backend: "postgres",
                source: Arc::new(error),
            }
        } else {
            StoreError::backend("postgres", operation, error)
        }
    }
}

fn pool_error(operation: &'static str) -> impl Fn(deadpool_postgres::PoolError) -> StoreError {
    move |error| StoreError::backend("postgres", operation, error)
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`,
    /// or key=value form) and creates or migrates the schema.
    ///
    /// Fails with [`StoreError::SchemaTooNew`] if a newer build created the
    /// schema, and [`StoreError::Backend`] if the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let store = Self::pooled(url)?;
        store.migrate().await?;
        Ok(store)
    }

    /// [`connect`](Self::connect) for reading an existing store: a database
    /// without the agentbus schema is [`StoreError::NotFound`], and nothing
    /// is created in it.
    pub async fn connect_existing(url: &str) -> Result<Self, StoreError> {
        let store = Self::pooled(url)?;
        let client = store.pool.get().await.map_err(pool_error("connect"))?;
        let exists: bool = client
            .query_one("SELECT to_regclass('agentbus_meta') IS NOT NULL", &[])
            .await
            .map_err(pg_error("open"))?
            .get(0);
        drop(client);
        if !exists {
            return Err(StoreError::NotFound {
                location: store.location.to_string(),
            });
        }
        store.migrate().await?;
        Ok(store)
    }

    /// The pool, not yet connected.
    fn pooled(url: &str) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|error| StoreError::backend("postgres", "parse url", error))?;
        config.connect_timeout(Duration::from_secs(5));
        let location = describe(&config);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(5)))
            .wait_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(|error| StoreError::backend("postgres", "connect", error))?;
        Ok(Self {
            pool,
            location: location.into(),
        })
    }

    /// Where the store lives: `host:port/database` (no credentials).
    pub fn location(&self) -> &str {
        &self.location
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let failed = pg_error("migrate");
        let mut client = self.pool.get().await.map_err(pool_error("connect"))?;
        let tx = client.transaction().await.map_err(&failed)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(&failed)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS agentbus_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
        )
        .await
        .map_err(&failed)?;
        let version: Option<i64> = tx
            .query_opt(
                "SELECT value FROM agentbus_meta WHERE key = 'schema_version'",
                &[],
            )
            .await
            .map_err(&failed)?
            .map(|row| row.get(0));
        let version = match version {
            Some(found) if found > POSTGRES_SCHEMA_VERSION => {
                return Err(StoreError::SchemaTooNew {
                    location: self.location.to_string(),
                    found,
                    supported: POSTGRES_SCHEMA_VERSION,
                })
            }
            Some(found) => found,
            None => {
                tx.batch_execute(SCHEMA).await.map_err(&failed)?;
                1
            }
        };
        if version < 2 {
            tx.batch_execute(sql::ADD_TRACE_CONTEXT)
                .await
                .map_err(&failed)?;
        }
        if version < 3 {
            tx.batch_execute(sql::ADD_DEAD_LETTERS)
                .await
                .map_err(&failed)?;
        }
        if version < POSTGRES_SCHEMA_VERSION {
            tx.execute(
                "UPDATE agentbus_meta SET value = $1 WHERE key = 'schema_version'",
                &[&POSTGRES_SCHEMA_VERSION],
            )
            .await
            .map_err(&failed)?;
        }
        tx.commit().await.map_err(&failed)
    }

    async fn append_events(&self, events: &[Arc<Event>]) -> Result<Appended, StoreError> {
        for event in events {
            timestamp_nanos(event)?;
        }
        let mut client = self.pool.get().await.map_err(pool_error("append"))?;
        // Repeats within the batch are left out up front; ids stored
        // earlier are rare (a replay into the same store, a batch retried
        // after its commit's reply was lost), so the batch is first copied
        // optimistically and only a unique violation takes the slow path,
        // which looks the ids up first.
        let mut seen = HashSet::with_capacity(events.len());
        let fresh: Vec<bool> = events
            .iter()
            .map(|event| seen.insert(event.id.as_uuid()))
            .collect();
        match self.copy_batch(&mut client, events, &fresh).await {
            Err(error) if is_unique_violation(&error) => {}
            other => return other.map_err(pg_error("append")),
        }
        let mut fresh = fresh;
        let ids: Vec<Uuid> = events.iter().map(|event| event.id.as_uuid()).collect();
        let stored: HashSet<Uuid> = client
            .query("SELECT id FROM agentbus_events WHERE id = ANY($1)", &[&ids])
            .await
            .map_err(pg_error("append"))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        for (fresh, event) in fresh.iter_mut().zip(events) {
            *fresh &= !stored.contains(&event.id.as_uuid());
        }
        self.copy_batch(&mut client, events, &fresh)
            .await
            .map_err(pg_error("append"))
    }

    /// Copies the `fresh` events in one transaction, numbering them after
    /// the counter row, whose lock serialises writers until commit: so
    /// sequences are gap-free (a rollback undoes the increment) and in
    /// commit order.
    async fn copy_batch(
        &self,
        client: &mut deadpool_postgres::Object,
        events: &[Arc<Event>],
        fresh: &[bool],
    ) -> Result<Appended, tokio_postgres::Error> {
        let count = fresh.iter().filter(|fresh| **fresh).count() as i64;
        let tx = client.transaction().await?;
        let last: i64 = tx
            .query_one(
                "UPDATE agentbus_meta SET value = value + $1 WHERE key = 'last_sequence' RETURNING value",
                &[&count],
            )
            .await?
            .get(0);
        let mut sequence = last - count;
        let mut sequences = Vec::with_capacity(events.len());
        if count > 0 {
            let sink = tx.copy_in(COPY).await?;
            let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &COPY_TYPES));
            for (event, fresh) in events.iter().zip(fresh) {
                if !fresh {
                    sequences.push(None);
                    continue;
                }
                sequence += 1;
                sequences.push(Some(sequence as u64));
                let id = event.id.as_uuid();
                let correlation = event.correlation_id.map(|id| id.as_uuid());
                let causation = event.causation_id.map(|id| id.as_uuid());
                // Checked by `append_events` before the transaction.
                let timestamp = timestamp_nanos(event).unwrap_or(i64::MAX);
                let traceparent = event
                    .trace_context
                    .as_ref()
                    .map(|context| context.traceparent.to_string());
                let tracestate = event
                    .trace_context
                    .as_ref()
                    .and_then(|context| context.tracestate.as_ref())
                    .map(|state| state.as_str());
                let row: [&(dyn ToSql + Sync); 12] = [
                    &sequence,
                    &id,
                    &event.event_type.as_str(),
                    &event.source_agent_id,
                    &event.circle_id,
                    &event.project_id,
                    &correlation,
                    &causation,
                    &timestamp,
                    &event.data,
                    &traceparent,
                    &tracestate,
                ];
                writer.as_mut().write(&row).await?;
            }
            writer.finish().await?;
        } else {
            sequences.resize(events.len(), None);
        }
        tx.commit().await?;
        Ok(Appended {
            sequences,
            last_sequence: last as u64,
        })
    }

    async fn read_events(&self, query: &ReadQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let failed = pg_error("read");
        let Some(select) = sql::select(query, Dialect::Postgres) else {
            return Ok(Vec::new());
        };
        let client = self.pool.get().await.map_err(pool_error("read"))?;
        let statement = client.prepare_cached(&select.sql).await.map_err(&failed)?;
        let parameters = boxed(select.parameters);
        let parameters = borrowed(&parameters);
        let rows = client
            .query(&statement, &parameters)
            .await
            .map_err(&failed)?;
        rows.iter().map(decode_row).collect()
    }

    async fn get_event(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        let failed = pg_error("read");
        let client = self.pool.get().await.map_err(pool_error("read"))?;
        let statement = client
            .prepare_cached(&sql::select_by_id(Dialect::Postgres))
            .await
            .map_err(&failed)?;
        let row = client
            .query_opt(&statement, &[&id.as_uuid()])
            .await
            .map_err(&failed)?;
        row.as_ref().map(decode_row).transpose()
    }

    async fn last_sequence_value(&self) -> Result<u64, StoreError> {
        let client = self.pool.get().await.map_err(pool_error("read"))?;
        let row = client
            .query_one(
                "SELECT value FROM agentbus_meta WHERE key = 'last_sequence'",
                &[],
            )
            .await
            .map_err(pg_error("read"))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn prune_events(&self, retention: &Retention) -> Result<u64, StoreError> {
        let failed = pg_error("prune");
        let mut client = self.pool.get().await.map_err(pool_error("prune"))?;
        let tx = client.transaction().await.map_err(&failed)?;
        let mut removed = 0;
        if let Some(max_events) = retention.max_events {
            let last: i64 = tx
                .query_one(
                    "SELECT value FROM agentbus_meta WHERE key = 'last_sequence'",
                    &[],
                )
                .await
                .map_err(&failed)?
                .get(0);
            let keep_from = (last as u64).saturating_sub(max_events) as i64;
            removed += tx
                .execute(
                    "DELETE FROM agentbus_events WHERE sequence <= $1",
                    &[&keep_from],
                )
                .await
                .map_err(&failed)?;
        }
        if let Some(cutoff) = retention.cutoff(SystemTime::now()) {
            // The prefix before the first event young enough to keep: what
            // remains is one contiguous range.
            removed += tx
                .execute(
                    "DELETE FROM agentbus_events WHERE sequence < COALESCE(
                        (SELECT min(sequence) FROM agentbus_events WHERE timestamp_ns >= $1),
                        9223372036854775807)",
                    &[&clamp_nanos(cutoff)],
                )
                .await
                .map_err(&failed)?;
        }
        tx.commit().await.map_err(&failed)?;
        Ok(removed)
    }
}

type Boxed = Box<dyn ToSql + Sync + Send>;

/// The parameters of a rendered [`sql::Select`], as tokio-postgres binds them.
fn boxed(parameters: Vec<Parameter>) -> Vec<Boxed> {
    parameters
        .into_iter()
        .map(|parameter| -> Boxed {
            match parameter {
                Parameter::Integer(value) => Box::new(value),
                Parameter::Id(id) => Box::new(id.as_uuid()),
                Parameter::Text(text) => Box::new(text),
                Parameter::Types(names) => Box::new(names),
            }
        })
        .collect()
}

fn borrowed(parameters: &[Boxed]) -> Vec<&(dyn ToSql + Sync)> {
    parameters
        .iter()
        .map(|p| &**p as &(dyn ToSql + Sync))
        .collect()
}

/// PostgreSQL text cannot hold NUL: a handler's error or a name with one
/// is stored with U+FFFD in its place.
fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{fffd}").into()
    } else {
        text.into()
    }
}

impl PostgresStore {
    async fn write_letters(&self, changes: &DeadLetterChanges) -> Result<(), StoreError> {
        let failed = pg_error("write dead letters");
        let mut client = self
            .pool
            .get()
            .await
            .map_err(pool_error("write dead letters"))?;
        let tx = client.transaction().await.map_err(&failed)?;
        if changes.clear {
            tx.execute("DELETE FROM agentbus_dead_letters", &[])
                .await
                .map_err(&failed)?;
        }
        let upsert = tx
            .prepare_cached(&sql::upsert_dead_letter(Dialect::Postgres))
            .await
            .map_err(&failed)?;
        for row in changes.put.iter().filter_map(LetterRow::encode) {
            let letter = row.letter;
            let subscription = sql::clamp_sequence(letter.subscription_id().get());
            let name = letter.subscription_name().map(storable);
            let error = storable(letter.error());
            let attempts = i64::from(letter.attempts());
            tx.execute(
                &upsert,
                &[
                    &row.id(),
                    &row.event,
                    &letter.event().event_type.as_str(),
                    &subscription,
                    &name.as_deref(),
                    &&*error,
                    &attempts,
                    &row.first_failed_ns,
                    &row.last_failed_ns,
                ],
            )
            .await
            .map_err(&failed)?;
        }
        if !changes.remove.is_empty() {
            let ids: Vec<i64> = changes.remove.iter().copied().map(clamp_id).collect();
            tx.execute(
                "DELETE FROM agentbus_dead_letters WHERE id = ANY($1)",
                &[&ids],
            )
            .await
            .map_err(&failed)?;
        }
        tx.commit().await.map_err(&failed)
    }

    async fn read_letters(&self, query: &DeadLetterQuery) -> Result<Vec<DeadLetter>, StoreError> {
        let failed = pg_error("read dead letters");
        let select = sql::select_dead_letters(query, Dialect::Postgres);
        let client = self
            .pool
            .get()
            .await
            .map_err(pool_error("read dead letters"))?;
        let statement = client.prepare_cached(&select.sql).await.map_err(&failed)?;
        let parameters = boxed(select.parameters);
        let rows = client
            .query(&statement, &borrowed(&parameters))
            .await
            .map_err(&failed)?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get(0).map_err(&failed)?;
                let corrupt = |error: tokio_postgres::Error| StoreError::CorruptDeadLetter {
                    id: id as u64,
                    source: Some(Arc::new(error)),
                };
                LetterColumns {
                    id,
                    event: row.try_get(1).map_err(corrupt)?,
                    subscription_number: row.try_get(3).map_err(corrupt)?,
                    subscription_name: row.try_get(4).map_err(corrupt)?,
                    error: row.try_get(5).map_err(corrupt)?,
                    attempts: row.try_get(6).map_err(corrupt)?,
                    first_failed_ns: row.try_get(7).map_err(corrupt)?,
                    last_failed_ns: row.try_get(8).map_err(corrupt)?,
                }
                .decode()
            })
            .collect()
    }
}

fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config.get_dbname().unwrap_or("");
    format!("{host}:{port}/{database}")
}

fn decode_row(row: &tokio_postgres::Row) -> Result<StoredEvent, StoreError> {
    let failed = pg_error("read");
    let sequence = row.try_get::<_, i64>(0).map_err(&failed)? as u64;
    let column = |field: &'static str| {
        move |error: tokio_postgres::Error| {
            crate::stored::corrupt(sequence, field, Some(Arc::new(error)))
        }
    };
    Columns {
        sequence,
        id: row.try_get(1).map_err(column("id"))?,
        event_type: row.try_get(2).map_err(column("event_type"))?,
        source_agent_id: row.try_get(3).map_err(column("source_agent_id"))?,
        circle_id: row.try_get(4).map_err(column("circle_id"))?,
        project_id: row.try_get(5).map_err(column("project_id"))?,
        correlation_id: row.try_get(6).map_err(column("correlation_id"))?,
        causation_id: row.try_get(7).map_err(column("causation_id"))?,
        timestamp_nanos: row.try_get(8).map_err(column("timestamp"))?,
        data: row.try_get(9).map_err(column("data"))?,
        traceparent: row.try_get(10).map_err(column("traceparent"))?,
        tracestate: row.try_get(11).map_err(column("tracestate"))?,
    }
    .decode()
}

impl EventStore for PostgresStore {
    fn append<'a>(
        &'a self,
        events: &'a [Arc<Event>],
    ) -> BoxFuture<'a, Result<Appended, StoreError>> {
        Box::pin(self.append_events(events))
    }

    fn read<'a>(
        &'a self,
        query: &'a ReadQuery,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>> {
        Box::pin(self.read_events(query))
    }

    fn get(&self, id: EventId) -> BoxFuture<'_, Result<Option<StoredEvent>, StoreError>> {
        Box::pin(self.get_event(id))
    }

    fn last_sequence(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.last_sequence_value())
    }

    fn prune<'a>(&'a self, retention: &'a Retention) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(self.prune_events(retention))
    }

    fn dead_letter_store(&self) -> Option<&dyn DeadLetterStore> {
        Some(self)
    }
}

impl DeadLetterStore for PostgresStore {
    fn write_dead_letters<'a>(
        &'a self,
        changes: &'a DeadLetterChanges,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.write_letters(changes))
    }

    fn read_dead_letters<'a>(
        &'a self,
        query: &'a DeadLetterQuery,
    ) -> BoxFuture<'a, Result<Vec<DeadLetter>, StoreError>> {
        Box::pin(self.read_letters(query))
    }
}
