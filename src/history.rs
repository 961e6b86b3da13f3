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
//!   An entry still being written when the read passes it is skipped.
//! - [`clear`](History::clear) forgets everything published before it and
//!   releases those events.
//!
//! # How
//!
//! Each publish takes a ticket (one `fetch_add`, the only write to a line all
//! publishers share) and writes slot `ticket % capacity`. A slot's `state`
//! word holds the ticket it carries, the event's type and a busy bit, so a
//! reader can tell an entry of the ticket it wants from an overwritten one,
//! and can skip entries of the wrong type without touching the event.
//!
//! Writing a slot is a claim / store / commit sequence: claim the slot with a
//! CAS on `state` (only if it carries an older ticket), compare-and-swap the
//! event in, then CAS the state from "busy with my ticket" to "holds my
//! ticket". A writer that was lapped (a newer ticket claimed its slot) gives
//! up: its event is already older than the window. Stores are
//! compare-and-swaps against an `Arc` the writer holds, so a stalled writer
//! whose claim was taken over can never overwrite the newer event.

use crossbeam_utils::CachePadded;

use crate::event::Event;
use crate::event_type::EventType;
use crate::sync::{ArcSlot, AtomicU64, Ordering};

type EventArc = std::sync::Arc<Event>;

/// The largest history capacity a bus accepts (4 Mi events, 256 MiB of slots).
pub const MAX_HISTORY_CAPACITY: usize = 1 << 22;

/// The default history capacity, as in the specification.
pub const DEFAULT_HISTORY_CAPACITY: usize = 1000;

/// `state` layout: `ticket + 1` above bit 6, the event type in bits 1..=5,
/// busy in bit 0. Zero is a slot never written.
const BUSY: u64 = 1;
const TYPE_SHIFT: u32 = 1;
const TYPE_MASK: u64 = 0b11111 << TYPE_SHIFT;
const TICKET_SHIFT: u32 = 6;

const _: () = assert!(
    EventType::COUNT <= 32,
    "event type must fit the state's 5 type bits"
);

#[inline]
fn state_of(ticket: u64, event_type: EventType) -> u64 {
    ((ticket + 1) << TICKET_SHIFT) | ((event_type.index() as u64) << TYPE_SHIFT)
}

/// The ticket a state carries, plus one (0: never written).
#[inline]
fn ticket_plus_one(state: u64) -> u64 {
    state >> TICKET_SHIFT
}

#[inline]
fn type_index(state: u64) -> usize {
    ((state & TYPE_MASK) >> TYPE_SHIFT) as usize
}

/// One entry, alone on its cache line so two publishers writing neighbouring
/// tickets do not contend.
#[repr(align(64))]
struct Slot {
    state: AtomicU64,
    event: ArcSlot<Event>,
}

/// The ring; `None` inside [`History`] when the capacity is zero.
struct Ring {
    slots: Box<[Slot]>,
    capacity: u64,
    /// The next ticket to hand out.
    head: CachePadded<AtomicU64>,
    /// Tickets below this were cleared.
    floor: AtomicU64,
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
                    state: AtomicU64::new(0),
                    event: ArcSlot::empty(),
                })
                .collect(),
            capacity: capacity as u64,
            head: CachePadded::new(AtomicU64::new(0)),
            floor: AtomicU64::new(0),
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
    pub(crate) fn push(&self, event: &EventArc) {
        if let Some(ring) = &self.ring {
            ring.push(event);
        }
    }

    /// Up to `query.limit` matching events, newest first.
    pub(crate) fn read(&self, query: &HistoryQuery) -> Vec<EventArc> {
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
        &self.slots[(ticket % self.capacity) as usize]
    }

    fn push(&self, event: &EventArc) {
        // Relaxed: the ticket only has to be unique. What readers see is
        // published by the slot's state (Release in `Slot::write`).
        let ticket = self.head.fetch_add(1, Ordering::Relaxed);
        let committed = state_of(ticket, event.event_type);
        self.slot(ticket).write(
            |current| ticket_plus_one(current) < ticket + 1,
            committed,
            Some(EventArc::clone(event)),
        );
    }

    fn read(&self, query: &HistoryQuery) -> Vec<EventArc> {
        // Acquire pairs with the AcqRel fetch_max in `clear`.
        let floor = self.floor.load(Ordering::Acquire);
        let head = self.head.load(Ordering::Relaxed);
        let oldest = head.saturating_sub(self.capacity).max(floor);
        let mut found = Vec::with_capacity(query.limit.min((head - oldest) as usize));
        for ticket in (oldest..head).rev() {
            if found.len() == query.limit {
                break;
            }
            let slot = self.slot(ticket);
            // Acquire pairs with the Release commit in `Slot::write`: seeing
            // the committed state means seeing the event stored before it.
            let state = slot.state.load(Ordering::Acquire);
            if state & BUSY != 0 || ticket_plus_one(state) != ticket + 1 {
                continue; // still being written, or already overwritten
            }
            if let Some(wanted) = query.event_type {
                if type_index(state) != wanted.index() {
                    continue;
                }
            }
            let Some(event) = slot.event.load_full() else {
                continue; // cleared
            };
            // The load above synchronises with the store of whatever event it
            // saw, and every store follows a claim, so if the slot changed
            // hands in between this load sees the new state.
            if slot.state.load(Ordering::Acquire) != state {
                continue;
            }
            if query.matches(&event) {
                found.push(event);
            }
        }
        found
    }

    fn clear(&self) {
        let head = self.head.load(Ordering::Relaxed);
        // AcqRel pairs with the Acquire loads of `floor` in `read` and `len`.
        self.floor.fetch_max(head, Ordering::AcqRel);
        for slot in self.slots.iter() {
            let state = slot.state.load(Ordering::Acquire);
            let ticket_plus_one = ticket_plus_one(state);
            if state & BUSY != 0 || ticket_plus_one == 0 || ticket_plus_one > head {
                // In flight or newer than the clear: the writer owns it. An
                // in-flight entry older than the floor is never read again and
                // is released when the slot is next overwritten.
                continue;
            }
            // Claim the slot with its own ticket so any newer writer can
            // still take it over, and empty it.
            slot.write(|current| current == state, state, None);
        }
    }
}

impl Slot {
    /// Claims the slot if `may_claim(state)`, stores `event`, commits `committed`.
    fn write(&self, may_claim: impl Fn(u64) -> bool, committed: u64, event: Option<EventArc>) {
        let claim = committed | BUSY;
        // Acquire pairs with the Release/AcqRel writes of other writers.
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            if !may_claim(current) {
                return; // lapped: a newer entry owns the slot
            }
            // AcqRel: Acquire so our stores follow the previous owner's,
            // Release so a reader that sees the claim sees it before our store.
            match self.state.compare_exchange_weak(
                current,
                claim,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        let mut expected = self.event.load_full();
        loop {
            let previous = self.event.compare_and_swap(&expected, event.clone());
            if same_event(&previous, &expected) {
                break;
            }
            // Someone else stored since we looked: a stalled older writer
            // (we still own the claim, so retry over it) or a newer writer
            // that took the claim over (it wins; stop).
            if self.state.load(Ordering::Acquire) != claim {
                return;
            }
            expected = previous;
        }
        // Release pairs with readers' Acquire loads of `state`. Fails only if
        // a newer writer claimed the slot meanwhile, which then owns it.
        let _ = self
            .state
            .compare_exchange(claim, committed, Ordering::Release, Ordering::Relaxed);
    }
}

fn same_event(a: &Option<EventArc>, b: &Option<EventArc>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => EventArc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// Which events [`EventBus::history`](crate::EventBus::history) returns.
///
/// Every criterion set must match; the newest `limit` matches (default 100)
/// come back newest first.
///
/// ```
/// use agentbus::{EventType, HistoryQuery};
///
/// let query = HistoryQuery::new()
///     .event_type(EventType::TaskCompleted)
///     .circle_id(1)
///     .limit(10);
/// assert_eq!(query.get_limit(), 10);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryQuery {
    event_type: Option<EventType>,
    source_agent_id: Option<i64>,
    circle_id: Option<i64>,
    project_id: Option<i64>,
    limit: usize,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        Self::new()
    }
}

impl HistoryQuery {
    /// The default number of events a query returns.
    pub const DEFAULT_LIMIT: usize = 100;

    /// Every event, at most [`DEFAULT_LIMIT`](Self::DEFAULT_LIMIT).
    pub const fn new() -> Self {
        Self {
            event_type: None,
            source_agent_id: None,
            circle_id: None,
            project_id: None,
            limit: Self::DEFAULT_LIMIT,
        }
    }

    /// Only events of this type.
    #[must_use]
    pub const fn event_type(mut self, event_type: EventType) -> Self {
        self.event_type = Some(event_type);
        self
    }

    /// Only events from this agent.
    #[must_use]
    pub const fn source_agent_id(mut self, agent_id: i64) -> Self {
        self.source_agent_id = Some(agent_id);
        self
    }

    /// Only events of this circle.
    #[must_use]
    pub const fn circle_id(mut self, circle_id: i64) -> Self {
        self.circle_id = Some(circle_id);
        self
    }

    /// Only events of this project.
    #[must_use]
    pub const fn project_id(mut self, project_id: i64) -> Self {
        self.project_id = Some(project_id);
        self
    }

    /// At most this many events. `0` returns none; `usize::MAX` returns the
    /// whole history.
    #[must_use]
    pub const fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// The limit set (100 unless changed).
    pub const fn get_limit(&self) -> usize {
        self.limit
    }

    /// Whether `event` meets every criterion (the limit aside).
    pub fn matches(&self, event: &Event) -> bool {
        self.event_type.is_none_or(|t| t == event.event_type)
            && self
                .source_agent_id
                .is_none_or(|id| event.source_agent_id == Some(id))
            && self.circle_id.is_none_or(|id| event.circle_id == Some(id))
            && self
                .project_id
                .is_none_or(|id| event.project_id == Some(id))
    }
}
