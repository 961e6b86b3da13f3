//! Stores created by an older build (schema version 1, before the
//! trace-context columns; version 2, before the dead letters) open, keep
//! their rows, take traced events and keep dead letters.

use std::sync::Arc;

use agentbus::{DeadLetter, DeadLetterId, DeadLetterQuery, Event, EventType, TraceContext};
use agentbus_store::{DeadLetterChanges, EventStore, PostgresStore, ReadQuery, SqliteStore};
use agentbus_testkit::Postgres;

/// The SQLite schema version 1 wrote, verbatim.
const SQLITE_V1: &str = "
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
INSERT INTO agentbus_meta (key, value) VALUES ('last_sequence', 1);
INSERT INTO agentbus_events VALUES (1, x'019ab3c20000700080000000000000aa', 'task.completed',
    1, 5, NULL, NULL, NULL, 1700000000123456789, '{\"task_id\":7}');
PRAGMA user_version = 1;
";

/// The PostgreSQL schema version 1 wrote, verbatim, with one row.
const POSTGRES_V1: &str = "
CREATE TABLE agentbus_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
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
INSERT INTO agentbus_meta (key, value) VALUES ('schema_version', 1), ('last_sequence', 1);
INSERT INTO agentbus_events VALUES (1, '019ab3c2-0000-7000-8000-0000000000aa', 'task.completed',
    1, 5, NULL, NULL, NULL, 1700000000123456789, '{\"task_id\":7}');
";

fn traced() -> Event {
    Event::new(EventType::TaskCreated).with_trace_context(
        TraceContext::parse(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Some("rojo=00f067aa0ba902b7"),
        )
        .unwrap(),
    )
}

/// The old row reads back untraced, a traced event appended after the
/// migration reads back with its context, and reopening changes nothing.
async fn old_row_kept_and_new_rows_traced<S: EventStore>(store: &S) {
    let before = store.read(&ReadQuery::new()).await.unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].event.data["task_id"], 7);
    assert_eq!(before[0].event.circle_id, Some(5));
    assert_eq!(before[0].event.trace_context, None);

    let event = Arc::new(traced());
    let appended = store.append(std::slice::from_ref(&event)).await.unwrap();
    assert_eq!(appended.sequences, [Some(2)]);
    let after = store.read(&ReadQuery::new()).await.unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!(*after[1].event, *event);

    let letters = store.dead_letter_store().unwrap();
    let letter = DeadLetter::restored(DeadLetterId::new(1), event, 1, Some("exporter"));
    let changes = DeadLetterChanges::new().put(letter);
    letters.write_dead_letters(&changes).await.unwrap();
    let stored = letters
        .read_dead_letters(&DeadLetterQuery::new())
        .await
        .unwrap();
    assert_eq!(stored[0].subscription_name(), Some("exporter"));
}

/// The version-1 file of [`SQLITE_V1`] migrated to `version`.
fn sqlite_file(path: &std::path::Path, version: i64) {
    let connection = rusqlite::Connection::open(path).unwrap();
    connection.execute_batch(SQLITE_V1).unwrap();
    if version >= 2 {
        connection
            .execute_batch(
                "ALTER TABLE agentbus_events ADD COLUMN traceparent TEXT;
                 ALTER TABLE agentbus_events ADD COLUMN tracestate TEXT;
                 PRAGMA user_version = 2;",
            )
            .unwrap();
    }
}

#[tokio::test]
async fn a_version_1_sqlite_file_is_migrated_in_place() {
    sqlite_migrated_in_place(1).await;
}

#[tokio::test]
async fn a_version_2_sqlite_file_is_migrated_in_place() {
    sqlite_migrated_in_place(2).await;
}

async fn sqlite_migrated_in_place(from: i64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    sqlite_file(&path, from);

    let store = SqliteStore::open_existing(&path).unwrap();
    old_row_kept_and_new_rows_traced(&store).await;
    drop(store);

    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 3);
    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(reopened.read(&ReadQuery::new()).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_version_1_postgres_database_is_migrated_in_place() {
    postgres_migrated_in_place(1).await;
}

#[tokio::test]
async fn a_version_2_postgres_database_is_migrated_in_place() {
    postgres_migrated_in_place(2).await;
}

async fn postgres_migrated_in_place(from: i64) {
    let Some(cluster) = Postgres::shared_or_skip("agentbus-store migration (PostgreSQL)") else {
        return;
    };
    let url = cluster.create_database();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    client.batch_execute(POSTGRES_V1).await.unwrap();
    if from >= 2 {
        client
            .batch_execute(
                "ALTER TABLE agentbus_events ADD COLUMN traceparent TEXT;
                 ALTER TABLE agentbus_events ADD COLUMN tracestate TEXT;
                 UPDATE agentbus_meta SET value = 2 WHERE key = 'schema_version';",
            )
            .await
            .unwrap();
    }

    let store = PostgresStore::connect_existing(&url).await.unwrap();
    old_row_kept_and_new_rows_traced(&store).await;
    drop(store);

    let version: i64 = client
        .query_one(
            "SELECT value FROM agentbus_meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 3);
    let reopened = PostgresStore::connect(&url).await.unwrap();
    assert_eq!(reopened.read(&ReadQuery::new()).await.unwrap().len(), 2);
    drop(client);
    connection.await.unwrap().unwrap();
}
