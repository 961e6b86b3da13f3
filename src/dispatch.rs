//! One publish, from the call to its outcome: the causal stamp (see
//! `cause.rs`), the history record, the synchronous fan-out, and the future
//! that awaits async handlers. `EventBus` and `Publisher` only choose the
//! tables (a `Publisher` passes its [`TableCache`]).
//!
//! Sync handlers run inline, in subscription order, on the publishing thread.
//! Each async handler's future is created and polled once during the fan-out
//! (so it sees the same table snapshot, and one that finishes at once costs
//! no tracking); those still pending are then polled concurrently by the
//! returned [`Delivery`]. A panic while polling one is caught and counted as
//! a failure like an `Err`. Dropping the publish future before it completes
//! cancels (drops) the async handlers still running; they are counted neither
//! as delivered nor as failed.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Waker};

use crate::cause::{stamp, Handling};
use crate::delivery::limited;
use crate::event::Event;
use crate::executor::block_on;
use crate::handler::{
    quietly, AsyncHandler, BoxFuture, Handler, Reporter, Settled, Subscriber, Verdict,
};
use crate::inner::Inner;
use crate::stats::Counters;
use crate::sync::Arc;
use crate::table::{Table, TableCache};

/// What one publish reached.
///
/// ```
/// use agentbus::{Event, EventBus, EventType, PublishOutcome};
///
/// let bus = EventBus::new();
/// bus.subscribe(EventType::SystemError, |_e: &Event| {});
/// bus.subscribe(EventType::SystemError, |_e: &Event| -> Result<(), String> {
///     Err("disk full".into())
/// });
/// let outcome = bus.publish_blocking(Event::new(EventType::SystemError));
/// assert_eq!(outcome, PublishOutcome { delivered: 1, failed: 1, retrying: 0 });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PublishOutcome {
    /// Handlers that completed successfully.
    pub delivered: usize,
    /// Handlers that returned `Err` or panicked, plus filters that panicked.
    pub failed: usize,
    /// Deliveries whose first attempt failed and that are retried in the
    /// background ([`SubscriptionBuilder::retry`](crate::SubscriptionBuilder::retry));
    /// [`EventBus::settled`](crate::EventBus::settled) waits for them.
    pub retrying: usize,
}

/// [`PublishOutcome`]'s counts while a publish runs, in two words so that
/// the synchronous path returns them in registers (a `PublishOutcome` is
/// three words and is returned through memory: +4 to +7 instructions per
/// publish, benches/RESULTS.md, sections #20 and h-hot). `failed` and
/// `retrying` share the second word, 32 bits each: no publish reaches
/// `u32::MAX` handlers, as each is a 128-byte `Subscriber` (that many
/// would take 512 GiB).
#[derive(Clone, Copy, Default)]
pub(crate) struct Tally {
    delivered: usize,
    /// `failed` in the low half, `retrying` in the high half.
    failed_retrying: u64,
}

impl Tally {
    const ONE_FAILED: u64 = 1;
    const ONE_RETRYING: u64 = 1 << 32;

    #[inline(always)]
    fn count(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Delivered => self.delivered += 1,
            Verdict::Failed => self.failed_retrying += Self::ONE_FAILED,
            Verdict::Retrying => self.failed_retrying += Self::ONE_RETRYING,
        }
    }

    #[inline(always)]
    fn failed(self) -> u32 {
        self.failed_retrying as u32
    }

    #[inline(always)]
    fn retrying(self) -> u32 {
        (self.failed_retrying >> 32) as u32
    }

    #[inline(always)]
    fn add(&mut self, other: Tally) {
        self.delivered += other.delivered;
        self.failed_retrying += other.failed_retrying;
    }
}

impl From<Tally> for PublishOutcome {
    #[inline(always)]
    fn from(tally: Tally) -> Self {
        Self {
            delivered: tally.delivered,
            failed: tally.failed() as usize,
            retrying: tally.retrying() as usize,
        }
    }
}

/// [`EventBus::publish`](crate::EventBus::publish) on `bus`, through `cache`
/// (a [`Publisher`](crate::Publisher)'s tables) if given.
#[inline]
pub(crate) fn publish<'a>(
    bus: &'a Inner,
    event: StdArc<Event>,
    cache: Option<&'a mut TableCache>,
) -> Publish<'a> {
    Publish {
        bus,
        cache,
        state: PublishState::Start(stamp(event)),
    }
}

/// [`publish`] of an event the bus's guards already let in.
#[inline]
pub(crate) fn publish_admitted<'a>(
    bus: &'a Inner,
    event: StdArc<Event>,
    cache: Option<&'a mut TableCache>,
) -> Publish<'a> {
    Publish {
        bus,
        cache,
        state: PublishState::Admitted(event),
    }
}

/// [`EventBus::publish_blocking`](crate::EventBus::publish_blocking) on
/// `bus`, through `cache` if given.
#[inline(always)]
pub(crate) fn publish_blocking(
    bus: &Inner,
    event: StdArc<Event>,
    cache: Option<&mut TableCache>,
) -> PublishOutcome {
    stamp_and_tally_blocking(bus, event, cache).into()
}

/// [`publish_blocking`], counting in a [`Tally`] (see [`tally_blocking`]).
#[inline]
fn stamp_and_tally_blocking(
    bus: &Inner,
    event: StdArc<Event>,
    cache: Option<&mut TableCache>,
) -> Tally {
    match bus.guards.admit(stamp(event)) {
        Some(event) => tally_blocking(bus, event, cache),
        None => Tally::default(),
    }
}

/// [`publish_blocking`] of a stamped event the bus's guards already let in.
#[inline(always)]
pub(crate) fn publish_blocking_admitted(
    bus: &Inner,
    event: StdArc<Event>,
    cache: Option<&mut TableCache>,
) -> PublishOutcome {
    tally_blocking(bus, event, cache).into()
}

/// [`publish_blocking_admitted`], counting in a [`Tally`]: its caller makes
/// the [`PublishOutcome`], so this returns in registers.
#[inline]
fn tally_blocking(bus: &Inner, event: StdArc<Event>, cache: Option<&mut TableCache>) -> Tally {
    // Async handlers get their first poll during the fan-out with a no-op
    // waker; most finish there. Any still pending are polled again by
    // `block_on` with a waker that works, which they then keep.
    let mut first_poll = Context::from_waker(Waker::noop());
    let mut running = Vec::new();
    let tally = dispatch(bus, &event, cache, &mut first_poll, &mut running);
    if running.is_empty() {
        return tally;
    }
    block_on(Delivery {
        tally,
        running,
        event,
        counters: &bus.counters,
    })
}

/// Records `event` in history and runs the synchronous part of its publish;
/// async handlers still running after their first poll are left in
/// `running`.
///
/// Returns only the counts, not a [`Delivery`]: the caller builds one only
/// when something is left to await, so a sync publish returns in registers.
#[inline]
fn dispatch(
    bus: &Inner,
    event: &StdArc<Event>,
    cache: Option<&mut TableCache>,
    cx: &mut Context<'_>,
    running: &mut Vec<Running>,
) -> Tally {
    #[cfg(feature = "tracing")]
    let _publish = crate::spans::publish(event).entered();
    bus.history.push(event);
    if let Some(cache) = cache {
        // The cache's copy outlives this publish, so no handler's
        // unsubscribe can make this the last reference here.
        let table = cache.load(&bus.tables, event.event_type);
        return fan_out(table, event, &bus.counters, cx, running);
    }
    let table = bus.tables.load(event.event_type);
    let tally = fan_out(&table, event, &bus.counters, cx, running);
    // A handler may have unsubscribed a subscriber meanwhile, leaving this
    // snapshot its last owner: its captures' Drop is user code and may panic.
    quietly(|| drop(table));
    tally
}

/// The future [`EventBus::publish`](crate::EventBus::publish) returns: fans
/// out on its first poll, with that poll's context, so async handlers that
/// finish at once are done before `publish` ever returns `Pending`.
pub(crate) struct Publish<'bus> {
    bus: &'bus Inner,
    cache: Option<&'bus mut TableCache>,
    state: PublishState<'bus>,
}

enum PublishState<'bus> {
    /// Stamped; the guards have yet to see it.
    Start(StdArc<Event>),
    /// Stamped and let in by the guards.
    Admitted(StdArc<Event>),
    Delivering(Delivery<'bus>),
    Done,
}

impl Publish<'_> {
    /// The first poll of an admitted event: fans out with this poll's
    /// context.
    #[inline(always)]
    fn begin(&mut self, event: StdArc<Event>, cx: &mut Context<'_>) -> Poll<PublishOutcome> {
        let mut running = Vec::new();
        let cache = self.cache.as_deref_mut();
        let tally = dispatch(self.bus, &event, cache, cx, &mut running);
        if running.is_empty() {
            return Poll::Ready(tally.into());
        }
        // Every handler still running was polled just now.
        self.state = PublishState::Delivering(Delivery {
            tally,
            running,
            event,
            counters: &self.bus.counters,
        });
        Poll::Pending
    }
}

impl Future for Publish<'_> {
    type Output = PublishOutcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<PublishOutcome> {
        let this = self.get_mut();
        let mut delivery = match std::mem::replace(&mut this.state, PublishState::Done) {
            PublishState::Start(event) => {
                let Some(event) = this.bus.guards.admit(event) else {
                    return Poll::Ready(PublishOutcome::default());
                };
                return this.begin(event, cx);
            }
            PublishState::Admitted(event) => return this.begin(event, cx),
            PublishState::Delivering(delivery) => delivery,
            PublishState::Done => return Poll::Ready(PublishOutcome::default()),
        };
        let Poll::Ready(tally) = Pin::new(&mut delivery).poll(cx) else {
            this.state = PublishState::Delivering(delivery);
            return Poll::Pending;
        };
        Poll::Ready(tally.into())
    }
}

/// An async handler started by a publish and not finished yet.
///
/// Holds a copy of the subscriber's [`Reporter`], not the subscriber: no
/// reference count that every publisher of this handler would share; except
/// for a handler whose failure is retried (a managed one the fan-out calls
/// like a plain one, `delivery/managed.rs`), whose retry needs it.
struct Running {
    /// `Some` until dropped; the `Option` (free, thanks to the niche) lets
    /// `Drop` move the future out.
    future: Option<BoxFuture>,
    reporter: Reporter,
    /// The subscriber, if its failure is retried.
    retried: Option<Arc<Subscriber>>,
    /// The handler's process span, entered again for each later poll.
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl Running {
    /// A handler left pending by its first poll (in [`start_async`]).
    fn new(future: BoxFuture, subscriber: &Arc<Subscriber>) -> Self {
        let retried = subscriber
            .managed
            .as_ref()
            .is_some_and(|managed| managed.is_inline());
        Self {
            future: Some(future),
            reporter: subscriber.reporter.clone(),
            retried: retried.then(|| Arc::clone(subscriber)),
            // Made inside the fan-out's process span for this handler.
            #[cfg(feature = "tracing")]
            span: tracing::Span::current(),
        }
    }

    /// Polls the handler again; a failure (`Err` or a panic) is retried
    /// or reported here.
    fn poll_handler(&mut self, cx: &mut Context<'_>, event: &StdArc<Event>) -> Poll<Verdict> {
        let Some(future) = &mut self.future else {
            return Poll::Ready(Verdict::Failed); // set until drop
        };
        #[cfg(feature = "tracing")]
        let _process = self.span.enter();
        let polled = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx)));
        settle(polled, |failure| match &self.retried {
            Some(subscriber) => failed_attempt(subscriber, event, failure),
            None => self.failed(event, failure),
        })
    }

    /// A failure of a handler whose failures are not retried: reported and
    /// kept as a dead letter if its subscription keeps them.
    #[cold]
    #[inline(never)]
    fn failed(&self, event: &StdArc<Event>, failure: Failed) -> Verdict {
        match failure {
            Ok(message) => self.reporter.fail(event, &message),
            Err(payload) => self.reporter.report_panic(event, "", payload),
        }
        Verdict::Failed
    }
}

/// How an async handler failed: `Ok` with its `Err`'s message, or `Err`
/// with a panic's payload.
type Failed = Result<String, Box<dyn Any + Send>>;

/// A poll of a handler's future (`Err` if it panicked) as a verdict; a
/// failure goes to `failed`.
#[inline(always)]
fn settle(
    polled: std::thread::Result<Poll<Settled>>,
    failed: impl FnOnce(Failed) -> Verdict,
) -> Poll<Verdict> {
    match polled {
        Ok(Poll::Pending) => Poll::Pending,
        Ok(Poll::Ready(Settled::Delivered)) => Poll::Ready(Verdict::Delivered),
        Ok(Poll::Ready(Settled::Retrying)) => Poll::Ready(Verdict::Retrying),
        Ok(Poll::Ready(Settled::Failed(message))) => Poll::Ready(failed(Ok(message))),
        Err(payload) => Poll::Ready(failed(Err(payload))),
    }
}

/// A failed attempt of `subscriber`'s async handler, retried or reported
/// by `Subscriber::failed_call`.
#[cold]
#[inline(never)]
fn failed_attempt(subscriber: &Arc<Subscriber>, event: &StdArc<Event>, failure: Failed) -> Verdict {
    match failure {
        Ok(message) => Subscriber::failed_call(subscriber, event, message),
        Err(payload) => Subscriber::panicked(subscriber, event, false, payload),
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // The future is user code: its Drop may panic, and must not unwind
        // out of a publish.
        let future = self.future.take();
        quietly(|| drop(future));
    }
}

/// Runs the synchronous part of a publish over `table` and returns what is
/// left to await.
///
/// Filters and sync handlers are called without a `catch_unwind` each: one
/// `catch_unwind` surrounds the whole walk, and after a panic the walk
/// resumes at the next subscriber, so a panic is still isolated to the
/// filter or handler that raised it (reported, counted as failed) while the
/// common case pays for no per-call landing pad and lets the compiler inline
/// the calls into one loop. `tests/publish.rs`
/// (`every_kind_of_failure_is_isolated_and_counted`) checks that the
/// subscribers after a panicking filter or handler are still called, and
/// `tests/logging.rs` that the report names the filter or the handler.
#[inline]
fn fan_out(
    table: &Table,
    event: &StdArc<Event>,
    counters: &Counters,
    cx: &mut Context<'_>,
    running: &mut Vec<Running>,
) -> Tally {
    let mut tally = Tally::default();
    let handling = Handling::enter(event);
    let subscribers = table.subscribers();
    // How many subscribers were offered the event (the last of them is the
    // one being called), and whether its filter, not its handler, is
    // running: where a panic came from.
    let mut at = 0;
    let mut in_filter = false;
    while let Err(payload) = catch_unwind(AssertUnwindSafe(|| {
        walk(
            subscribers,
            &mut at,
            &mut in_filter,
            event,
            cx,
            running,
            &mut tally,
        )
    })) {
        tally.count(Subscriber::panicked(
            &subscribers[at - 1],
            event,
            in_filter,
            payload,
        ));
        in_filter = false;
    }
    drop(handling);
    counters.record(
        event.event_type,
        tally.delivered as u64,
        u64::from(tally.failed()),
    );
    tally
}

/// Offers `event` to `subscribers[*at..]`, counting each in `*at` before
/// calling it, so that [`fan_out`] knows whom a panic came from.
#[inline(always)]
fn walk(
    subscribers: &[Arc<Subscriber>],
    at: &mut usize,
    in_filter: &mut bool,
    event: &StdArc<Event>,
    cx: &mut Context<'_>,
    running: &mut Vec<Running>,
    tally: &mut Tally,
) {
    while let Some(subscriber) = subscribers.get(*at) {
        *at += 1;
        if !subscriber.wants(event, in_filter) {
            continue;
        }
        #[cfg(feature = "tracing")]
        let _process = crate::spans::process(event, &subscriber.reporter).entered();
        let verdict = match &subscriber.handler {
            Handler::Sync(handler) => match handler(event) {
                Ok(()) => Verdict::Delivered,
                Err(failure) => Subscriber::failed_call(subscriber, event, failure.into_message()),
            },
            Handler::Shared(handler) => {
                handler(event);
                Verdict::Delivered
            }
            Handler::Async(handler) => match start_async(subscriber, handler, event, cx, running) {
                Poll::Ready(verdict) => verdict,
                Poll::Pending => continue,
            },
        };
        tally.count(verdict);
    }
}

/// Starts an async handler and polls it once: most finish on their first
/// poll and then never need tracking. `Ready` if it finished (making its
/// future panicked: `Ready(Failed)`), `Pending` if it is now in `running`.
///
/// Out of line: keeping the async machinery out of the fan-out loop leaves
/// the registers to the sync path, which most subscribers take.
///
/// On a bus with a handler limit (`delivery/handler_limit.rs`) an
/// unwrapped async subscription's future (plain, or with only a retry
/// policy) is wrapped to wait for a permit before its
/// first poll: the limit may be set at any time, so it is checked here, per
/// call. On a bus without one that is a load and a branch that always goes
/// the same way.
#[inline(never)]
fn start_async(
    subscriber: &Arc<Subscriber>,
    handler: &AsyncHandler,
    event: &StdArc<Event>,
    cx: &mut Context<'_>,
    running: &mut Vec<Running>,
) -> Poll<Verdict> {
    let mut future = match catch_unwind(AssertUnwindSafe(|| handler(StdArc::clone(event)))) {
        Ok(future) => future,
        Err(payload) => {
            return Poll::Ready(Subscriber::panicked(subscriber, event, false, payload))
        }
    };
    if let Some(delivery) = &subscriber.limited_by {
        if delivery.handler_limit.is_set() {
            future = limited(future, event, delivery);
        }
    }
    let polled = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx)));
    if let Ok(Poll::Pending) = polled {
        running.push(Running::new(future, subscriber));
        return Poll::Pending;
    }
    let verdict = settle(polled, |failure| failed_attempt(subscriber, event, failure));
    // User code: its Drop may panic, and must not unwind out of a publish.
    quietly(|| drop(future));
    verdict
}

/// The async remainder of a publish: resolves to the full
/// [`PublishOutcome`] once every async handler has finished.
struct Delivery<'a> {
    tally: Tally,
    /// A `Vec`, not an inline array: most publishes leave nothing pending,
    /// and an empty `Vec` costs three words to make and one compare to drop,
    /// where the inline array made every sync publish copy and drop ~150
    /// bytes. A publish that leaves handlers pending already boxed each one's
    /// future; one more allocation for the list is small beside that.
    running: Vec<Running>,
    event: StdArc<Event>,
    counters: &'a Counters,
}

impl Future for Delivery<'_> {
    type Output = Tally;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Tally> {
        let this = &mut *self;
        let mut finished = Tally::default();
        let event = &this.event;
        let _handling = Handling::enter(event);
        let mut index = 0;
        while index < this.running.len() {
            let Poll::Ready(verdict) = this.running[index].poll_handler(cx, event) else {
                index += 1;
                continue;
            };
            // Order does not matter; `Running`'s Drop shields us from the
            // future's.
            drop(this.running.swap_remove(index));
            finished.count(verdict);
        }
        this.tally.add(finished);
        if finished.delivered > 0 || finished.failed() > 0 {
            this.counters.record_async(
                event.event_type,
                finished.delivered as u64,
                u64::from(finished.failed()),
            );
        }
        if this.running.is_empty() {
            Poll::Ready(this.tally)
        } else {
            Poll::Pending
        }
    }
}
