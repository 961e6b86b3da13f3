//! What publishers and the writer share: the queue, the counters, the
//! settings; a leaf both sides import.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentbus::{wait_for_room, Event, Overflow};
use crossbeam_queue::ArrayQueue;
use tokio::sync::Notify;

use crate::error::StoreError;
use crate::store::Retention;
use crate::tracked::Tracking;

/// A recorder's settings, as the writer reads them; built by
/// [`RecorderBuilder`](crate::RecorderBuilder).
#[derive(Clone, Debug)]
pub(crate) struct RecorderConfig {
    pub(crate) capacity: usize,
    pub(crate) max_batch: usize,
    pub(crate) linger: Duration,
    pub(crate) overflow: Overflow,
    pub(crate) retention: Retention,
    pub(crate) prune_interval: Duration,
    pub(crate) retry_min: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) live_capacity: usize,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            capacity: 65_536,
            max_batch: 1000,
            linger: Duration::ZERO,
            overflow: Overflow::Wait,
            retention: Retention::forever(),
            prune_interval: Duration::from_secs(60),
            retry_min: Duration::from_millis(10),
            retry_max: Duration::from_secs(1),
            live_capacity: 256,
        }
    }
}

/// The state publishers and the writer share.
pub(crate) struct Shared {
    pub(crate) queue: ArrayQueue<Arc<Event>>,
    pub(crate) overflow: Overflow,
    /// Set by the writer before it sleeps for lack of events.
    pub(crate) writer_idle: AtomicBool,
    pub(crate) wake: Notify,
    /// Queue slots promised by [`Recorder::reserve`](crate::Recorder::reserve) and not yet released.
    pub(crate) reserved: AtomicUsize,
    /// Woken when the writer takes events off the queue or a reservation
    /// ends: a [`Recorder::reserve`](crate::Recorder::reserve) waiting for room looks again.
    pub(crate) room: Notify,
    /// Set when the writer has stopped: waiting publishers give up.
    pub(crate) writer_gone: AtomicBool,
    pub(crate) counters: Counters,
    pub(crate) last_error: Mutex<Option<StoreError>>,
    /// Events whose sequences a publisher waits for ([`Recorder::track`](crate::Recorder::track)).
    pub(crate) tracking: Arc<Tracking>,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) in_flight: AtomicU64,
    pub(crate) committed: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) waits: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) pruned: AtomicU64,
    pub(crate) last_sequence: AtomicU64,
}

impl Shared {
    /// The publishing thread's whole cost: one push into a lock-free
    /// bounded queue and one load.
    #[inline]
    pub(crate) fn hand_off(&self, event: &Arc<Event>) {
        if let Err(event) = self.queue.push(Arc::clone(event)) {
            self.full(event);
        }
        // SeqCst pairs with the writer's store before its last look at the
        // queue: either it sees our event or we see it idle.
        if self.writer_idle.load(Ordering::SeqCst) {
            self.wake_writer();
        }
    }

    #[cold]
    pub(crate) fn wake_writer(&self) {
        if self.writer_idle.swap(false, Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }

    #[cold]
    fn full(&self, event: Arc<Event>) {
        match self.overflow {
            Overflow::DropNewest => self.drop_event(&event),
            Overflow::DropOldest => {
                if let Some(oldest) = self.queue.force_push(event) {
                    self.drop_event(&oldest);
                }
            }
            // `Wait`, and any policy a newer core adds: never lose silently.
            _ => {
                self.counters.waits.fetch_add(1, Ordering::Relaxed);
                let mut event = Some(event);
                wait_for_room(|| {
                    let pending = event.take()?;
                    self.wake_writer_now();
                    if self.writer_gone.load(Ordering::Acquire) {
                        self.drop_event(&pending);
                        return Some(());
                    }
                    match self.queue.push(pending) {
                        Ok(()) => Some(()),
                        Err(back) => {
                            event = Some(back);
                            None
                        }
                    }
                });
            }
        }
    }

    fn drop_event(&self, event: &Event) {
        let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if dropped.is_power_of_two() {
            tracing::warn!(
                event_id = %event.id,
                dropped,
                "agentbus-store recorder queue full: event not recorded"
            );
        }
    }
}

impl Shared {
    /// Takes room for `events` if the queue has it beyond what is queued
    /// and reserved. Events published under a reservation count twice until
    /// it is dropped: cautious, never too generous.
    pub(crate) fn try_reserve(&self, events: usize) -> bool {
        let capacity = self.queue.capacity();
        let mut reserved = self.reserved.load(Ordering::Acquire);
        loop {
            if self.queue.len() + reserved + events > capacity {
                return false;
            }
            match self.reserved.compare_exchange_weak(
                reserved,
                reserved + events,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => reserved = now,
            }
        }
    }

    /// Wakes the writer whether or not it said it was idle (for control
    /// messages, which arrive on their own channel).
    pub(crate) fn wake_writer_now(&self) {
        self.writer_idle.store(false, Ordering::SeqCst);
        self.wake.notify_one();
    }
}
