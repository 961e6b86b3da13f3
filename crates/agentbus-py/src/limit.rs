//! The bus-wide cap on Python async handlers in flight
//! (`configure(max_concurrent_handlers=...)`, the original's semaphore).
//!
//! Why not the core's bus-wide permits
//! ([`agentbus::EventBusBuilder::max_concurrent_handlers`]): they are fixed
//! when a bus is built, and the Python bus is the process-wide
//! [`agentbus::event_bus`], built once before any `configure`; the core has
//! no way to set or resize that limit on a built bus, and its permits type
//! is private. This cap can go once the core offers one (say, an
//! `EventBus::set_max_concurrent_handlers` that frees slots to waiters on
//! growth and lets calls in flight finish on shrink). It is reached only
//! through [`Limit::poll_acquire`], so swapping it is local to `handler.rs`.
//!
//! Behaviour: an async handler call takes a permit before it starts and
//! holds it until it finishes; at the cap, further calls wait (their publish
//! stays pending, no thread blocks) and start as permits come back, in no
//! promised order. Sync handlers never suspend and take no permit. A call
//! started while another handler of this thread holds a permit (a handler
//! that publishes) takes none, so a handler that publishes cannot deadlock
//! on the cap. Lowering the cap lets calls in flight finish.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// The original's default cap.
pub(crate) const DEFAULT_MAX_CONCURRENT_HANDLERS: usize = 100;

/// A counting semaphore whose waiters are tasks, not threads.
pub(crate) struct Limit {
    state: Mutex<State>,
}

struct State {
    max: usize,
    in_flight: usize,
    waiting: Vec<Waker>,
}

/// One call's share of the cap; returned on drop.
pub(crate) struct Permit(Arc<Limit>);

impl Drop for Permit {
    fn drop(&mut self) {
        let waiting = {
            let mut state = self.0.lock();
            state.in_flight -= 1;
            std::mem::take(&mut state.waiting)
        };
        // Every waiter retries; those that lose re-register. Woken outside
        // the lock: a waker may run Python code.
        for waker in waiting {
            waker.wake();
        }
    }
}

impl Default for Limit {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                max: DEFAULT_MAX_CONCURRENT_HANDLERS,
                in_flight: 0,
                waiting: Vec::new(),
            }),
        }
    }
}

impl Limit {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Counters only; never left half-updated by a panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the cap (at least 1); waiters that now fit are woken.
    pub(crate) fn set_max(&self, max: usize) {
        let waiting = {
            let mut state = self.lock();
            state.max = max;
            std::mem::take(&mut state.waiting)
        };
        waiting.into_iter().for_each(Waker::wake);
    }

    /// The cap.
    pub(crate) fn max(&self) -> usize {
        self.lock().max
    }

    /// A permit, or `Pending` with `cx`'s waker registered.
    pub(crate) fn poll_acquire(self: &Arc<Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        let mut state = self.lock();
        if state.in_flight < state.max {
            state.in_flight += 1;
            return Poll::Ready(Permit(Arc::clone(self)));
        }
        if !state.waiting.iter().any(|w| w.will_wake(cx.waker())) {
            state.waiting.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
