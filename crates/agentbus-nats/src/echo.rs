//! Echo suppression: which event the bridge is publishing locally right now.
//!
//! An event that came in from NATS is published on the local bus with a
//! pointer to it in a thread-local; the outgoing subscription's filter, which
//! the bus runs inline on the publishing thread, compares the event it is
//! offered against that pointer. Events that handlers publish in reaction are
//! other allocations and go out as usual. Cost on the publish path: one
//! thread-local read and a compare.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use agentbus::Event;

thread_local! {
    static INBOUND: Cell<*const Event> = const { Cell::new(std::ptr::null()) };
}

/// Whether `event` is the one a bridge is delivering from NATS on this thread.
#[inline]
pub(crate) fn is_inbound(event: &Event) -> bool {
    INBOUND.with(|current| std::ptr::eq(current.get(), event))
}

/// Polls `inner` (a local publish of `event`) with `event` marked as inbound,
/// so no bridge of this process sends it back out.
pub(crate) struct MarkedInbound<F> {
    event: Arc<Event>,
    inner: F,
}

impl<F> MarkedInbound<F> {
    pub(crate) fn new(event: Arc<Event>, inner: F) -> Self {
        Self { event, inner }
    }
}

impl<F: Future + Unpin> Future for MarkedInbound<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let marked: *const Event = Arc::as_ptr(&self.event);
        // Restored even if a poll unwinds, so a later publish on this thread
        // is never mistaken for an inbound one.
        struct Restore(*const Event);
        impl Drop for Restore {
            fn drop(&mut self) {
                INBOUND.with(|current| current.set(self.0));
            }
        }
        let _restore = Restore(INBOUND.with(|current| current.replace(marked)));
        Pin::new(&mut self.inner).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    use agentbus::{Event, EventType};

    use super::{is_inbound, MarkedInbound};

    /// Checks, when polled, that `event` is marked inbound on this thread.
    struct SeesMarked(Arc<Event>);

    impl Future for SeesMarked {
        type Output = bool;

        fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<bool> {
            Poll::Ready(is_inbound(&self.0))
        }
    }

    /// The event is inbound while its publish is polled, and only then: a
    /// later publish on the thread is not taken for it.
    #[test]
    fn an_event_is_inbound_only_while_its_publish_is_polled() {
        let event = Arc::new(Event::new(EventType::TaskCompleted));
        let other = Event::new(EventType::TaskCompleted);
        let mut marked = MarkedInbound::new(Arc::clone(&event), SeesMarked(Arc::clone(&event)));
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(Pin::new(&mut marked).poll(&mut cx), Poll::Ready(true));
        assert!(!is_inbound(&event), "no longer inbound after the poll");
        assert!(!is_inbound(&other));
    }
}
