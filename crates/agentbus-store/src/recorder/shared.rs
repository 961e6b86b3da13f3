//! What publishers and the writer share: the queue, the counters, the
//! settings; a leaf both sides import.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    pub(crate) reserved: Reserved,
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
        self.reserved
            .try_take(events, self.queue.capacity(), || self.queue.len())
    }

    /// Wakes the writer whether or not it said it was idle (for control
    /// messages, which arrive on their own channel).
    pub(crate) fn wake_writer_now(&self) {
        self.writer_idle.store(false, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// The queue slots held by reservations, with a count of every reservation
/// taken or released in the same word.
///
/// The count alone is not enough: a reservation taken and released while
/// another publisher decides (it has read the count, then the queue's
/// length) puts the word back where it was, but leaves its events in the
/// queue; the deciding publisher's compare-and-swap would then succeed on a
/// length read before those events arrived, and promise room the queue no
/// longer has (a reserving publisher then waits, which `reserve` promises
/// it never does). With every take and release also bumping the generation
/// in the top bits, that compare-and-swap fails and the publisher reads the
/// length again.
#[derive(Default)]
pub(crate) struct Reserved(AtomicU64);

/// Slots held: the low 40 bits (a queue of 2⁴⁰ events would not fit in
/// memory); the generation: the 24 above, wrapping.
const HELD: u64 = (1 << 40) - 1;
const GENERATION: u64 = 1 << 40;

impl Reserved {
    /// Takes `events` slots if `queue_len()` plus those held plus `events`
    /// fit in `capacity`.
    fn try_take(&self, events: usize, capacity: usize, queue_len: impl Fn() -> usize) -> bool {
        // Acquire pairs with the AcqRel of earlier takes and releases, so
        // the queue's length read below includes every event a released
        // reservation published.
        let mut word = self.0.load(Ordering::Acquire);
        loop {
            let held = (word & HELD) as usize;
            if queue_len() + held + events > capacity {
                return false;
            }
            // `held + events` stays within the capacity, far below 2⁴⁰.
            let next = word.wrapping_add(GENERATION).wrapping_add(events as u64);
            match self
                .0
                .compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => word = now,
            }
        }
    }

    /// Gives `events` slots back (taken by [`try_take`](Self::try_take)).
    pub(crate) fn release(&self, events: usize) {
        // One add: `events` off the held slots, one on the generation.
        // AcqRel: release pairs with the Acquire of the next take, after
        // this reservation's events were pushed.
        self.0
            .fetch_add(GENERATION.wrapping_sub(events as u64), Ordering::AcqRel);
    }

    /// Whether any reservation is held now.
    pub(crate) fn any(&self) -> bool {
        // Acquire: a writer that sees none also sees the events pushed
        // before the last release.
        self.0.load(Ordering::Acquire) & HELD > 0
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::Reserved;

    /// Another publisher takes the whole queue, publishes into it and lets
    /// go while this one decides: this one must look at the queue again
    /// and find it full, not take room the events already fill.
    #[test]
    fn a_reservation_taken_and_released_meanwhile_makes_the_decision_look_again() {
        let reserved = Reserved::default();
        let queued = Cell::new(0);
        let looks = Cell::new(0);
        let took = reserved.try_take(8, 8, || {
            looks.set(looks.get() + 1);
            if looks.get() == 1 {
                // Read before the other publisher's turn...
                let seen = queued.get();
                // ...which happens now, between that read and the swap.
                assert!(reserved.try_take(8, 8, || queued.get()));
                queued.set(8);
                reserved.release(8);
                return seen;
            }
            queued.get()
        });
        assert!(!took, "room taken that the queue no longer has");
        assert_eq!(looks.get(), 2);
        assert!(!reserved.any());
    }

    #[test]
    fn takes_and_releases_count_the_slots_held() {
        let reserved = Reserved::default();
        assert!(reserved.try_take(3, 8, || 0));
        assert!(reserved.try_take(5, 8, || 0));
        assert!(!reserved.try_take(1, 8, || 0), "all 8 held");
        reserved.release(3);
        assert!(reserved.any());
        assert!(
            !reserved.try_take(3, 8, || 1),
            "5 held and 1 queued leave 2"
        );
        assert!(reserved.try_take(2, 8, || 1));
        reserved.release(5);
        reserved.release(2);
        assert!(!reserved.any());
    }
}
