//! [`open`] and [`open_existing`]: a store from a location string, for
//! commands and configs that choose the backend at run time.

use std::sync::Arc;

use agentbus::Redacted;

use crate::error::StoreError;
use crate::store::EventStore;

/// The keywords of a PostgreSQL `key=value` connection string (those
/// tokio-postgres reads).
const POSTGRES_KEYWORDS: [&str; 19] = [
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "options",
    "application_name",
    "sslmode",
    "sslnegotiation",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// Whether `location` names a PostgreSQL database: a `postgres://` or
/// `postgresql://` URL, or a `key=value` connection string that starts with
/// a PostgreSQL keyword (`host=db user=app password=...`).
///
/// ```
/// use agentbus_store::is_postgres_location;
///
/// assert!(is_postgres_location("postgres://app@127.0.0.1/events"));
/// assert!(is_postgres_location("host=127.0.0.1 user=app password=x dbname=events"));
/// assert!(!is_postgres_location("sqlite:events.db"));
/// assert!(!is_postgres_location("backup=1.db")); // not a keyword: a file name
/// ```
pub fn is_postgres_location(location: &str) -> bool {
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        return true;
    }
    let text = location.trim_start();
    let keyword_end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    POSTGRES_KEYWORDS.contains(&&text[..keyword_end])
        && text[keyword_end..].trim_start().starts_with('=')
}

/// Opens the store a location names, as `agentbus serve --store` takes it,
/// creating it if needed:
///
/// - `sqlite:PATH` (or `sqlite://PATH`): a [`SqliteStore`](crate::SqliteStore) file
///   (feature `sqlite`), created if missing;
/// - `postgres://...`, `postgresql://...` or a `key=value` string (see
///   [`is_postgres_location`]): a [`PostgresStore`](crate::PostgresStore)
///   (feature `postgres`);
/// - `memory`: an in-memory SQLite store, gone with the process.
///
/// Anything else, or a backend whose feature is off, is
/// [`StoreError::UnsupportedLocation`], which shows the location through
/// [`Redacted`], so without its password.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), agentbus_store::StoreError> {
/// let dir = tempfile::tempdir().unwrap();
/// let file = agentbus_store::open(&format!("sqlite:{}", dir.path().join("e.db").display())).await?;
/// assert_eq!(file.last_sequence().await?, 0);
/// let memory = agentbus_store::open("memory").await?;
/// assert_eq!(memory.last_sequence().await?, 0);
/// let Err(unsupported) = agentbus_store::open("mysql://app:hunter2@db").await else {
///     unreachable!()
/// };
/// assert!(!unsupported.to_string().contains("hunter2"));
/// # Ok(()) }
/// ```
pub async fn open(location: &str) -> Result<Arc<dyn EventStore>, StoreError> {
    open_as(location, false).await
}

/// [`open`] for commands that only read: a store that does not exist (no
/// SQLite file, or a SQLite file or PostgreSQL database without the
/// agentbus schema) is [`StoreError::NotFound`], and nothing is created.
/// (`memory` is a fresh empty store.)
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use agentbus_store::StoreError;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("missing.db");
/// let missing = agentbus_store::open_existing(&format!("sqlite:{}", path.display())).await;
/// assert!(matches!(missing, Err(StoreError::NotFound { .. })));
/// assert!(!path.exists());
/// # }
/// ```
pub async fn open_existing(location: &str) -> Result<Arc<dyn EventStore>, StoreError> {
    open_as(location, true).await
}

async fn open_as(location: &str, existing: bool) -> Result<Arc<dyn EventStore>, StoreError> {
    #[cfg(feature = "sqlite")]
    {
        if location == "memory" {
            return Ok(Arc::new(crate::SqliteStore::open_in_memory()?));
        }
        if let Some(path) = location
            .strip_prefix("sqlite://")
            .or_else(|| location.strip_prefix("sqlite:"))
        {
            let store = if existing {
                crate::SqliteStore::open_existing(path)?
            } else {
                crate::SqliteStore::open(path)?
            };
            return Ok(Arc::new(store));
        }
    }
    #[cfg(feature = "postgres")]
    {
        if is_postgres_location(location) {
            let store = if existing {
                crate::PostgresStore::connect_existing(location).await?
            } else {
                crate::PostgresStore::connect(location).await?
            };
            return Ok(Arc::new(store));
        }
    }
    let _ = existing; // read only by backends that may be compiled out
    Err(StoreError::UnsupportedLocation {
        location: Redacted(location).to_string(),
    })
}
