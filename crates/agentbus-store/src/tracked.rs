//! [`Tracked`]: the sequences a recorder gave some events, straight from its
//! writer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use agentbus::EventId;

use crate::error::StoreError;
use crate::store::BoxFuture;

/// What the writer did with one tracked event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Committed with this sequence.
    Stored(u64),
    /// Its id was already stored (or repeated earlier in its batch).
    AlreadyStored,
    /// The store refused it (counted in `RecorderStats::rejected`).
    Refused,
}

/// One tracked position: which [`Tracked`] and where in its ids.
struct Watch {
    ticket: u64,
    position: usize,
    outcome: Option<Outcome>,
}

/// The ids being tracked, shared by the writer (which settles them) and
/// every [`Tracked`].
#[derive(Default)]
pub(crate) struct Tracking {
    watches: Mutex<Watches>,
    /// How many watches exist: the writer skips the lock when none does.
    count: AtomicUsize,
}

#[derive(Default)]
struct Watches {
    by_id: HashMap<EventId, Vec<Watch>>,
    next_ticket: u64,
}

impl Tracking {
    fn lock(&self) -> MutexGuard<'_, Watches> {
        self.watches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Settles the tracked ids among `outcomes`, in commit order: each
    /// outcome settles, in every [`Tracked`] waiting for its id, the first
    /// position not yet settled (so a body that repeats an id gets the
    /// sequence once, then "already stored").
    pub(crate) fn settle(&self, outcomes: impl IntoIterator<Item = (EventId, Outcome)>) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut watches = self.lock();
        for (id, outcome) in outcomes {
            let Some(list) = watches.by_id.get_mut(&id) else {
                continue;
            };
            let mut settled_ticket = None;
            for watch in list {
                if watch.outcome.is_none() && settled_ticket != Some(watch.ticket) {
                    watch.outcome = Some(outcome);
                    settled_ticket = Some(watch.ticket);
                }
            }
        }
    }

    pub(crate) fn track(self: &Arc<Self>, ids: &[EventId], flush: Flush) -> Tracked {
        let mut watches = self.lock();
        let ticket = watches.next_ticket;
        watches.next_ticket += 1;
        for (position, id) in ids.iter().enumerate() {
            watches.by_id.entry(*id).or_default().push(Watch {
                ticket,
                position,
                outcome: None,
            });
        }
        self.count.fetch_add(ids.len(), Ordering::AcqRel);
        Tracked {
            tracking: Arc::clone(self),
            ticket,
            ids: ids.to_vec(),
            flush: Some(flush),
        }
    }

    /// Removes a ticket's watches and returns their outcomes, in order.
    fn take(&self, ticket: u64, ids: &[EventId]) -> Vec<Option<Outcome>> {
        let mut watches = self.lock();
        let outcomes = ids
            .iter()
            .enumerate()
            .map(|(position, id)| {
                let list = watches.by_id.get_mut(id)?;
                let at = list
                    .iter()
                    .position(|w| w.ticket == ticket && w.position == position)?;
                let outcome = list.remove(at).outcome;
                if list.is_empty() {
                    watches.by_id.remove(id);
                }
                outcome
            })
            .collect();
        self.count.fetch_sub(ids.len(), Ordering::AcqRel);
        outcomes
    }
}

/// The events of one publish, noted by the recorder before they are
/// published; from [`Recorder::track`](crate::Recorder::track).
/// [`commit`](Self::commit) waits for them to be committed and returns the
/// sequence each was given, as the writer saw it: no read of the store.
///
/// Dropping it forgets the ids (a publisher that went away).
#[must_use = "the sequences are known only through `commit`"]
pub struct Tracked {
    pub(crate) tracking: Arc<Tracking>,
    pub(crate) ticket: u64,
    pub(crate) ids: Vec<EventId>,
    /// Flushes the recorder that tracks these ids.
    pub(crate) flush: Option<Flush>,
}

pub(crate) type Flush =
    Box<dyn FnOnce() -> BoxFuture<'static, Result<u64, StoreError>> + Send + Sync>;

impl std::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracked")
            .field("events", &self.ids.len())
            .finish()
    }
}

impl Tracked {
    /// The tracked ids, in the order given.
    pub fn ids(&self) -> &[EventId] {
        &self.ids
    }

    /// Flushes the recorder, then returns, per tracked id in order,
    /// `Some(sequence)` for an event committed since it was tracked, or
    /// `None` for one whose id was already stored (a retry, a replay, or a
    /// repeat of an id earlier in the same ids), so not stored again, and
    /// for no other reason.
    ///
    /// Fails as [`Recorder::flush`](crate::Recorder::flush) does, and with
    /// [`StoreError::NotRecorded`] (naming the first such event) when a
    /// tracked event was refused by the store or dropped by the overflow
    /// policy, or was not published before this call.
    pub async fn commit(mut self) -> Result<Vec<Option<u64>>, StoreError> {
        let flush = self.flush.take().ok_or(StoreError::Closed)?;
        flush().await?;
        let outcomes = self.tracking.take(self.ticket, &self.ids);
        let ids = std::mem::take(&mut self.ids);
        ids.iter()
            .zip(outcomes)
            .enumerate()
            .map(|(index, (id, outcome))| match outcome {
                Some(Outcome::Stored(sequence)) => Ok(Some(sequence)),
                Some(Outcome::AlreadyStored) => Ok(None),
                Some(Outcome::Refused) | None => Err(StoreError::NotRecorded {
                    index,
                    id: id.to_string(),
                }),
            })
            .collect()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if !self.ids.is_empty() {
            self.tracking.take(self.ticket, &self.ids);
        }
    }
}
