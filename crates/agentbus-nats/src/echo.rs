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
