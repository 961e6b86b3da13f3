//! Guards: checks that decide, before anything else happens to an event,
//! whether it enters the bus at all ([`Guard`], [`Rejection`],
//! [`Rejected`]), and the bus's side of running them ([`Guards`]).
//!
//! The guards themselves (JSON Schema, a dedup window, rate limits) live in
//! the `agentbus-guard` crate; the core only runs them.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc as StdArc;
use std::time::{Duration, Instant};

use crate::bus::EventBus;
use crate::cause::stamp;
use crate::dispatch::PublishOutcome;
use crate::event::Event;
use crate::id::EventId;
use crate::publisher::Publisher;
use crate::stats::BusStats;
use crate::sync::{AtomicU64, Ordering};
use crate::table::TableCache;

/// A check every event must pass to enter a bus; added with
/// [`EventBusBuilder::guard`](crate::EventBusBuilder::guard).
///
/// # Behaviour
///
/// - A bus runs its guards on every publish, in the order they were added,
///   on the publishing thread, when the publish starts (the first poll of
///   [`publish`](crate::EventBus::publish)'s future, or the call of
///   [`publish_blocking`](crate::EventBus::publish_blocking)), after the
///   causal stamp and before anything else: the first [`Rejection`] wins and
///   later guards do not see the event.
/// - A rejected event is not stamped into history, not counted in
///   [`BusStats::events_published`], reaches no handler, and so no store
///   recorder, web client or NATS bridge (all of which are handlers). It is
///   counted in [`BusStats::events_rejected`] (and the field for its reason).
/// - When a guard rejects an event that earlier guards accepted, each of
///   those gets [`withdraw`](Self::withdraw), in reverse order, so a guard
///   that remembers what it accepted (a dedup window) can forget an event
///   that never entered: a retry is then not mistaken for a duplicate.
/// - A guard that panics is treated like any panicking user code in the bus:
///   the panic is caught, logged, and the event is rejected with
///   [`Rejection::Custom`] (a guard that cannot decide does not let the
///   event through).
/// - A bus without guards pays one predictable branch per publish.
///
/// Any `Fn(&Event) -> Result<(), Rejection>` is a guard, and so is an
/// `Arc` of one (keep a clone to read a guard's counters).
///
/// ```
/// use agentbus::{Event, EventBus, EventType, Rejection};
/// use serde_json::json;
///
/// # futures::executor::block_on(async {
/// let bus = EventBus::builder()
///     .guard(|event: &Event| {
///         if event.source_agent_id.is_none() {
///             return Err(Rejection::custom("agent-required", "no source agent"));
///         }
///         Ok(())
///     })
///     .build();
///
/// let anonymous = Event::new(EventType::TaskCompleted).with_data(json!({"task_id": 1}));
/// let rejected = bus.try_publish(anonymous).await.unwrap_err();
/// assert_eq!(rejected.to_string(),
///     format!("event {} (task.completed) rejected by agent-required: no source agent",
///         rejected.event().id));
/// assert!(bus.try_publish(Event::new(EventType::TaskCompleted).with_source_agent(7)).await.is_ok());
///
/// // `publish` keeps its signature: a rejected event reaches no one.
/// let outcome = bus.publish(Event::new(EventType::TaskCompleted)).await;
/// assert_eq!(outcome.delivered, 0);
/// let stats = bus.stats();
/// assert_eq!((stats.events_published, stats.events_rejected), (1, 2));
/// # });
/// ```
pub trait Guard: Send + Sync + 'static {
    /// `Ok(())` to let `event` in, or why not.
    fn check(&self, event: &Event) -> Result<(), Rejection>;

    /// Called when a guard after this one rejected `event`, which this one
    /// had accepted: forget anything remembered about it. The default does
    /// nothing.
    fn withdraw(&self, event: &Event) {
        let _ = event;
    }
}

impl<F> Guard for F
where
    F: Fn(&Event) -> Result<(), Rejection> + Send + Sync + 'static,
{
    fn check(&self, event: &Event) -> Result<(), Rejection> {
        self(event)
    }
}

impl<G: Guard + ?Sized> Guard for StdArc<G> {
    fn check(&self, event: &Event) -> Result<(), Rejection> {
        (**self).check(event)
    }

    fn withdraw(&self, event: &Event) {
        (**self).withdraw(event);
    }
}

/// Why a [`Guard`] kept an event out.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The same event (by id, or by content within a dedup window) was let
    /// in before.
    Duplicate {
        /// The id of the event let in before.
        of: EventId,
    },
    /// Over a quota; the same publish could succeed after `retry_after`.
    RateLimited {
        /// How long until the quota has room again.
        retry_after: Duration,
    },
    /// The event's data does not match its type's schema.
    Invalid {
        /// Every mismatch found, at least one.
        violations: Vec<Violation>,
    },
    /// A custom guard's reason.
    Custom {
        /// A short name of the guard, e.g. `"agent-required"`.
        guard: Cow<'static, str>,
        /// Why, for people.
        reason: String,
    },
}

impl Rejection {
    /// A custom guard's rejection.
    pub fn custom(guard: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        Self::Custom {
            guard: guard.into(),
            reason: reason.into(),
        }
    }

    /// A short, stable name of the reason: `"duplicate"`, `"rate_limited"`,
    /// `"invalid"` or `"custom"` (for logs, metrics and wire formats).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Duplicate { .. } => "duplicate",
            Self::RateLimited { .. } => "rate_limited",
            Self::Invalid { .. } => "invalid",
            Self::Custom { .. } => "custom",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Duplicate { of } => write!(f, "duplicate of event {of}"),
            Self::RateLimited { retry_after } => write!(
                f,
                "rate limited, retry after {} ms",
                retry_after.as_millis().max(1)
            ),
            Self::Invalid { violations } => {
                f.write_str("invalid data")?;
                for (i, violation) in violations.iter().enumerate() {
                    f.write_str(if i == 0 { ": " } else { "; " })?;
                    write!(f, "{violation}")?;
                }
                Ok(())
            }
            Self::Custom { guard, reason } => write!(f, "rejected by {guard}: {reason}"),
        }
    }
}

/// One schema mismatch: where in the event's data, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Violation {
    /// A JSON pointer (RFC 6901) into the event's `data`; `""` is the whole
    /// value.
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

impl Violation {
    /// A mismatch at `pointer`.
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() {
            "(root)"
        } else {
            &self.pointer
        };
        write!(f, "at {pointer}: {}", self.message)
    }
}

/// An event a guard kept out, and why; from
/// [`EventBus::try_publish`](crate::EventBus::try_publish).
#[derive(Clone, Debug)]
pub struct Rejected {
    event: StdArc<Event>,
    reason: Rejection,
}

impl Rejected {
    /// Why the event was kept out.
    pub fn reason(&self) -> &Rejection {
        &self.reason
    }

    /// The event (as stamped, see [`EventBus::publish`](crate::EventBus::publish)).
    pub fn event(&self) -> &StdArc<Event> {
        &self.event
    }

    /// The event back, to retry or to keep.
    pub fn into_event(self) -> StdArc<Event> {
        self.event
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let event = &self.event;
        match &self.reason {
            reason @ Rejection::Custom { .. } => {
                write!(f, "event {} ({}) {reason}", event.id, event.event_type)
            }
            reason => write!(
                f,
                "event {} ({}) rejected: {reason}",
                event.id, event.event_type
            ),
        }
    }
}

impl std::error::Error for Rejected {}

/// How often a rejected `publish` (which cannot return the rejection) may
/// log a warning; those in between are counted into the next one.
const WARN_INTERVAL: Duration = Duration::from_secs(1);

/// A bus's guards and their counters.
pub(crate) struct Guards {
    guards: Box<[StdArc<dyn Guard>]>,
    counts: RejectionCounts,
    /// Since when `last_warn_ms` counts; for the rate-limited warning.
    started: Instant,
    /// Milliseconds after `started` of the last warning, plus one (0: never).
    last_warn_ms: AtomicU64,
    /// Rejections of `publish` not logged since the last warning.
    unlogged: AtomicU64,
}

#[derive(Default)]
struct RejectionCounts {
    rejected: AtomicU64,
    deduplicated: AtomicU64,
    rate_limited: AtomicU64,
    invalid: AtomicU64,
}

impl Guards {
    pub(crate) fn new(guards: Vec<StdArc<dyn Guard>>) -> Self {
        Self {
            guards: guards.into_boxed_slice(),
            counts: RejectionCounts::default(),
            started: Instant::now(),
            last_warn_ms: AtomicU64::new(0),
            unlogged: AtomicU64::new(0),
        }
    }

    /// Whether there is no guard to run.
    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.guards.is_empty()
    }

    /// `event` if it may enter: the guard-free case is one branch, the rest
    /// is out of line. A rejection is counted and logged.
    #[inline(always)]
    pub(crate) fn admit(&self, event: StdArc<Event>) -> Option<StdArc<Event>> {
        if self.is_empty() {
            return Some(event);
        }
        self.admit_or_warn(event)
    }

    /// Runs every guard on `event`; `Err` (counted) if one rejects it.
    #[inline(never)]
    pub(crate) fn check(&self, event: StdArc<Event>) -> Result<StdArc<Event>, Rejected> {
        for (index, guard) in self.guards.iter().enumerate() {
            let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                guard.check(&event)
            }))
            .unwrap_or_else(|_| {
                tracing::error!(event_id = %event.id, guard = index, "a guard panicked; event rejected");
                Err(Rejection::custom("panicked-guard", format!("guard #{index} panicked")))
            });
            if let Err(reason) = verdict {
                self.withdraw(&event, index);
                self.count(&reason);
                return Err(Rejected { event, reason });
            }
        }
        Ok(event)
    }

    /// Withdraws `event` from the guards before `before` (all of them for
    /// `usize::MAX`), last first. A panic there is caught and ignored.
    pub(crate) fn withdraw(&self, event: &Event, before: usize) {
        let before = before.min(self.guards.len());
        for guard in self.guards[..before].iter().rev() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                guard.withdraw(event);
            }));
        }
    }

    /// [`check`](Self::check) for `publish`, which cannot return the
    /// rejection: logs it (at most one warning per [`WARN_INTERVAL`]).
    #[inline(never)]
    pub(crate) fn admit_or_warn(&self, event: StdArc<Event>) -> Option<StdArc<Event>> {
        match self.check(event) {
            Ok(event) => Some(event),
            Err(rejected) => {
                self.warn(&rejected);
                None
            }
        }
    }

    fn warn(&self, rejected: &Rejected) {
        // Relaxed: these only thin out log lines; a race logs one extra or
        // folds one more rejection into the next warning.
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let last = self.last_warn_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= WARN_INTERVAL.as_millis() as u64;
        if due
            && self
                .last_warn_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let suppressed = self.unlogged.swap(0, Ordering::Relaxed);
            tracing::warn!(
                reason = rejected.reason.kind(),
                suppressed,
                "{rejected} (publish cannot return it; use try_publish)"
            );
        } else {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn count(&self, reason: &Rejection) {
        // Relaxed: counters order nothing. Rejections are rare next to
        // publishes, so a shared atomic is fine here.
        let counts = &self.counts;
        counts.rejected.fetch_add(1, Ordering::Relaxed);
        let by_reason = match reason {
            Rejection::Duplicate { .. } => &counts.deduplicated,
            Rejection::RateLimited { .. } => &counts.rate_limited,
            Rejection::Invalid { .. } => &counts.invalid,
            Rejection::Custom { .. } => return,
        };
        by_reason.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the rejection counters into `stats`.
    pub(crate) fn fill(&self, stats: &mut BusStats) {
        let counts = &self.counts;
        stats.events_rejected = counts.rejected.load(Ordering::Relaxed);
        stats.events_deduplicated = counts.deduplicated.load(Ordering::Relaxed);
        stats.events_rate_limited = counts.rate_limited.load(Ordering::Relaxed);
        stats.events_invalid = counts.invalid.load(Ordering::Relaxed);
    }

    /// Zeroes the rejection counters (for [`EventBus::reset`]).
    pub(crate) fn reset(&self) {
        let counts = &self.counts;
        for counter in [
            &counts.rejected,
            &counts.deduplicated,
            &counts.rate_limited,
            &counts.invalid,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// How many guards there are (for `Debug`).
    pub(crate) fn len(&self) -> usize {
        self.guards.len()
    }
}

impl EventBus {
    /// Publishes like [`publish`](Self::publish), or says why a guard kept
    /// the event out (then nothing happened to it but the count in
    /// [`BusStats::events_rejected`]). On a bus without guards it always
    /// returns `Ok`.
    pub fn try_publish(
        &self,
        event: impl Into<StdArc<Event>>,
    ) -> impl Future<Output = Result<PublishOutcome, Rejected>> + Send + '_ {
        self.try_publish_with(event.into(), None)
    }

    /// Publishes like [`publish_blocking`](Self::publish_blocking), or says
    /// why a guard kept the event out.
    pub fn try_publish_blocking(
        &self,
        event: impl Into<StdArc<Event>>,
    ) -> Result<PublishOutcome, Rejected> {
        self.try_publish_blocking_with(event.into(), None)
    }

    fn try_publish_with<'a>(
        &'a self,
        event: StdArc<Event>,
        cache: Option<&'a mut TableCache>,
    ) -> impl Future<Output = Result<PublishOutcome, Rejected>> + Send + 'a {
        // Stamped when called, like `publish`; checked when first polled.
        let event = stamp(event);
        let inner = self.inner();
        async move {
            let event = inner.guards.check(event)?;
            Ok(crate::dispatch::publish_admitted(inner, event, cache).await)
        }
    }

    fn try_publish_blocking_with(
        &self,
        event: StdArc<Event>,
        cache: Option<&mut TableCache>,
    ) -> Result<PublishOutcome, Rejected> {
        let inner = self.inner();
        let event = inner.guards.check(stamp(event))?;
        Ok(crate::dispatch::publish_blocking_admitted(
            inner, event, cache,
        ))
    }
}

impl EventBus {
    /// Publishes like [`publish`](Self::publish) without running the
    /// guards: for events that another bus's guards already let in, which
    /// must not be lost here because this bus's guards differ or its dedup
    /// window or rate limits are in another state (the NATS bridge publishes
    /// what it receives with this). Anything else should use `publish`.
    pub fn publish_unguarded(
        &self,
        event: impl Into<StdArc<Event>>,
    ) -> impl Future<Output = PublishOutcome> + Send + '_ {
        crate::dispatch::publish_admitted(self.inner(), stamp(event.into()), None)
    }

    /// Runs the guards on `event` now and, if they let it in, returns an
    /// [`Admission`] to publish it later: for a caller that must know that
    /// every event of a batch is let in before it publishes any (the web
    /// API's all-or-nothing `POST`). Stamps the event as
    /// [`publish`](Self::publish) does.
    ///
    /// ```
    /// use agentbus::{Event, EventBus, EventType, Rejection};
    ///
    /// let bus = EventBus::builder()
    ///     .guard(|e: &Event| match e.source_agent_id {
    ///         Some(_) => Ok(()),
    ///         None => Err(Rejection::custom("agent-required", "no source agent")),
    ///     })
    ///     .build();
    /// let batch = [Event::new(EventType::TaskCreated).with_source_agent(1), Event::new(EventType::TaskCreated)];
    /// let admitted: Result<Vec<_>, _> = batch.into_iter().map(|e| bus.admit(e)).collect();
    /// assert!(admitted.is_err()); // the first admission is dropped: nothing published
    /// assert_eq!(bus.stats().events_published, 0);
    /// ```
    pub fn admit(&self, event: impl Into<StdArc<Event>>) -> Result<Admission, Rejected> {
        let event = self.inner().guards.check(stamp(event.into()))?;
        Ok(Admission {
            bus: self.clone(),
            event: Some(event),
        })
    }
}

/// An event the bus's guards let in, not published yet; from
/// [`EventBus::admit`].
///
/// Publishing it runs no guard again. Dropping it unpublished withdraws it
/// from every guard ([`Guard::withdraw`]), as if a later guard had rejected
/// it: a dedup window forgets it; a rate limit's quota stays used.
pub struct Admission {
    bus: EventBus,
    /// `Some` until published.
    event: Option<StdArc<Event>>,
}

impl Admission {
    /// The event as it will be published.
    pub fn event(&self) -> &StdArc<Event> {
        self.event.as_ref().expect("set until published")
    }

    /// Publishes it like [`EventBus::publish`].
    pub fn publish(mut self) -> impl Future<Output = PublishOutcome> + Send + 'static {
        let event = self.event.take().expect("set until published");
        let bus = self.bus.clone();
        async move { crate::dispatch::publish_admitted(bus.inner(), event, None).await }
    }

    /// Publishes it like [`EventBus::publish_blocking`].
    pub fn publish_blocking(mut self) -> PublishOutcome {
        let event = self.event.take().expect("set until published");
        crate::dispatch::publish_blocking_admitted(self.bus.inner(), event, None)
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(event) = self.event.take() {
            self.bus.inner().guards.withdraw(&event, usize::MAX);
        }
    }
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("event", &self.event.as_ref().map(|e| e.id))
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Publishes like [`EventBus::try_publish`].
    pub fn try_publish(
        &mut self,
        event: impl Into<StdArc<Event>>,
    ) -> impl Future<Output = Result<PublishOutcome, Rejected>> + Send + '_ {
        let (bus, tables) = self.parts();
        bus.try_publish_with(event.into(), Some(tables))
    }

    /// Publishes like [`EventBus::try_publish_blocking`].
    pub fn try_publish_blocking(
        &mut self,
        event: impl Into<StdArc<Event>>,
    ) -> Result<PublishOutcome, Rejected> {
        let (bus, tables) = self.parts();
        bus.try_publish_blocking_with(event.into(), Some(tables))
    }
}
