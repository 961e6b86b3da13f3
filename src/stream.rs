//! [`EventStream`]: a bounded, pull-based subscription.
//!
//! # Behaviour
//!
//! - The publisher pushes into a fixed-size buffer. What it does when the
//!   buffer is full is the stream's [`Overflow`] policy. By default
//!   ([`EventBus::stream`](crate::EventBus::stream),
//!   [`SubscriptionBuilder::stream`](crate::SubscriptionBuilder::stream)) it
//!   is [`Overflow::DropOldest`]: the publisher never waits, the *oldest*
//!   buffered event is dropped to make room, and the stream counts it: the
//!   consumer's next read reports [`Lagged`]`(n)` (or
//!   [`TryRecvError::Lagged`]) before resuming with the oldest event that
//!   survived. [`SubscriptionBuilder::stream_with`](crate::SubscriptionBuilder::stream_with)
//!   chooses another: under [`Overflow::DropNewest`] the new event is dropped
//!   and counted the same way; under [`Overflow::Wait`] the publisher waits
//!   on its own thread ([`wait_for_room`](crate::wait_for_room)) until the
//!   consumer takes an event, or drops the stream, so nothing is lost (the
//!   consumer must not run on the publishing thread).
//! - The stream ends (`None` / [`TryRecvError::Closed`]) after the
//!   subscription is removed by [`EventBus::reset`](crate::EventBus::reset)
//!   or by dropping the bus, once buffered events are drained. (A
//!   [`Publisher`](crate::Publisher) that published to it holds its handler
//!   until that publisher's next publish, so the end can come that late.)
//! - Dropping the stream unsubscribes it.
//!
//! ```
//! use agentbus::{Event, EventBus, EventType, TryRecvError};
//!
//! let bus = EventBus::new();
//! let mut stream = bus.stream(EventType::TaskCreated, 2);
//! for _ in 0..3 {
//!     bus.publish_blocking(Event::new(EventType::TaskCreated));
//! }
//! assert_eq!(stream.try_recv(), Err(TryRecvError::Lagged(1)));
//! assert!(stream.try_recv().is_ok());
//! assert!(stream.try_recv().is_ok());
//! assert_eq!(stream.try_recv(), Err(TryRecvError::Empty));
//! ```

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crossbeam_queue::ArrayQueue;
use futures_core::Stream;
use futures_util::task::AtomicWaker;

use crate::error::{Lagged, TryRecvError};
use crate::event::Event;
use crate::handler::Handler;
use crate::id::SubscriptionId;
use crate::overflow::{wait_for_room, Overflow};
use crate::subscription::SubscriptionGuard;
use crate::sync::{dekker_fence, AtomicBool, AtomicU64, Ordering};

struct Shared {
    buffer: ArrayQueue<Arc<Event>>,
    overflow: Overflow,
    missed: AtomicU64,
    closed: AtomicBool,
    /// Set when the [`EventStream`] is dropped: a publisher waiting for room
    /// under [`Overflow::Wait`] gives up.
    consumer_gone: AtomicBool,
    /// Set by the consumer before it looks at the buffer a last time and
    /// returns `Pending`; publishers wake it only then, so a busy consumer
    /// costs a publish one plain load instead of the waker's read-modify-write
    /// and a cross-thread wake per event.
    waiting: AtomicBool,
    waker: AtomicWaker,
}

/// The publishing side, owned by the subscriber's handler: when the bus drops
/// the handler, the stream closes.
struct Feeder(Arc<Shared>);

impl Feeder {
    fn feed(&self, event: &Arc<Event>) {
        let lost = match self.0.overflow {
            Overflow::DropNewest => self.0.buffer.push(Arc::clone(event)).is_err(),
            Overflow::Wait => self.push_waiting(Arc::clone(event)),
            Overflow::DropOldest => self.0.buffer.force_push(Arc::clone(event)).is_some(),
        };
        if lost {
            // Relaxed: the count is read with a swap by the one consumer and
            // orders nothing else.
            self.0.missed.fetch_add(1, Ordering::Relaxed);
        }
        // SeqCst pairs with the consumer's SeqCst store of `waiting` in
        // `poll_next`, through the buffer's own SeqCst accesses (the tail
        // compare-and-swap of the push; the fence before the emptiness check
        // of the pop): either this load sees `waiting` set, or the
        // consumer's last look at the buffer sees this event. The loom model
        // `stream_poll_vs_publish` checks the protocol (loom sees the queue
        // as one step per call, not its internals) with the fence loom
        // builds put here, see `dekker_fence`.
        dekker_fence();
        if self.0.waiting.load(Ordering::SeqCst) && self.0.waiting.swap(false, Ordering::SeqCst) {
            self.0.waker.wake();
        }
    }
}

impl Feeder {
    /// Pushes `event`, waiting for room; `true` if the consumer went away
    /// first (the event is lost with the stream).
    #[cold]
    fn push_waiting(&self, event: Arc<Event>) -> bool {
        let mut event = Some(event);
        wait_for_room(|| {
            let pending = event.take()?;
            match self.0.buffer.push(pending) {
                Ok(()) => Some(false),
                Err(_) if self.0.consumer_gone.load(Ordering::Acquire) => Some(true),
                Err(back) => {
                    event = Some(back);
                    None
                }
            }
        })
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        // Release pairs with the Acquire in `try_recv`: a consumer that sees
        // the stream closed also sees every event pushed before.
        self.0.closed.store(true, Ordering::Release);
        self.0.waker.wake();
    }
}

/// A bounded stream of events; from [`EventBus::stream`](crate::EventBus::stream)
/// or [`SubscriptionBuilder::stream`](crate::SubscriptionBuilder::stream).
///
/// As a [`futures_core::Stream`] it yields `Ok(event)`, or `Err(Lagged(n))` when
/// `n` events were dropped because the consumer fell behind.
pub struct EventStream {
    shared: Arc<Shared>,
    guard: SubscriptionGuard,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("id", &self.guard.id())
            .field("buffered", &self.shared.buffer.len())
            .field("capacity", &self.shared.buffer.capacity())
            .finish()
    }
}

impl EventStream {
    pub(crate) fn subscribe(
        capacity: usize,
        overflow: Overflow,
        register: impl FnOnce(Handler) -> SubscriptionGuard,
    ) -> Self {
        let shared = Arc::new(Shared {
            buffer: ArrayQueue::new(capacity.max(1)),
            overflow,
            missed: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            consumer_gone: AtomicBool::new(false),
            waiting: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        let feeder = Feeder(Arc::clone(&shared));
        let guard = register(Handler::Shared(Box::new(move |event| feeder.feed(event))));
        Self { shared, guard }
    }

    /// The subscription feeding this stream.
    pub fn id(&self) -> SubscriptionId {
        self.guard.id()
    }

    /// How many events the buffer holds at most.
    pub fn capacity(&self) -> usize {
        self.shared.buffer.capacity()
    }

    /// What a publisher does when the buffer is full.
    pub fn overflow(&self) -> Overflow {
        self.shared.overflow
    }

    /// The next buffered event, without waiting.
    pub fn try_recv(&mut self) -> Result<Arc<Event>, TryRecvError> {
        let missed = self.shared.missed.swap(0, Ordering::Relaxed);
        if missed > 0 {
            return Err(TryRecvError::Lagged(missed));
        }
        if let Some(event) = self.shared.buffer.pop() {
            return Ok(event);
        }
        // Acquire pairs with the Release in `Feeder::drop`; pop again so an
        // event pushed just before closing is not lost.
        if self.shared.closed.load(Ordering::Acquire) {
            return self.shared.buffer.pop().ok_or(TryRecvError::Closed);
        }
        Err(TryRecvError::Empty)
    }

    /// Waits for the next event; `None` once the stream is closed and drained.
    pub async fn recv(&mut self) -> Option<Result<Arc<Event>, Lagged>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        // Release pairs with the Acquire of a publisher waiting for room.
        self.shared.consumer_gone.store(true, Ordering::Release);
    }
}

impl Stream for EventStream {
    type Item = Result<Arc<Event>, Lagged>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let attempt = |stream: &mut Self| match stream.try_recv() {
            Ok(event) => Poll::Ready(Some(Ok(event))),
            Err(TryRecvError::Lagged(missed)) => Poll::Ready(Some(Err(Lagged(missed)))),
            Err(TryRecvError::Closed) => Poll::Ready(None),
            Err(TryRecvError::Empty) => Poll::Pending,
        };
        if let Poll::Ready(item) = attempt(&mut self) {
            return Poll::Ready(item);
        }
        // Register and say so, then look again: an event pushed between the
        // first look and the registration would otherwise wake nobody. SeqCst
        // pairs with the publishers' load in `Feeder::feed`.
        self.shared.waker.register(cx.waker());
        self.shared.waiting.store(true, Ordering::SeqCst);
        dekker_fence();
        attempt(&mut self)
    }
}
