//! [`RateLimit`]: a quota per source agent, circle, event type, or for the
//! whole bus.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use agentbus::{Event, EventType, Guard, Rejection};
use foldhash::fast::RandomState;
use hashbrown::hash_table::{Entry, HashTable};
use std::hash::BuildHasher;

use crate::clock::Clock;
use crate::content_key::folded_multiply;

/// How many independently locked parts the quotas are split into, so that
/// threads publishing for different keys rarely wait for each other.
const SHARDS: usize = 16;

/// A shard drops its stale keys once it has grown by this many keys (or by
/// a quarter, whichever is more) since it last did.
const PRUNE_MIN_GROWTH: usize = 64;

/// What a [`RateLimit`] counts separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Per {
    /// Each source agent (events without one share one quota).
    Agent,
    /// Each circle (events without one share one quota).
    Circle,
    /// Each event type.
    Type,
    /// One quota for every event.
    Global,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Agent(Option<i64>),
    Circle(Option<i64>),
    Type(EventType),
    Global,
}

impl Key {
    /// The key's hash: one folded multiply of its value (the kind is the
    /// same for every key of one limit) under `seeds`.
    #[inline(always)]
    fn hash(self, seeds: &Seeds) -> u64 {
        let (value, tag) = match self {
            Key::Agent(id) | Key::Circle(id) => (id.unwrap_or(0) as u64, u64::from(id.is_some())),
            Key::Type(event_type) => (event_type.index() as u64, 2),
            Key::Global => (0, 3),
        };
        folded_multiply(value ^ seeds.0, seeds.1 ^ (tag << 1))
    }
}

/// Random seeds of [`Key::hash`]; the second is odd.
struct Seeds(u64, u64);

impl Seeds {
    fn new() -> Self {
        let random = RandomState::default();
        Self(random.hash_one(1u8), random.hash_one(2u8) | 1)
    }
}

impl Per {
    fn key(self, event: &Event) -> Key {
        match self {
            Per::Agent => Key::Agent(event.source_agent_id),
            Per::Circle => Key::Circle(event.circle_id),
            Per::Type => Key::Type(event.event_type),
            Per::Global => Key::Global,
        }
    }
}

/// A key's GCRA cell: its theoretical arrival time, in nanoseconds of the
/// limit's clock.
#[derive(Clone, Copy)]
struct Cell {
    key: Key,
    tat: u64,
}

/// One lock's share of the keys. Aligned to its own cache lines so that two
/// threads on two shards do not contend for one line.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<Cells>);

#[derive(Default)]
struct Cells {
    table: HashTable<Cell>,
    prune_at: usize,
}

/// Keeps an event out when its source agent, circle, type (or the bus as a
/// whole) is over its quota: `count` events per `per`, refilled evenly (one
/// every `per / count`), with bursts of up to [`burst`](Self::burst) events
/// (by default `count`).
///
/// # Behaviour
///
/// - A rejected event gets [`Rejection::RateLimited`] with `retry_after`,
///   the time until its quota has room for one more event; the rejection
///   uses none of the quota.
/// - The quota is a GCRA (the `governor` crate's keyed limiter): a key
///   that was quiet for `burst × per / count` has its whole burst again.
/// - Memory is bounded: every 4096 checks the keys whose quota is full
///   again (quiet long enough to be indistinguishable from new) are
///   dropped. So memory holds the keys active within one refill time
///   (`burst × per / count`), plus at most 4096 more.
/// - Time is read from a monotonic [`Clock`].
/// - Clones share the quotas and counters. A count of 0 is taken as 1,
///   and a burst of 0 as 1.
///
/// ```
/// use agentbus::{Event, EventBus, EventType};
/// use agentbus_guard::{Clock, RateLimit};
/// use std::time::Duration;
///
/// let clock = Clock::manual();
/// let limit = RateLimit::per_agent(10, Duration::from_secs(1)).burst(2).clock(clock.clone());
/// let bus = EventBus::builder().guard(limit.clone()).build();
/// let from = |agent| Event::new(EventType::TaskStarted).with_source_agent(agent);
/// assert!(bus.try_publish_blocking(from(1)).is_ok());
/// assert!(bus.try_publish_blocking(from(1)).is_ok());
/// let rejected = bus.try_publish_blocking(from(1)).unwrap_err();
/// assert_eq!(rejected.reason(), &agentbus::Rejection::RateLimited { retry_after: Duration::from_millis(100) });
/// assert!(bus.try_publish_blocking(from(2)).is_ok()); // another agent, another quota
/// clock.advance(Duration::from_millis(100));
/// assert!(bus.try_publish_blocking(from(1)).is_ok());
/// assert_eq!(limit.rate_limited(), 1);
/// ```
#[derive(Clone)]
pub struct RateLimit {
    shared: Arc<Shared>,
}

struct Shared {
    per: Per,
    count: u32,
    period: Duration,
    burst: u32,
    clock: Clock,
    /// The emission interval (`period / count`), in nanoseconds.
    interval: u64,
    /// How far ahead of now a key's arrival time may run:
    /// `interval × (burst - 1)`.
    tolerance: u64,
    seeds: Seeds,
    shards: [Shard; SHARDS],
    rate_limited: AtomicU64,
}

impl RateLimit {
    /// `count` events per `period` for each source agent.
    pub fn per_agent(count: u32, period: Duration) -> Self {
        Self::new(Per::Agent, count, period)
    }

    /// `count` events per `period` for each circle.
    pub fn per_circle(count: u32, period: Duration) -> Self {
        Self::new(Per::Circle, count, period)
    }

    /// `count` events per `period` for each event type.
    pub fn per_type(count: u32, period: Duration) -> Self {
        Self::new(Per::Type, count, period)
    }

    /// `count` events per `period` for the whole bus.
    pub fn global(count: u32, period: Duration) -> Self {
        Self::new(Per::Global, count, period)
    }

    /// `count` events per `period` for each `per`.
    pub fn new(per: Per, count: u32, period: Duration) -> Self {
        Self::build(per, count.max(1), period, count.max(1), Clock::monotonic())
    }

    fn build(per: Per, count: u32, period: Duration, burst: u32, clock: Clock) -> Self {
        let burst = burst.max(1);
        let interval = u64::try_from((period / count).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        Self {
            shared: Arc::new(Shared {
                per,
                count,
                period,
                burst,
                clock,
                interval,
                tolerance: interval.saturating_mul(u64::from(burst - 1)),
                seeds: Seeds::new(),
                shards: Default::default(),
                rate_limited: AtomicU64::new(0),
            }),
        }
    }

    /// Allows bursts of up to `burst` events (at least 1) on top of an
    /// empty quota. Call before sharing it: it starts new, full quotas.
    #[must_use]
    pub fn burst(self, burst: u32) -> Self {
        let s = &self.shared;
        Self::build(s.per, s.count, s.period, burst, s.clock.clone())
    }

    /// The same limit on `clock` (say, [`Clock::manual`] in a test). Call
    /// before sharing it: it starts new, full quotas.
    #[must_use]
    pub fn clock(self, clock: Clock) -> Self {
        let s = &self.shared;
        Self::build(s.per, s.count, s.period, s.burst, clock)
    }

    /// What is counted separately.
    pub fn per(&self) -> Per {
        self.shared.per
    }

    /// Events rejected so far.
    pub fn rate_limited(&self) -> u64 {
        // Relaxed: a counter, ordering nothing.
        self.shared.rate_limited.load(Ordering::Relaxed)
    }

    /// How many keys (agents, circles, types) are tracked now.
    pub fn tracked_keys(&self) -> usize {
        self.shared
            .shards
            .iter()
            .map(|shard| lock(shard).table.len())
            .sum()
    }
}

fn lock(shard: &Shard) -> MutexGuard<'_, Cells> {
    // Nothing panics while a shard is locked but allocation; its cells stay
    // consistent enough to go on with.
    shard.0.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Cells {
    /// Drops the keys whose quota is full again at `now` (an arrival time
    /// not after now behaves exactly like a new key's), then waits to grow
    /// by a quarter (at least [`PRUNE_MIN_GROWTH`]) before doing it again,
    /// so the scan costs a constant per key added.
    fn prune(&mut self, now: u64, seeds: &Seeds) {
        self.table.retain(|cell| cell.tat > now);
        let len = self.table.len();
        if self.table.capacity() > 4 * len + PRUNE_MIN_GROWTH {
            self.table.shrink_to_fit(|cell| cell.key.hash(seeds));
        }
        self.prune_at = len + (len / 4).max(PRUNE_MIN_GROWTH);
    }
}

impl Guard for RateLimit {
    fn check(&self, event: &Event) -> Result<(), Rejection> {
        let shared = &*self.shared;
        let key = shared.per.key(event);
        // One hash picks the shard (from bits the table does not use for
        // buckets or tags) and the bucket.
        let hash = key.hash(&shared.seeds);
        let shard = &shared.shards[(hash >> 32) as usize % SHARDS];
        let now = shared.clock.now_nanos();
        let mut cells = lock(shard);
        let rehash = |cell: &Cell| cell.key.hash(&shared.seeds);
        match cells.table.entry(hash, |cell| cell.key == key, rehash) {
            Entry::Occupied(mut occupied) => {
                let tat = occupied.get().tat;
                let earliest = tat.saturating_sub(shared.tolerance);
                if now < earliest {
                    drop(cells);
                    shared.rate_limited.fetch_add(1, Ordering::Relaxed);
                    return Err(Rejection::RateLimited {
                        retry_after: Duration::from_nanos(earliest - now),
                    });
                }
                occupied.get_mut().tat = tat.max(now).saturating_add(shared.interval);
            }
            Entry::Vacant(vacant) => {
                // A new key's arrival time is now: it is let in.
                vacant.insert(Cell {
                    key,
                    tat: now.saturating_add(shared.interval),
                });
                if cells.table.len() >= cells.prune_at {
                    cells.prune(now, &shared.seeds);
                }
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.shared;
        f.debug_struct("RateLimit")
            .field("per", &s.per)
            .field("count", &s.count)
            .field("period", &s.period)
            .field("burst", &s.burst)
            .field("rate_limited", &self.rate_limited())
            .finish_non_exhaustive()
    }
}
