//! [`RateLimit`]: a quota per source agent, circle, event type, or for the
//! whole bus.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentbus::{Event, EventType, Guard, Rejection};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::clock::Clock;

/// Every how many checks stale keys are dropped.
const PRUNE_EVERY: u64 = 4096;

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

type Limiter = RateLimiter<
    Key,
    HashMapStateStore<Key, foldhash::fast::RandomState>,
    Clock,
    NoOpMiddleware<Nanos>,
>;

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
    limiter: Limiter,
    rate_limited: AtomicU64,
    checks: AtomicU64,
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
        let interval = (period / count).max(Duration::from_nanos(1));
        let quota = Quota::with_period(interval)
            .expect("the interval is at least 1 ns")
            .allow_burst(NonZeroU32::new(burst.max(1)).expect("at least 1"));
        Self {
            shared: Arc::new(Shared {
                per,
                count,
                period,
                burst: burst.max(1),
                limiter: RateLimiter::hashmap_with_clock_and_hasher(
                    quota,
                    clock.clone(),
                    foldhash::fast::RandomState::default(),
                ),
                clock,
                rate_limited: AtomicU64::new(0),
                checks: AtomicU64::new(0),
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
        self.shared.limiter.len()
    }
}

impl Guard for RateLimit {
    fn check(&self, event: &Event) -> Result<(), Rejection> {
        let shared = &*self.shared;
        // Relaxed: only spaces out the pruning.
        let checks = shared.checks.fetch_add(1, Ordering::Relaxed);
        if checks % PRUNE_EVERY == PRUNE_EVERY - 1 {
            shared.limiter.retain_recent();
            shared.limiter.shrink_to_fit();
        }
        match shared.limiter.check_key(&shared.per.key(event)) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                shared.rate_limited.fetch_add(1, Ordering::Relaxed);
                let now = governor::clock::Clock::now(&shared.clock);
                Err(Rejection::RateLimited {
                    retry_after: not_until.wait_time_from(now),
                })
            }
        }
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
