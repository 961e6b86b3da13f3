//! [`open`]: a store from a location string, for commands and configs that
//! choose the backend at run time.

use std::sync::Arc;

use crate::error::StoreError;
use crate::store::EventStore;

/// Opens the store a location names, as `agentbus serve --store` takes it:
///
/// - `sqlite:PATH` (or `sqlite://PATH`): a [`SqliteStore`](crate::SqliteStore) file
///   (feature `sqlite`);
/// - `postgres://...` or `postgresql://...`: a
///   [`PostgresStore`](crate::PostgresStore) (feature `postgres`);
/// - `memory`: an in-memory SQLite store, gone with the process.
///
/// Anything else, or a backend whose feature is off, is
/// [`StoreError::UnsupportedLocation`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), agentbus_store::StoreError> {
/// let dir = tempfile::tempdir().unwrap();
/// let file = agentbus_store::open(&format!("sqlite:{}", dir.path().join("e.db").display())).await?;
/// assert_eq!(file.last_sequence().await?, 0);
/// let memory = agentbus_store::open("memory").await?;
/// assert_eq!(memory.last_sequence().await?, 0);
/// assert!(agentbus_store::open("mysql://nope").await.is_err());
/// # Ok(()) }
/// ```
pub async fn open(location: &str) -> Result<Arc<dyn EventStore>, StoreError> {
    #[cfg(feature = "sqlite")]
    {
        if location == "memory" {
            return Ok(Arc::new(crate::SqliteStore::open_in_memory()?));
        }
        if let Some(path) = location
            .strip_prefix("sqlite://")
            .or_else(|| location.strip_prefix("sqlite:"))
        {
            return Ok(Arc::new(crate::SqliteStore::open(path)?));
        }
    }
    #[cfg(feature = "postgres")]
    {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            return Ok(Arc::new(crate::PostgresStore::connect(location).await?));
        }
    }
    Err(StoreError::UnsupportedLocation {
        location: location.to_owned(),
    })
}
