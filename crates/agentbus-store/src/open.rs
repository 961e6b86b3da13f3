//! [`open`] and [`open_existing`]: a store from a [`StoreLocation`], for
//! commands and configs that choose the backend at run time.

use std::sync::Arc;

use agentbus::Redacted;

use crate::error::StoreError;
use crate::location::StoreLocation;
use crate::store::EventStore;

/// Opens the store a location names (see [`StoreLocation`]), as
/// `agentbus serve --store` takes it, creating it if needed: a SQLite file
/// (feature `sqlite`) is created if missing, a PostgreSQL database
/// (feature `postgres`) gets the agentbus schema.
///
/// A string that is no [`StoreLocation`], or a backend whose feature is off, is
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
    let parsed: StoreLocation = location
        .parse()
        .map_err(|_| StoreError::UnsupportedLocation {
            location: Redacted(location).to_string(),
        })?;
    parsed.open_as(existing).await
}

impl StoreLocation {
    /// Opens the store, creating it if needed: [`open`] without the parsing.
    pub async fn open(&self) -> Result<Arc<dyn EventStore>, StoreError> {
        self.open_as(false).await
    }

    /// Opens the store for reading only: [`open_existing`] without the
    /// parsing.
    pub async fn open_existing(&self) -> Result<Arc<dyn EventStore>, StoreError> {
        self.open_as(true).await
    }

    async fn open_as(&self, existing: bool) -> Result<Arc<dyn EventStore>, StoreError> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Memory => Ok(Arc::new(crate::SqliteStore::open_in_memory()?)),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(path) => Ok(Arc::new(if existing {
                crate::SqliteStore::open_existing(path)?
            } else {
                crate::SqliteStore::open(path)?
            })),
            #[cfg(feature = "postgres")]
            Self::Postgres(url) => Ok(Arc::new(if existing {
                crate::PostgresStore::connect_existing(url).await?
            } else {
                crate::PostgresStore::connect(url).await?
            })),
            #[allow(unreachable_patterns)] // with both backends compiled in
            _ => {
                let _ = existing; // read only by backends that may be compiled out
                Err(StoreError::UnsupportedLocation {
                    location: self.to_string(),
                })
            }
        }
    }
}
