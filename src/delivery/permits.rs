//! Waiting in line for a limited resource: [`Permits`] (a fair async
//! semaphore: `max_concurrent_handlers`, `max_concurrency`) and the
//! [`Ticket`] that holds a place in a [`Line`], shared with the key lanes of
//! `ordered_by` (`lanes.rs`).
//!
//! A ticket joins its line when it is made, synchronously, so the order of
//! joining (the publish order, for a lane) is the order of being served:
//! the line is strictly first come, first served. A release hands the slot
//! straight to the first waiter (it is marked granted and woken), so a
//! newcomer can never overtake a woken waiter. [`Permits::resize`] (the
//! bus's handler limit changed at run time) grants new slots to the first
//! waiters at once; a smaller size takes no slot back, and releases then
//! serve nobody until fewer than the new size are held. Dropping a ticket that waits
//! leaves the line; dropping one that was granted or held passes the slot
//! on. All state is behind one mutex per line (the sync shim's, so the loom
//! models in `tests/loom.rs` check it); wakers are woken after it is
//! released.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use crate::sync::{lock, Arc, Mutex};

/// One line: how many may hold a slot, how many do, and who waits for
/// one, in order.
pub(crate) struct Line {
    slots: usize,
    /// Slots held or granted; above `slots` after a [`resize`](Self::resize)
    /// down, until enough are released.
    taken: usize,
    next_waiter: u64,
    waiting: VecDeque<(u64, Option<Waker>)>,
    /// Waiters handed a slot that have not polled since.
    granted: Vec<u64>,
}

impl Line {
    pub(crate) fn new(slots: usize) -> Self {
        Self {
            slots,
            taken: 0,
            next_waiter: 0,
            waiting: VecDeque::new(),
            granted: Vec::new(),
        }
    }

    /// Takes a slot if one is free and nobody waits (`None`), else joins
    /// the end of the line as the returned waiter.
    fn join(&mut self) -> Option<u64> {
        if self.taken < self.slots && self.waiting.is_empty() {
            self.taken += 1;
            return None;
        }
        let waiter = self.next_waiter;
        self.next_waiter += 1;
        self.waiting.push_back((waiter, None));
        Some(waiter)
    }

    /// `true` (and the slot is the waiter's) if `waiter` was granted one;
    /// otherwise remembers `waker` for when it is.
    fn poll(&mut self, waiter: u64, waker: &Waker) -> bool {
        if let Some(at) = self.granted.iter().position(|&w| w == waiter) {
            self.granted.swap_remove(at);
            return true;
        }
        if let Some((_, slot)) = self.waiting.iter_mut().find(|(w, _)| *w == waiter) {
            if !slot.as_ref().is_some_and(|old| old.will_wake(waker)) {
                *slot = Some(waker.clone());
            }
        }
        false
    }

    /// Hands a free slot to the first waiter, if there are both; returns
    /// `Some` with the waiter's waker (`None` inside if it has not polled
    /// yet) when it did.
    fn grant(&mut self) -> Option<Option<Waker>> {
        if self.taken >= self.slots {
            return None;
        }
        let (waiter, waker) = self.waiting.pop_front()?;
        self.taken += 1;
        self.granted.push(waiter);
        Some(waker)
    }

    /// Gives a slot back; the first waiter gets it if the line is not over
    /// its size (returning its waker).
    #[must_use]
    fn release(&mut self) -> Option<Waker> {
        self.taken -= 1;
        self.grant().flatten()
    }

    /// Leaves the line; passes the slot on if `waiter` had been granted one.
    #[must_use]
    fn leave(&mut self, waiter: u64) -> Option<Waker> {
        if let Some(at) = self.granted.iter().position(|&w| w == waiter) {
            self.granted.swap_remove(at);
            return self.release();
        }
        self.waiting.retain(|(w, _)| *w != waiter);
        None
    }

    /// Sets how many may hold a slot at once. Growing grants the new slots
    /// to the first waiters now (their wakers are returned); shrinking takes
    /// nothing back: holders keep their slots, and nobody is served until
    /// fewer than `slots` are held.
    #[must_use]
    pub(crate) fn resize(&mut self, slots: usize) -> Vec<Waker> {
        self.slots = slots;
        std::iter::from_fn(|| self.grant()).flatten().collect()
    }

    /// Nobody holds, waits or is granted a slot.
    pub(crate) fn is_idle(&self) -> bool {
        self.taken == 0 && self.waiting.is_empty()
    }
}

/// Something with lines, one per key: [`Permits`] has one, the key lanes
/// one per key.
pub(crate) trait Gate: Send + Sync + 'static {
    /// Runs `f` on the line of `key` under the gate's lock.
    fn with_line<R>(&self, key: u64, f: impl FnOnce(&mut Line) -> R) -> R;
}

/// A place in a line, then the slot itself until dropped.
pub(crate) struct Ticket<G: Gate> {
    gate: Arc<G>,
    key: u64,
    place: Place,
}

enum Place {
    Waiting(u64),
    Held,
}

impl<G: Gate> Ticket<G> {
    /// Joins the line of `key` now.
    pub(crate) fn join(gate: &Arc<G>, key: u64) -> Self {
        let place = match gate.with_line(key, Line::join) {
            None => Place::Held,
            Some(waiter) => Place::Waiting(waiter),
        };
        Self {
            gate: Arc::clone(gate),
            key,
            place,
        }
    }

    /// `Ready` once the ticket holds its slot.
    pub(crate) fn poll_held(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Place::Waiting(waiter) = self.place else {
            return Poll::Ready(());
        };
        if self
            .gate
            .with_line(self.key, |line| line.poll(waiter, cx.waker()))
        {
            self.place = Place::Held;
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Waits until the ticket holds its slot.
    pub(crate) async fn held(&mut self) {
        std::future::poll_fn(|cx| self.poll_held(cx)).await;
    }
}

impl<G: Gate> Drop for Ticket<G> {
    fn drop(&mut self) {
        let next = match self.place {
            Place::Held => self.gate.with_line(self.key, Line::release),
            Place::Waiting(waiter) => self.gate.with_line(self.key, |line| line.leave(waiter)),
        };
        if let Some(next) = next {
            next.wake();
        }
    }
}

/// A fair async semaphore: at most `slots` tickets hold a slot at once.
pub(crate) struct Permits {
    line: Mutex<Line>,
}

impl Permits {
    /// `slots` of `0` is taken as 1: a limit of nothing would hang.
    pub(crate) fn new(slots: usize) -> Arc<Self> {
        Arc::new(Self {
            line: Mutex::new(Line::new(slots.max(1))),
        })
    }

    /// Waits for a slot (first come, first served).
    pub(crate) async fn acquire(permits: &Arc<Self>) -> Ticket<Self> {
        let mut ticket = Ticket::join(permits, 0);
        ticket.held().await;
        ticket
    }

    /// Sets the number of slots (`0` is taken as 1); see [`Line::resize`].
    /// Waiters that now hold a slot are woken after the lock is released.
    pub(crate) fn resize(&self, slots: usize) {
        let granted = lock(&self.line).resize(slots.max(1));
        granted.into_iter().for_each(Waker::wake);
    }
}

impl Gate for Permits {
    fn with_line<R>(&self, _key: u64, f: impl FnOnce(&mut Line) -> R) -> R {
        f(&mut lock(&self.line))
    }
}

#[cfg(test)]
#[cfg(not(agentbus_loom))]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn a_released_slot_goes_to_the_first_waiter_not_a_newcomer() {
        let permits = Permits::new(1);
        let mut cx = Context::from_waker(Waker::noop());
        let first = Ticket::join(&permits, 0);
        let mut second = Ticket::join(&permits, 0);
        assert!(second.poll_held(&mut cx).is_pending());
        drop(first);
        let mut third = Ticket::join(&permits, 0);
        assert!(third.poll_held(&mut cx).is_pending());
        assert!(second.poll_held(&mut cx).is_ready());
        drop(second);
        assert!(third.poll_held(&mut cx).is_ready());
    }

    #[test]
    fn growing_grants_the_first_waiters_and_shrinking_serves_none_until_below() {
        let permits = Permits::new(2);
        let mut cx = Context::from_waker(Waker::noop());
        let held: Vec<_> = (0..2).map(|_| Ticket::join(&permits, 0)).collect();
        let mut waiting: Vec<_> = (0..3).map(|_| Ticket::join(&permits, 0)).collect();
        permits.resize(4);
        let ready: Vec<bool> = waiting
            .iter_mut()
            .map(|t| t.poll_held(&mut cx).is_ready())
            .collect();
        assert_eq!(ready, [true, true, false]);
        permits.resize(1);
        let mut last = waiting.pop().unwrap();
        drop(held); // 2 of 4 left: still not below 1
        assert!(last.poll_held(&mut cx).is_pending());
        drop(waiting.pop()); // 1 left: not below 1
        assert!(last.poll_held(&mut cx).is_pending());
        drop(waiting.pop()); // 0 left: served
        assert!(last.poll_held(&mut cx).is_ready());
        drop(last);
        assert!(permits.line.lock().unwrap().is_idle());
    }

    #[test]
    fn a_granted_ticket_dropped_unpolled_passes_its_slot_on() {
        let permits = Permits::new(1);
        let mut cx = Context::from_waker(Waker::noop());
        let first = Ticket::join(&permits, 0);
        let second = Ticket::join(&permits, 0);
        let mut third = Ticket::join(&permits, 0);
        drop(first); // grants `second`
        drop(second); // never polled: hands on to `third`
        assert!(third.poll_held(&mut cx).is_ready());
        drop(third);
        assert!(permits.line.lock().unwrap().is_idle());
    }
}
