//! [`DeadLetterStore`]: the bus's dead letters kept in the event store, so
//! they survive a restart; the changes a writer applies and the row codec
//! both backends share.

use agentbus::{DeadLetter, DeadLetterId, DeadLetterQuery};

use crate::error::StoreError;
use crate::store::BoxFuture;

/// Changes to the stored dead letters, applied in one transaction by
/// [`DeadLetterStore::write_dead_letters`]: first `clear` (if set), then
/// every `put`, then every `remove`.
///
/// ```
/// use agentbus::{DeadLetter, DeadLetterId, Event, EventType};
/// use agentbus_store::DeadLetterChanges;
/// use std::sync::Arc;
///
/// let event = Arc::new(Event::new(EventType::TaskFailed));
/// let letter = DeadLetter::restored(DeadLetterId::new(1), event, 3, Some("exporter"));
/// let changes = DeadLetterChanges::new().put(letter).remove(DeadLetterId::new(2));
/// assert_eq!((changes.put.len(), changes.remove.len(), changes.clear), (1, 1, false));
/// ```
#[derive(Clone, Debug, Default)]
pub struct DeadLetterChanges {
    /// Remove every stored dead letter first (a rewrite of them all).
    pub clear: bool,
    /// Letters to store, each replacing a stored letter with its id.
    pub put: Vec<DeadLetter>,
    /// Ids to remove; an id not stored is no error.
    pub remove: Vec<DeadLetterId>,
}

impl DeadLetterChanges {
    /// No change.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also stores `letter`.
    #[must_use]
    pub fn put(mut self, letter: DeadLetter) -> Self {
        self.put.push(letter);
        self
    }

    /// Also removes `id`.
    #[must_use]
    pub fn remove(mut self, id: DeadLetterId) -> Self {
        self.remove.push(id);
        self
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        !self.clear && self.put.is_empty() && self.remove.is_empty()
    }
}

/// Dead letters kept by a store: [`SqliteStore`](crate::SqliteStore) and
/// [`PostgresStore`](crate::PostgresStore) implement it (one conformance
/// suite for both), reached through
/// [`EventStore::dead_letter_store`](crate::EventStore::dead_letter_store).
///
/// # Behaviour (both backends)
///
/// - One row per [`DeadLetterId`]: a put replaces the letter with its id,
///   so a rewrite is idempotent.
/// - The event is stored whole (its JSON form), not by reference to the
///   events table: a letter outlives retention, and its event may be one
///   the recorder has not written yet or dropped.
/// - Every field round-trips exactly: id, event, the subscription's number
///   and name, error, attempts, and both times to the nanosecond. A letter
///   read back is [restored](agentbus::DeadLetter::restored): its
///   subscription id names no live subscription.
/// - Reads follow [`DeadLetterQuery`] as the bus lists: by subscription
///   name and event type, ids between `after` and `before`, oldest or
///   newest first, at most `limit`.
/// - A row that does not decode is [`StoreError::CorruptDeadLetter`] naming
///   its id; read past it with [`DeadLetterQuery::after`].
/// - A letter whose event cannot be encoded (a timestamp outside
///   1970..9999) is skipped by a write and logged at `ERROR`; the others
///   are stored.
///
/// Dead letters of one store belong to one bus: two buses recording into
/// one store at the same time give out the same ids, and the later write
/// of an id wins.
///
/// ```
/// use agentbus::{DeadLetter, DeadLetterId, DeadLetterQuery, Event, EventType};
/// use agentbus_store::{DeadLetterChanges, DeadLetterStore, SqliteStore};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), agentbus_store::StoreError> {
/// let store = SqliteStore::open_in_memory()?;
/// let event = Arc::new(Event::new(EventType::TaskFailed));
/// let letter = DeadLetter::restored(DeadLetterId::new(1), event, 3, Some("exporter"));
/// store.write_dead_letters(&DeadLetterChanges::new().put(letter)).await?;
/// let stored = store.read_dead_letters(&DeadLetterQuery::new().subscription("exporter")).await?;
/// assert_eq!(stored[0].id(), DeadLetterId::new(1));
/// # Ok(()) }
/// ```
pub trait DeadLetterStore: Send + Sync {
    /// Applies `changes` in one transaction.
    fn write_dead_letters<'a>(
        &'a self,
        changes: &'a DeadLetterChanges,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// [`write_dead_letters`](Self::write_dead_letters) on the calling
    /// thread for a backend whose work blocks anyway (`None`, the default:
    /// await the other). As [`EventStore::append_inline`](crate::EventStore::append_inline).
    fn write_dead_letters_inline(
        &self,
        changes: &DeadLetterChanges,
    ) -> Option<Result<(), StoreError>> {
        let _ = changes;
        None
    }

    /// The stored dead letters matching `query`, in its order.
    fn read_dead_letters<'a>(
        &'a self,
        query: &'a DeadLetterQuery,
    ) -> BoxFuture<'a, Result<Vec<DeadLetter>, StoreError>>;

    /// [`read_dead_letters`](Self::read_dead_letters) on the calling
    /// thread, for a backend whose work blocks anyway (`None`, the default:
    /// await the other). [`Recorder::attach`](crate::Recorder::attach) uses
    /// it to show the stored letters before it returns.
    fn read_dead_letters_inline(
        &self,
        query: &DeadLetterQuery,
    ) -> Option<Result<Vec<DeadLetter>, StoreError>> {
        let _ = query;
        None
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use codec::{clamp_id, LetterColumns, LetterRow};

/// The row codec both backends share.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod codec {
    use std::sync::Arc;

    use agentbus::{DeadLetter, DeadLetterId, Event};

    use crate::error::StoreError;
    use crate::stored::system_time;

    /// The columns of one stored dead letter (both schemas), decoded with a
    /// typed error naming its id.
    pub(crate) struct LetterColumns<'a> {
        pub(crate) id: i64,
        pub(crate) event: &'a str,
        pub(crate) subscription_number: i64,
        pub(crate) subscription_name: Option<&'a str>,
        pub(crate) error: &'a str,
        pub(crate) attempts: i64,
        pub(crate) first_failed_ns: i64,
        pub(crate) last_failed_ns: i64,
    }

    impl LetterColumns<'_> {
        pub(crate) fn decode(self) -> Result<DeadLetter, StoreError> {
            let id = self.id as u64;
            let event =
                Event::from_json(self.event).map_err(|error| StoreError::CorruptDeadLetter {
                    id,
                    source: Some(Arc::new(error)),
                })?;
            Ok(DeadLetter::restored(
                DeadLetterId::new(id),
                Arc::new(event),
                self.subscription_number as u64,
                self.subscription_name,
            )
            .with_failure(
                self.error,
                u32::try_from(self.attempts).unwrap_or(u32::MAX),
                system_time(self.first_failed_ns),
                system_time(self.last_failed_ns),
            ))
        }
    }

    /// A letter as both schemas write it: its event encoded, its times in
    /// nanoseconds; `None` (logged) for one whose event cannot be encoded.
    pub(crate) struct LetterRow<'a> {
        pub(crate) letter: &'a DeadLetter,
        pub(crate) event: String,
        pub(crate) first_failed_ns: i64,
        pub(crate) last_failed_ns: i64,
    }

    impl<'a> LetterRow<'a> {
        pub(crate) fn encode(letter: &'a DeadLetter) -> Option<Self> {
            match letter.event().to_json() {
                Ok(event) => Some(Self {
                    letter,
                    event,
                    first_failed_ns: crate::sql::clamp_nanos(letter.first_failed_at()),
                    last_failed_ns: crate::sql::clamp_nanos(letter.last_failed_at()),
                }),
                Err(error) => {
                    tracing::error!(
                        dead_letter = letter.id().get(),
                        event_id = %letter.event().id,
                        %error,
                        "agentbus-store: this dead letter's event cannot be stored; kept in memory only"
                    );
                    None
                }
            }
        }

        pub(crate) fn id(&self) -> i64 {
            clamp_id(self.letter.id())
        }
    }

    /// An id as both schemas store it (`BIGINT`).
    pub(crate) fn clamp_id(id: DeadLetterId) -> i64 {
        i64::try_from(id.get()).unwrap_or(i64::MAX)
    }
}
