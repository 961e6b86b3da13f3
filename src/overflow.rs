//! [`Overflow`]: what a bounded buffer does when it is full, and
//! [`wait_for_room`], the one wait loop of its [`Wait`](Overflow::Wait)
//! policy.

use std::time::Duration;

use crossbeam_utils::Backoff;

/// What a publisher does when a bounded buffer between it and a slower
/// consumer is full: a bounded [`EventStream`](crate::EventStream)
/// ([`SubscriptionBuilder::stream_with`](crate::SubscriptionBuilder::stream_with)),
/// a store recorder's queue, a bridge's outgoing buffer.
///
/// - [`Wait`](Self::Wait): the publisher waits on its own thread until the
///   consumer makes room ([`wait_for_room`]): nothing is lost, publishers
///   slow down to the consumer's pace. The wait holds the publishing thread,
///   so the consumer must run elsewhere.
/// - [`DropNewest`](Self::DropNewest): the event being published is not
///   buffered; the buffer keeps what it holds. Publishers never wait.
/// - [`DropOldest`](Self::DropOldest): the oldest buffered event is dropped
///   to make room for the new one. Publishers never wait; the consumer sees
///   the most recent events.
///
/// Every drop is counted where the buffer reports its losses (a stream's
/// [`Lagged`](crate::Lagged), a recorder's or bridge's stats). A component
/// that cannot honour a policy says so in its docs and refuses it when it is
/// configured, never silently picking another.
///
/// ```
/// use agentbus::{Event, EventBus, EventType, Overflow, TryRecvError};
///
/// let bus = EventBus::new();
/// let mut newest_dropped = bus
///     .subscription(EventType::TaskCreated)
///     .stream_with(2, Overflow::DropNewest);
/// for circle in 1..=3 {
///     bus.publish_blocking(Event::new(EventType::TaskCreated).with_circle(circle));
/// }
/// assert_eq!(newest_dropped.try_recv(), Err(TryRecvError::Lagged(1)));
/// assert_eq!(newest_dropped.try_recv().unwrap().circle_id, Some(1));
/// assert_eq!(newest_dropped.try_recv().unwrap().circle_id, Some(2));
/// assert_eq!(Overflow::default(), Overflow::Wait);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Overflow {
    /// The publisher waits until there is room; nothing is lost.
    #[default]
    Wait,
    /// The new event is dropped and counted.
    DropNewest,
    /// The oldest buffered event is dropped (and counted) to make room.
    DropOldest,
}

/// The longest pause between two looks once spinning and yielding are done.
const PAUSE: Duration = Duration::from_micros(50);

/// Calls `attempt` until it returns `Some`, and returns that: the wait of
/// [`Overflow::Wait`] on the publishing thread.
///
/// Between attempts it backs off from spinning to yielding the thread
/// (crossbeam's [`Backoff`]), then sleeps 50 µs at a time, so a short stall
/// costs microseconds and a long one (a store that is down) costs no CPU.
/// `attempt` decides when to give up, by returning `Some` of a failure.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// let room = AtomicUsize::new(0);
/// let taken = agentbus::wait_for_room(|| {
///     // Someone else makes room eventually; here, the third look finds it.
///     (room.fetch_add(1, Ordering::Relaxed) == 2).then_some("slot")
/// });
/// assert_eq!(taken, "slot");
/// ```
pub fn wait_for_room<T>(mut attempt: impl FnMut() -> Option<T>) -> T {
    let backoff = Backoff::new();
    loop {
        if let Some(done) = attempt() {
            return done;
        }
        if backoff.is_completed() {
            std::thread::sleep(PAUSE);
        } else {
            backoff.snooze();
        }
    }
}
