//! Copy-on-write subscriber tables, one per event type.
//!
//! Publishing reads the table of the event's type through a hazard slot
//! (`hazard.rs`: no lock, no locked instruction) and walks it. Subscribing and unsubscribing
//! build a new table and swap it in; writers serialise on the registry lock,
//! readers never wait. A dispatch that loaded the old table finishes on it.
//!
//! Each swap also bumps its type's version and the bus's generation (plain
//! stores under the registry lock), which is all a [`TableCache`] (the
//! tables a `Publisher` keeps) needs to notice a change: its copy stays valid
//! until the version moves, and it lets go of the old table at its next
//! publish of that type, or at its next sweep of the generation.

use crossbeam_utils::CachePadded;
use smallvec::SmallVec;

use crate::event_type::{EventType, EventTypeSet};
use crate::handler::{quietly, Subscriber};
pub(crate) use crate::hazard::Retired;
use crate::hazard::{Snapshot, TableCell};
use crate::id::SubscriptionId;
use crate::sync::{Arc, AtomicU64, Ordering};

/// Subscribers held inline before the table spills to the heap.
const INLINE_SUBSCRIBERS: usize = 4;

/// An immutable list of the subscribers of one event type.
pub(crate) struct Table {
    subscribers: SmallVec<[Arc<Subscriber>; INLINE_SUBSCRIBERS]>,
    /// Loom builds: [`LIVE`] while the table exists. `tests/loom.rs` poisons
    /// freed memory, so a publish reading a table after it was freed fails
    /// this check instead of walking garbage.
    #[cfg(agentbus_loom)]
    canary: u64,
}

#[cfg(agentbus_loom)]
const LIVE: u64 = 0x5AFE_7AB1E;

impl Default for Table {
    fn default() -> Self {
        Self::new(SmallVec::new())
    }
}

impl Table {
    fn new(subscribers: SmallVec<[Arc<Subscriber>; INLINE_SUBSCRIBERS]>) -> Self {
        Self {
            subscribers,
            #[cfg(agentbus_loom)]
            canary: LIVE,
        }
    }

    #[inline]
    pub(crate) fn subscribers(&self) -> &[Arc<Subscriber>] {
        #[cfg(agentbus_loom)]
        assert_eq!(
            self.canary, LIVE,
            "a subscriber table was read after it was freed"
        );
        &self.subscribers
    }

    fn with(&self, subscriber: &Arc<Subscriber>) -> Table {
        let mut subscribers = self.subscribers.clone();
        subscribers.push(Arc::clone(subscriber));
        Table::new(subscribers)
    }

    fn without(&self, id: SubscriptionId) -> Table {
        let subscribers = self
            .subscribers
            .iter()
            .filter(|s| s.id() != id)
            .cloned()
            .collect();
        Table::new(subscribers)
    }
}

/// The dispatch array: one table per [`EventType`], indexed by
/// [`EventType::index`].
pub(crate) struct Tables {
    /// Padded so a write to one type's cell (subscription churn) does not
    /// evict the line publishers of another type read.
    by_type: [CachePadded<Cell>; EventType::COUNT],
    /// Bumped after every write, so a [`TableCache`] tells with one load
    /// whether any table changed since it last looked.
    generation: CachePadded<AtomicU64>,
}

/// One type's table and how many times it was replaced.
struct Cell {
    table: TableCell,
    /// Bumped after each swap of `table`; lets a [`TableCache`] find which of
    /// its copies went stale without loading the tables.
    version: AtomicU64,
}

impl Cell {
    /// Swaps in `next(current)` and returns the old table. Callers hold the
    /// registry lock.
    fn replace(&self, next: impl FnOnce(&Table) -> Table) -> Arc<Table> {
        let old = self.table.replace(next);
        bump(&self.version);
        old
    }
}

/// Adds one to a counter only writers (holding the registry lock) change.
fn bump(counter: &AtomicU64) {
    // Release pairs with the Acquire loads in `TableCache::load`: a cache
    // that sees the new count also sees the swap before it.
    let next = counter.load(Ordering::Relaxed) + 1;
    counter.store(next, Ordering::Release);
}

impl Tables {
    pub(crate) fn new() -> Self {
        Self {
            by_type: std::array::from_fn(|_| {
                CachePadded::new(Cell {
                    table: TableCell::new(Arc::new(Table::default())),
                    version: AtomicU64::new(0),
                })
            }),
            generation: CachePadded::new(AtomicU64::new(0)),
        }
    }

    fn cell(&self, event_type: EventType) -> &Cell {
        &self.by_type[event_type.index()]
    }

    #[inline]
    pub(crate) fn load(&self, event_type: EventType) -> Snapshot<'_> {
        self.cell(event_type).table.load()
    }

    /// Adds `subscriber` to the tables of `types`. Callers hold the registry lock.
    pub(crate) fn insert(&self, types: EventTypeSet, subscriber: &Arc<Subscriber>) -> Retired {
        let retired = types
            .iter()
            .map(|t| self.cell(t).replace(|table| table.with(subscriber)))
            .collect();
        bump(&self.generation);
        retired
    }

    /// Removes subscription `id` from the tables of `types`. Callers hold the
    /// registry lock.
    pub(crate) fn remove(&self, types: EventTypeSet, id: SubscriptionId) -> Retired {
        let retired = types
            .iter()
            .map(|t| self.cell(t).replace(|table| table.without(id)))
            .collect();
        bump(&self.generation);
        retired
    }

    /// Empties every table. Callers hold the registry lock.
    pub(crate) fn clear(&self) -> Retired {
        let retired = self
            .by_type
            .iter()
            .map(|cell| cell.replace(|_| Table::default()))
            .collect();
        bump(&self.generation);
        retired
    }
}

/// One [`Publisher`](crate::Publisher)'s own references to the tables it
/// publishes to.
///
/// A publish checks the version of its type's cell with a plain load (a
/// line only a change of this type writes) and, while it has not moved, uses
/// its copy: no hazard slot, no reference count, nothing that a subscription
/// change of another type touches. Every [`SWEEP_EVERY`] publishes it also
/// checks the bus's generation and lets go of any other copy that went
/// stale, so a removed subscriber of a type this publisher no longer
/// publishes is still released within that many publishes.
pub(crate) struct TableCache {
    /// The bus's generation when the copies were last swept.
    generation: u64,
    /// Publishes left until the next sweep.
    until_sweep: u32,
    /// Each copy with its type's version at the time it was taken.
    by_type: [Option<(u64, Arc<Table>)>; EventType::COUNT],
}

/// How many publishes a [`TableCache`] makes between checks of the bus's
/// generation: rare enough that churn on other types costs its publishers a
/// cache miss per this many publishes, not per change.
pub(crate) const SWEEP_EVERY: u32 = 64;

impl TableCache {
    pub(crate) fn new() -> Self {
        Self {
            generation: 0,
            until_sweep: SWEEP_EVERY,
            by_type: std::array::from_fn(|_| None),
        }
    }

    /// The current table of `event_type` in `tables`, which must be the
    /// tables this cache has always been used with.
    #[inline]
    pub(crate) fn load(&mut self, tables: &Tables, event_type: EventType) -> &Table {
        self.until_sweep -= 1;
        if self.until_sweep == 0 {
            self.sweep(tables);
        }
        let cell = tables.cell(event_type);
        // Acquire pairs with the Release in `bump`: seeing the new version
        // means `load_full` below sees the new table.
        let version = cell.version.load(Ordering::Acquire);
        let slot = &mut self.by_type[event_type.index()];
        if slot.as_ref().is_some_and(|(cached, _)| *cached != version) {
            // Possibly the last reference to a removed subscriber, whose
            // captures' Drop is user code and must not unwind into the
            // publisher.
            let stale = slot.take();
            quietly(|| drop(stale));
        }
        let (_, table) = slot.get_or_insert_with(|| (version, cell.table.load_full()));
        table
    }

    /// Replaces every copy whose type changed, if anything changed.
    #[cold]
    fn sweep(&mut self, tables: &Tables) {
        self.until_sweep = SWEEP_EVERY;
        // Acquire pairs with the Release in `bump`.
        let generation = tables.generation.load(Ordering::Acquire);
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        for (index, slot) in self.by_type.iter_mut().enumerate() {
            let Some((version, table)) = slot else {
                continue;
            };
            let cell = &tables.by_type[index];
            // Acquire pairs with the Release in `bump`.
            let current = cell.version.load(Ordering::Acquire);
            if current != *version {
                let stale = std::mem::replace(table, cell.table.load_full());
                *version = current;
                quietly(|| drop(stale));
            }
        }
    }
}
