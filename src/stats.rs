//! Bus counters, striped so publishers on different threads write different
//! cache lines, without a locked instruction on the publish path.
//!
//! A thread leases a stripe index the first time it publishes (on any bus)
//! and returns it when it exits. While it holds the lease it is the only
//! writer of that stripe in every bus, so it bumps counters with a plain load
//! and store instead of a `lock`-prefixed read-modify-write. Threads beyond
//! [`EXCLUSIVE_STRIPES`] share one overflow stripe with atomic adds.
//! [`BusStats`] sums the stripes. Counts are exact once publishers are
//! quiescent; a snapshot taken while they run may be a few events behind.
//!
//! [`EventBus::reset`](crate::EventBus::reset) does not write the stripes (a
//! lease holder's load/store would resurrect the old count); it records the
//! current totals as a baseline that later snapshots subtract. A publish
//! racing with `reset` may be counted in some fields and not others.
//!
//! Counts per event type ([`EventBus::count_per_type`](crate::EventBus::count_per_type))
//! are a second, striped table that exists only once asked for: until then
//! a publish pays one load and one never-taken branch for it.

use std::cell::Cell;
use std::sync::OnceLock;

use crossbeam_utils::CachePadded;

use crate::event_type::EventType;

use crate::sync::{lock, AtomicU64, AtomicUsize, Mutex, Ordering};

/// Stripes a thread can own outright; one more is shared by the rest.
const EXCLUSIVE_STRIPES: usize = 16;
const SHARED_STRIPE: usize = EXCLUSIVE_STRIPES;

/// Stripe indices never leased yet, then returned ones. `std` types even
/// under loom: loom primitives cannot live in statics.
static NEVER_LEASED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static RETURNED: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

/// A thread's claim on a stripe index, given back when the thread exits.
struct Lease(usize);

impl Lease {
    fn acquire() -> Self {
        let returned = RETURNED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        // Relaxed: the counter only hands out distinct indices. A returned
        // index comes through the mutex, which orders the previous owner's
        // last stores before our first load.
        let index = returned
            .unwrap_or_else(|| NEVER_LEASED.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        Self(index.min(SHARED_STRIPE))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // From now on this thread counts on the shared stripe: the index
        // may be leased again at once.
        STRIPE.with(|stripe| stripe.set(SHARED_STRIPE));
        if self.0 != SHARED_STRIPE {
            RETURNED
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(self.0);
        }
    }
}

/// What [`STRIPE`] holds before the thread's first publish.
const UNLEASED: usize = usize::MAX;

thread_local! {
    static LEASE: Lease = Lease::acquire();
    /// A copy of the lease's index, or [`UNLEASED`]: read with one load,
    /// where the lease itself (a thread-local with a destructor) costs a
    /// state check on every access. Set back to the shared stripe when the
    /// lease is dropped.
    static STRIPE: Cell<usize> = const { Cell::new(UNLEASED) };
}

/// Takes this thread's lease; the shared stripe during thread teardown,
/// after the lease is gone.
#[cold]
#[inline(never)]
fn lease_stripe() -> usize {
    let index = LEASE.try_with(|lease| lease.0).unwrap_or(SHARED_STRIPE);
    STRIPE.with(|stripe| stripe.set(index));
    index
}

/// This thread's stripe, and whether it owns it. During thread teardown,
/// after the lease is gone, a late publish uses the shared stripe.
#[inline]
fn my_stripe() -> (usize, bool) {
    let index = match STRIPE.with(Cell::get) {
        UNLEASED => lease_stripe(),
        index => index,
    };
    // In a loom model every thread runs on one OS thread and so shares the
    // lease: count atomically there.
    (index, index != SHARED_STRIPE && !cfg!(agentbus_loom))
}

/// Adds `n` to a counter: load + store when this thread is its only writer.
#[inline]
fn bump(counter: &AtomicU64, n: u64, exclusive: bool) {
    // Relaxed throughout: counters order nothing; exclusive stripes have one
    // writer, so the load sees that writer's own last store.
    if exclusive {
        counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    } else {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Stripe {
    published: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl Stripe {
    #[inline]
    fn record(&self, delivered: u64, failed: u64, exclusive: bool) {
        bump(&self.published, 1, exclusive);
        self.record_async(delivered, failed, exclusive);
    }

    #[inline]
    fn record_async(&self, delivered: u64, failed: u64, exclusive: bool) {
        if delivered > 0 {
            bump(&self.delivered, delivered, exclusive);
        }
        if failed > 0 {
            bump(&self.failed, failed, exclusive);
        }
    }

    fn totals(&self) -> Totals {
        Totals {
            published: self.published.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// Summed counters: what a stripe set adds up to.
#[derive(Clone, Copy, Default)]
struct Totals {
    published: u64,
    delivered: u64,
    failed: u64,
}

impl Totals {
    fn add(self, other: Self) -> Self {
        Self {
            published: self.published + other.published,
            delivered: self.delivered + other.delivered,
            failed: self.failed + other.failed,
        }
    }

    fn since(self, baseline: Self) -> Self {
        Self {
            published: self.published.saturating_sub(baseline.published),
            delivered: self.delivered.saturating_sub(baseline.delivered),
            failed: self.failed.saturating_sub(baseline.failed),
        }
    }
}

/// The per-type table: one row of counters per event type in each stripe,
/// written by the same lease holders as the bus-wide stripes.
struct PerType {
    stripes: Box<[CachePadded<[Stripe; EventType::COUNT]>]>,
    /// The totals at the last reset, per type.
    baseline: Mutex<[Totals; EventType::COUNT]>,
}

impl PerType {
    fn new() -> Self {
        Self {
            stripes: (0..=SHARED_STRIPE)
                .map(|_| CachePadded::new(std::array::from_fn(|_| Stripe::default())))
                .collect(),
            baseline: Mutex::new([Totals::default(); EventType::COUNT]),
        }
    }

    /// Out of line: the bus-wide path stays as small as without the table.
    #[inline(never)]
    fn record(
        &self,
        (index, exclusive): (usize, bool),
        event_type: EventType,
        delivered: u64,
        failed: u64,
    ) {
        self.stripes[index][event_type.index()].record(delivered, failed, exclusive);
    }

    #[inline(never)]
    fn record_async(
        &self,
        (index, exclusive): (usize, bool),
        event_type: EventType,
        delivered: u64,
        failed: u64,
    ) {
        self.stripes[index][event_type.index()].record_async(delivered, failed, exclusive);
    }

    fn totals(&self) -> [Totals; EventType::COUNT] {
        std::array::from_fn(|slot| {
            self.stripes
                .iter()
                .map(|row| row[slot].totals())
                .fold(Totals::default(), Totals::add)
        })
    }

    fn reset(&self) {
        *lock(&self.baseline) = self.totals();
    }

    fn snapshot(&self) -> Vec<TypeStats> {
        let baseline = *lock(&self.baseline);
        let totals = self.totals();
        EventType::ALL
            .iter()
            .map(|&event_type| {
                let slot = event_type.index();
                let counts = totals[slot].since(baseline[slot]);
                TypeStats {
                    event_type,
                    published: counts.published,
                    delivered: counts.delivered,
                    failed: counts.failed,
                }
            })
            .collect()
    }
}

pub(crate) struct Counters {
    stripes: Box<[CachePadded<Stripe>]>,
    /// The totals at the last reset, subtracted from every snapshot.
    baseline: Mutex<Totals>,
    /// Written only under the registry lock, read by `stats`; padded away
    /// from `stripes`, which every publish reads.
    active_subscribers: CachePadded<AtomicUsize>,
    /// Set by the first `count_per_type`. A `std` cell even under loom: it
    /// is written once, and the loom models never turn it on.
    per_type: OnceLock<Box<PerType>>,
}

impl Counters {
    pub(crate) fn new() -> Self {
        Self {
            stripes: (0..=SHARED_STRIPE)
                .map(|_| CachePadded::new(Stripe::default()))
                .collect(),
            baseline: Mutex::new(Totals::default()),
            active_subscribers: CachePadded::new(AtomicUsize::new(0)),
            per_type: OnceLock::new(),
        }
    }

    /// Records one publish's synchronous part.
    #[inline]
    pub(crate) fn record(&self, event_type: EventType, delivered: u64, failed: u64) {
        let stripe = my_stripe();
        self.record_in(stripe, delivered, failed);
        // The one branch a bus without the table pays: `get` is one acquire
        // load (a plain `mov` on x86), pairing with the release store of
        // `OnceLock::get_or_init` in `count_per_type`.
        if let Some(per_type) = self.per_type.get() {
            per_type.record(stripe, event_type, delivered, failed);
        }
    }

    #[inline]
    fn record_in(&self, (index, exclusive): (usize, bool), delivered: u64, failed: u64) {
        self.stripes[index].record(delivered, failed, exclusive);
    }

    /// Records the async part of a publish, counted when it finishes.
    pub(crate) fn record_async(&self, event_type: EventType, delivered: u64, failed: u64) {
        let stripe = my_stripe();
        self.record_async_in(stripe, delivered, failed);
        if let Some(per_type) = self.per_type.get() {
            per_type.record_async(stripe, event_type, delivered, failed);
        }
    }

    fn record_async_in(&self, (index, exclusive): (usize, bool), delivered: u64, failed: u64) {
        self.stripes[index].record_async(delivered, failed, exclusive);
    }

    /// Starts the per-type table (once; later calls do nothing).
    pub(crate) fn count_per_type(&self) {
        self.per_type.get_or_init(|| Box::new(PerType::new()));
    }

    /// The per-type counts since the table started (or the last reset), one
    /// entry per [`EventType::ALL`]; `None` without the table.
    pub(crate) fn per_type(&self) -> Option<Vec<TypeStats>> {
        self.per_type.get().map(|per_type| per_type.snapshot())
    }

    pub(crate) fn set_active_subscribers(&self, count: usize) {
        self.active_subscribers.store(count, Ordering::Relaxed);
    }

    pub(crate) fn reset(&self) {
        let mut baseline = lock(&self.baseline);
        *baseline = self.totals();
        if let Some(per_type) = self.per_type.get() {
            per_type.reset();
        }
    }

    fn totals(&self) -> Totals {
        self.stripes
            .iter()
            .map(|stripe| stripe.totals())
            .fold(Totals::default(), Totals::add)
    }

    pub(crate) fn snapshot(&self, history_size: usize) -> BusStats {
        let baseline = *lock(&self.baseline);
        let totals = self.totals().since(baseline);
        BusStats {
            events_published: totals.published,
            events_delivered: totals.delivered,
            handler_errors: totals.failed,
            active_subscribers: self.active_subscribers.load(Ordering::Relaxed),
            history_size,
            // Kept by the bus's guards; `EventBus::stats` fills them in.
            events_rejected: 0,
            events_deduplicated: 0,
            events_rate_limited: 0,
            events_invalid: 0,
            // Filled in by the delivery state (`EventBus::stats`).
            retries: 0,
            retries_pending: 0,
            timed_out: 0,
            dead_lettered: 0,
            dead_letters: 0,
        }
    }
}

/// A snapshot of a bus's counters, from [`EventBus::stats`](crate::EventBus::stats).
///
/// ```
/// use agentbus::{Event, EventBus, EventType};
///
/// let bus = EventBus::new();
/// bus.subscribe(EventType::TaskCreated, |_e: &agentbus::Event| {});
/// bus.publish_blocking(Event::new(EventType::TaskCreated));
/// let stats = bus.stats();
/// assert_eq!((stats.events_published, stats.events_delivered), (1, 1));
/// assert_eq!((stats.active_subscribers, stats.history_size), (1, 1));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BusStats {
    /// Events published (each `publish` counts once, whatever it reached).
    pub events_published: u64,
    /// Handler calls that completed successfully.
    pub events_delivered: u64,
    /// Handler calls that returned `Err` or panicked, plus filters that panicked.
    pub handler_errors: u64,
    /// Subscriptions currently registered (a `subscribe_all` counts once).
    pub active_subscribers: usize,
    /// Events currently held in history.
    pub history_size: usize,
    /// Events a [`Guard`](crate::Guard) kept out of the bus, for any reason
    /// (not counted in `events_published`).
    pub events_rejected: u64,
    /// Of `events_rejected`: duplicates ([`Rejection::Duplicate`](crate::Rejection::Duplicate)).
    pub events_deduplicated: u64,
    /// Of `events_rejected`: over a rate limit ([`Rejection::RateLimited`](crate::Rejection::RateLimited)).
    pub events_rate_limited: u64,
    /// Of `events_rejected`: failed a schema ([`Rejection::Invalid`](crate::Rejection::Invalid)).
    pub events_invalid: u64,
    /// Retry attempts made (each attempt after a delivery's first).
    pub retries: u64,
    /// Deliveries waiting for or running a retry now.
    pub retries_pending: usize,
    /// Attempts that ran past their subscription's
    /// [`timeout`](crate::SubscriptionBuilder::timeout).
    pub timed_out: u64,
    /// Deliveries given up on and kept as dead letters.
    pub dead_lettered: u64,
    /// Dead letters held now (not yet redriven, discarded or dropped for
    /// room).
    pub dead_letters: usize,
}

/// One event type's counts, from
/// [`EventBus::stats_per_type`](crate::EventBus::stats_per_type): the
/// [`BusStats`] fields that a publish of that type moves.
///
/// Counted from the first [`EventBus::count_per_type`](crate::EventBus::count_per_type)
/// on (or the last [`EventBus::reset`](crate::EventBus::reset)): a publish
/// before it is in [`BusStats`] only. Deliveries are counted by the event's
/// type when they end, so an async handler or a retry that ends after
/// counting started is counted even if its publish was not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TypeStats {
    /// The type these counts are for.
    pub event_type: EventType,
    /// Events of this type published (let in by the guards).
    pub published: u64,
    /// Handler calls on events of this type that completed successfully.
    pub delivered: u64,
    /// Handler calls on events of this type that returned `Err` or
    /// panicked, plus filters that panicked.
    pub failed: u64,
}

#[cfg(test)]
#[cfg(not(agentbus_loom))]
mod tests {
    use super::*;

    /// Threads beyond the exclusive stripes all write the shared one, so its
    /// counters must be added to atomically. Two threads per core hammer it
    /// directly (no publish around each bump, so their writes overlap far
    /// more often than a test through the bus could make them): a plain load
    /// and store there loses thousands of the bumps.
    #[test]
    fn the_shared_stripe_loses_no_concurrent_bump() {
        const THREADS: u64 = 4;
        const ROUNDS: u64 = 250_000;
        let counters = Counters::new();
        let shared = (SHARED_STRIPE, false);
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    for _ in 0..ROUNDS {
                        counters.record_in(shared, 1, 2);
                        counters.record_async_in(shared, 3, 4);
                    }
                });
            }
        });
        let stats = counters.snapshot(0);
        let n = THREADS * ROUNDS;
        assert_eq!(
            (
                stats.events_published,
                stats.events_delivered,
                stats.handler_errors
            ),
            (n, 4 * n, 6 * n)
        );
    }

    /// A thread's stripe goes back when it exits: threads that come and go
    /// one after another, more of them than there are stripes, each own
    /// one instead of falling back to the shared stripe.
    #[test]
    fn exited_threads_return_their_stripes() {
        for round in 0..3 * EXCLUSIVE_STRIPES {
            let (index, exclusive) = std::thread::spawn(my_stripe).join().unwrap();
            assert!(
                exclusive && index < EXCLUSIVE_STRIPES,
                "thread {round} got stripe {index} (exclusive: {exclusive})"
            );
        }
    }

    /// The exclusive path really is the one-writer path: a thread that owns
    /// its stripe counts exactly with plain stores.
    #[test]
    fn an_owned_stripe_counts_exactly() {
        let counters = Counters::new();
        let (index, exclusive) = my_stripe();
        for _ in 0..1000 {
            counters.record_in((index, exclusive), 2, 1);
        }
        let stats = counters.snapshot(0);
        assert_eq!(
            (
                stats.events_published,
                stats.events_delivered,
                stats.handler_errors
            ),
            (1000, 2000, 1000)
        );
    }
}
