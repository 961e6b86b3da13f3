//! [`Projection`]: fold stored events into a state, resumable from a
//! snapshot.

use crate::error::StoreError;
use crate::query::ReadQuery;
use crate::store::EventStore;
use crate::stored::StoredEvent;
use agentbus::Order;

/// A state folded from stored events (event sourcing), with the sequence it
/// has seen up to.
///
/// - [`catch_up`](Self::catch_up) folds every stored event matching the
///   projection's query after its sequence, in order, and advances the
///   sequence to the store's last sequence (filtered-out events count as
///   seen).
/// - [`apply`](Self::apply) folds one event from elsewhere (say a
///   [`CatchUp`](crate::CatchUp) stream), ignoring one already seen.
/// - [`snapshot`](Self::snapshot) and [`resume`](Self::resume) save and
///   restore `(state, sequence)`: a resumed projection folds only what came
///   after, and ends in the same state as one rebuilt from scratch.
///
/// ```
/// use agentbus::{Event, EventType};
/// use agentbus_store::{EventStore, Projection, ReadQuery, SqliteStore};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), agentbus_store::StoreError> {
/// let store = SqliteStore::open_in_memory()?;
/// let completed = || Arc::new(Event::new(EventType::TaskCompleted));
/// store.append(&[completed(), completed()]).await?;
///
/// let count = |total: &mut u64, _: &agentbus_store::StoredEvent| *total += 1;
/// let query = ReadQuery::new().event_type(EventType::TaskCompleted);
/// let mut done = Projection::new(0u64, query.clone(), count);
/// done.catch_up(&store).await?;
/// assert_eq!((*done.state(), done.sequence()), (2, 2));
///
/// let (saved, at) = done.snapshot();
/// store.append(&[completed()]).await?;
/// let mut resumed = Projection::resume(saved, at, query, count);
/// resumed.catch_up(&store).await?;
/// assert_eq!(*resumed.state(), 3);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Projection<S, F> {
    state: S,
    sequence: u64,
    query: ReadQuery,
    fold: F,
}

impl<S, F> Projection<S, F>
where
    F: FnMut(&mut S, &StoredEvent),
{
    /// A projection from the start of the store, folding the events that
    /// match `query` (its sequence bounds, order and limit are ignored).
    pub fn new(initial: S, query: ReadQuery, fold: F) -> Self {
        Self::resume(initial, 0, query, fold)
    }

    /// A projection resumed from a snapshot: `state` as it was after
    /// `sequence`.
    pub fn resume(state: S, sequence: u64, query: ReadQuery, fold: F) -> Self {
        Self {
            state,
            sequence,
            query,
            fold,
        }
    }

    /// Folds every matching event stored after [`sequence`](Self::sequence);
    /// returns the new sequence. On error the state holds what was folded
    /// before the failing row, and the sequence says where.
    pub async fn catch_up<E: EventStore + ?Sized>(&mut self, store: &E) -> Result<u64, StoreError> {
        const PAGE: usize = 1000;
        let up_to = store.last_sequence().await?;
        while self.sequence < up_to {
            let query = self
                .query
                .clone()
                .order(Order::Ascending)
                .after(self.sequence)
                .limit(PAGE);
            let page = match store.read(&query.clone().up_to(up_to)).await {
                Ok(page) => page,
                Err(error) => {
                    // Fold the rows before one that does not decode, so the
                    // state and sequence say exactly where it stopped.
                    if let Some(bad) = error.sequence().filter(|&bad| bad > self.sequence) {
                        for stored in &store.read(&query.up_to(bad - 1)).await? {
                            (self.fold)(&mut self.state, stored);
                        }
                        self.sequence = bad - 1;
                    }
                    return Err(error);
                }
            };
            let full = page.len() == PAGE;
            for stored in &page {
                (self.fold)(&mut self.state, stored);
                self.sequence = stored.sequence;
            }
            if !full {
                self.sequence = up_to;
            }
        }
        Ok(self.sequence)
    }

    /// Folds `stored` unless its sequence was already seen, or it does not
    /// match the query; `true` if it was folded.
    pub fn apply(&mut self, stored: &StoredEvent) -> bool {
        if stored.sequence <= self.sequence {
            return false;
        }
        self.sequence = stored.sequence;
        if !self.query.matches(&stored.event) {
            return false;
        }
        (self.fold)(&mut self.state, stored);
        true
    }

    /// The state so far.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The last sequence folded or passed over.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// A copy of `(state, sequence)` to save and [`resume`](Self::resume) from.
    pub fn snapshot(&self) -> (S, u64)
    where
        S: Clone,
    {
        (self.state.clone(), self.sequence)
    }

    /// The state and sequence, consuming the projection.
    pub fn into_parts(self) -> (S, u64) {
        (self.state, self.sequence)
    }
}
