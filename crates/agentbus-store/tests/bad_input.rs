//! Bad input gets a typed error naming what and where, never a panic, and
//! the rest of the store stays readable.

use std::sync::Arc;
use std::time::Duration;

use agentbus::{EventBus, EventId};
use agentbus_store::{
    EventStore, PostgresStore, Projection, ReadQuery, Recorder, SqliteStore, StoreError,
};
use agentbus_testkit::store::collect_within;
use agentbus_testkit::traffic::numbered;
use agentbus_testkit::{free_port, Postgres};

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let content = "these are my notes, not a database\n".repeat(200);
    std::fs::write(&path, &content).unwrap();
    let error = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(&error, StoreError::NotADatabase { path: p, .. } if p.ends_with("notes.txt")),
        "{error:?}"
    );
    assert!(error.to_string().contains("notes.txt"), "{error}");
    assert!(std::error::Error::source(&error).is_some());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), content);
}

#[test]
fn a_store_of_a_newer_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    drop(SqliteStore::open(&path).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let error = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::SchemaTooNew {
                found: 99,
                supported: 3,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("events.db"), "{error}");
}

/// `open_existing` creates nothing: a missing file is `NotFound` (and stays
/// missing); a path SQLite cannot open although it exists (a directory) is
/// a backend error, not `NotFound`.
#[test]
fn open_existing_tells_a_missing_store_from_one_that_cannot_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let error = SqliteStore::open_existing(&missing).unwrap_err();
    assert!(
        matches!(&error, StoreError::NotFound { location } if location.ends_with("missing.db")),
        "{error:?}"
    );
    assert!(!missing.exists());

    let error = SqliteStore::open_existing(dir.path()).unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Backend {
                backend: "sqlite",
                operation: "open",
                ..
            }
        ),
        "{error:?}"
    );
}

/// Five events, the third rewritten as a type this build does not know and
/// the fourth with a payload that is not JSON; with the five ids.
async fn damaged_sqlite() -> (tempfile::TempDir, SqliteStore, Vec<EventId>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).unwrap();
    let events: Vec<_> = (0..5).map(|n| Arc::new(numbered(n))).collect();
    store.append(&events).await.unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute(
        "UPDATE agentbus_events SET event_type = 'memory.forgotten' WHERE sequence = 3",
        [],
    )
    .unwrap();
    raw.execute(
        "UPDATE agentbus_events SET data = '{not json' WHERE sequence = 4",
        [],
    )
    .unwrap();
    (dir, store, events.iter().map(|event| event.id).collect())
}

async fn rows_that_do_not_decode_are_typed_errors_and_the_rest_reads<S: EventStore + Clone>(
    store: S,
    ids: &[EventId],
    corrupt_field: &str,
) {
    // Read by id: a bad row is the same typed error, its neighbours read.
    let error = store.get(ids[2]).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::UnknownEventType { sequence: 3, event_type } if event_type == "memory.forgotten"),
        "{error:?}"
    );
    let error = store.get(ids[3]).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt { sequence: 4, field, .. } if *field == corrupt_field),
        "{error:?}"
    );
    assert!(error.to_string().starts_with("stored event 4 "), "{error}");
    for (index, id) in [(0, ids[0]), (1, ids[1]), (4, ids[4])] {
        let stored = store.get(id).await.unwrap().expect("a readable row");
        assert_eq!((stored.sequence, stored.event.id), (index + 1, id));
    }

    let error = store.read(&ReadQuery::new()).await.unwrap_err();
    match &error {
        StoreError::UnknownEventType {
            sequence,
            event_type,
        } => assert_eq!((*sequence, event_type.as_str()), (3, "memory.forgotten")),
        other => panic!("expected UnknownEventType, got {other:?}"),
    }
    assert_eq!(error.sequence(), Some(3));
    assert_eq!(
        error.to_string(),
        "stored event 3 has unknown event type `memory.forgotten`"
    );
    let before: Vec<u64> = store
        .read(&ReadQuery::new().up_to(2))
        .await
        .unwrap()
        .iter()
        .map(|s| s.sequence)
        .collect();
    assert_eq!(before, vec![1, 2]);
    let after = store.read(&ReadQuery::new().after(4)).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].sequence, 5);

    // A projection stops at the bad row, saying where.
    let mut count = Projection::new(0, ReadQuery::new(), |n: &mut u32, _: &_| *n += 1);
    let error = count.catch_up(&store).await.unwrap_err();
    assert_eq!(error.sequence(), Some(3));
    assert_eq!((*count.state(), count.sequence()), (2, 2));

    // A catch-up stream yields each bad row as an error and goes on. (Last:
    // it runs on a runtime of its own, and pooled PostgreSQL connections
    // opened there end with it.)
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, store.clone());
    let items = collect_within(
        recorder.subscribe_from(0, ReadQuery::new()),
        5,
        Duration::from_secs(30),
    )
    .await;
    let summary: Vec<Result<u64, Option<u64>>> = items
        .iter()
        .map(|item| match item {
            Ok(stored) => Ok(stored.sequence),
            Err(error) => Err(error.sequence()),
        })
        .collect();
    assert_eq!(
        summary,
        vec![Ok(1), Ok(2), Err(Some(3)), Err(Some(4)), Ok(5)]
    );
    assert!(
        matches!(&items[3], Err(StoreError::Corrupt { field, .. }) if *field == corrupt_field),
        "{:?}",
        items[3]
    );
}

#[tokio::test]
async fn sqlite_rows_that_do_not_decode_are_typed_errors_and_the_rest_reads() {
    let (_dir, store, ids) = damaged_sqlite().await;
    rows_that_do_not_decode_are_typed_errors_and_the_rest_reads(store, &ids, "data").await;
}

#[tokio::test]
async fn postgres_rows_that_do_not_decode_are_typed_errors_and_the_rest_reads() {
    let Some(cluster) = Postgres::shared_or_skip("agentbus-store bad input (PostgreSQL)") else {
        return;
    };
    let url = cluster.create_database();
    let store = PostgresStore::connect(&url).await.unwrap();
    let events: Vec<_> = (0..5).map(|n| Arc::new(numbered(n))).collect();
    store.append(&events).await.unwrap();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // jsonb holds only valid JSON, so the column types guard the payload;
    // what a newer or broken writer can still leave is an unknown type name
    // or a missing one.
    client
        .batch_execute(
            "UPDATE agentbus_events SET event_type = 'memory.forgotten' WHERE sequence = 3;
             ALTER TABLE agentbus_events ALTER COLUMN event_type DROP NOT NULL;
             UPDATE agentbus_events SET event_type = NULL WHERE sequence = 4;",
        )
        .await
        .unwrap();
    let ids: Vec<EventId> = events.iter().map(|event| event.id).collect();
    assert_eq!(
        store.location(),
        format!(
            "127.0.0.1:{}/{}",
            cluster.port(),
            url.rsplit('/').next().unwrap()
        )
    );
    let shown = format!("{store:?}");
    assert!(
        shown.starts_with("PostgresStore")
            && shown.contains(&format!("127.0.0.1:{}", cluster.port())),
        "{shown}"
    );
    rows_that_do_not_decode_are_typed_errors_and_the_rest_reads(store, &ids, "event_type").await;
}

/// Rows another writer left: a trace state without its traceparent is
/// `Corrupt` naming the trace context (not read as no trace at all), and a
/// timestamp before 1970 (which this crate never writes) reads back as the
/// time it says, not as one after 1970.
#[tokio::test]
async fn rows_with_a_lone_trace_state_or_a_timestamp_before_1970_read_as_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).unwrap();
    let events: Vec<_> = (0..2).map(|n| Arc::new(numbered(n))).collect();
    store.append(&events).await.unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute(
        "UPDATE agentbus_events SET traceparent = NULL, tracestate = 'vendor=1' WHERE sequence = 1",
        [],
    )
    .unwrap();
    raw.execute(
        "UPDATE agentbus_events SET timestamp_ns = -1500000000 WHERE sequence = 2",
        [],
    )
    .unwrap();

    let error = store.get(events[0].id).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt { sequence: 1, field, .. } if *field == "trace_context"),
        "{error:?}"
    );
    let early = store.get(events[1].id).await.unwrap().unwrap();
    assert_eq!(
        early.event.timestamp,
        std::time::UNIX_EPOCH - Duration::from_millis(1500)
    );
}

/// A value over SQLite's size limit ("string or blob too big") is
/// `Rejected`, which the recorder skips instead of retrying for ever. (A
/// trigger added from outside, as another program could, makes SQLite refuse
/// events whose data holds "poison": `EventStore::check` cannot foresee it.)
#[tokio::test]
async fn sqlite_refusing_the_data_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON agentbus_events \
             WHEN instr(NEW.data, 'poison') > 0 BEGIN SELECT zeroblob(2000000000); END",
        )
        .unwrap();
    let poison = Arc::new(numbered(1).with_data(serde_json::json!({"poison": 1})));
    let error = store.append(&[poison]).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Rejected {
                backend: "sqlite",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        store
            .append(&[Arc::new(numbered(2))])
            .await
            .unwrap()
            .last_sequence,
        1
    );
}

/// A write PostgreSQL refuses as a data exception (class 22; here a column
/// narrowed under the store, so every row's binary value is malformed) is
/// `Rejected`, which the recorder skips instead of retrying for ever; any
/// other failure of an append (its table gone, class 42) is a `Backend`
/// error, which it retries.
#[tokio::test]
async fn postgres_refusing_the_data_is_rejected_and_other_failures_are_backend_errors() {
    let Some(cluster) = Postgres::shared_or_skip("agentbus-store bad input (PostgreSQL)") else {
        return;
    };
    let url = cluster.create_database();
    let store = PostgresStore::connect(&url).await.unwrap();
    assert_eq!(
        store
            .append(&[Arc::new(numbered(1))])
            .await
            .unwrap()
            .last_sequence,
        1
    );
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);

    client
        .batch_execute("ALTER TABLE agentbus_events ALTER COLUMN circle_id TYPE INTEGER")
        .await
        .unwrap();
    let error = store.append(&[Arc::new(numbered(2))]).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Rejected {
                backend: "postgres",
                ..
            }
        ),
        "{error:?}"
    );

    client
        .batch_execute("ALTER TABLE agentbus_events RENAME TO agentbus_events_gone")
        .await
        .unwrap();
    let error = store.append(&[Arc::new(numbered(3))]).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Backend {
                backend: "postgres",
                operation: "append",
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn postgres_of_a_newer_schema_version_is_refused() {
    let Some(cluster) = Postgres::shared_or_skip("agentbus-store bad input (PostgreSQL)") else {
        return;
    };
    let url = cluster.create_database();
    drop(PostgresStore::connect(&url).await.unwrap());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("UPDATE agentbus_meta SET value = 7 WHERE key = 'schema_version'")
        .await
        .unwrap();
    let error = PostgresStore::connect(&url).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::SchemaTooNew {
                found: 7,
                supported: 3,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains(&format!("127.0.0.1:{}", cluster.port())),
        "{error}"
    );
}

#[tokio::test]
async fn postgres_unreachable_is_a_backend_error() {
    let port = free_port();
    let error = PostgresStore::connect(&format!("postgres://postgres@127.0.0.1:{port}/x"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Backend {
                backend: "postgres",
                ..
            }
        ),
        "{error:?}"
    );
    let error = PostgresStore::connect("postgres://[not a url")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Backend {
                operation: "parse url",
                ..
            }
        ),
        "{error:?}"
    );
}
