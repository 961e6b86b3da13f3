//! [`Managed`]: the delivery options of a subscription with a retry policy,
//! a timeout, a concurrency limit or key ordering, and the handler wrapper
//! that applies them. Mostly the publish sees an ordinary async handler:
//! the wrapper's future waits for the key's lane and the permits (its own,
//! and the bus's handler limit if one is set when the attempt starts), runs
//! one attempt (with the timeout), and on failure either hands a retry task
//! to the background worker (`worker.rs`) and settles as
//! [`Settled::Retrying`], or dead-letters the event. A plain async
//! subscription on a bus with a handler limit is not wrapped: [`limited`]
//! makes its call wait for a bus permit.
//!
//! **A handler with nothing of its own to wait for** (no `ordered_by`, no
//! `max_concurrency`: only a retry policy, the dead-letter choice, and for
//! a sync handler a timeout, which it ignores) gets no wrapper: the fan-out
//! calls it like a plain one (a sync call inline; an async handler's future
//! made, polled and, if pending, awaited by the publish, under [`limited`]
//! while the bus has a handler limit), so a first-time success costs what a
//! plain call costs, and only its failure (an `Err`, a panic, a future
//! ending in `Err` or panicking, at its first poll or a later one) comes
//! here ([`Managed::inline_failed`], through `Subscriber::failed_call`),
//! where it is retried as above and counted as [`Verdict::Retrying`] in the
//! publish's outcome (which an async publish resolves to only after the
//! future ended, so the count is always known in time). Its retry task
//! holds the subscriber, which keeps the handler. An async handler with a
//! timeout and nothing else to wait for keeps its wrapper, which makes and
//! polls the handler's future at once (`poll_at_once`): one ready there
//! settles without the wrapper's future (and without a timer for its
//! timeout).
//!
//! **No deadlock when handlers publish.** While a managed handler runs (a
//! sync call or a poll of its future; not a first attempt made like a plain
//! call, as above or by `poll_at_once`, which holds no lane or permit), a
//! thread-local depth is raised; a
//! managed delivery that starts under it (a publish made from inside the
//! handler, awaited or blocking) takes no permit and no key lane: it runs
//! under its parent's. So a chain of publishes from handlers never waits
//! for a slot held by a delivery up its own chain. What can still hang is
//! a handler that waits, while holding its permit, for a publish made
//! elsewhere (a spawned task) that needs the same permits.

use std::cell::Cell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc as StdArc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use crate::cause::Handling;
use crate::delivery::lanes::Lanes;
use crate::delivery::permits::{Permits, Ticket};
use crate::delivery::retry::Retry;
use crate::delivery::timer::Sleep;
use crate::delivery::{worker, DeliveryState};
use crate::event::Event;
use crate::handler::{
    drop_payload, panic_message, quietly, AsyncHandler, BoxFuture, Failure, Handler, Reporter,
    Settled, Subscriber, SyncHandler, Verdict,
};
use crate::inner::Inner;
use crate::sync::Arc;

/// What `ordered_by` keys by: a key, hashed.
pub(crate) type KeyFn = Box<dyn Fn(&Event) -> u64 + Send + Sync>;

/// A subscription's delivery options, from its builder.
pub(crate) struct Options {
    pub(crate) retry: Option<Retry>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_concurrency: Option<usize>,
    pub(crate) ordered_by: Option<KeyFn>,
    /// Whether failures that are given up on become dead letters.
    pub(crate) dead_letters: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            retry: None,
            timeout: None,
            max_concurrency: None,
            ordered_by: None,
            dead_letters: true,
        }
    }
}

impl Options {
    /// None of the options that need the wrapper.
    fn is_plain(&self) -> bool {
        self.retry.is_none()
            && self.timeout.is_none()
            && self.max_concurrency.is_none()
            && self.ordered_by.is_none()
    }
}

#[cfg(not(agentbus_loom))]
std::thread_local! {
    /// How many managed handler calls or polls this thread is inside.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

#[cfg(agentbus_loom)]
loom::thread_local! {
    static DEPTH: Cell<u32> = Cell::new(0);
}

/// While alive, this thread runs a managed handler.
struct InHandler;

impl InHandler {
    fn enter() -> Self {
        DEPTH.with(|depth| depth.set(depth.get() + 1));
        Self
    }
}

impl Drop for InHandler {
    fn drop(&mut self) {
        DEPTH.with(|depth| depth.set(depth.get() - 1));
    }
}

/// Whether this thread is inside a managed handler.
fn nested() -> bool {
    DEPTH.with(|depth| depth.get() > 0)
}

/// The options and, for a wrapper, the handler; see the module docs.
pub(crate) struct Managed {
    /// The user's handler if the wrapper calls it; `None` for a handler
    /// the fan-out calls like a plain one (its subscriber keeps it).
    handler: Option<Handler>,
    retry: Retry,
    timeout: Option<Duration>,
    own_permits: Option<Arc<Permits>>,
    lanes: Option<(KeyFn, Arc<Lanes>)>,
    /// An async handler: its attempts take a permit of the bus's handler
    /// limit while one is set.
    bus_limited: bool,
    dead_letters: bool,
    delivery: StdArc<DeliveryState>,
    /// For counting retried deliveries in the bus's stats.
    bus: Weak<Inner>,
    reporter: Reporter,
}

/// Wraps `handler` if `options` need it; returns the handler the publish
/// calls and the wrapper, if any. (The bus's handler limit needs no
/// wrapper: it can be set later, so it is checked when a call starts.)
pub(crate) fn manage(
    handler: Handler,
    options: Options,
    bus: &StdArc<Inner>,
    reporter: &Reporter,
) -> (Handler, Option<StdArc<Managed>>) {
    // Internal handlers (streams) are never wrapped.
    if options.is_plain() || matches!(handler, Handler::Shared(_)) {
        return (handler, None);
    }
    let bus_limited = matches!(handler, Handler::Async(_));
    // A handler with no lane or permit of its own to wait for (and, if
    // async, no timeout, which needs a timer on its first attempt): see the
    // module docs.
    let inline = options.max_concurrency.is_none()
        && options.ordered_by.is_none()
        && match handler {
            Handler::Sync(_) => true,
            Handler::Async(_) => options.timeout.is_none(),
            Handler::Shared(_) => false,
        };
    let (handler, wrapped) = if inline {
        (Some(handler), None)
    } else {
        (None, Some(handler))
    };
    let managed = StdArc::new(Managed {
        handler: wrapped,
        retry: options.retry.unwrap_or(Retry::attempts(1)),
        timeout: options.timeout,
        own_permits: options.max_concurrency.map(Permits::new),
        lanes: options.ordered_by.map(|key| (key, Lanes::new())),
        bus_limited,
        dead_letters: options.dead_letters,
        delivery: StdArc::clone(&bus.delivery),
        bus: StdArc::downgrade(bus),
        reporter: reporter.clone(),
    });
    let handler = handler.unwrap_or_else(|| {
        let wrapper = StdArc::clone(&managed);
        Handler::Async(Box::new(move |event| wrapper.start(event)))
    });
    (handler, Some(managed))
}

/// Whom a retry calls, kept alive by its task.
enum Callee {
    /// The wrapper, which keeps the handler.
    Wrapper(StdArc<Managed>),
    /// A handler the fan-out calls like a plain one: its subscriber keeps
    /// it.
    Inline(StdArc<Managed>, Arc<Subscriber>),
}

impl Callee {
    fn managed(&self) -> &Managed {
        match self {
            Callee::Wrapper(managed) | Callee::Inline(managed, _) => managed,
        }
    }

    fn handler(&self) -> &Handler {
        match self {
            Callee::Wrapper(managed) => managed.wrapped(),
            Callee::Inline(_, subscriber) => &subscriber.handler,
        }
    }
}

impl Managed {
    /// The handler the wrapper calls. Only wrappers call this: an inline
    /// handler's `Managed` is reached through its subscriber.
    fn wrapped(&self) -> &Handler {
        const NOT_A_WRAPPER: &str = "only a wrapper's Managed is asked for its handler";
        self.handler.as_ref().expect(NOT_A_WRAPPER)
    }

    /// Whether the fan-out calls this subscription's handler itself (see
    /// the module docs) and sends only its failures here.
    pub(crate) fn is_inline(&self) -> bool {
        self.handler.is_none()
    }

    /// A handler called by the fan-out like a plain one (see the module
    /// docs) failed its first attempt: retries it or gives up, and reports
    /// it.
    pub(crate) fn inline_failed(
        self: &StdArc<Self>,
        subscriber: &Arc<Subscriber>,
        event: &StdArc<Event>,
        error: String,
    ) -> Verdict {
        let callee = Callee::Inline(StdArc::clone(self), Arc::clone(subscriber));
        match self.failed(callee, StdArc::clone(event), None, error) {
            Settled::Retrying => Verdict::Retrying,
            Settled::Failed(error) => {
                self.reporter.report(event, &error);
                Verdict::Failed
            }
            Settled::Delivered => Verdict::Delivered,
        }
    }

    /// Called by the publish, on its thread, during the fan-out: joins the
    /// key's lane now, so lanes serve in publish order.
    fn start(self: &StdArc<Self>, event: StdArc<Event>) -> BoxFuture {
        let nested = nested();
        let lane = match &self.lanes {
            Some((key, lanes)) if !nested => match catch_unwind(AssertUnwindSafe(|| key(&event))) {
                Ok(key) => Some(Ticket::join(lanes, key)),
                Err(payload) => {
                    let error = format!("ordered_by key panicked: {}", panic_message(&payload));
                    drop_payload(payload);
                    self.give_up(StdArc::clone(&event), &error, 1, SystemTime::now());
                    return Box::pin(std::future::ready(Settled::Failed(error)));
                }
            },
            _ => None,
        };
        // Nothing to wait for: call the handler now, as the plain path
        // would, and box only a zero-sized future on success (no
        // allocation), so a first-time success costs the call and the
        // catch, not the wrapper's future.
        let free = lane.is_none()
            && (nested
                || (self.own_permits.is_none()
                    && !(self.bus_limited && self.delivery.handler_limit.is_set())));
        let mut started = None;
        match &self.handler {
            Some(Handler::Sync(handler)) if free => {
                let result = call_sync(handler, &event);
                return self.settled_now(event, result);
            }
            Some(Handler::Async(handler)) if free => match poll_at_once(handler, &event) {
                Ok(result) => return self.settled_now(event, result),
                Err(pending) => started = Some(pending),
            },
            _ => {}
        }
        let this = StdArc::clone(self);
        Box::pin(async move { this.first(event, lane, nested, started).await })
    }

    /// The future of a first attempt that already ended with `result`.
    fn settled_now(
        self: &StdArc<Self>,
        event: StdArc<Event>,
        result: Result<(), String>,
    ) -> BoxFuture {
        match result {
            Ok(()) => Box::pin(Delivered),
            Err(error) => {
                let callee = Callee::Wrapper(StdArc::clone(self));
                Box::pin(std::future::ready(self.failed(callee, event, None, error)))
            }
        }
    }

    /// The first attempt, after waiting for the lane; `started` is the
    /// handler's future if [`poll_at_once`] already made it.
    async fn first(
        self: StdArc<Self>,
        event: StdArc<Event>,
        mut lane: Option<Ticket<Lanes>>,
        nested: bool,
        started: Option<BoxFuture>,
    ) -> Settled {
        if let Some(lane) = &mut lane {
            lane.held().await;
        }
        let result = match started {
            Some(future) => finish(future, &event, self.timeout, &self.delivery).await,
            None => self.attempt(self.wrapped(), &event, nested).await,
        };
        match result {
            Ok(()) => Settled::Delivered,
            Err(error) => {
                let callee = Callee::Wrapper(StdArc::clone(&self));
                self.failed(callee, event, lane, error)
            }
        }
    }

    /// After a failed first attempt: hands a retry task for `callee` (this
    /// `Managed`) to the worker (the lane goes with it) or gives up.
    fn failed(
        &self,
        callee: Callee,
        event: StdArc<Event>,
        lane: Option<Ticket<Lanes>>,
        error: String,
    ) -> Settled {
        let failed_at = SystemTime::now();
        if self.retry.max_attempts() < 2 {
            self.give_up(event, &error, 1, failed_at);
            return Settled::Failed(error);
        }
        self.reporter.report(&event, &error);
        let pending = self.delivery.retry_pending();
        let retried = StdArc::clone(&event);
        let task = Box::pin(async move {
            // The lane stays held until the last attempt: later events of
            // the key wait, other keys do not.
            let _lane = lane;
            let _pending = pending;
            let managed = callee.managed();
            managed
                .retry(callee.handler(), retried, error, failed_at)
                .await;
        });
        match worker::spawn(task) {
            Ok(()) => Settled::Retrying,
            Err(task) => {
                quietly(|| drop(task));
                let error = "no retry thread".to_owned();
                self.give_up(event, &error, 1, failed_at);
                Settled::Failed(error)
            }
        }
    }

    /// Attempts 2 and later of `handler`, in the background.
    async fn retry(
        &self,
        handler: &Handler,
        event: StdArc<Event>,
        mut error: String,
        first_failed_at: SystemTime,
    ) {
        let attempts = self.retry.max_attempts();
        for attempt in 2..=attempts {
            Sleep::new(self.retry.delay_before(attempt)).await;
            self.delivery.count_retry();
            match self.attempt(handler, &event, false).await {
                Ok(()) => {
                    self.count(&event, 1, 0);
                    return;
                }
                Err(failure) => {
                    if attempt < attempts {
                        self.reporter.report(&event, &failure);
                    }
                    error = failure;
                }
            }
        }
        self.count(&event, 0, 1);
        self.reporter.report(&event, &error);
        self.give_up(event, &error, attempts, first_failed_at);
    }

    fn count(&self, event: &Event, delivered: u64, failed: u64) {
        if let Some(bus) = self.bus.upgrade() {
            bus.counters
                .record_async(event.event_type, delivered, failed);
        }
    }

    /// One attempt of `handler`, under the permits unless `nested`.
    async fn attempt(
        &self,
        handler: &Handler,
        event: &StdArc<Event>,
        nested: bool,
    ) -> Result<(), String> {
        let mut own = None;
        let mut bus = None;
        if !nested {
            if let Some(permits) = &self.own_permits {
                own = Some(Permits::acquire(permits).await);
            }
            if self.bus_limited {
                bus = self.delivery.handler_limit.acquire().await;
            }
        }
        let result = call(handler, event, self.timeout, &self.delivery).await;
        drop((bus, own));
        result
    }

    fn give_up(&self, event: StdArc<Event>, error: &str, attempts: u32, first: SystemTime) {
        if self.dead_letters {
            self.delivery
                .dead_letter(&self.reporter, event, error, attempts, Some(first));
        }
    }
}

/// What a handler's attempt says when it ran past its timeout.
pub(crate) const TIMED_OUT: &str = "timed out";

/// Calls `handler` once for `event`, catching panics, with `timeout` for
/// an async handler's future.
async fn call(
    handler: &Handler,
    event: &StdArc<Event>,
    timeout: Option<Duration>,
    delivery: &DeliveryState,
) -> Result<(), String> {
    let future = {
        let _in_handler = InHandler::enter();
        let _cause = Handling::enter(event);
        match handler {
            Handler::Sync(handler) => return call_sync(handler, event),
            Handler::Shared(handler) => {
                return catch_unwind(AssertUnwindSafe(|| handler(event))).map_err(panicked);
            }
            Handler::Async(handler) => {
                catch_unwind(AssertUnwindSafe(|| handler(StdArc::clone(event))))
                    .map_err(panicked)?
            }
        }
    };
    finish(future, event, timeout, delivery).await
}

/// Polls an async handler's `future` to its end or `timeout`.
async fn finish(
    future: BoxFuture,
    event: &StdArc<Event>,
    timeout: Option<Duration>,
    delivery: &DeliveryState,
) -> Result<(), String> {
    let result = Attempt {
        future: Some(future),
        event,
        sleep: timeout.map(Sleep::new),
    }
    .await;
    if matches!(&result, Err(error) if error == TIMED_OUT) {
        delivery.count_timeout();
    }
    result
}

/// Makes `handler`'s future for `event` and polls it once, as a managed
/// handler, with a waker that does nothing: `Ok` with its result if it
/// ended there (most do), `Err` with the future if it is pending. The
/// caller's future then polls it again with its real waker before waiting,
/// so a pending handler is polled twice at first, and one ready at once
/// costs neither the wrapper's future nor a timer. Called during the
/// fan-out, which already set the cause; the depth is not raised, as for
/// an inline sync call (module docs): this delivery holds no lane or
/// permit.
fn poll_at_once(
    handler: &AsyncHandler,
    event: &StdArc<Event>,
) -> Result<Result<(), String>, BoxFuture> {
    let mut future = match catch_unwind(AssertUnwindSafe(|| handler(StdArc::clone(event)))) {
        Ok(future) => future,
        Err(payload) => return Ok(Err(panicked(payload))),
    };
    let mut cx = Context::from_waker(Waker::noop());
    let result = match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))) {
        Ok(Poll::Pending) => return Err(future),
        Ok(Poll::Ready(Settled::Failed(error))) => Err(error),
        Ok(Poll::Ready(Settled::Delivered | Settled::Retrying)) => Ok(()),
        Err(payload) => Err(panicked(payload)),
    };
    quietly(|| drop(future));
    Ok(result)
}

/// A caught panic's error text.
fn panicked(payload: Box<dyn std::any::Any + Send>) -> String {
    let error = format!("panicked: {}", panic_message(&payload));
    drop_payload(payload);
    error
}

/// Calls a sync handler once as a managed handler (panics caught, the
/// cause set).
fn call_sync(handler: &SyncHandler, event: &StdArc<Event>) -> Result<(), String> {
    let _in_handler = InHandler::enter();
    let _cause = Handling::enter(event);
    match catch_unwind(AssertUnwindSafe(|| handler(event))) {
        Ok(result) => result.map_err(Failure::into_message),
        Err(payload) => Err(panicked(payload)),
    }
}

/// The future of a delivery that already succeeded: zero-sized, so boxing
/// it allocates nothing.
struct Delivered;

impl Future for Delivered {
    type Output = Settled;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Settled> {
        Poll::Ready(Settled::Delivered)
    }
}

/// An async handler's future, polled as a managed handler (panics caught,
/// the cause set) until it ends or its deadline passes.
struct Attempt<'a> {
    future: Option<BoxFuture>,
    event: &'a StdArc<Event>,
    sleep: Option<Sleep>,
}

impl Future for Attempt<'_> {
    type Output = Result<(), String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(future) = &mut this.future else {
            return Poll::Ready(Err(TIMED_OUT.to_owned()));
        };
        let polled = {
            let _in_handler = InHandler::enter();
            let _cause = Handling::enter(this.event);
            catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx)))
        };
        let result = match polled {
            Ok(Poll::Pending) => {
                let expired = this
                    .sleep
                    .as_mut()
                    .is_some_and(|sleep| Pin::new(sleep).poll(cx).is_ready());
                if !expired {
                    return Poll::Pending;
                }
                Err(TIMED_OUT.to_owned())
            }
            Ok(Poll::Ready(Settled::Failed(error))) => Err(error),
            Ok(Poll::Ready(Settled::Delivered | Settled::Retrying)) => Ok(()),
            Err(payload) => Err(panicked(payload)),
        };
        let done = this.future.take();
        quietly(|| drop(done));
        Poll::Ready(result)
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let future = self.future.take();
        quietly(|| drop(future));
    }
}

/// Wraps the future of a plain async subscription's call, made while the
/// bus has a handler limit (the fan-out checks
/// [`is_set`](super::handler_limit::HandlerLimit::is_set)): the wrapper
/// waits for a bus permit before the first poll (none if the publish runs
/// inside a handler, as for [`Managed`]) and polls as a managed handler, so
/// a publish the handler makes runs under its permit. Failures and panics
/// settle as on the plain path; the subscriber's reporter keeps the dead
/// letter.
///
/// Takes the future, not the subscriber: the wrapper owns nothing of the
/// subscription, so the fan-out that calls this lets no subscriber
/// reference escape (which made the compiler spill in the fan-out loop of
/// every publish, sync ones too: +14 instructions on `fanout1`).
pub(crate) fn limited(
    future: BoxFuture,
    event: &StdArc<Event>,
    delivery: &StdArc<DeliveryState>,
) -> BoxFuture {
    let nested = nested();
    let event = StdArc::clone(event);
    let delivery = StdArc::clone(delivery);
    Box::pin(async move {
        let permit = if nested {
            None
        } else {
            delivery.handler_limit.acquire().await
        };
        let result = finish(future, &event, None, &delivery).await;
        drop(permit);
        match result {
            Ok(()) => Settled::Delivered,
            Err(error) => Settled::Failed(error),
        }
    })
}

/// One call of a subscription without a [`Managed`] wrapper: an async
/// handler's under a permit of the bus's handler limit, if one is set and
/// not `nested`.
async fn plain_attempt(
    subscriber: &Subscriber,
    event: &StdArc<Event>,
    nested: bool,
    delivery: &DeliveryState,
) -> Result<(), String> {
    let permit = match subscriber.handler {
        Handler::Async(_) if !nested => delivery.handler_limit.acquire().await,
        _ => None,
    };
    let result = call(&subscriber.handler, event, None, delivery).await;
    drop(permit);
    result
}

/// Delivers `event` to `subscriber` once, for a redrive: no retries, but
/// its timeout and permits.
pub(crate) async fn deliver_once(
    subscriber: &Subscriber,
    event: StdArc<Event>,
    delivery: &DeliveryState,
) -> Result<(), String> {
    match &subscriber.managed {
        Some(managed) => {
            let handler = managed.handler.as_ref().unwrap_or(&subscriber.handler);
            managed.attempt(handler, &event, nested()).await
        }
        None => plain_attempt(subscriber, &event, nested(), delivery).await,
    }
}
