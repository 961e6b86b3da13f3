//! Copy-on-write subscriber tables, one per event type.
//!
//! Publishing loads the table of the event's type (no lock, no reference
//! count write on a shared line) and walks it. Subscribing and unsubscribing
//! build a new table and swap it in; writers serialise on the registry lock,
//! readers never wait. A dispatch that loaded the old table finishes on it.

use crossbeam_utils::CachePadded;
use smallvec::SmallVec;

use crate::event_type::{EventType, EventTypeSet};
use crate::handler::Subscriber;
use crate::id::SubscriptionId;
use crate::sync::{Arc, ArcCell, Snapshot};

/// Subscribers held inline before the table spills to the heap.
const INLINE_SUBSCRIBERS: usize = 4;

/// An immutable list of the subscribers of one event type.
#[derive(Default)]
pub(crate) struct Table {
    subscribers: SmallVec<[Arc<Subscriber>; INLINE_SUBSCRIBERS]>,
}

impl Table {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Subscriber>> {
        self.subscribers.iter()
    }

    fn with(&self, subscriber: &Arc<Subscriber>) -> Table {
        let mut subscribers = self.subscribers.clone();
        subscribers.push(Arc::clone(subscriber));
        Table { subscribers }
    }

    fn without(&self, id: SubscriptionId) -> Table {
        let subscribers = self
            .subscribers
            .iter()
            .filter(|s| s.id() != id)
            .cloned()
            .collect();
        Table { subscribers }
    }
}

/// The dispatch array: one table per [`EventType`], indexed by
/// [`EventType::index`].
pub(crate) struct Tables {
    /// Padded so a write to one type's cell (subscription churn) does not
    /// evict the line publishers of another type read.
    by_type: [CachePadded<ArcCell<Table>>; EventType::COUNT],
}

/// Tables replaced by a write, handed back so they are dropped after the
/// registry lock is released: dropping a table may drop the last reference to
/// a subscriber, and with it user closures whose `Drop` is user code.
pub(crate) type Retired = SmallVec<[Arc<Table>; 1]>;

impl Tables {
    pub(crate) fn new() -> Self {
        Self {
            by_type: std::array::from_fn(|_| {
                CachePadded::new(ArcCell::new(Arc::new(Table::default())))
            }),
        }
    }

    #[inline]
    pub(crate) fn load(&self, event_type: EventType) -> Snapshot<Table> {
        self.by_type[event_type.index()].load()
    }

    /// Adds `subscriber` to the tables of `types`. Callers hold the registry lock.
    pub(crate) fn insert(&self, types: EventTypeSet, subscriber: &Arc<Subscriber>) -> Retired {
        types
            .iter()
            .map(|t| {
                let cell = &self.by_type[t.index()];
                let next = cell.load().with(subscriber);
                cell.swap(Arc::new(next))
            })
            .collect()
    }

    /// Removes subscription `id` from the tables of `types`. Callers hold the
    /// registry lock.
    pub(crate) fn remove(&self, types: EventTypeSet, id: SubscriptionId) -> Retired {
        types
            .iter()
            .map(|t| {
                let cell = &self.by_type[t.index()];
                let next = cell.load().without(id);
                cell.swap(Arc::new(next))
            })
            .collect()
    }

    /// Empties every table. Callers hold the registry lock.
    pub(crate) fn clear(&self) -> Retired {
        self.by_type
            .iter()
            .map(|cell| cell.swap(Arc::new(Table::default())))
            .collect()
    }
}
