//! The bounded history: a lock-free ring of the newest published events.
//!
//! # Behaviour
//!
//! - An event is recorded when it is published, before any handler runs.
//! - The ring keeps exactly `capacity` newest events (any capacity, powers of
//!   two or not; `0` keeps none). When it is full the oldest is overwritten and
//!   released: the ring drops its `Arc`, so a pushed-out event is freed as soon
//!   as nobody else holds it.
//! - Reads are newest first and consistent while publishers race them: every
//!   entry returned was in the ring during the read, none twice, none torn.
//!   Reads serialise among themselves (they are for debugging); publishers
//!   never wait for a read.
//! - [`clear`](History::clear) forgets everything published before it and
//!   releases those events.
//!
//! # How
//!
//! Each publish takes a ticket (one `fetch_add`, the only write to a line all
//! publishers share) and installs its event in slot `ticket % capacity` with
//! one 128-bit compare-and-swap of the slot's *word*: the ticket and event
//! type in the high half, the event's `Arc` pointer in the low half. A writer
//! only replaces an older ticket, so a writer lapped by a newer one gives up
//! (its event is already out of the window), and because tickets never
//! repeat the CAS cannot suffer ABA. A reader checks each slot's ticket, so an
//! overwritten slot is never mistaken for the one it wants, and filters on
//! the type without touching the event.
//!
//! Reclamation: the writer that swaps an event out owns the ring's reference
//! to it. It drops it at once unless a read is in progress, in which case it
//! parks it in a retired list that the reader drains when done. A Dekker-style
//! handshake (writer: `SeqCst` swap, then `SeqCst` load of `reading`; reader:
//! `SeqCst` store of `reading`, then `SeqCst` slot loads) guarantees that
//! either the writer sees the reader and defers, or the reader never sees the
//! old pointer. On x86 this costs the publisher nothing beyond its locked
//! CAS: no fence instruction. (Loom does not model `SeqCst` accesses, so loom
//! builds add `SeqCst` fences, which give the same guarantee; see
//! [`dekker_fence`].)
#![allow(unsafe_code)]

use std::sync::Arc as StdArc;

use crossbeam_utils::CachePadded;

use crate::event::Event;
use crate::event_type::{EventType, EventTypeSet};
use crate::filter::EventFilter;
use crate::id::EventId;
use crate::sync::{
    dekker_fence, fence, lock, try_lock, AtomicBool, AtomicU64, AtomicWord, Mutex, Ordering,
    RetiredList,
};

/// The largest history capacity a bus accepts (4 Mi events, 64 MiB of slots).
pub const MAX_HISTORY_CAPACITY: usize = 1 << 22;

/// The default history capacity, as in the specification.
pub const DEFAULT_HISTORY_CAPACITY: usize = 1000;

/// A slot word's high half: `ticket + 1` above 5 bits of event type.
/// Zero means never written; a zero low half means no event (cleared).
const TYPE_BITS: u32 = 5;
const TYPE_MASK: u64 = (1 << TYPE_BITS) - 1;

const _: () = assert!(
    EventType::COUNT <= 1 << TYPE_BITS,
    "event type must fit the slot tag"
);

#[inline]
fn tag_of(ticket: u64, event_type: EventType) -> u64 {
    ((ticket + 1) << TYPE_BITS) | event_type.index() as u64
}

// A pointer must fit the low half of a slot word.
const _: () = assert!(usize::BITS <= 64, "a pointer must fit in 64 bits");

/// Packs a tag and an event pointer into a slot word.
///
/// The pointer becomes an integer here, so its provenance is *exposed*
/// (`expose_provenance`), and [`pointer`] takes it back with
/// `with_exposed_provenance`: a 128-bit atomic holds integers, and this is
/// the Rust memory model's sanctioned way for a pointer to round-trip
/// through one. Miri tracks exposed provenance (`.ci/run` passes
/// `-Zmiri-permissive-provenance` to say so and silence its warning);
/// strict provenance cannot express a pointer stored as an integer.
#[inline]
fn word(tag: u64, event: *const Event) -> u128 {
    (u128::from(tag) << 64) | event.expose_provenance() as u128
}

#[inline]
fn tag(word: u128) -> u64 {
    (word >> 64) as u64
}

#[inline]
fn ticket_plus_one(word: u128) -> u64 {
    tag(word) >> TYPE_BITS
}

#[inline]
fn type_index(word: u128) -> usize {
    (tag(word) & TYPE_MASK) as usize
}

/// The event pointer of a slot word (null if the slot holds none), with the
/// provenance [`word`] exposed.
#[inline]
fn pointer(word: u128) -> *const Event {
    // The low half is a `usize` that [`word`] widened, so this narrowing
    // gives it back unchanged.
    std::ptr::with_exposed_provenance(word as u64 as usize)
}

/// One entry: 16 bytes, four to a cache line.
///
/// Padding each slot to its own line (tried first, so that two publishers
/// writing neighbouring tickets never share one) made the default ring of
/// 1000 take 64 KiB, twice the L1 data cache, and bought nothing: with two
/// publishers the slot a ticket lands on was written a lap ago by either
/// thread anyway. Packed, the ring is 16 KiB; criterion, one run each way:
/// one subscriber 1.18x -> 1.07x tokio broadcast, two publishers 52.1 ->
/// 47.2 ns per event.
#[repr(align(16))]
struct Slot {
    word: AtomicWord,
}

/// `ticket % capacity` without a division.
///
/// A 64-bit `div` sits on every publish's critical path (ticket, then slot
/// index, then the slot's CAS) and takes ~18 cycles here; this is Lemire,
/// Kaser and Kurz's direct remainder ("Faster Remainder by Direct
/// Computation", 2019): with `magic = ceil(2^128 / capacity)`,
/// `ticket % capacity` is the top 64 bits of
/// `(magic * ticket mod 2^128) * capacity`, exact for every 64-bit ticket
/// because 128 >= 64 + log2(capacity). Three multiplications, no branch.
#[derive(Clone, Copy)]
struct Remainder {
    magic: u128,
    divisor: u64,
}

impl Remainder {
    fn new(divisor: u64) -> Self {
        assert!(divisor > 0, "a remainder by zero");
        Self {
            // Wraps to 0 for a divisor of 1, which then yields 0: still right.
            magic: (u128::MAX / u128::from(divisor)).wrapping_add(1),
            divisor,
        }
    }

    #[inline]
    fn of(self, ticket: u64) -> u64 {
        let low = self.magic.wrapping_mul(u128::from(ticket));
        let divisor = u128::from(self.divisor);
        // The top 64 bits of the 192-bit product `low * divisor`.
        let high = (low >> 64) * divisor;
        let carry = (u128::from(low as u64) * divisor) >> 64;
        ((high + carry) >> 64) as u64
    }
}

/// The ring; `None` inside [`History`] when the capacity is zero.
struct Ring {
    slots: Box<[Slot]>,
    capacity: u64,
    /// `ticket % capacity`, precomputed.
    slot_of: Remainder,
    /// The next ticket to hand out.
    head: CachePadded<AtomicU64>,
    /// Tickets below this were cleared.
    floor: AtomicU64,
    /// Serialises readers, so one flag tells writers a read is running.
    readers: Mutex<()>,
    reading: CachePadded<AtomicBool>,
    /// Events swapped out while a read was running; dropped by the reader.
    retired: RetiredList<StdArc<Event>>,
    /// Loom builds keep released events alive here and remember their
    /// addresses, so a read of a released event fails the model instead of
    /// being undefined behaviour.
    #[cfg(agentbus_loom)]
    graveyard: Mutex<Vec<StdArc<Event>>>,
}

pub(crate) struct History {
    ring: Option<Ring>,
}

impl History {
    /// A history of `capacity` events; callers check it against
    /// [`MAX_HISTORY_CAPACITY`].
    pub(crate) fn new(capacity: usize) -> Self {
        let ring = (capacity > 0).then(|| Ring {
            slots: (0..capacity)
                .map(|_| Slot {
                    word: AtomicWord::new(0),
                })
                .collect(),
            capacity: capacity as u64,
            slot_of: Remainder::new(capacity as u64),
            head: CachePadded::new(AtomicU64::new(0)),
            floor: AtomicU64::new(0),
            readers: Mutex::new(()),
            reading: CachePadded::new(AtomicBool::new(false)),
            retired: RetiredList::new(),
            #[cfg(agentbus_loom)]
            graveyard: Mutex::new(Vec::new()),
        });
        Self { ring }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.ring.as_ref().map_or(0, |ring| ring.capacity as usize)
    }

    /// How many events the history holds: the newest `capacity` tickets
    /// handed out since the last clear.
    pub(crate) fn len(&self) -> usize {
        self.ring.as_ref().map_or(0, |ring| {
            // Acquire pairs with the AcqRel fetch_max in `clear`.
            let floor = ring.floor.load(Ordering::Acquire);
            let head = ring.head.load(Ordering::Relaxed);
            head.saturating_sub(floor).min(ring.capacity) as usize
        })
    }

    #[inline]
    pub(crate) fn push(&self, event: &StdArc<Event>) {
        if let Some(ring) = &self.ring {
            ring.push(event);
        }
    }

    /// Up to `query.limit` matching events, newest first.
    pub(crate) fn read(&self, query: &HistoryQuery) -> Vec<StdArc<Event>> {
        match &self.ring {
            Some(ring) if query.limit > 0 => ring.read(query),
            _ => Vec::new(),
        }
    }

    pub(crate) fn clear(&self) {
        if let Some(ring) = &self.ring {
            ring.clear();
        }
    }
}

impl Ring {
    #[inline]
    fn slot(&self, ticket: u64) -> &Slot {
        &self.slots[self.slot_of.of(ticket) as usize]
    }

    #[inline]
    fn push(&self, event: &StdArc<Event>) {
        // Relaxed: the ticket only has to be unique; the slot word's CAS
        // publishes the entry.
        let ticket = self.head.fetch_add(1, Ordering::Relaxed);
        let slot = self.slot(ticket);
        let new = word(
            tag_of(ticket, event.event_type),
            StdArc::into_raw(StdArc::clone(event)),
        );
        // A guess, possibly torn: its tag half is one the slot really held,
        // and tags only grow, so "lapped" below is never wrong; a wrong
        // guess only fails the CAS, which returns the real word. The CAS
        // (SeqCst) acquires whatever the slot's last writer published.
        let mut current = slot.word.load_guess();
        loop {
            if ticket_plus_one(current) > ticket {
                // Lapped: a newer ticket owns the slot, and ours is already
                // older than the window. Give back the reference we made.
                // SAFETY: `new`'s pointer came from `Arc::into_raw` above and
                // was never published.
                drop(unsafe { StdArc::from_raw(pointer(new)) });
                return;
            }
            // SeqCst: half of the Dekker handshake with `read` (see module docs).
            match slot
                .word
                .compare_exchange(current, new, Ordering::SeqCst, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        self.release(pointer(current));
    }

    /// Drops the ring's reference to an event just swapped out of a slot,
    /// or parks it if a read might be about to clone it.
    #[inline]
    fn release(&self, event: *const Event) {
        if event.is_null() {
            return;
        }
        // SAFETY: every non-null slot pointer came from `Arc::into_raw` and
        // the slot owned that reference; the CAS that removed it from the
        // slot transferred it to us, exactly once.
        let event = unsafe { StdArc::from_raw(event) };
        // The writer's half of the handshake with `read`: our SeqCst CAS,
        // then this SeqCst load. Either we see `reading` set, or the reader's
        // SeqCst slot loads come after our CAS in the single SeqCst order and
        // never see the retired pointer. Also Acquire, pairing with the
        // Release that ends a read: its reference-count increments come
        // before our drop.
        dekker_fence();
        if self.reading.load(Ordering::SeqCst) {
            self.park(event);
        } else {
            self.bury(event);
        }
    }

    /// Leaves `event` for the running read to drop. Out of line: reads are
    /// rare, and publishers should not carry this path.
    #[cold]
    #[inline(never)]
    fn park(&self, event: StdArc<Event>) {
        self.retired.push(event);
        // The read may have drained the list just before this push.
        self.collect_retired();
    }

    #[cfg(not(agentbus_loom))]
    #[inline]
    fn bury(&self, event: StdArc<Event>) {
        drop(event);
    }

    #[cfg(agentbus_loom)]
    fn bury(&self, event: StdArc<Event>) {
        lock(&self.graveyard).push(event);
    }

    #[cfg(agentbus_loom)]
    fn assert_alive(&self, event: *const Event) {
        let released = lock(&self.graveyard)
            .iter()
            .any(|buried| std::ptr::eq(StdArc::as_ptr(buried), event));
        assert!(!released, "history read an event after releasing it");
    }

    fn read(&self, query: &HistoryQuery) -> Vec<StdArc<Event>> {
        let exclusive = lock(&self.readers);
        // The reader's half of the handshake with `release`: this SeqCst
        // store, then SeqCst slot loads.
        self.reading.store(true, Ordering::SeqCst);
        dekker_fence();

        // Acquire pairs with the AcqRel fetch_max in `clear`.
        let floor = self.floor.load(Ordering::Acquire);
        let head = self.head.load(Ordering::Relaxed);
        let oldest = head.saturating_sub(self.capacity).max(floor);
        let mut found = Vec::with_capacity(query.limit.min((head - oldest) as usize));
        for ticket in (oldest..head).rev() {
            if found.len() == query.limit {
                break;
            }
            // SeqCst: see the handshake above; it also acquires the CAS that
            // installed the entry.
            let current = self.slot(ticket).word.load(Ordering::SeqCst);
            if ticket_plus_one(current) != ticket + 1 || pointer(current).is_null() {
                continue; // not written yet, overwritten, or cleared
            }
            if !query.filter.types.contains_index(type_index(current)) {
                continue;
            }
            #[cfg(agentbus_loom)]
            self.assert_alive(pointer(current));
            // SAFETY: the pointer came from `Arc::into_raw` and its reference
            // is still counted: whoever swaps it out sees `reading` (set
            // before this load, in the SeqCst order) and parks it in
            // `retired`, which is drained only after this loop.
            let event = unsafe {
                StdArc::increment_strong_count(pointer(current));
                StdArc::from_raw(pointer(current))
            };
            if query.filter.matches_beyond_type(&event) {
                found.push(event);
            }
        }

        // Release: the loads above happen before any parked event is dropped.
        self.reading.store(false, Ordering::Release);
        self.retired.drain();
        drop(exclusive);
        // A writer that saw this read running may have parked an event after
        // the drain above and found the lock still held: collect for it.
        self.collect_retired();
        found
    }

    /// Drops the parked events if no read is running; whoever parks an event
    /// and every read, once unlocked, calls this.
    ///
    /// Holding `readers` means no read is running, and every read that could
    /// have seen a parked event has finished (its clones come before its
    /// unlock). The `SeqCst` fences pair up: a caller whose `try_lock` fails
    /// pushed before the holder's unlock, so the holder's call after that
    /// unlock sees the push. Without this, an event parked just after a
    /// read's drain stayed alive until the next read.
    fn collect_retired(&self) {
        loop {
            fence(Ordering::SeqCst);
            if self.retired.is_empty() {
                return;
            }
            let Some(_exclusive) = try_lock(&self.readers) else {
                return; // the holder collects after it unlocks
            };
            self.retired.drain();
        }
    }

    fn clear(&self) {
        let head = self.head.load(Ordering::Relaxed);
        // AcqRel pairs with the Acquire loads of `floor` in `read` and `len`.
        self.floor.fetch_max(head, Ordering::AcqRel);
        for slot in self.slots.iter() {
            let current = slot.word.load(Ordering::Acquire);
            if pointer(current).is_null() || ticket_plus_one(current) > head {
                continue; // empty, or written after the clear began
            }
            // Keep the tag, drop the pointer: a newer writer still wins, and
            // a failed CAS means one already did.
            let emptied = word(tag(current), std::ptr::null());
            if slot
                .word
                .compare_exchange(current, emptied, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                self.release(pointer(current));
            }
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        for slot in self.slots.iter() {
            let event = pointer(slot.word.load(Ordering::Relaxed));
            if !event.is_null() {
                // SAFETY: `&mut self`: no reader or writer is left, and each
                // slot owns one reference from `Arc::into_raw`.
                drop(unsafe { StdArc::from_raw(event) });
            }
        }
        self.retired.drain();
    }
}

/// Which events [`EventBus::history`](crate::EventBus::history) returns: an
/// [`EventFilter`] and a limit.
///
/// The newest `limit` matches (default 100) come back newest first.
///
/// ```
/// use agentbus::{EventFilter, EventType, HistoryQuery};
///
/// let query = HistoryQuery::new()
///     .event_type(EventType::TaskCompleted)
///     .circle_id(1)
///     .limit(10);
/// assert_eq!(query.get_limit(), 10);
/// assert_eq!(query.get_circle_id(), Some(1));
/// assert_eq!(query.get_project_id(), None);
///
/// // The same criteria, from a filter built elsewhere.
/// let filter = EventFilter::new().event_type(EventType::TaskCompleted).circle_id(1);
/// assert_eq!(HistoryQuery::from(filter).limit(10), query);
/// ```
///
/// The builder methods take the criteria's plain names, so the getters are
/// `get_`-prefixed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HistoryQuery {
    filter: EventFilter,
    limit: usize,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        Self::new()
    }
}

impl From<EventFilter> for HistoryQuery {
    /// The events `filter` matches, at most
    /// [`DEFAULT_LIMIT`](HistoryQuery::DEFAULT_LIMIT).
    fn from(filter: EventFilter) -> Self {
        Self::new().filter(filter)
    }
}

impl HistoryQuery {
    /// The default number of events a query returns.
    pub const DEFAULT_LIMIT: usize = 100;

    /// Every event, at most [`DEFAULT_LIMIT`](Self::DEFAULT_LIMIT).
    pub const fn new() -> Self {
        Self {
            filter: EventFilter::new(),
            limit: Self::DEFAULT_LIMIT,
        }
    }

    /// Only the events `filter` matches; replaces every criterion set so
    /// far (the limit stays).
    #[must_use]
    pub const fn filter(mut self, filter: EventFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Only events of this type (see [`EventFilter::event_type`], which also
    /// takes a set of types).
    #[must_use]
    pub const fn event_type(mut self, event_type: EventType) -> Self {
        self.filter.types = EventTypeSet::empty().with(event_type);
        self
    }

    /// Only events from this agent.
    #[must_use]
    pub const fn source_agent_id(mut self, agent_id: i64) -> Self {
        self.filter = self.filter.source_agent_id(agent_id);
        self
    }

    /// Only events of this circle.
    #[must_use]
    pub const fn circle_id(mut self, circle_id: i64) -> Self {
        self.filter = self.filter.circle_id(circle_id);
        self
    }

    /// Only events of this project.
    #[must_use]
    pub const fn project_id(mut self, project_id: i64) -> Self {
        self.filter = self.filter.project_id(project_id);
        self
    }

    /// Only the events of one chain, as [`EventFilter::correlation_id`]
    /// defines it: the event `id` that started it (if history still holds
    /// it) and every event whose `correlation_id` is `id`.
    ///
    /// ```
    /// use agentbus::{Event, EventBus, EventType, HistoryQuery};
    ///
    /// let bus = EventBus::new();
    /// let task = Event::new(EventType::TaskCompleted);
    /// let call = Event::new(EventType::AgentToolExecuted).caused_by(&task);
    /// let memory = Event::new(EventType::MemoryShared).caused_by(&call);
    /// let chain_id = task.id;
    /// for event in [task, call, memory, Event::new(EventType::TaskCompleted)] {
    ///     bus.publish_blocking(event);
    /// }
    /// let chain = bus.history(&HistoryQuery::new().correlation_id(chain_id));
    /// let types: Vec<_> = chain.iter().map(|e| e.event_type).collect();
    /// assert_eq!(
    ///     types,
    ///     [EventType::MemoryShared, EventType::AgentToolExecuted, EventType::TaskCompleted]
    /// );
    /// ```
    #[must_use]
    pub const fn correlation_id(mut self, id: EventId) -> Self {
        self.filter = self.filter.correlation_id(id);
        self
    }

    /// At most this many events. `0` returns none; `usize::MAX` returns the
    /// whole history.
    #[must_use]
    pub const fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// The criteria.
    pub const fn get_filter(&self) -> &EventFilter {
        &self.filter
    }

    /// The limit set (100 unless changed).
    pub const fn get_limit(&self) -> usize {
        self.limit
    }

    /// The event type required, if exactly one is: `None` when the filter
    /// admits every type, or several (see [`get_filter`](Self::get_filter)).
    pub const fn get_event_type(&self) -> Option<EventType> {
        self.filter.types.single()
    }

    /// The source agent required, if any.
    pub const fn get_source_agent_id(&self) -> Option<i64> {
        self.filter.get_source_agent_id()
    }

    /// The circle required, if any.
    pub const fn get_circle_id(&self) -> Option<i64> {
        self.filter.get_circle_id()
    }

    /// The project required, if any.
    pub const fn get_project_id(&self) -> Option<i64> {
        self.filter.get_project_id()
    }

    /// The chain required, if any.
    pub const fn get_correlation_id(&self) -> Option<EventId> {
        self.filter.get_correlation_id()
    }

    /// Whether `event` meets every criterion (the limit aside).
    pub fn matches(&self, event: &Event) -> bool {
        self.filter.matches(event)
    }
}

#[cfg(test)]
#[cfg(not(agentbus_loom))]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Barrier, Weak};
    use std::thread;

    use super::{History, HistoryQuery, Remainder, MAX_HISTORY_CAPACITY};
    use crate::event::Event;
    use crate::event_type::EventType;

    /// `native` iterations natively, `miri` under Miri, which runs these
    /// tests (`.ci/run`) some thousand times slower to check the ring's
    /// unsafe code.
    const fn scaled(native: usize, miri: usize) -> usize {
        if cfg!(miri) {
            miri
        } else {
            native
        }
    }

    fn event(n: u64, event_type: EventType) -> Arc<Event> {
        Arc::new(Event::new(event_type).with_data(serde_json::json!({ "n": n })))
    }

    /// Pushes, overwrites, typed and untyped reads, clear and drop on one
    /// thread: every reference the ring takes is given back exactly once.
    #[test]
    fn ring_references_are_counted_exactly() {
        let history = History::new(3);
        let kept: Vec<_> = (0..5)
            .map(|n| event(n, EventType::ALL[n as usize % 2]))
            .collect();
        for event in &kept {
            history.push(event);
        }
        // 0 and 1 were pushed out; 2, 3 and 4 are held once more.
        let counts: Vec<_> = kept.iter().map(Arc::strong_count).collect();
        assert_eq!(counts, [1, 1, 2, 2, 2]);
        let all = history.read(&HistoryQuery::new());
        assert_eq!(all.len(), 3);
        assert!(Arc::ptr_eq(&all[0], &kept[4]));
        let typed = history.read(&HistoryQuery::new().event_type(EventType::ALL[1]));
        assert_eq!(typed.len(), 1);
        assert!(Arc::ptr_eq(&typed[0], &kept[3]));
        drop((all, typed));
        history.clear();
        assert_eq!(history.len(), 0);
        assert!(kept.iter().all(|e| Arc::strong_count(e) == 1));
        history.push(&kept[0]);
        drop(history);
        assert_eq!(Arc::strong_count(&kept[0]), 1, "drop releases the slots");
    }

    /// A writer that swaps an event out while a read is flagged parks it,
    /// then collects it itself when no read holds the lock (the state just
    /// after a read drained the parked list and unlocked, which a racing
    /// writer can see): nothing stays parked once both are done.
    #[test]
    fn a_writer_collects_what_it_parked_once_no_read_holds_the_lock() {
        let history = History::new(1);
        let ring = history.ring.as_ref().unwrap();
        let (first, second) = (event(0, EventType::ALL[0]), event(1, EventType::ALL[0]));
        history.push(&first);
        ring.reading.store(true, Ordering::SeqCst);
        history.push(&second);
        ring.reading.store(false, Ordering::SeqCst);
        assert!(
            ring.retired.is_empty(),
            "the pushed-out event stayed parked"
        );
        assert_eq!(Arc::strong_count(&first), 1, "the pushed-out event leaked");
        assert_eq!(Arc::strong_count(&second), 2);
    }

    /// Two writers, a reader and a clearer race on a small ring. Run under
    /// Miri this checks the reclamation handshake for use after free, data
    /// races and leaks; natively, that nothing outlives the ring.
    #[test]
    fn racing_push_read_and_clear_release_every_event() {
        const WRITERS: usize = 2;
        const CAPACITY: usize = 2;
        let pushes = scaled(20_000, 60);
        let history = Arc::new(History::new(CAPACITY));
        let start = Arc::new(Barrier::new(WRITERS + 2));
        let writers_done = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (history, start) = (Arc::clone(&history), Arc::clone(&start));
                thread::spawn(move || {
                    start.wait();
                    (0..pushes)
                        .map(|n| {
                            let event = event(n as u64, EventType::ALL[w]);
                            history.push(&event);
                            Arc::downgrade(&event)
                        })
                        .collect::<Vec<Weak<Event>>>()
                })
            })
            .collect();
        let reader = {
            let (history, start) = (Arc::clone(&history), Arc::clone(&start));
            let done = Arc::clone(&writers_done);
            thread::spawn(move || {
                start.wait();
                while !done.load(Ordering::Acquire) {
                    let events = history.read(&HistoryQuery::new().limit(usize::MAX));
                    assert!(events.len() <= CAPACITY);
                    for (i, a) in events.iter().enumerate() {
                        assert!(!events[..i].iter().any(|b| Arc::ptr_eq(a, b)), "twice");
                    }
                    let typed = history.read(&HistoryQuery::new().event_type(EventType::ALL[1]));
                    assert!(typed.iter().all(|e| e.event_type == EventType::ALL[1]));
                }
            })
        };
        let clearer = {
            let (history, start) = (Arc::clone(&history), Arc::clone(&start));
            let done = Arc::clone(&writers_done);
            thread::spawn(move || {
                start.wait();
                while !done.load(Ordering::Acquire) {
                    history.clear();
                    thread::yield_now();
                }
            })
        };
        let weaks: Vec<_> = writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        writers_done.store(true, Ordering::Release);
        reader.join().unwrap();
        clearer.join().unwrap();
        let alive = weaks.iter().filter(|w| w.strong_count() > 0).count();
        assert!(alive <= CAPACITY, "{alive} events outlive their slots");
        assert_eq!(alive, history.read(&HistoryQuery::new()).len());
        drop(history);
        assert!(weaks.iter().all(|w| w.strong_count() == 0));
    }

    /// The division-free remainder against `%`, at the edges that break
    /// such tricks (divisors 1 and powers of two, tickets near `u64::MAX`)
    /// and at pseudo-random points in between.
    #[test]
    fn remainder_matches_modulo() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut divisors = vec![
            1,
            2,
            3,
            7,
            1000,
            1024,
            1023,
            1025,
            MAX_HISTORY_CAPACITY as u64,
        ];
        divisors.extend((0..scaled(200, 8)).map(|_| next() % MAX_HISTORY_CAPACITY as u64 + 1));
        for divisor in divisors {
            let remainder = Remainder::new(divisor);
            let edges = [
                0,
                1,
                divisor - 1,
                divisor,
                divisor + 1,
                u64::MAX - 1,
                u64::MAX,
            ];
            let random = (0..scaled(2000, 40)).map(|_| next());
            for ticket in edges.into_iter().chain(random) {
                assert_eq!(
                    remainder.of(ticket),
                    ticket % divisor,
                    "{ticket} % {divisor}"
                );
            }
        }
    }
}
