//! Reliable delivery: retries with backoff, handler timeouts, dead letters
//! with redrive, concurrency limits and per-key ordering. The behaviour is
//! stated in [`docs::semantics`](crate::docs::semantics#retries-timeouts-and-dead-letters);
//! this is how it is built.
//!
//! A subscription without these options is untouched: its handler is
//! called by the plain fan-out, and only a failure reaches this module (the
//! cold path that keeps a dead letter), or, for an async handler while the
//! bus has a handler limit, the call's start (`managed::limited`). One with
//! any of them gets a [`Managed`] (`managed.rs`), mostly as a wrapper that
//! is its handler, an async handler to the publish, which waits for its key
//! lane (`lanes.rs`) and permits (`permits.rs`), runs one attempt with its
//! timeout (`timer.rs`), and hands a failure to a retry task on the
//! background worker (`worker.rs`) or to the dead letters
//! (`dead_letters.rs`). A sync handler with no lane or permit to wait for
//! stays a sync handler to the fan-out, and only its failure reaches its
//! `Managed`. [`DeliveryState`] is what one bus shares among them: the dead
//! letters, the bus-wide handler limit (`handler_limit.rs`, settable at run
//! time, so checked when a call starts), the counters and the pending
//! retries that [`EventBus::settled`] waits for.

mod dead_letters;
mod handler_limit;
mod lanes;
mod managed;
mod permits;
mod retry;
mod timer;
mod worker;

use std::future::Future;
use std::sync::Arc as StdArc;
use std::task::{Poll, Waker};
use std::time::SystemTime;

pub use dead_letters::{
    DeadLetter, DeadLetterId, DeadLetterQuery, DeadLetterSink, DeadLetters, DeadLettersRestored,
    RedriveError, DEFAULT_DEAD_LETTER_CAPACITY,
};
pub(crate) use managed::{limited, manage, Managed, Options};
pub use retry::Retry;

use crate::bus::EventBus;
use crate::event::Event;
use crate::handler::Reporter;
use crate::stats::BusStats;
use crate::sync::{lock, AtomicU64, Mutex, Ordering};
use dead_letters::KeptLetters;
use handler_limit::HandlerLimit;

/// The delivery state one bus shares.
pub(crate) struct DeliveryState {
    pub(crate) dead_letters: KeptLetters,
    /// `max_concurrent_handlers`, settable at run time.
    pub(crate) handler_limit: HandlerLimit,
    retries: AtomicU64,
    timed_out: AtomicU64,
    dead_lettered: AtomicU64,
    pending: Mutex<Pending>,
}

/// Retries not finished yet, and who waits for there to be none.
#[derive(Default)]
struct Pending {
    retries: usize,
    settled: Vec<Waker>,
}

impl DeliveryState {
    pub(crate) fn new(dead_letter_capacity: usize, max_concurrent_handlers: Option<usize>) -> Self {
        Self {
            dead_letters: KeptLetters::new(dead_letter_capacity),
            handler_limit: HandlerLimit::new(max_concurrent_handlers),
            retries: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            pending: Mutex::new(Pending::default()),
        }
    }

    /// Keeps a failed delivery of `event` to the subscription `reporter`
    /// reports for.
    #[cold]
    pub(crate) fn dead_letter(
        &self,
        reporter: &Reporter,
        event: StdArc<Event>,
        error: &str,
        attempts: u32,
        first_failed_at: Option<SystemTime>,
    ) {
        self.dead_letters.push(
            event,
            reporter.id,
            reporter.name(),
            error,
            attempts,
            first_failed_at.unwrap_or_else(SystemTime::now),
        );
        // Relaxed, as all three counters: they order nothing.
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    fn count_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    fn count_timeout(&self) {
        self.timed_out.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a retry task until the guard drops.
    fn retry_pending(self: &StdArc<Self>) -> PendingRetry {
        lock(&self.pending).retries += 1;
        PendingRetry(StdArc::clone(self))
    }

    /// Adds this state's counters to `stats`.
    pub(crate) fn fill(&self, stats: &mut BusStats) {
        stats.retries = self.retries.load(Ordering::Relaxed);
        stats.timed_out = self.timed_out.load(Ordering::Relaxed);
        stats.dead_lettered = self.dead_lettered.load(Ordering::Relaxed);
        stats.dead_letters = self.dead_letters.len();
        stats.retries_pending = lock(&self.pending).retries;
    }

    /// Zeroes the counters and forgets the dead letters (`EventBus::reset`).
    pub(crate) fn reset(&self) {
        self.retries.store(0, Ordering::Relaxed);
        self.timed_out.store(0, Ordering::Relaxed);
        self.dead_lettered.store(0, Ordering::Relaxed);
        self.dead_letters.clear();
    }
}

/// One pending retry task; wakes [`EventBus::settled`] waiters when the
/// last one ends.
struct PendingRetry(StdArc<DeliveryState>);

impl Drop for PendingRetry {
    fn drop(&mut self) {
        let mut pending = lock(&self.0.pending);
        pending.retries -= 1;
        let settled = if pending.retries == 0 {
            std::mem::take(&mut pending.settled)
        } else {
            Vec::new()
        };
        drop(pending);
        settled.into_iter().for_each(Waker::wake);
    }
}

impl EventBus {
    /// Resolves once no retry is pending on this bus: every delivery that
    /// a publish reported as [`retrying`](crate::PublishOutcome::retrying)
    /// has succeeded or become a dead letter. For tests and shutdown; it
    /// needs no runtime.
    ///
    /// ```
    /// use agentbus::{Event, EventBus, EventType, Retry};
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// # futures::executor::block_on(async {
    /// let bus = EventBus::new();
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let seen = Arc::clone(&calls);
    /// bus.subscription(EventType::TaskCompleted)
    ///     .retry(Retry::attempts(3).delay(Duration::from_millis(1)))
    ///     .handler(move |_e: &Event| -> Result<(), String> {
    ///         match seen.fetch_add(1, Ordering::SeqCst) {
    ///             0 | 1 => Err("flaky".into()),
    ///             _ => Ok(()),
    ///         }
    ///     });
    /// let outcome = bus.publish(Event::new(EventType::TaskCompleted)).await;
    /// assert_eq!(outcome.retrying, 1);
    /// bus.settled().await;
    /// assert_eq!(calls.load(Ordering::SeqCst), 3);
    /// assert!(bus.dead_letters().is_empty());
    /// # });
    /// ```
    pub fn settled(&self) -> impl Future<Output = ()> + Send + 'static {
        let delivery = StdArc::clone(&self.inner().delivery);
        std::future::poll_fn(move |cx| {
            let mut pending = lock(&delivery.pending);
            if pending.retries == 0 {
                return Poll::Ready(());
            }
            if !pending.settled.iter().any(|w| w.will_wake(cx.waker())) {
                pending.settled.push(cx.waker().clone());
            }
            Poll::Pending
        })
    }
}
