//! [`EventStore`]: the trait both backends implement, object-safe so a
//! backend can be chosen at run time (`Arc<dyn EventStore>`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use agentbus::{Event, EventId};

use crate::dead_letters::DeadLetterStore;
use crate::error::StoreError;
use crate::query::ReadQuery;
use crate::stored::StoredEvent;

/// A boxed, sendable future: what [`EventStore`]'s methods return, so the
/// trait can be used as `dyn EventStore`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What [`EventStore::append`] did with a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Appended {
    /// The sequence given to each input event, in input order; `None` for
    /// an event whose id was already stored (or repeated earlier in the
    /// batch), which was skipped.
    pub sequences: Vec<Option<u64>>,
    /// The store's last sequence after the commit.
    pub last_sequence: u64,
}

/// When stored events are pruned: keep at most `max_events`, and none
/// older than `max_age` (by event timestamp). Both optional; pruning always
/// removes the oldest sequences first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many events.
    pub max_events: Option<u64>,
    /// Remove events whose timestamp is older than this.
    pub max_age: Option<std::time::Duration>,
}

impl Retention {
    /// Keeps everything.
    pub fn forever() -> Self {
        Self::default()
    }

    /// Keeps at most `max_events`.
    #[must_use]
    pub fn max_events(mut self, max_events: u64) -> Self {
        self.max_events = Some(max_events);
        self
    }

    /// Keeps events younger than `max_age`.
    #[must_use]
    pub fn max_age(mut self, max_age: std::time::Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// The oldest timestamp kept, given the current time.
    pub(crate) fn cutoff(&self, now: SystemTime) -> Option<SystemTime> {
        self.max_age.and_then(|age| now.checked_sub(age))
    }
}

/// A durable, ordered log of events: [`SqliteStore`](crate::SqliteStore),
/// [`PostgresStore`](crate::PostgresStore), or `Arc<dyn EventStore>` holding
/// either.
///
/// # Behaviour (both backends)
///
/// - Every stored event gets the next sequence: starting at 1, gap-free and
///   ascending in commit order, never reused (also after pruning).
/// - Events are unique by id: appending one whose id is stored is a no-op,
///   neither an error nor a duplicate.
/// - A batch commits whole or not at all.
/// - A row that no longer decodes (a type from a newer build) is a typed
///   error naming its sequence; the rows around it stay readable.
///
/// The methods return boxed futures so the trait is dyn-compatible.
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` in order in one transaction, skipping ids already
    /// stored. Used by the [`Recorder`](crate::Recorder); call it directly to
    /// import events.
    fn append<'a>(
        &'a self,
        events: &'a [Arc<Event>],
    ) -> BoxFuture<'a, Result<Appended, StoreError>>;

    /// [`append`](Self::append) done on the calling thread, for a backend
    /// whose work blocks anyway: `Some` of the result when the backend did
    /// the append right here, `None` (the default) when it is async and the
    /// caller must await [`append`](Self::append) instead.
    ///
    /// The [`Recorder`](crate::Recorder)'s writer, which has a thread of its
    /// own, calls it first: [`SqliteStore`](crate::SqliteStore) then writes
    /// on that thread rather than handing every batch to another one.
    /// Blocks the thread for the whole transaction: never call it on an
    /// async runtime's worker.
    ///
    /// ```
    /// use agentbus::{Event, EventType};
    /// use agentbus_store::{EventStore, SqliteStore};
    /// use std::sync::Arc;
    ///
    /// let store = SqliteStore::open_in_memory().unwrap();
    /// let events = [Arc::new(Event::new(EventType::TaskCreated))];
    /// let appended = store.append_inline(&events).expect("sqlite blocks anyway");
    /// assert_eq!(appended.unwrap().sequences, [Some(1)]);
    /// ```
    fn append_inline(&self, events: &[Arc<Event>]) -> Option<Result<Appended, StoreError>> {
        let _ = events;
        None
    }

    /// The stored events matching `query`, ordered by sequence.
    fn read<'a>(
        &'a self,
        query: &'a ReadQuery,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>>;

    /// The stored event with this id, if any: one lookup in the unique
    /// index on ids, however large the store. `Ok(None)` when no event with
    /// `id` was stored (or it was pruned); a stored row that no longer
    /// decodes is the same typed error [`read`](Self::read) returns, naming
    /// its sequence.
    fn get(&self, id: EventId) -> BoxFuture<'_, Result<Option<StoredEvent>, StoreError>>;

    /// The last sequence given out; `0` when nothing was ever stored.
    fn last_sequence(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Removes the oldest events beyond `retention`; returns how many. The
    /// sequence counter is unaffected.
    fn prune<'a>(&'a self, retention: &'a Retention) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// Whether this store can hold `event`, decided without touching the
    /// database: the one place that says what a store refuses, so a
    /// publisher can refuse at the door what the [`Recorder`](crate::Recorder)
    /// would otherwise skip (and count in
    /// [`RecorderStats::rejected`](crate::RecorderStats::rejected)).
    ///
    /// Both backends store timestamps as `i64` nanoseconds since the Unix
    /// epoch, so they hold 1970-01-01T00:00:00Z to
    /// 2262-04-11T23:47:16.854775807Z and refuse anything else with
    /// [`StoreError::TimestampOutOfRange`]; that is the default. A custom
    /// store that refuses more overrides it (keeping the timestamp check if
    /// it stores timestamps the same way).
    ///
    /// ```
    /// use agentbus::{Event, EventType};
    /// use agentbus_store::{EventStore, SqliteStore, StoreError};
    /// use std::time::{Duration, UNIX_EPOCH};
    ///
    /// let store = SqliteStore::open_in_memory().unwrap();
    /// assert!(store.check(&Event::new(EventType::TaskCreated)).is_ok());
    /// let mut late = Event::new(EventType::TaskCreated);
    /// late.timestamp = UNIX_EPOCH + Duration::from_secs(10_000_000_000); // year 2286
    /// assert!(matches!(
    ///     store.check(&late),
    ///     Err(StoreError::TimestampOutOfRange { .. })
    /// ));
    /// ```
    fn check(&self, event: &Event) -> Result<(), StoreError> {
        crate::stored::timestamp_nanos(event).map(|_| ())
    }

    /// Where this store keeps dead letters, if it does: both backends do
    /// (`Some`); the default is `None`, and a [`Recorder`](crate::Recorder)
    /// over such a store keeps the bus's dead letters in memory only.
    fn dead_letter_store(&self) -> Option<&dyn DeadLetterStore> {
        None
    }
}

impl<S: EventStore + ?Sized> EventStore for Arc<S> {
    fn append<'a>(
        &'a self,
        events: &'a [Arc<Event>],
    ) -> BoxFuture<'a, Result<Appended, StoreError>> {
        (**self).append(events)
    }

    fn append_inline(&self, events: &[Arc<Event>]) -> Option<Result<Appended, StoreError>> {
        (**self).append_inline(events)
    }

    fn read<'a>(
        &'a self,
        query: &'a ReadQuery,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>> {
        (**self).read(query)
    }

    fn get(&self, id: EventId) -> BoxFuture<'_, Result<Option<StoredEvent>, StoreError>> {
        (**self).get(id)
    }

    fn last_sequence(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        (**self).last_sequence()
    }

    fn prune<'a>(&'a self, retention: &'a Retention) -> BoxFuture<'a, Result<u64, StoreError>> {
        (**self).prune(retention)
    }

    fn check(&self, event: &Event) -> Result<(), StoreError> {
        (**self).check(event)
    }

    fn dead_letter_store(&self) -> Option<&dyn DeadLetterStore> {
        (**self).dead_letter_store()
    }
}

/// Runs blocking store work off the async runtime's worker threads when
/// there is a Tokio runtime, inline otherwise.
#[cfg(feature = "sqlite")]
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle
                .spawn_blocking(work)
                .await
                .unwrap_or_else(|join| match join.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    // The runtime is shutting down.
                    Err(_) => Err(StoreError::Closed),
                })
        }
        Err(_) => work(),
    }
}
