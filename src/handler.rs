//! Handlers and filters as the bus stores them, and how their failures are
//! caught and reported.
//!
//! A handler fails when it returns `Err` or panics (with any payload, even one
//! whose own `Drop` panics); a filter fails when it panics. Every failure is
//! counted, logged with `tracing` at `WARN` (handler name, event id, error)
//! and isolated: the other handlers still run and the bus stays usable.

use std::any::Any;
use std::borrow::Cow;
use std::fmt::Display;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc as StdArc;

use crate::delivery::{DeliveryState, Managed};
use crate::event::Event;
use crate::id::SubscriptionId;
use crate::scope::Scope;
use crate::sync::{Arc, AtomicU8, Ordering};

/// What a handler may return: `()` or `Result<(), E>` with `E: Display`.
///
/// `Err` counts as a failed delivery and is logged with the error's
/// `Display` text; it never reaches the publisher as an error.
///
/// The trait is sealed: those two are the only implementations, so the bus
/// can change how it reads a handler's result without breaking anyone. A
/// handler with another result type maps it, for example with
/// `.map_err(|err| format!("{err:#}"))` to log an error's whole chain.
///
/// ```compile_fail,E0277
/// use agentbus::HandlerResult;
///
/// struct Verdict;
/// impl HandlerResult for Verdict {
///     fn into_outcome(self) -> Result<(), String> {
///         Ok(())
///     }
/// }
/// ```
pub trait HandlerResult: sealed::Sealed {
    /// `Ok(())` for success, otherwise the error's message.
    fn into_outcome(self) -> Result<(), String>;
}

mod sealed {
    /// Implemented only by the crate's [`HandlerResult`](super::HandlerResult)
    /// types; unreachable from outside, so nobody else can implement it.
    pub trait Sealed {}

    impl Sealed for () {}
    impl<E: std::fmt::Display> Sealed for Result<(), E> {}
}

impl HandlerResult for () {
    #[inline]
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Display> HandlerResult for Result<(), E> {
    #[inline]
    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|err| err.to_string())
    }
}

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = Settled> + Send + 'static>>;
pub(crate) type SyncHandler = Box<dyn Fn(&Event) -> Result<(), Failure> + Send + Sync>;
pub(crate) type AsyncHandler = Box<dyn Fn(StdArc<Event>) -> BoxFuture + Send + Sync>;
pub(crate) type SharedHandler = Box<dyn Fn(&StdArc<Event>) + Send + Sync>;
pub(crate) type Filter = Box<dyn Fn(&Event) -> bool + Send + Sync>;

/// How an async delivery ended, as its publish counts it.
pub(crate) enum Settled {
    /// The handler succeeded.
    Delivered,
    /// The handler failed with this message (its `Err` display, a panic
    /// message, or "timed out").
    Failed(String),
    /// The first attempt failed and a retry runs in the background
    /// (`delivery::Managed`): neither delivered nor failed yet.
    Retrying,
}

/// How one handler call ended, as its publish counts it, once reported.
pub(crate) enum Verdict {
    Delivered,
    Failed,
    /// The first attempt failed and a retry runs in the background.
    Retrying,
}

/// A sync handler's error message, boxed so that `Result<(), Failure>` is
/// two words and comes back in registers (a `String` is three, returned
/// through memory): every sync call on every publish returns one, and only
/// failures pay for the box.
pub(crate) struct Failure(Box<str>);

impl Failure {
    #[cold]
    fn new(message: String) -> Self {
        Self(message.into_boxed_str())
    }

    /// The message, for a dead letter.
    pub(crate) fn into_message(self) -> String {
        self.0.into_string()
    }
}

pub(crate) enum Handler {
    /// A user's sync handler: runs inline on the publishing thread.
    Sync(SyncHandler),
    /// An internal sync handler that keeps the event (streams).
    Shared(SharedHandler),
    /// A user's async handler: makes a future the publish awaits.
    Async(AsyncHandler),
}

impl Handler {
    pub(crate) fn sync<F, R>(handler: F) -> Self
    where
        F: Fn(&Event) -> R + Send + Sync + 'static,
        R: HandlerResult,
    {
        Handler::Sync(Box::new(move |event| {
            handler(event).into_outcome().map_err(Failure::new)
        }))
    }

    pub(crate) fn from_async<F, Fut>(handler: F) -> Self
    where
        F: Fn(StdArc<Event>) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerResult,
    {
        Handler::Async(Box::new(move |event| {
            let future = handler(event);
            Box::pin(async move {
                match future.await.into_outcome() {
                    Ok(()) => Settled::Delivered,
                    Err(message) => Settled::Failed(message),
                }
            })
        }))
    }
}

/// A handler's name as logs show it. A literal stays a pointer and a
/// runtime name is shared, so copying one out for an async handler's failure
/// report costs at most a reference count, usually nothing.
#[derive(Clone)]
pub(crate) enum Name {
    Static(&'static str),
    Shared(StdArc<str>),
}

impl From<Cow<'static, str>> for Name {
    fn from(name: Cow<'static, str>) -> Self {
        match name {
            Cow::Borrowed(name) => Name::Static(name),
            Cow::Owned(name) => Name::Shared(name.into()),
        }
    }
}

/// Who a failure is reported as: the subscription's id and name, and where
/// its failed deliveries go (`None` for subscriptions whose failures are
/// not kept, or whose `delivery::Managed` keeps them itself).
#[derive(Clone)]
pub(crate) struct Reporter {
    pub(crate) id: SubscriptionId,
    name: Option<Name>,
    dead_letters: Option<StdArc<DeliveryState>>,
}

impl Reporter {
    pub(crate) fn new(id: SubscriptionId, name: Option<Cow<'static, str>>) -> Self {
        Self {
            id,
            name: name.map(Name::from),
            dead_letters: None,
        }
    }

    /// The subscription's name, if it was given one.
    pub(crate) fn name(&self) -> Option<&str> {
        match &self.name {
            Some(Name::Static(name)) => Some(name),
            Some(Name::Shared(name)) => Some(name),
            None => None,
        }
    }

    /// Logs a failed handler call and keeps it as a dead letter if this
    /// subscription keeps them.
    #[cold]
    pub(crate) fn fail(&self, event: &Event, error: &str) {
        self.report(event, error);
        if let Some(delivery) = &self.dead_letters {
            delivery.dead_letter(self, StdArc::new(event.clone()), error, 1, None);
        }
    }

    /// Reports a panic of user code as `"{what}panicked: {message}"` and
    /// drops its payload without letting the payload's own `Drop` unwind.
    ///
    /// Out of line and cold: keeps formatting off the callers' fast path.
    #[cold]
    #[inline(never)]
    pub(crate) fn report_panic(
        &self,
        event: &Event,
        what: &'static str,
        payload: Box<dyn Any + Send>,
    ) {
        let error = format!("{what}panicked: {}", panic_message(&payload));
        if what.is_empty() {
            // The handler itself, not its filter: a failed delivery.
            self.fail(event, &error);
        } else {
            self.report(event, &error);
        }
        drop_payload(payload);
    }

    /// Logs a failed delivery of `event` at `WARN`.
    pub(crate) fn report(&self, event: &Event, error: &str) {
        let id;
        let handler = match &self.name {
            Some(Name::Static(name)) => name,
            Some(Name::Shared(name)) => &**name,
            None => {
                id = self.id.to_string();
                id.as_str()
            }
        };
        tracing::warn!(
            handler,
            subscription = self.id.get(),
            event_id = %event.id,
            event_type = event.event_type.as_str(),
            error,
            "event handler failed"
        );
    }
}

/// One registration: what to call, for which events, under which name.
///
/// Aligned to 128 bytes so that, inside its `Arc`, the fields publishers read
/// on every publish start on a fresh pair of cache lines, away from the
/// reference counts that every table rebuild (subscription churn) writes.
///
/// `repr(C)` keeps the fields every publish reads (`state`, `filter`,
/// `handler`, the scope's `circle_id`) together at the front, on
/// one cache line; the reporter is read only on failures and table rebuilds.
#[repr(C, align(128))]
pub(crate) struct Subscriber {
    /// [`ACTIVE`](Self::ACTIVE), cleared by unsubscribe before the tables
    /// are swapped, so a dispatch that already loaded an old table skips a
    /// handler that was removed earlier on the same thread (e.g. by a
    /// handler before it); and [`SCOPED`](Self::SCOPED). One load and one
    /// compare tell an active, unscoped subscriber (the common case) from
    /// every other.
    state: AtomicU8,
    pub(crate) filter: Option<Filter>,
    pub(crate) handler: Handler,
    scope: Scope,
    pub(crate) reporter: Reporter,
    /// The subscription's retry, timeout, concurrency and ordering options,
    /// if it has any: the wrapper `handler` calls, or (a handler the
    /// fan-out calls like a plain one) what its failures go to. A redrive calls it once, without
    /// retries.
    pub(crate) managed: Option<StdArc<Managed>>,
    /// For an unwrapped async handler (plain, or managed but called like a
    /// plain one), the bus's delivery state: its
    /// calls take a permit while the bus has a handler limit, which may be
    /// set after this subscription was made (`delivery/handler_limit.rs`).
    pub(crate) limited_by: Option<StdArc<DeliveryState>>,
}

impl Subscriber {
    /// Set until unsubscribed.
    const ACTIVE: u8 = 1;
    /// Set if the subscription has field filters.
    const SCOPED: u8 = 2;

    /// A failure of `handler` goes to `delivery`'s dead letters if
    /// `keep_dead_letters` and it is not a `managed` wrapper (which keeps
    /// its own).
    pub(crate) fn new(
        reporter: Reporter,
        scope: Scope,
        filter: Option<Filter>,
        handler: Handler,
        managed: Option<StdArc<Managed>>,
        delivery: &StdArc<DeliveryState>,
        keep_dead_letters: bool,
    ) -> Self {
        let plain = managed.is_none();
        let reporter = Reporter {
            dead_letters: (keep_dead_letters && plain).then(|| StdArc::clone(delivery)),
            ..reporter
        };
        // A managed handler the fan-out calls like a plain one waits like one.
        let unwrapped = managed.as_ref().is_none_or(|managed| managed.is_inline());
        let limited_by =
            (unwrapped && matches!(handler, Handler::Async(_))).then(|| StdArc::clone(delivery));
        Self {
            scope,
            reporter,
            managed,
            limited_by,
            filter,
            handler,
            state: AtomicU8::new(if scope.is_any() {
                Self::ACTIVE
            } else {
                Self::ACTIVE | Self::SCOPED
            }),
        }
    }

    /// Clears [`ACTIVE`](Self::ACTIVE). Called by unsubscribe and reset,
    /// under the registry lock, before the tables are swapped.
    ///
    /// Relaxed here and in [`wants`](Self::wants): the flag publishes nothing
    /// else. A publish that skips on it reads no data the unsubscriber wrote,
    /// and the guarantees rest elsewhere: a publish that starts after
    /// unsubscribe returned misses the handler because it loads the new table
    /// (the hazard slot's re-check, or the `Release`/`Acquire` table version
    /// a `Publisher` checks); the rest of a dispatch on the unsubscribing thread sees the
    /// flag by program order; and a publish already running elsewhere may
    /// call the handler once either way. The loom models in `tests/loom.rs`
    /// (`table_swap_*`, `publish_vs_unsubscribe`) check the first with these
    /// orderings; `tests/publish.rs`
    /// (`handler_unsubscribing_a_later_handler_skips_it_in_the_same_dispatch`)
    /// the second.
    pub(crate) fn deactivate(&self) {
        self.state.fetch_and(!Self::ACTIVE, Ordering::Relaxed);
    }

    /// Whether `event` should go to this subscriber: still active, in its
    /// scope, and its filter (run here, on the publishing thread) passes.
    ///
    /// Does not catch a panicking filter: the fan-out catches panics once
    /// around its whole loop (see `dispatch.rs`) and reports them as the
    /// filter's when `in_filter` is set.
    #[inline(always)]
    pub(crate) fn wants(&self, event: &Event, in_filter: &mut bool) -> bool {
        // Relaxed: see `deactivate`.
        let state = self.state.load(Ordering::Relaxed);
        if state != Self::ACTIVE && (state & Self::ACTIVE == 0 || !self.scope.admits(event)) {
            return false;
        }
        let Some(filter) = &self.filter else {
            return true;
        };
        *in_filter = true;
        let wanted = filter(event);
        *in_filter = false;
        wanted
    }

    /// A failed first attempt of a handler the fan-out called (a sync
    /// call's `Err` or panic; an async handler's future that panicked while
    /// being made or polled, or ended in `Err`): retried in the background
    /// if the subscription's `Managed` has no wrapper (see
    /// `delivery/managed.rs`), otherwise reported and kept as a dead letter
    /// if this subscription keeps them. Out of line and cold: the fan-out's
    /// success path only tests the result.
    #[cold]
    #[inline(never)]
    pub(crate) fn failed_call(this: &Arc<Self>, event: &StdArc<Event>, error: String) -> Verdict {
        match &this.managed {
            Some(managed) if managed.is_inline() => managed.inline_failed(this, event, error),
            _ => {
                this.reporter.fail(event, &error);
                Verdict::Failed
            }
        }
    }

    /// A panic the fan-out caught in this subscriber's filter (reported,
    /// failed) or handler (a [`failed_call`](Self::failed_call)).
    #[cold]
    #[inline(never)]
    pub(crate) fn panicked(
        this: &Arc<Self>,
        event: &StdArc<Event>,
        in_filter: bool,
        payload: Box<dyn Any + Send>,
    ) -> Verdict {
        if in_filter {
            this.reporter.report_panic(event, "filter ", payload);
            return Verdict::Failed;
        }
        let error = format!("panicked: {}", panic_message(&payload));
        drop_payload(payload);
        Self::failed_call(this, event, error)
    }

    pub(crate) fn id(&self) -> SubscriptionId {
        self.reporter.id
    }
}

/// The message of a panic payload, whatever its type.
///
/// Takes the `Box` itself: given `&(dyn Any + Send)`, a `&Box<dyn Any + Send>`
/// silently coerces to a `dyn Any` *of the box*, and no downcast ever matches.
#[allow(clippy::borrowed_box)]
pub(crate) fn panic_message(payload: &Box<dyn Any + Send>) -> &str {
    let payload: &(dyn Any + Send) = &**payload;
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        message
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message
    } else {
        "non-string panic payload"
    }
}

/// Drops a panic payload without letting a panicking `Drop` escape.
pub(crate) fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(second) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        // A payload whose Drop panicked again: leaking it is the only way
        // out that cannot unwind into the publisher.
        std::mem::forget(second);
    }
}

/// Runs `f` and drops whatever it panics with; `true` if it did not panic.
pub(crate) fn quietly(f: impl FnOnce()) -> bool {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => true,
        Err(payload) => {
            drop_payload(payload);
            false
        }
    }
}
