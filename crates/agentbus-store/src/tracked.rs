//! [`Tracked`]: the sequences a recorder gave some events, straight from its
//! writer.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use agentbus::EventId;
use tokio::sync::Notify;

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
#[derive(Clone, Copy)]
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
    /// Woken when some [`Tracked`] has all its ids settled.
    settled: Notify,
}

#[derive(Default)]
struct Watches {
    by_id: HashMap<EventId, Watchers>,
    /// Per ticket, how many of its positions are not settled yet.
    unsettled: HashMap<u64, usize>,
    next_ticket: u64,
}

/// The watches on one id: almost always one (no allocation of its own);
/// several when publishers track the same id at once, or a body repeats it.
enum Watchers {
    One(Watch),
    Many(Vec<Watch>),
}

impl Watchers {
    fn as_mut_slice(&mut self) -> &mut [Watch] {
        match self {
            Watchers::One(watch) => std::slice::from_mut(watch),
            Watchers::Many(watches) => watches,
        }
    }

    fn push(&mut self, watch: Watch) {
        match self {
            Watchers::Many(watches) => watches.push(watch),
            Watchers::One(_) => {
                let Watchers::One(first) = std::mem::replace(self, Watchers::Many(Vec::new()))
                else {
                    unreachable!("matched above")
                };
                *self = Watchers::Many(vec![first, watch]);
            }
        }
    }

    /// Removes the watch at `at`; `true` when none is left.
    fn remove(&mut self, at: usize) -> (Watch, bool) {
        match self {
            Watchers::Many(watches) => {
                let watch = watches.remove(at);
                (watch, watches.is_empty())
            }
            Watchers::One(watch) => (*watch, true),
        }
    }
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
        let Watches {
            by_id, unsettled, ..
        } = &mut *watches;
        let mut finished = false;
        for (id, outcome) in outcomes {
            let Some(list) = by_id.get_mut(&id) else {
                continue;
            };
            let mut settled_ticket = None;
            for watch in list.as_mut_slice() {
                if watch.outcome.is_none() && settled_ticket != Some(watch.ticket) {
                    watch.outcome = Some(outcome);
                    settled_ticket = Some(watch.ticket);
                    if let Some(left) = unsettled.get_mut(&watch.ticket) {
                        *left -= 1;
                        finished |= *left == 0;
                    }
                }
            }
        }
        drop(watches);
        if finished {
            self.settled.notify_waiters();
        }
    }

    /// Resolves once every position of `ticket` is settled.
    async fn all_settled(&self, ticket: u64) {
        loop {
            let notified = self.settled.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before looking, so a settle in between wakes us.
            notified.as_mut().enable();
            if self
                .lock()
                .unsettled
                .get(&ticket)
                .is_none_or(|&left| left == 0)
            {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn track(self: &Arc<Self>, ids: &[EventId], flush: Flush) -> Tracked {
        let mut watches = self.lock();
        let ticket = watches.next_ticket;
        watches.next_ticket += 1;
        watches.by_id.reserve(ids.len());
        if !ids.is_empty() {
            watches.unsettled.insert(ticket, ids.len());
        }
        for (position, id) in ids.iter().enumerate() {
            let watch = Watch {
                ticket,
                position,
                outcome: None,
            };
            match watches.by_id.entry(*id) {
                Entry::Occupied(mut entry) => entry.get_mut().push(watch),
                Entry::Vacant(entry) => {
                    entry.insert(Watchers::One(watch));
                }
            }
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
        watches.unsettled.remove(&ticket);
        let outcomes = ids
            .iter()
            .enumerate()
            .map(|(position, id)| {
                let list = watches.by_id.get_mut(id)?;
                let at = list
                    .as_mut_slice()
                    .iter()
                    .position(|w| w.ticket == ticket && w.position == position)?;
                let (watch, emptied) = list.remove(at);
                if emptied {
                    watches.by_id.remove(id);
                }
                watch.outcome
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

    /// Waits until the writer has committed (or skipped) every tracked
    /// event, or until a flush of the recorder returns, whichever is first;
    /// then returns, per tracked id in order,
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
        // Done as soon as the writer has settled every id (other publishers'
        // events queued behind these are not waited for); the flush covers
        // what never settles (an event dropped or not published) and
        // reports write failures.
        tokio::select! {
            biased;
            () = self.tracking.all_settled(self.ticket) => {}
            flushed = flush() => {
                flushed?;
            }
        }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use agentbus::{Event, EventType};

    use super::{Flush, Outcome, Tracking};

    fn never_flushed() -> Flush {
        Box::new(|| Box::pin(async { Ok(0) }))
    }

    fn is_empty(tracking: &Tracking) -> bool {
        let watches = tracking.lock();
        tracking.count.load(Ordering::Acquire) == 0
            && watches.by_id.is_empty()
            && watches.unsettled.is_empty()
    }

    /// A publisher that goes away (a web `POST` whose client hung up, or
    /// that timed out) leaves nothing behind: without this a long-running
    /// server would keep every abandoned id, and every later settle would
    /// take the lock. Seen from outside only as memory, hence a unit test.
    #[test]
    fn a_dropped_tracker_forgets_its_ids_settled_or_not() {
        let tracking = Arc::new(Tracking::default());
        let settled = Event::new(EventType::TaskCreated).id;
        let pending = Event::new(EventType::TaskCreated).id;
        let first = tracking.track(&[settled, pending], never_flushed());
        let second = tracking.track(&[settled], never_flushed());
        tracking.settle([(settled, Outcome::Stored(1))]);
        drop(first);
        assert!(!is_empty(&tracking), "the second tracker still watches");
        drop(second);
        assert!(is_empty(&tracking), "watches left behind");
        // A tracker of nothing holds nothing either.
        drop(tracking.track(&[], never_flushed()));
        assert!(is_empty(&tracking));
    }
}
