//! The `--store` argument: which store `serve`, `demo` and `replay` open.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use agentbus::Redacted;
use agentbus_store::{EventStore, StoreLocation};

/// A store named on the command line: a [`StoreLocation`], a bare path
/// (a SQLite file) or `none`.
///
/// `sqlite:PATH` (or a bare path), `postgres://...` / `postgresql://...`
/// or a PostgreSQL `key=value` string (`host=... dbname=...`), `memory`
/// (an in-memory SQLite store: sequences and resume work, nothing outlives
/// the process) or `none` (no store: the API answers from the bus's bounded
/// history). `Display` and `Debug` show it [`Redacted`].
///
/// ```
/// use agentbus_cli::StoreSpec;
///
/// assert_eq!("sqlite:events.db".parse::<StoreSpec>().unwrap(), StoreSpec::Sqlite("events.db".into()));
/// assert_eq!("./events.db".parse::<StoreSpec>().unwrap(), StoreSpec::Sqlite("./events.db".into()));
/// assert_eq!("memory".parse::<StoreSpec>().unwrap(), StoreSpec::Memory);
/// assert!(matches!("postgres://postgres@127.0.0.1/events".parse::<StoreSpec>().unwrap(), StoreSpec::Postgres(_)));
/// assert!(matches!("host=127.0.0.1 password=x".parse::<StoreSpec>().unwrap(), StoreSpec::Postgres(_)));
/// assert!("sqlite:".parse::<StoreSpec>().is_err());
/// assert!("mysql://db".parse::<StoreSpec>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// A SQLite file, created and migrated on open.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL or `key=value` string.
    Postgres(String),
    /// An in-memory SQLite store.
    Memory,
    /// No store.
    None,
}

impl StoreSpec {
    /// Whether events in this store outlive the process.
    pub fn is_durable(&self) -> bool {
        matches!(self, Self::Sqlite(_) | Self::Postgres(_))
    }
}

/// A `--store` value that names no store kind.
#[derive(Debug, thiserror::Error)]
#[error("expected sqlite:PATH, postgres://..., memory or none, got \"{shown}\"")]
pub struct ParseStoreSpecError {
    /// The input, its secrets redacted.
    shown: String,
}

/// [`StoreSpec::from_str`] for clap, with the error as text.
pub(crate) fn parse_store_spec(text: &str) -> Result<StoreSpec, String> {
    text.parse()
        .map_err(|error: ParseStoreSpecError| error.to_string())
}

impl FromStr for StoreSpec {
    type Err = ParseStoreSpecError;

    /// `none`, a bare path or `sqlite::memory:`, else a [`StoreLocation`].
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = || ParseStoreSpecError {
            shown: Redacted(input).to_string(),
        };
        match input {
            "sqlite::memory:" => return Ok(Self::Memory),
            "none" => return Ok(Self::None),
            "" => return Err(error()),
            _ => {}
        }
        match input.parse::<StoreLocation>() {
            Ok(location) => Ok(location.into()),
            // Any other scheme is a mistake, not a file name.
            Err(_) if input.starts_with("sqlite:") || input.contains("://") => Err(error()),
            Err(_) => Ok(Self::Sqlite(PathBuf::from(input))),
        }
    }
}

impl From<StoreLocation> for StoreSpec {
    fn from(location: StoreLocation) -> Self {
        match location {
            StoreLocation::Sqlite(path) => Self::Sqlite(path),
            StoreLocation::Postgres(url) => Self::Postgres(url),
            StoreLocation::Memory => Self::Memory,
        }
    }
}

impl StoreSpec {
    /// The store's location; `None` for [`StoreSpec::None`].
    pub fn location(&self) -> Option<StoreLocation> {
        match self {
            Self::Sqlite(path) => Some(StoreLocation::Sqlite(path.clone())),
            Self::Postgres(url) => Some(StoreLocation::Postgres(url.clone())),
            Self::Memory => Some(StoreLocation::Memory),
            Self::None => None,
        }
    }
}

impl fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location() {
            Some(location) => location.fmt(f),
            None => f.write_str("None"),
        }
    }
}

impl fmt::Display for StoreSpec {
    /// The spec as typed, its secrets redacted ([`Redacted`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location() {
            Some(location) => location.fmt(f),
            None => f.write_str("none"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_passwords_are_hidden_when_shown() {
        let spec: StoreSpec = "postgres://app:hunter2@127.0.0.1:5432/events"
            .parse()
            .unwrap();
        assert_eq!(spec.to_string(), "postgres://app:***@127.0.0.1:5432/events");
        let spec: StoreSpec = "host=127.0.0.1 user=app password=hunter2 dbname=events"
            .parse()
            .unwrap();
        assert_eq!(
            spec.to_string(),
            "host=127.0.0.1 user=app password=*** dbname=events"
        );
        assert!(!format!("{spec:?}").contains("hunter2"), "{spec:?}");
        let error = "mysql://app:hunter2@db".parse::<StoreSpec>().unwrap_err();
        assert!(!format!("{error} {error:?}").contains("hunter2"), "{error}");
        assert!(spec.is_durable());
        assert!(!StoreSpec::Memory.is_durable());
    }
}

/// A store named on the command line could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenStoreError {
    /// The store refused to open (see the cause).
    #[error("cannot open the store {spec}")]
    Store {
        /// The store, as given (secrets redacted).
        spec: String,
        /// Why.
        #[source]
        source: agentbus_store::StoreError,
    },
    /// PostgreSQL support was left out of this build.
    #[error(
        "cannot open the store {spec}: this agentbus was built without the `postgres` feature"
    )]
    PostgresUnsupported {
        /// The store, as given (secrets redacted).
        spec: String,
    },
}

impl StoreSpec {
    /// Opens (and for SQLite creates and migrates) the store; `None` for
    /// [`StoreSpec::None`].
    pub async fn open(&self) -> Result<Option<Arc<dyn EventStore>>, OpenStoreError> {
        self.open_as(false).await
    }

    /// [`open`](Self::open) for commands that only read: a store that does
    /// not exist (no SQLite file, or no agentbus schema in the file or the
    /// PostgreSQL database) is an error
    /// ([`StoreError::NotFound`](agentbus_store::StoreError::NotFound));
    /// nothing is created.
    pub async fn open_existing(&self) -> Result<Option<Arc<dyn EventStore>>, OpenStoreError> {
        self.open_as(true).await
    }

    async fn open_as(&self, existing: bool) -> Result<Option<Arc<dyn EventStore>>, OpenStoreError> {
        let spec = self.to_string();
        let failed = |source| OpenStoreError::Store {
            spec: spec.clone(),
            source,
        };
        let location = match self {
            #[cfg(not(feature = "postgres"))]
            Self::Postgres(_) => return Err(OpenStoreError::PostgresUnsupported { spec }),
            _ => match self.location() {
                Some(location) => location,
                None => return Ok(None),
            },
        };
        let store = if existing {
            location.open_existing().await
        } else {
            location.open().await
        };
        store.map(Some).map_err(failed)
    }
}
