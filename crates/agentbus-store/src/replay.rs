//! [`replay`]: publish a stored range into a bus.

use agentbus::EventBus;

use crate::error::StoreError;
use crate::query::ReadQuery;
use crate::store::EventStore;
use agentbus::Order;

/// What [`replay`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Events published.
    pub events: u64,
    /// The sequence of the last event published (`0` if none).
    pub last_sequence: u64,
}

/// Publishes the stored events matching `query` into `bus`, oldest first,
/// awaiting each publish (so async handlers finish before the next event).
///
/// - Events keep their ids, timestamps and causal ids. A [`Recorder`](crate::Recorder)
///   attached to `bus` and writing to the same store skips them (ids are
///   unique), so nothing is stored twice; one writing to another store
///   records them there.
/// - `query`'s `after`, `up_to`, filters and `limit` choose the range (the
///   limit caps the total; order is always ascending). The store is read in
///   pages, so a long range does not sit in memory at once.
/// - A row that does not decode stops the replay with its typed error; the
///   events before it were published.
///
/// ```
/// use agentbus::{Event, EventBus, EventType, HistoryQuery};
/// use agentbus_store::{replay, EventStore, ReadQuery, SqliteStore};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), agentbus_store::StoreError> {
/// let store = SqliteStore::open_in_memory()?;
/// let original = Arc::new(Event::new(EventType::TaskCreated));
/// store.append(&[Arc::clone(&original)]).await?;
///
/// let debug_bus = EventBus::new();
/// let replayed = replay(&store, &ReadQuery::new(), &debug_bus).await?;
/// assert_eq!(replayed.events, 1);
/// assert_eq!(debug_bus.history(&HistoryQuery::new())[0].id, original.id);
/// # Ok(()) }
/// ```
pub async fn replay<S: EventStore + ?Sized>(
    store: &S,
    query: &ReadQuery,
    bus: &EventBus,
) -> Result<Replayed, StoreError> {
    const PAGE: usize = 1000;
    let mut remaining = query.get_limit();
    let mut replayed = Replayed::default();
    let mut cursor = query.get_after();
    while remaining > 0 {
        let page_query = query
            .clone()
            .order(Order::Ascending)
            .after(cursor)
            .limit(remaining.min(PAGE));
        let page = store.read(&page_query).await?;
        let Some(last) = page.last() else { break };
        cursor = last.sequence;
        let full = page.len() == remaining.min(PAGE);
        for stored in page {
            bus.publish(stored.event).await;
            replayed.events += 1;
            replayed.last_sequence = stored.sequence;
            remaining -= 1;
        }
        if !full {
            break;
        }
    }
    Ok(replayed)
}
