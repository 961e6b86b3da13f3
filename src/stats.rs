//! Bus counters, striped so publishers on different threads write different
//! cache lines.
//!
//! Each thread is given a stripe the first time it publishes (round-robin
//! over a fixed number of stripes); [`BusStats`] sums them. Counts are exact
//! once publishers are quiescent; a snapshot taken while they run may be a few
//! events behind in some fields. [`EventBus::reset`](crate::EventBus::reset)
//! zeroes the stripes, and a publish racing with it may be counted or not.

use std::cell::Cell;

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU64, AtomicUsize, Ordering};

/// Stripes per bus: a power of two so a thread's slot is a mask away.
const STRIPES: usize = 16;

/// The next stripe to hand a new publishing thread. A `std` atomic even under
/// loom: loom atomics cannot live in statics, and this one only spreads load.
static NEXT_STRIPE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline]
fn my_stripe() -> usize {
    STRIPE.with(|stripe| {
        let mut index = stripe.get();
        if index == usize::MAX {
            // Relaxed: only uniqueness-ish spreading matters, not ordering.
            index = NEXT_STRIPE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % STRIPES;
            stripe.set(index);
        }
        index
    })
}

#[derive(Default)]
struct Stripe {
    published: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
}

pub(crate) struct Counters {
    stripes: Box<[CachePadded<Stripe>]>,
    /// Written only under the registry lock, read by `stats`.
    active_subscribers: AtomicUsize,
}

impl Counters {
    pub(crate) fn new() -> Self {
        Self {
            stripes: (0..STRIPES)
                .map(|_| CachePadded::new(Stripe::default()))
                .collect(),
            active_subscribers: AtomicUsize::new(0),
        }
    }

    /// Records one publish. Relaxed everywhere: counters order nothing.
    #[inline]
    pub(crate) fn record(&self, delivered: u64, failed: u64) {
        let stripe = &self.stripes[my_stripe()];
        stripe.published.fetch_add(1, Ordering::Relaxed);
        if delivered > 0 {
            stripe.delivered.fetch_add(delivered, Ordering::Relaxed);
        }
        if failed > 0 {
            stripe.failed.fetch_add(failed, Ordering::Relaxed);
        }
    }

    /// Records the async part of a publish, counted when it finishes.
    pub(crate) fn record_async(&self, delivered: u64, failed: u64) {
        let stripe = &self.stripes[my_stripe()];
        stripe.delivered.fetch_add(delivered, Ordering::Relaxed);
        stripe.failed.fetch_add(failed, Ordering::Relaxed);
    }

    pub(crate) fn set_active_subscribers(&self, count: usize) {
        self.active_subscribers.store(count, Ordering::Relaxed);
    }

    pub(crate) fn reset(&self) {
        for stripe in self.stripes.iter() {
            stripe.published.store(0, Ordering::Relaxed);
            stripe.delivered.store(0, Ordering::Relaxed);
            stripe.failed.store(0, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self, history_size: usize) -> BusStats {
        let sum = |field: fn(&Stripe) -> &AtomicU64| {
            self.stripes
                .iter()
                .map(|stripe| field(stripe).load(Ordering::Relaxed))
                .sum()
        };
        BusStats {
            events_published: sum(|s| &s.published),
            events_delivered: sum(|s| &s.delivered),
            handler_errors: sum(|s| &s.failed),
            active_subscribers: self.active_subscribers.load(Ordering::Relaxed),
            history_size,
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
}
