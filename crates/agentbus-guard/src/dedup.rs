//! [`Dedup`]: a window that keeps out repeats of an event.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use agentbus::{Event, EventId, Guard, Rejection};
use hashbrown::hash_table::{Entry, HashTable};

use crate::clock::Clock;
use crate::content_key::ContentKeys;

/// How many events a [`Dedup`] remembers unless told otherwise.
pub const DEFAULT_DEDUP_CAPACITY: usize = 65_536;

/// Keeps out an event that repeats one let in within the last `window`:
/// the same id, or the same type, source agent, circle and data (the
/// original Python bus's rule, `configure(dedup_enabled=True,
/// dedup_window=1.0)`).
///
/// # Behaviour
///
/// - The window runs from the first event let in: repeats inside it are
///   rejected with [`Rejection::Duplicate`] naming that first event's id, and
///   do not extend it. Once it has passed, the same content is let in again
///   (and starts a new window). A repeated *id* is rejected the same way.
/// - The window is measured on the coarse monotonic [`Clock`]
///   ([`Clock::coarse`]): changing the system time neither lengthens nor
///   shortens it, and it is exact to within one kernel tick (1 to 10 ms;
///   4 ms on a 250 Hz kernel) either way. A repeat sooner than the window
///   less one tick is always kept out; one later than the window plus one
///   tick is always let in. [`clock`](Self::clock) picks another clock.
/// - Memory is bounded: at most [`capacity`](Self::capacity) events are
///   remembered (65,536 by default, about 130 bytes each at most: 8 MB at
///   the default). At the bound the oldest is forgotten before its window
///   ends (counted in [`forgotten_early`](Self::forgotten_early)), so a
///   repeat of it is let in: the bound can let a duplicate through, never
///   keep a new event out.
/// - Content is compared by a 64-bit hash of the type, agent, circle and
///   data (a chain of folded multiplies, one per scalar and per 8 bytes of
///   text) keyed with a random start and multiplier per window: two
///   different contents collide with probability about 2⁻⁶⁴ per pair, and
///   as clients never see the keys they cannot aim for a collision from the
///   code alone (it is not a cryptographic MAC). Ids are compared whole.
/// - One lock guards the window; the hash of the content is computed before
///   taking it, and under it a check reads the clock and costs two
///   hash-table probes and no allocation (but when a table grows). Expired
///   events are dropped from the tables in sweeps whose cost is a constant
///   per event let in.
/// - Clones share the window and the counters; an event that a later guard
///   rejects is forgotten again ([`Guard::withdraw`]), so its retry is not a
///   duplicate.
///
/// ```
/// use agentbus::{Event, EventBus, EventType};
/// use agentbus_guard::Dedup;
/// use serde_json::json;
/// use std::time::Duration;
///
/// let dedup = Dedup::window(Duration::from_secs(1));
/// let bus = EventBus::builder().guard(dedup.clone()).build();
/// let event = || Event::new(EventType::TaskCompleted).with_source_agent(1).with_data(json!({"task_id": 1}));
/// for _ in 0..10 {
///     bus.publish_blocking(event());
/// }
/// assert_eq!(bus.stats().events_published, 1);
/// assert_eq!(dedup.deduplicated(), 9);
/// assert_eq!(bus.stats().events_deduplicated, 9);
/// ```
#[derive(Clone)]
pub struct Dedup {
    shared: Arc<Shared>,
}

struct Shared {
    window: Duration,
    /// `window` in nanoseconds of `clock`.
    window_nanos: u64,
    capacity: usize,
    clock: Clock,
    keys: ContentKeys,
    state: Mutex<State>,
    deduplicated: AtomicU64,
    forgotten_early: AtomicU64,
}

/// What a dedup window remembers.
///
/// Every event let in gets the next sequence number; `times` holds when
/// each remembered one was let in, oldest first (times never decrease: the
/// clock is monotonic and read under the lock), the front being number
/// `first`. The tables map
/// content and id to a sequence number; an entry numbered below `first`
/// has expired (or was forgotten at the bound) and counts as absent: it is
/// overwritten when its key comes again, and dropped by the next sweep.
#[derive(Default)]
struct State {
    times: VecDeque<u64>,
    first: u64,
    by_content: Index<ByContent>,
    by_id: Index<ById>,
}

#[derive(Clone, Copy)]
struct ByContent {
    key: u64,
    seq: u64,
    /// The event let in with this content.
    id: EventId,
}

#[derive(Clone, Copy)]
struct ById {
    id: EventId,
    seq: u64,
}

/// A table whose expired entries are swept out once it has grown by half
/// (at least [`SWEEP_MIN_GROWTH`] entries) since the last sweep, so a sweep
/// costs a constant per entry added and the table holds at most 1.5 times
/// the remembered events (plus that minimum).
struct Index<T> {
    table: HashTable<T>,
    sweep_at: usize,
}

impl<T> Default for Index<T> {
    fn default() -> Self {
        Self {
            table: HashTable::new(),
            sweep_at: SWEEP_MIN_GROWTH,
        }
    }
}

const SWEEP_MIN_GROWTH: usize = 64;

impl<T> Index<T> {
    /// Sweeps if due: keeps the entries `live` says are.
    fn sweep_if_due(&mut self, live: impl Fn(&T) -> bool, hash: impl Fn(&T) -> u64) {
        if self.table.len() < self.sweep_at {
            return;
        }
        self.table.retain(|entry| live(entry));
        let len = self.table.len();
        if self.table.capacity() > 4 * len + SWEEP_MIN_GROWTH {
            self.table.shrink_to_fit(hash);
        }
        self.sweep_at = len + (len / 2).max(SWEEP_MIN_GROWTH);
    }
}

impl Dedup {
    /// A window of `window`, on the coarse monotonic clock, remembering up
    /// to [`DEFAULT_DEDUP_CAPACITY`] events.
    pub fn window(window: Duration) -> Self {
        Self::build(window, DEFAULT_DEDUP_CAPACITY, Clock::coarse())
    }

    fn build(window: Duration, capacity: usize, clock: Clock) -> Self {
        Self {
            shared: Arc::new(Shared {
                window,
                window_nanos: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
                capacity: capacity.max(1),
                clock,
                keys: ContentKeys::new(),
                state: Mutex::new(State::default()),
                deduplicated: AtomicU64::new(0),
                forgotten_early: AtomicU64::new(0),
            }),
        }
    }

    /// The same window remembering at most `capacity` events (at least 1).
    /// Call before sharing it: it starts a new, empty window.
    #[must_use]
    pub fn capacity(self, capacity: usize) -> Self {
        Self::build(self.shared.window, capacity, self.shared.clock.clone())
    }

    /// The same window on `clock` (say, [`Clock::manual`] in a test).
    /// Call before sharing it: it starts a new, empty window.
    #[must_use]
    pub fn clock(self, clock: Clock) -> Self {
        Self::build(self.shared.window, self.shared.capacity, clock)
    }

    /// How long a repeat is kept out.
    pub fn window_length(&self) -> Duration {
        self.shared.window
    }

    /// Events rejected as duplicates so far.
    pub fn deduplicated(&self) -> u64 {
        // Relaxed: a counter, ordering nothing.
        self.shared.deduplicated.load(Ordering::Relaxed)
    }

    /// Events forgotten before their window ended because the capacity was
    /// reached.
    pub fn forgotten_early(&self) -> u64 {
        self.shared.forgotten_early.load(Ordering::Relaxed)
    }

    /// How many events are remembered now.
    pub fn len(&self) -> usize {
        self.lock().times.len()
    }

    /// Whether nothing is remembered now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing panics while the lock is held but allocation; the state
        // stays consistent enough to go on with.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Forgets what is older than `window` at `now`.
    fn expire(&mut self, now: u64, window: u64) {
        while let Some(&at) = self.times.front() {
            if now.saturating_sub(at) < window {
                break;
            }
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if self.times.pop_front().is_some() {
            self.first += 1;
        }
    }
}

impl Guard for Dedup {
    fn check(&self, event: &Event) -> Result<(), Rejection> {
        let shared = &*self.shared;
        let keys = &shared.keys;
        let key = keys.content(event);
        let id_hash = keys.id(&event.id);
        let mut state = self.lock();
        // Read under the lock, so that `times` never goes backwards between
        // two threads (the coarse clock costs a few nanoseconds).
        let now = shared.clock.now_nanos();
        state.expire(now, shared.window_nanos);
        let State {
            times,
            first,
            by_content,
            by_id,
        } = &mut *state;
        let live = *first;
        // Both probes at once (two tables): each entry is then filled in
        // place if the event is let in.
        let id_entry = by_id.table.entry(
            id_hash,
            |seen| seen.id == event.id,
            |seen| keys.id(&seen.id),
        );
        let content_entry = by_content
            .table
            .entry(key, |seen| seen.key == key, |seen| seen.key);
        let of = match (&id_entry, &content_entry) {
            (Entry::Occupied(seen), _) if seen.get().seq >= live => Some(event.id),
            (_, Entry::Occupied(seen)) if seen.get().seq >= live => Some(seen.get().id),
            _ => None,
        };
        if let Some(of) = of {
            drop(state);
            shared.deduplicated.fetch_add(1, Ordering::Relaxed);
            return Err(Rejection::Duplicate { of });
        }
        if times.len() >= shared.capacity {
            times.pop_front();
            *first += 1;
            shared.forgotten_early.fetch_add(1, Ordering::Relaxed);
        }
        let seq = *first + times.len() as u64;
        times.push_back(now);
        let seen = ByContent {
            key,
            seq,
            id: event.id,
        };
        match content_entry {
            Entry::Occupied(mut expired) => *expired.get_mut() = seen,
            Entry::Vacant(vacant) => {
                vacant.insert(seen);
            }
        }
        match id_entry {
            Entry::Occupied(mut expired) => expired.get_mut().seq = seq,
            Entry::Vacant(vacant) => {
                vacant.insert(ById { id: event.id, seq });
            }
        }
        let live = *first;
        by_content.sweep_if_due(|seen| seen.seq >= live, |seen| seen.key);
        by_id.sweep_if_due(|seen| seen.seq >= live, |seen| keys.id(&seen.id));
        Ok(())
    }

    fn withdraw(&self, event: &Event) {
        let keys = &self.shared.keys;
        let key = keys.content(event);
        let id_hash = keys.id(&event.id);
        let mut state = self.lock();
        if let Ok(seen) = state
            .by_content
            .table
            .find_entry(key, |seen| seen.key == key && seen.id == event.id)
        {
            seen.remove();
        }
        if let Ok(seen) = state
            .by_id
            .table
            .find_entry(id_hash, |seen| seen.id == event.id)
        {
            seen.remove();
        }
        // Its time stays in `times` until it expires (counted by `len`).
    }
}

impl std::fmt::Debug for Dedup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dedup")
            .field("window", &self.shared.window)
            .field("capacity", &self.shared.capacity)
            .field("deduplicated", &self.deduplicated())
            .finish_non_exhaustive()
    }
}
