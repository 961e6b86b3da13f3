//! [`Dedup`]: a window that keeps out repeats of an event.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use agentbus::{Event, EventId, Guard, Rejection};
use foldhash::fast::RandomState as MapHasher;
use foldhash::quality::RandomState;

use crate::clock::Clock;

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
/// - The window is measured on a monotonic [`Clock`]: changing the system
///   time neither lengthens nor shortens it.
/// - Memory is bounded: at most [`capacity`](Self::capacity) events are
///   remembered (65,536 by default, about 100 bytes each). At the bound the
///   oldest is forgotten before its window ends (counted in
///   [`forgotten_early`](Self::forgotten_early)), so a repeat of it is let
///   in: the bound can let a duplicate through, never keep a new event out.
/// - Content is compared by a 64-bit hash of the data keyed with a random
///   seed per window (foldhash's quality variant): two different payloads of
///   the same type, agent and circle collide with probability about 2⁻⁶⁴
///   per pair, and the seed keeps a client from choosing colliding ones.
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
    capacity: usize,
    clock: Clock,
    hasher: RandomState,
    state: Mutex<State>,
    deduplicated: AtomicU64,
    forgotten_early: AtomicU64,
}

/// What a dedup window remembers. `order` holds every remembered event
/// oldest first (times never decrease, the clock being monotonic); the maps
/// index it.
#[derive(Default)]
struct State {
    by_content: HashMap<u64, Seen, MapHasher>,
    by_id: HashMap<EventId, Duration, MapHasher>,
    order: VecDeque<(Duration, u64, EventId)>,
}

#[derive(Clone, Copy)]
struct Seen {
    id: EventId,
    at: Duration,
}

impl Dedup {
    /// A window of `window`, on the monotonic clock, remembering up to
    /// [`DEFAULT_DEDUP_CAPACITY`] events.
    pub fn window(window: Duration) -> Self {
        Self::build(window, DEFAULT_DEDUP_CAPACITY, Clock::monotonic())
    }

    fn build(window: Duration, capacity: usize, clock: Clock) -> Self {
        Self {
            shared: Arc::new(Shared {
                window,
                capacity: capacity.max(1),
                clock,
                hasher: RandomState::default(),
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
        self.lock().order.len()
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

    fn content_key(&self, event: &Event) -> u64 {
        let mut hasher = self.shared.hasher.build_hasher();
        event.event_type.hash(&mut hasher);
        event.source_agent_id.hash(&mut hasher);
        event.circle_id.hash(&mut hasher);
        event.data.hash(&mut hasher);
        hasher.finish()
    }
}

impl State {
    /// Forgets what is older than `window` at `now`.
    fn expire(&mut self, now: Duration, window: Duration) {
        while let Some(&(at, _, _)) = self.order.front() {
            if now.saturating_sub(at) < window {
                break;
            }
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        let Some((at, key, id)) = self.order.pop_front() else {
            return;
        };
        // Only if the entry is still this one: a withdrawn event may have
        // been replaced by a newer one with the same key.
        if self
            .by_content
            .get(&key)
            .is_some_and(|seen| seen.at == at && seen.id == id)
        {
            self.by_content.remove(&key);
        }
        if self.by_id.get(&id) == Some(&at) {
            self.by_id.remove(&id);
        }
    }
}

impl Guard for Dedup {
    fn check(&self, event: &Event) -> Result<(), Rejection> {
        let key = self.content_key(event);
        let shared = &*self.shared;
        let now = shared.clock.now();
        let mut state = self.lock();
        state.expire(now, shared.window);
        let first = if state.by_id.contains_key(&event.id) {
            Some(event.id)
        } else {
            state.by_content.get(&key).map(|seen| seen.id)
        };
        if let Some(of) = first {
            drop(state);
            shared.deduplicated.fetch_add(1, Ordering::Relaxed);
            return Err(Rejection::Duplicate { of });
        }
        if state.order.len() >= shared.capacity {
            state.forget_oldest();
            shared.forgotten_early.fetch_add(1, Ordering::Relaxed);
        }
        state.by_content.insert(
            key,
            Seen {
                id: event.id,
                at: now,
            },
        );
        state.by_id.insert(event.id, now);
        state.order.push_back((now, key, event.id));
        Ok(())
    }

    fn withdraw(&self, event: &Event) {
        let key = self.content_key(event);
        let mut state = self.lock();
        if state
            .by_content
            .get(&key)
            .is_some_and(|seen| seen.id == event.id)
        {
            state.by_content.remove(&key);
        }
        state.by_id.remove(&event.id);
        // The entry in `order` stays until it expires; `forget_oldest`
        // checks the maps before removing anything.
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
