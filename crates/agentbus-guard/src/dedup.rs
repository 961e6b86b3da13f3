//! [`Dedup`]: a window that keeps out repeats of an event.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentbus::{Event, EventId, Guard, Rejection};

use crate::clock::Clock;
use crate::content_key::ContentKeys;
use crate::window_lock::{WindowGuard, WindowLock};

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
///   remembered (65,536 by default; about 100 bytes each at the default,
///   under 7 MB; at most 180 bytes each for other capacities). At the
///   bound the oldest is forgotten before its window ends (counted in
///   [`forgotten_early`](Self::forgotten_early)), so a repeat of it is let
///   in: the bound can let a duplicate through, never keep a new event out.
/// - Content is compared by a 64-bit hash of the type, agent, circle and
///   data (a chain of folded multiplies, one per scalar and per 8 bytes of
///   text) keyed with a random start and multiplier per window: two
///   different contents collide with probability about 2⁻⁶⁴ per pair, and
///   as clients never see the keys they cannot aim for a collision from the
///   code alone (it is not a cryptographic MAC). Ids are compared whole.
/// - One lock guards the window; the hash of the content is computed before
///   taking it. The lock is a word taken by one compare-and-swap and
///   released by a plain store (cheaper than `std::sync::Mutex` when
///   uncontended); a waiter spins briefly, then yields its time slice
///   between tries, so on an oversubscribed machine it never burns a core
///   waiting for a preempted holder, but it may be overtaken (no queue).
///   Under it a check reads the clock and costs two probes
///   of one open-addressed index (8 bytes a slot, two slots per event) and
///   no allocation (but when the event queue grows or the index is
///   rebuilt). A forgotten event's slots stay until the index is rebuilt
///   at half full (sized so that the live slots fill at most a third of
///   it), a cost that is a constant per event let in.
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
    state: WindowLock<State>,
    deduplicated: AtomicU64,
    forgotten_early: AtomicU64,
}

/// What a dedup window remembers.
///
/// Every event let in gets the next sequence number and joins `events`,
/// oldest first (times never decrease: the clock is monotonic and read
/// under the lock), the front being number `first`. `index` finds an event
/// by its content key and by its id: two slots per event, never removed
/// one by one. A slot whose event has left `events` counts as absent
/// (probes go past it) until a rebuild of the index drops it; inserts take
/// only empty slots, so a probe reads an event only when a slot's tag
/// matches.
#[derive(Default)]
struct State {
    events: VecDeque<Remembered>,
    first: u64,
    index: Index,
}

struct Remembered {
    at: u64,
    key: u64,
    id: EventId,
    /// Withdrawn: still counted until it expires, no longer found.
    withdrawn: bool,
}

/// An open-addressed table (linear probing) of 64-bit slots: the top 32
/// bits of a hash with the lowest of them set (so no slot is [`EMPTY`] or
/// [`TOMBSTONE`]), then the low 32 bits of the event's sequence number. A
/// slot whose tag matches is confirmed against the event itself.
struct Index {
    slots: Vec<u64>,
    mask: usize,
    /// Slots not [`EMPTY`].
    used: usize,
    /// Slots filled since the index was built.
    filled: usize,
}

const EMPTY: u64 = 0;
/// A withdrawn event's slot: probes go past it; a rebuild drops it.
const TOMBSTONE: u64 = 1;
/// The fewest slots an index has.
const MIN_SLOTS: usize = 64;
/// Slots filled after which the index is rebuilt whatever its load, so no
/// slot is ever 2³¹ events old (see [`State::seq`]).
const REBUILD_AFTER: usize = 1 << 30;
/// The most events a window remembers, whatever its capacity (with
/// [`REBUILD_AFTER`], keeps every slot younger than 2³¹ events).
const MAX_CAPACITY: usize = 1 << 30;

impl Default for Index {
    fn default() -> Self {
        Self::with_room_for(0)
    }
}

impl Index {
    /// An empty index that `entries` fill to at most a third.
    fn with_room_for(entries: usize) -> Self {
        let len = (entries * 3).next_power_of_two().max(MIN_SLOTS);
        Self {
            slots: vec![EMPTY; len],
            mask: len - 1,
            used: 0,
            filled: 0,
        }
    }

    #[inline(always)]
    fn tag(hash: u64) -> u64 {
        (hash >> 32) | 1
    }

    #[inline(always)]
    fn fill(&mut self, at: usize, hash: u64, seq: u64) {
        // Without a branch: whether the slot was empty is a coin toss at
        // the index's load.
        self.used += usize::from(self.slots[at] == EMPTY);
        self.filled += 1;
        self.slots[at] = (Self::tag(hash) << 32) | (seq & u64::from(u32::MAX));
    }

    /// Whether half the slots are in use (linear probing slows past that),
    /// or the oldest slot may be nearing 2³¹ events.
    #[inline(always)]
    fn due(&self) -> bool {
        self.used * 2 > self.slots.len() || self.filled >= REBUILD_AFTER
    }
}

impl State {
    /// The remembered event numbered `seq`, if it still is.
    #[inline(always)]
    fn get(&self, seq: u64) -> Option<&Remembered> {
        self.events
            .get(usize::try_from(seq.wrapping_sub(self.first)).ok()?)
    }

    /// The number of the remembered event a slot names (`None` for a
    /// tombstone and for a slot whose event has left `events`): the one
    /// with these low 32 bits nearest below the next number. Every slot is
    /// younger than 2³¹ events ([`REBUILD_AFTER`] plus [`MAX_CAPACITY`]),
    /// so this is exact for every event still remembered. It reads only
    /// the slot and the queue's ends, not the event.
    #[inline(always)]
    fn seq(&self, slot: u64) -> Option<u64> {
        let next = self.first + self.events.len() as u64;
        let back = (next as u32).wrapping_sub(slot as u32);
        // `back` is 1 for the newest event, `len` for the oldest.
        let remembered = (back.wrapping_sub(1) as usize) < self.events.len();
        (slot > TOMBSTONE && remembered).then(|| next - u64::from(back))
    }

    /// The event with `hash` that `matches`, by sequence number; if none
    /// is remembered, the empty slot that ends the probe, to insert it at.
    #[inline(always)]
    fn find(&self, hash: u64, matches: impl Fn(&Remembered) -> bool) -> Result<u64, usize> {
        let tag = Index::tag(hash);
        let mut at = hash as usize & self.index.mask;
        loop {
            let slot = self.index.slots[at];
            if slot == EMPTY {
                return Err(at);
            }
            // Only a slot whose tag matches is looked into (a tombstone's
            // tag is 0, never a hash's).
            if slot >> 32 == tag {
                if let Some(seq) = self.seq(slot) {
                    if self.get(seq).is_some_and(&matches) {
                        return Ok(seq);
                    }
                }
            }
            at = (at + 1) & self.index.mask;
        }
    }

    /// Forgets what is older than `window` at `now`.
    fn expire(&mut self, now: u64, window: u64) {
        while let Some(oldest) = self.events.front() {
            if now.saturating_sub(oldest.at) < window {
                break;
            }
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if self.events.pop_front().is_some() {
            self.first += 1;
        }
    }

    /// Remembers an event let in, at the slots [`find`](Self::find) gave
    /// for its content key and id hash.
    fn insert(
        &mut self,
        event: Remembered,
        id_hash: u64,
        slots: (usize, usize),
        keys: &ContentKeys,
    ) {
        let seq = self.first + self.events.len() as u64;
        let key = event.key;
        self.events.push_back(event);
        let (content_at, mut id_at) = slots;
        self.index.fill(content_at, key, seq);
        if id_at == content_at {
            // Both probes chose one free slot: the id takes the next.
            loop {
                id_at = (id_at + 1) & self.index.mask;
                let slot = self.index.slots[id_at];
                if slot == EMPTY {
                    break;
                }
            }
        }
        self.index.fill(id_at, id_hash, seq);
        if self.index.due() {
            self.rebuild(keys);
        }
    }

    /// A new index holding the slots of the remembered events (but those
    /// withdrawn), which fill at most a third of it.
    fn rebuild(&mut self, keys: &ContentKeys) {
        let live = self.events.iter().filter(|event| !event.withdrawn).count();
        let mut index = Index::with_room_for(2 * live);
        for (seq, event) in (self.first..).zip(&self.events) {
            if event.withdrawn {
                continue;
            }
            for hash in [event.key, keys.id(&event.id)] {
                let mut at = hash as usize & index.mask;
                while index.slots[at] != EMPTY {
                    at = (at + 1) & index.mask;
                }
                index.fill(at, hash, seq);
            }
        }
        index.filled = 0;
        self.index = index;
    }

    /// Makes the remembered event with this content and id unfindable (it
    /// still counts until it expires).
    fn withdraw(&mut self, key: u64, id: &EventId, id_hash: u64) {
        let Ok(seq) = self.find(key, |seen| seen.key == key && seen.id == *id) else {
            return;
        };
        for hash in [key, id_hash] {
            let tag = Index::tag(hash);
            let mut at = hash as usize & self.index.mask;
            loop {
                let slot = self.index.slots[at];
                if slot == EMPTY {
                    break;
                }
                if slot >> 32 == tag && self.seq(slot) == Some(seq) {
                    self.index.slots[at] = TOMBSTONE;
                    break;
                }
                at = (at + 1) & self.index.mask;
            }
        }
        let first = self.first;
        if let Some(event) = self.events.get_mut((seq - first) as usize) {
            event.withdrawn = true;
        }
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
                capacity: capacity.clamp(1, MAX_CAPACITY),
                clock,
                keys: ContentKeys::new(),
                state: WindowLock::new(State::default()),
                deduplicated: AtomicU64::new(0),
                forgotten_early: AtomicU64::new(0),
            }),
        }
    }

    /// The same window remembering at most `capacity` events (at least 1,
    /// at most 2³⁰).
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
        self.lock().events.len()
    }

    /// Whether nothing is remembered now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> WindowGuard<'_, State> {
        self.shared.state.lock()
    }
}

impl Guard for Dedup {
    fn check(&self, event: &Event) -> Result<(), Rejection> {
        let shared = &*self.shared;
        let keys = &shared.keys;
        let key = keys.content(event);
        let id_hash = keys.id(&event.id);
        let mut state = self.lock();
        // Read under the lock, so that times never go backwards between two
        // threads (the coarse clock costs a few nanoseconds).
        let now = shared.clock.now_nanos();
        state.expire(now, shared.window_nanos);
        let id_slot = match state.find(id_hash, |seen| seen.id == event.id) {
            Ok(_) => Err(event.id),
            Err(at) => Ok(at),
        };
        let content_slot = match state.find(key, |seen| seen.key == key) {
            Ok(seq) => Err(state.get(seq).map_or(event.id, |seen| seen.id)),
            Err(at) => Ok(at),
        };
        let slots = match (id_slot, content_slot) {
            (Ok(id_at), Ok(content_at)) => (content_at, id_at),
            (Err(of), _) | (_, Err(of)) => {
                drop(state);
                shared.deduplicated.fetch_add(1, Ordering::Relaxed);
                return Err(Rejection::Duplicate { of });
            }
        };
        if state.events.len() >= shared.capacity {
            state.forget_oldest();
            shared.forgotten_early.fetch_add(1, Ordering::Relaxed);
        }
        let remembered = Remembered {
            at: now,
            key,
            id: event.id,
            withdrawn: false,
        };
        state.insert(remembered, id_hash, slots, keys);
        Ok(())
    }

    fn withdraw(&self, event: &Event) {
        let keys = &self.shared.keys;
        let key = keys.content(event);
        let id_hash = keys.id(&event.id);
        self.lock().withdraw(key, &event.id, id_hash);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// However empty it is, an index is due for a rebuild once
    /// [`REBUILD_AFTER`] slots were filled since it was built, so that no
    /// slot is ever 2³¹ events old ([`State::seq`]). Seen from outside,
    /// this needs some 2³⁰ fills into an index that half-full never
    /// rebuilds first, that is one sized for about 2²⁸ events remembered at
    /// once: tens of GB. So the count of fills starts here one short.
    #[test]
    fn an_index_is_due_for_a_rebuild_after_rebuild_after_fills_whatever_its_load() {
        let mut index = Index::with_room_for(1000);
        index.filled = REBUILD_AFTER - 1;
        index.fill(0, u64::MAX, 0);
        assert_eq!(index.used, 1);
        assert!(index.due());
    }
}
