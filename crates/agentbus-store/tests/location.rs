//! A store location parses from the strings the docs name, shows itself as
//! it parses (`Display`) and as its variant (`Debug`), a PostgreSQL
//! password redacted in both, and a string it does not know is a typed
//! error naming it, redacted.

use std::path::PathBuf;

use agentbus_store::{is_postgres_location, StoreLocation};

#[test]
fn each_location_parses_and_shows_itself_as_it_parses() {
    for (text, location, shown) in [
        (
            "sqlite:events.db",
            StoreLocation::Sqlite(PathBuf::from("events.db")),
            "sqlite:events.db",
        ),
        (
            "sqlite:///var/lib/agentbus/events.db",
            StoreLocation::Sqlite(PathBuf::from("/var/lib/agentbus/events.db")),
            "sqlite:/var/lib/agentbus/events.db",
        ),
        ("memory", StoreLocation::Memory, "memory"),
        (
            "postgres://app@127.0.0.1/events",
            StoreLocation::Postgres("postgres://app@127.0.0.1/events".into()),
            "postgres://app@127.0.0.1/events",
        ),
        (
            "postgresql://app:hunter2@127.0.0.1/events",
            StoreLocation::Postgres("postgresql://app:hunter2@127.0.0.1/events".into()),
            "postgresql://app:***@127.0.0.1/events",
        ),
        (
            "host=127.0.0.1 user=app dbname=events",
            StoreLocation::Postgres("host=127.0.0.1 user=app dbname=events".into()),
            "host=127.0.0.1 user=app dbname=events",
        ),
    ] {
        let parsed: StoreLocation = text.parse().unwrap();
        assert_eq!(parsed, location, "{text}");
        assert_eq!(parsed.to_string(), shown, "{text}");
        // What is shown parses back to the same place (but for a password).
        if !text.contains("hunter2") {
            assert_eq!(shown.parse::<StoreLocation>().unwrap(), location);
        }
    }
}

#[test]
fn debug_shows_the_variant_and_never_the_password() {
    let file: StoreLocation = "sqlite:events.db".parse().unwrap();
    assert_eq!(format!("{file:?}"), r#"Sqlite("events.db")"#);
    assert_eq!(format!("{:?}", StoreLocation::Memory), "Memory");
    let database: StoreLocation = "postgres://app:hunter2@127.0.0.1/events".parse().unwrap();
    let shown = format!("{database:?}");
    assert!(shown.starts_with("Postgres("), "{shown}");
    assert!(
        shown.contains("postgres://app:***@127.0.0.1/events"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn postgres_is_told_by_its_scheme_or_its_first_keyword() {
    for postgres in [
        "postgres://app@127.0.0.1/events",
        "postgresql://127.0.0.1",
        "host=127.0.0.1 user=app password=x dbname=events",
        "  dbname = events",
        "application_name=agentbus",
    ] {
        assert!(is_postgres_location(postgres), "{postgres}");
        assert!(
            matches!(postgres.parse(), Ok(StoreLocation::Postgres(_))),
            "{postgres}"
        );
    }
    for other in [
        "sqlite:events.db",
        "backup=1.db",
        "host",
        "hostname=db",
        "mysql://app@db",
        "",
    ] {
        assert!(!is_postgres_location(other), "{other}");
    }
}

#[test]
fn an_unknown_location_is_an_error_naming_it_redacted() {
    for (text, named) in [
        ("mysql://app:hunter2@db/events", "mysql://app:***@db/events"),
        ("sqlite:", "sqlite:"),
        ("events.db", "events.db"),
    ] {
        let error = text.parse::<StoreLocation>().unwrap_err();
        assert_eq!(error.location(), named, "{text}");
        assert_eq!(
            error.to_string(),
            format!(
                "unsupported store location `{named}`: expected `sqlite:PATH`, `postgres://...` or `memory`"
            )
        );
    }
}

#[tokio::test]
async fn memory_opens_an_empty_store_that_keeps_what_it_is_given() {
    let store = StoreLocation::Memory.open().await.unwrap();
    assert_eq!(store.last_sequence().await.unwrap(), 0);
    let event = std::sync::Arc::new(agentbus::Event::new(agentbus::EventType::TaskCreated));
    store.append(&[event]).await.unwrap();
    assert_eq!(store.last_sequence().await.unwrap(), 1);
    let existing = StoreLocation::Memory.open_existing().await.unwrap();
    assert_eq!(existing.last_sequence().await.unwrap(), 0, "a fresh one");
}

#[tokio::test]
async fn a_postgres_location_opens_through_postgres() {
    let port = agentbus_testkit::free_port();
    let location: StoreLocation = format!("postgres://app@127.0.0.1:{port}/events")
        .parse()
        .unwrap();
    let Err(error) = location.open().await else {
        panic!("nothing listens on port {port}")
    };
    assert!(
        matches!(
            error,
            agentbus_store::StoreError::Backend {
                backend: "postgres",
                ..
            }
        ),
        "{error:?}"
    );
}

/// A SQLite store says where it lives: the path it was opened at (also by
/// `open_existing`), or `:memory:`.
#[test]
fn a_sqlite_store_tells_where_it_lives() {
    use agentbus_store::SqliteStore;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.location(), path.display().to_string());
    drop(store);
    let existing = SqliteStore::open_existing(&path).unwrap();
    assert_eq!(existing.location(), path.display().to_string());
    assert_eq!(
        SqliteStore::open_in_memory().unwrap().location(),
        ":memory:"
    );
}
