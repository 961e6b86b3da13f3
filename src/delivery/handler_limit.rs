//! The bus-wide limit on async handler calls in flight
//! ([`EventBusBuilder::max_concurrent_handlers`](crate::EventBusBuilder::max_concurrent_handlers),
//! [`EventBus::set_max_concurrent_handlers`]): a flag and a resizable
//! [`Permits`]. The behaviour is stated in
//! [`docs::semantics`](crate::docs::semantics#concurrency-limits).
//!
//! Whether a call is limited is decided when it starts, not when its
//! subscription was made, so a limit set on a running bus reaches the async
//! handlers subscribed before it. A plain async subscription (no delivery
//! options) keeps the bus's [`DeliveryState`](super::DeliveryState) and its
//! start in the fan-out reads [`HandlerLimit::is_set`]: unset, that load
//! and one predictable branch are all the unlimited bus pays, and the call
//! takes the plain path; set, its future is wrapped by `managed::limited`
//! (a permit, then the polls). A [`Managed`](super::Managed) wrapper asks
//! the same flag on each attempt.

use crate::bus::EventBus;
use crate::delivery::permits::{Permits, Ticket};
use crate::sync::{lock, Arc, AtomicBool, Mutex, Ordering};

/// The limit of one bus; in its `DeliveryState`.
pub(crate) struct HandlerLimit {
    /// Whether a limit is set: read by every start of an async handler.
    ///
    /// Relaxed, as every access to it: it publishes no data. The permits are
    /// always there and guarded by their own lock, resized before the flag
    /// is raised and after it is lowered (both under `setting`), so a call
    /// that sees the flag set finds them limited or grants at once. A start
    /// that reads a stale value runs as if it had started just before the
    /// change; a start ordered after a change by any synchronisation sees
    /// it (coherence).
    limited: AtomicBool,
    /// The limit as last set; held by setters while they change the flag
    /// and the permits, so the three agree.
    setting: Mutex<Option<usize>>,
    permits: Arc<Permits>,
}

impl HandlerLimit {
    /// `Some(0)` is taken as `Some(1)`: a limit of nothing would hang.
    pub(crate) fn new(limit: Option<usize>) -> Self {
        let limit = limit.map(|slots| slots.max(1));
        Self {
            limited: AtomicBool::new(limit.is_some()),
            setting: Mutex::new(limit),
            permits: Permits::new(limit.unwrap_or(usize::MAX)),
        }
    }

    /// Whether async handler calls starting now take a permit.
    #[inline(always)]
    pub(crate) fn is_set(&self) -> bool {
        // Relaxed: see the field.
        self.limited.load(Ordering::Relaxed)
    }

    /// The limit as last set.
    pub(crate) fn get(&self) -> Option<usize> {
        *lock(&self.setting)
    }

    /// Sets, changes or removes the limit; see
    /// [`EventBus::set_max_concurrent_handlers`].
    pub(crate) fn set(&self, limit: Option<usize>) {
        let limit = limit.map(|slots| slots.max(1));
        let mut setting = lock(&self.setting);
        *setting = limit;
        match limit {
            Some(slots) => {
                self.permits.resize(slots);
                // Relaxed: see the field.
                self.limited.store(true, Ordering::Relaxed);
            }
            None => {
                self.limited.store(false, Ordering::Relaxed);
                // Every waiter is granted; calls in flight release later.
                self.permits.resize(usize::MAX);
            }
        }
    }

    /// Waits for a permit if a limit is set; `None` (at once) if not.
    pub(crate) async fn acquire(&self) -> Option<Ticket<Permits>> {
        if !self.is_set() {
            return None;
        }
        Some(Permits::acquire(&self.permits).await)
    }
}

impl EventBus {
    /// Sets, changes or removes (`None`) the bus-wide limit on async handler
    /// calls in flight, on a bus already running: the run-time form of
    /// [`EventBusBuilder::max_concurrent_handlers`](crate::EventBusBuilder::max_concurrent_handlers),
    /// whose rules hold (sync handlers take no permit; a publish made from
    /// inside a handler runs under that handler's permit, so handlers that
    /// publish cannot deadlock on it; `Some(0)` is taken as `Some(1)`).
    ///
    /// It applies to every async handler call that starts after it returns,
    /// whenever its subscription was made. What happens to calls already
    /// running and to publishes waiting for a permit:
    ///
    /// - **Raised**: waiting calls are handed the new permits at once, first
    ///   come first served, and their publishes are woken.
    /// - **Lowered**: calls in flight keep their permits and finish; waiting
    ///   calls keep their place in line, and the next one starts only when
    ///   fewer calls hold a permit than the new limit.
    /// - **Removed**: every waiting call is handed a permit at once and its
    ///   publish woken; later calls take none. Calls in flight finish.
    /// - **Set on an unlimited bus**: calls already running took no permit
    ///   and are not counted, so until they finish the calls in flight may
    ///   exceed the new limit by their number; calls starting afterwards
    ///   wait for permits.
    ///
    /// A bus that never had a limit pays one load and one predictable
    /// branch per async handler call for this (`benches/RESULTS.md`, #22).
    ///
    /// ```
    /// use agentbus::{Event, EventBus, EventType};
    /// use std::sync::Arc;
    ///
    /// let bus = EventBus::new();
    /// assert_eq!(bus.max_concurrent_handlers(), None);
    /// bus.subscribe_async(EventType::TaskCompleted, |_e: Arc<Event>| async {});
    /// bus.set_max_concurrent_handlers(Some(3));
    /// assert_eq!(bus.max_concurrent_handlers(), Some(3));
    /// let outcome = bus.publish_blocking(Event::new(EventType::TaskCompleted));
    /// assert_eq!(outcome.delivered, 1);
    /// bus.set_max_concurrent_handlers(None);
    /// assert_eq!(bus.max_concurrent_handlers(), None);
    /// ```
    pub fn set_max_concurrent_handlers(&self, limit: Option<usize>) {
        self.inner().delivery.handler_limit.set(limit);
    }

    /// The bus-wide limit on async handler calls in flight, as last set by
    /// [`EventBusBuilder::max_concurrent_handlers`](crate::EventBusBuilder::max_concurrent_handlers)
    /// or [`set_max_concurrent_handlers`](Self::set_max_concurrent_handlers)
    /// (`0` reads as 1); `None` if unlimited.
    pub fn max_concurrent_handlers(&self) -> Option<usize> {
        self.inner().delivery.handler_limit.get()
    }
}
