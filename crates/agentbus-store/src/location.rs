//! [`StoreLocation`]: where a store is, as a string names it
//! (`sqlite:PATH`, `postgres://...`, `memory`), and as it is shown (its
//! password redacted).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use agentbus::Redacted;

/// Where a store is: what `agentbus --store` names, and what
/// [`open`](Self::open) and [`open_existing`](Self::open_existing) (and the
/// crate's functions of the same names, from a string) open.
///
/// It parses from
///
/// - `sqlite:PATH` (or `sqlite://PATH`): a [`SqliteStore`](crate::SqliteStore)
///   file;
/// - `postgres://...`, `postgresql://...` or a `key=value` string (see
///   [`is_postgres_location`]): a [`PostgresStore`](crate::PostgresStore)
///   database;
/// - `memory`: an in-memory SQLite store, gone with the process.
///
/// Anything else, an empty path included, is a [`ParseStoreLocationError`].
/// Parsing does not depend on the backends compiled in; opening does.
/// `Display` gives the location back as it parses, and `Display` and
/// `Debug` show a PostgreSQL location [`Redacted`], without its password.
///
/// ```
/// use agentbus_store::StoreLocation;
///
/// let file: StoreLocation = "sqlite:events.db".parse().unwrap();
/// assert_eq!(file, StoreLocation::Sqlite("events.db".into()));
/// assert_eq!(file.to_string(), "sqlite:events.db");
/// assert_eq!("memory".parse::<StoreLocation>().unwrap(), StoreLocation::Memory);
///
/// let database: StoreLocation = "postgres://app:hunter2@127.0.0.1/events".parse().unwrap();
/// assert_eq!(database.to_string(), "postgres://app:***@127.0.0.1/events");
/// assert!(!format!("{database:?}").contains("hunter2"));
///
/// let error = "mysql://app:hunter2@db".parse::<StoreLocation>().unwrap_err();
/// assert!(!error.to_string().contains("hunter2"));
/// assert!("sqlite:".parse::<StoreLocation>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum StoreLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL or `key=value` string.
    Postgres(String),
    /// An in-memory SQLite store.
    Memory,
}

/// A string that names no [`StoreLocation`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported store location `{location}`: expected `sqlite:PATH`, `postgres://...` or `memory`"
)]
pub struct ParseStoreLocationError {
    /// The string, its secrets redacted.
    location: String,
}

impl ParseStoreLocationError {
    /// The string that did not parse, its secrets redacted ([`Redacted`]).
    pub fn location(&self) -> &str {
        &self.location
    }
}

impl FromStr for StoreLocation {
    type Err = ParseStoreLocationError;

    fn from_str(location: &str) -> Result<Self, Self::Err> {
        if location == "memory" {
            return Ok(Self::Memory);
        }
        if let Some(path) = location
            .strip_prefix("sqlite://")
            .or_else(|| location.strip_prefix("sqlite:"))
        {
            if !path.is_empty() {
                return Ok(Self::Sqlite(PathBuf::from(path)));
            }
        } else if is_postgres_location(location) {
            return Ok(Self::Postgres(location.to_owned()));
        }
        Err(ParseStoreLocationError {
            location: Redacted(location).to_string(),
        })
    }
}

impl fmt::Display for StoreLocation {
    /// The location as it parses, its secrets redacted ([`Redacted`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Postgres(url) => write!(f, "{}", Redacted(url)),
            Self::Memory => f.write_str("memory"),
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(url) => f.debug_tuple("Postgres").field(&Redacted(url)).finish(),
            Self::Memory => f.write_str("Memory"),
        }
    }
}

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
