//! [`EventBus`]: subscribe, publish, query history. Its behaviour is
//! documented on the type, where rustdoc shows it.

use std::borrow::Cow;
use std::future::Future;
use std::sync::{Arc as StdArc, OnceLock};

use crossbeam_utils::CachePadded;

use crate::delivery::{manage, DeliveryState, Options, DEFAULT_DEAD_LETTER_CAPACITY};
use crate::dispatch::PublishOutcome;
use crate::error::BuildError;
use crate::event::Event;
use crate::event_type::EventTypeSet;
use crate::guard::{Guard, Guards};
use crate::handler::{quietly, Filter, Handler, HandlerResult, Reporter, Subscriber};
use crate::history::{History, HistoryQuery, DEFAULT_HISTORY_CAPACITY, MAX_HISTORY_CAPACITY};
use crate::id::SubscriptionId;
use crate::inner::{Inner, Registry};
use crate::scope::Scope;
use crate::stats::{BusStats, Counters, TypeStats};
use crate::sync::{lock, Arc, Mutex};
use crate::table::{TableCache, Tables};

/// A lock-free, in-process event bus.
///
/// `EventBus` is a cheap handle: clones share one bus.
///
/// A publish reaches every subscriber of the event's type whose filter
/// passes, exactly once; sync handlers inline on the publishing thread, the
/// async handlers of one publish concurrently. Failures and panics are
/// isolated and counted. The full statement, including unsubscribe during
/// dispatch, ordering and history, is [`docs::semantics`](crate::docs::semantics).
///
/// ```
/// use agentbus::{Event, EventBus, EventType, HistoryQuery};
/// use serde_json::json;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let bus = EventBus::new();
/// let seen = Arc::new(AtomicUsize::new(0));
/// let counter = Arc::clone(&seen);
/// let id = bus.subscribe(EventType::TaskCompleted, move |e: &Event| {
///     assert_eq!(e.data["task_id"], 123);
///     counter.fetch_add(1, Ordering::Relaxed);
/// });
///
/// let outcome = bus.publish_blocking(
///     Event::new(EventType::TaskCompleted).with_data(json!({"task_id": 123})),
/// );
/// assert_eq!(outcome.delivered, 1);
/// assert_eq!(seen.load(Ordering::Relaxed), 1);
/// assert_eq!(bus.history(&HistoryQuery::new()).len(), 1);
///
/// assert!(bus.unsubscribe(id));
/// assert!(!bus.unsubscribe(id));
/// ```
#[derive(Clone)]
pub struct EventBus {
    inner: StdArc<Inner>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("history_capacity", &self.history_capacity())
            .field("guards", &self.inner.guards.len())
            .field("stats", &self.stats())
            .finish()
    }
}

/// The process-wide bus, created on first use with the default history
/// capacity (1000).
///
/// ```
/// use agentbus::{event_bus, Event, EventType};
///
/// let id = event_bus().subscribe(EventType::AgentStarted, |_e: &Event| {});
/// event_bus().publish_blocking(Event::new(EventType::AgentStarted));
/// assert!(event_bus().unsubscribe(id));
/// ```
pub fn event_bus() -> &'static EventBus {
    static BUS: OnceLock<EventBus> = OnceLock::new();
    BUS.get_or_init(EventBus::new)
}

impl EventBus {
    /// A bus keeping the 1000 newest events in history.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_HISTORY_CAPACITY, Vec::new())
    }

    /// Configures a bus.
    ///
    /// ```
    /// use agentbus::EventBus;
    ///
    /// let bus = EventBus::builder().history_capacity(10).build();
    /// assert_eq!(bus.history_capacity(), 10);
    /// ```
    pub fn builder() -> EventBusBuilder {
        EventBusBuilder {
            history_capacity: DEFAULT_HISTORY_CAPACITY,
            guards: Vec::new(),
            dead_letter_capacity: DEFAULT_DEAD_LETTER_CAPACITY,
            max_concurrent_handlers: None,
        }
    }

    fn with_capacity(history_capacity: usize, guards: Vec<StdArc<dyn Guard>>) -> Self {
        Self::with_settings(
            history_capacity,
            guards,
            DeliveryState::new(DEFAULT_DEAD_LETTER_CAPACITY, None),
        )
    }

    fn with_settings(
        history_capacity: usize,
        guards: Vec<StdArc<dyn Guard>>,
        delivery: DeliveryState,
    ) -> Self {
        // A std atomic even under loom: it only hands out distinct numbers.
        static NEXT_BUS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            inner: StdArc::new(Inner {
                id: NEXT_BUS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                tables: Tables::new(),
                history: History::new(history_capacity),
                counters: Counters::new(),
                guards: Guards::new(guards),
                registry: CachePadded::new(Mutex::new(Registry::default())),
                delivery: StdArc::new(delivery),
            }),
        }
    }

    pub(crate) fn from_inner(inner: StdArc<Inner>) -> Self {
        Self { inner }
    }

    pub(crate) fn inner(&self) -> &StdArc<Inner> {
        &self.inner
    }

    /// A handle that does not keep the bus alive: what a handler that
    /// publishes follow-up events should capture, so the bus and its
    /// subscribers are not kept alive by each other.
    ///
    /// ```
    /// use agentbus::{Event, EventBus, EventType};
    ///
    /// let bus = EventBus::new();
    /// let weak = bus.downgrade();
    /// bus.subscribe(EventType::TaskCreated, move |_e: &Event| {
    ///     if let Some(bus) = weak.upgrade() {
    ///         bus.publish_blocking(Event::new(EventType::TaskAssigned));
    ///     }
    /// });
    /// bus.publish_blocking(Event::new(EventType::TaskCreated));
    /// assert_eq!(bus.stats().events_published, 2);
    /// ```
    pub fn downgrade(&self) -> WeakEventBus {
        WeakEventBus {
            inner: StdArc::downgrade(&self.inner),
        }
    }

    /// Calls `handler` for every event of `types` (one [`EventType`](crate::EventType)
    /// or an [`EventTypeSet`]), inline on the publishing thread.
    ///
    /// The handler returns `()` or `Result<(), E: Display>`; `Err` and panics
    /// count as failures.
    ///
    /// Subscription changes are the bus's slow path so that publishes need
    /// no locked instruction: once some thread has published, a subscribe or
    /// unsubscribe makes one or two `membarrier` system calls on Linux (about
    /// half a microsecond each on an idle machine, and each briefly
    /// interrupts the process's running threads;
    /// [`docs::design`](crate::docs::design)). It never waits for running
    /// publishes.
    pub fn subscribe<F, R>(&self, types: impl Into<EventTypeSet>, handler: F) -> SubscriptionId
    where
        F: Fn(&Event) -> R + Send + Sync + 'static,
        R: HandlerResult,
    {
        self.register(types.into(), None, Scope::ANY, None, Handler::sync(handler))
    }

    /// Calls `handler` for every event of `types` and awaits the future it
    /// returns; the async handlers of one publish run concurrently.
    ///
    /// ```
    /// use agentbus::{Event, EventBus, EventType};
    /// use std::sync::Arc;
    ///
    /// # futures::executor::block_on(async {
    /// let bus = EventBus::new();
    /// bus.subscribe_async(EventType::MemoryShared, |e: Arc<Event>| async move {
    ///     println!("new knowledge: {}", e.data["content"]);
    /// });
    /// let outcome = bus.publish(Event::new(EventType::MemoryShared)).await;
    /// assert_eq!(outcome.delivered, 1);
    /// # });
    /// ```
    pub fn subscribe_async<F, Fut>(
        &self,
        types: impl Into<EventTypeSet>,
        handler: F,
    ) -> SubscriptionId
    where
        F: Fn(StdArc<Event>) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerResult,
    {
        self.register(
            types.into(),
            None,
            Scope::ANY,
            None,
            Handler::from_async(handler),
        )
    }

    /// Calls `handler` for every event of every type (one subscription).
    pub fn subscribe_all<F, R>(&self, handler: F) -> SubscriptionId
    where
        F: Fn(&Event) -> R + Send + Sync + 'static,
        R: HandlerResult,
    {
        self.subscribe(EventTypeSet::all(), handler)
    }

    pub(crate) fn register(
        &self,
        types: EventTypeSet,
        name: Option<Cow<'static, str>>,
        scope: Scope,
        filter: Option<Filter>,
        handler: Handler,
    ) -> SubscriptionId {
        self.register_with(types, name, scope, filter, handler, Options::default())
    }

    /// [`register`](Self::register) with delivery options (retry, timeout,
    /// limits, ordering; see `delivery/`).
    pub(crate) fn register_with(
        &self,
        types: EventTypeSet,
        name: Option<Cow<'static, str>>,
        scope: Scope,
        filter: Option<Filter>,
        handler: Handler,
        options: Options,
    ) -> SubscriptionId {
        let inner = &*self.inner;
        let mut registry = lock(&inner.registry);
        registry.last_id += 1;
        let id = SubscriptionId::new(inner.id, registry.last_id);
        let reporter = Reporter::new(id, name);
        let keep_dead_letters = options.dead_letters;
        let (handler, managed) = manage(handler, options, &self.inner, &reporter);
        let subscriber = Arc::new(Subscriber::new(
            reporter,
            scope,
            filter,
            handler,
            managed,
            &inner.delivery,
            keep_dead_letters,
        ));
        let retired = inner.tables.insert(types, &subscriber);
        registry.subscriptions.insert(id, (types, subscriber));
        inner
            .counters
            .set_active_subscribers(registry.subscriptions.len());
        drop(registry);
        // Old tables hold no subscriber that is not still registered, so
        // dropping them runs no user code; drop outside the lock anyway.
        drop(retired);
        id
    }

    /// Removes a subscription. `true` the first time for a live id, then
    /// `false`; ids are never reused and belong to the bus that issued them,
    /// so a stale or foreign id removes nothing.
    ///
    /// Once this returns, no publish that starts afterwards calls the handler;
    /// a publish already running on another thread may still call it once.
    /// The handler (and what it captured) is dropped when the last such
    /// publish is done, never while a bus lock is held. `unsubscribe` does
    /// not wait for those publishes (it may be called from inside the
    /// handler); it costs what [`subscribe`](Self::subscribe) does.
    pub fn unsubscribe(&self, id: SubscriptionId) -> bool {
        let inner = &*self.inner;
        if id.bus() != inner.id {
            return false;
        }
        let mut registry = lock(&inner.registry);
        let Some((types, subscriber)) = registry.subscriptions.remove(&id) else {
            return false;
        };
        subscriber.deactivate();
        let retired = inner.tables.remove(types, id);
        inner
            .counters
            .set_active_subscribers(registry.subscriptions.len());
        drop(registry);
        // The last reference may go here: the handler's captures are user
        // code, whose Drop must not unwind into the caller.
        quietly(|| drop((retired, subscriber)));
        true
    }

    /// Publishes `event` (an [`Event`] or an `Arc<Event>`) and resolves when
    /// every handler has run.
    ///
    /// Nothing is delivered until the future is polled. It is `Send`, so it
    /// can be awaited on any runtime. Dropping it after the first poll
    /// cancels the async handlers still running.
    ///
    /// **Causation.** Called from inside a handler (a sync handler's call, or
    /// a poll of an async handler's future, on whatever thread polls it), the
    /// event is stamped as caused by the event being handled:
    /// `causation_id` becomes the handled event's id and `correlation_id` its
    /// correlation id, or its id when it starts the chain, as
    /// [`Event::caused_by`] does. An event whose publisher set either id
    /// keeps both as given, and so does every event published outside a
    /// handler. The stamp is applied when `publish` is called. If the
    /// `Arc<Event>` passed in is shared, the bus stamps a copy (history and
    /// handlers see the copy; other holders of the `Arc` keep the original);
    /// an `Event` or a unique `Arc` is stamped in place. A task spawned from a
    /// handler inherits no cause; see [`with_cause`](crate::with_cause).
    /// Likewise an event without a [`trace_context`](Event::trace_context)
    /// published from inside a handler gets the handled event's, so a trace
    /// continues through the handler (one set by its publisher is kept). Code
    /// that reads an [`EventStream`](crate::EventStream) is not a handler: link what it
    /// publishes with [`Event::caused_by`].
    ///
    /// ```
    /// use agentbus::{Event, EventBus, EventType, HistoryQuery};
    ///
    /// let bus = EventBus::new();
    /// let weak = bus.downgrade();
    /// bus.subscribe(EventType::TaskCompleted, move |_task: &Event| {
    ///     if let Some(bus) = weak.upgrade() {
    ///         bus.publish_blocking(Event::new(EventType::AgentToolExecuted));
    ///     }
    /// });
    /// let task = Event::new(EventType::TaskCompleted);
    /// let task_id = task.id;
    /// bus.publish_blocking(task);
    ///
    /// let chain = bus.history(&HistoryQuery::new().correlation_id(task_id));
    /// assert_eq!(chain.len(), 2);
    /// assert_eq!(chain[0].event_type, EventType::AgentToolExecuted);
    /// assert_eq!(chain[0].causation_id, Some(task_id));
    /// ```
    pub fn publish(
        &self,
        event: impl Into<StdArc<Event>>,
    ) -> impl Future<Output = PublishOutcome> + Send + '_ {
        self.publish_with(event.into(), None)
    }

    /// Publishes from synchronous code: runs the handlers on this thread and
    /// returns when all have finished. Needs no runtime. Called from inside
    /// a handler, stamps the event as [`publish`](Self::publish) does.
    ///
    /// Async handlers are polled here with a minimal executor. One that needs
    /// a runtime's timers or I/O (Tokio's, say) only works if that runtime
    /// drives them from other threads: from a plain thread with no runtime it
    /// panics (counted as failed), and called from inside a current-thread
    /// runtime it **blocks forever**, since the thread that would drive the
    /// timer is the one waiting. From async code, use
    /// [`publish`](Self::publish).
    pub fn publish_blocking(&self, event: impl Into<StdArc<Event>>) -> PublishOutcome {
        self.publish_blocking_with(event.into(), None)
    }

    /// [`publish_blocking`](Self::publish_blocking), through `cache` if given.
    #[inline]
    pub(crate) fn publish_blocking_with(
        &self,
        event: StdArc<Event>,
        cache: Option<&mut TableCache>,
    ) -> PublishOutcome {
        crate::dispatch::publish_blocking(&self.inner, event, cache)
    }

    /// [`publish`](Self::publish), through `cache` if given.
    #[inline]
    pub(crate) fn publish_with<'a>(
        &'a self,
        event: StdArc<Event>,
        cache: Option<&'a mut TableCache>,
    ) -> impl Future<Output = PublishOutcome> + Send + 'a {
        crate::dispatch::publish(&self.inner, event, cache)
    }

    /// The newest events matching `query`, newest first (at most
    /// `query.limit`, 100 by default).
    ///
    /// ```
    /// use agentbus::{Event, EventBus, EventType, HistoryQuery};
    ///
    /// let bus = EventBus::new();
    /// for circle in [1, 2, 1] {
    ///     bus.publish_blocking(Event::new(EventType::TaskCompleted).with_circle(circle));
    /// }
    /// let circle_1 = bus.history(&HistoryQuery::new().circle_id(1));
    /// assert_eq!(circle_1.len(), 2);
    /// assert!(circle_1[0].id > circle_1[1].id);
    /// ```
    pub fn history(&self, query: &HistoryQuery) -> Vec<StdArc<Event>> {
        self.inner.history.read(query)
    }

    /// How many events history keeps.
    pub fn history_capacity(&self) -> usize {
        self.inner.history.capacity()
    }

    /// Forgets the history and releases its events.
    ///
    /// Events published before the call began are gone once it returns, and
    /// events published after it returned are kept; one published while it
    /// runs may or may not be kept.
    pub fn clear_history(&self) {
        self.inner.history.clear();
    }

    /// Removes every subscription, clears history and zeroes the stats; for
    /// tests. Subscription ids keep counting, so old ids stay stale.
    ///
    /// A publish racing with `reset` may still reach old handlers once and
    /// may or may not be counted.
    pub fn reset(&self) {
        let inner = &*self.inner;
        let mut registry = lock(&inner.registry);
        let removed = std::mem::take(&mut registry.subscriptions);
        for (_, subscriber) in removed.values() {
            subscriber.deactivate();
        }
        let retired = inner.tables.clear();
        inner.counters.set_active_subscribers(0);
        drop(registry);
        quietly(|| drop((retired, removed)));
        inner.history.clear();
        inner.counters.reset();
        inner.guards.reset();
        inner.delivery.reset();
    }

    /// A snapshot of the bus's counters.
    pub fn stats(&self) -> BusStats {
        let inner = &*self.inner;
        let mut stats = inner.counters.snapshot(inner.history.len());
        inner.guards.fill(&mut stats);
        inner.delivery.fill(&mut stats);
        stats
    }

    /// Starts counting publishes, deliveries and failures per event type,
    /// for [`stats_per_type`](Self::stats_per_type); calling it again does
    /// nothing. A bus never asked pays one load and one never-taken branch
    /// per publish for it (callgrind `fanout1` in `benches/RESULTS.md`).
    /// Once on, each publish also bumps its type's counters in this thread's
    /// stripe (no locked instruction while the thread owns one) and the
    /// table takes about 10 KiB; it stays on for the life of the bus.
    ///
    /// What was published before the first call is in [`stats`](Self::stats)
    /// only. [`reset`](Self::reset) zeroes the per-type counts too.
    ///
    /// ```
    /// use agentbus::{Event, EventBus, EventType};
    ///
    /// let bus = EventBus::new();
    /// assert!(bus.stats_per_type().is_none());
    /// bus.count_per_type();
    /// bus.subscribe(EventType::TaskFailed, |_e: &Event| -> Result<(), String> {
    ///     Err("no".into())
    /// });
    /// bus.publish_blocking(Event::new(EventType::TaskFailed));
    /// let per_type = bus.stats_per_type().unwrap();
    /// let failed = per_type.iter().find(|s| s.event_type == EventType::TaskFailed).unwrap();
    /// assert_eq!((failed.published, failed.delivered, failed.failed), (1, 0, 1));
    /// ```
    pub fn count_per_type(&self) {
        self.inner.counters.count_per_type();
    }

    /// The counts per event type since [`count_per_type`](Self::count_per_type)
    /// (or the last [`reset`](Self::reset)), one entry per type in
    /// [`EventType::ALL`](crate::EventType::ALL) order; `None` if per-type counting was never
    /// started.
    pub fn stats_per_type(&self) -> Option<Vec<TypeStats>> {
        self.inner.counters.per_type()
    }
}

/// A non-owning handle to an [`EventBus`]; from [`EventBus::downgrade`].
#[derive(Clone, Debug, Default)]
pub struct WeakEventBus {
    inner: std::sync::Weak<Inner>,
}

impl WeakEventBus {
    /// The bus, if any owning handle is still alive.
    pub fn upgrade(&self) -> Option<EventBus> {
        self.inner.upgrade().map(EventBus::from_inner)
    }
}

/// Configures an [`EventBus`]; from [`EventBus::builder`] (or `default()`,
/// the same).
///
/// Two builders are equal when they have the same settings and the same
/// guards (the same `Arc`s, in the same order).
#[derive(Clone)]
pub struct EventBusBuilder {
    history_capacity: usize,
    guards: Vec<StdArc<dyn Guard>>,
    dead_letter_capacity: usize,
    max_concurrent_handlers: Option<usize>,
}

impl std::fmt::Debug for EventBusBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBusBuilder")
            .field("history_capacity", &self.history_capacity)
            .field("guards", &self.guards.len())
            .field("dead_letter_capacity", &self.dead_letter_capacity)
            .field("max_concurrent_handlers", &self.max_concurrent_handlers)
            .finish()
    }
}

impl PartialEq for EventBusBuilder {
    fn eq(&self, other: &Self) -> bool {
        self.history_capacity == other.history_capacity
            && self.dead_letter_capacity == other.dead_letter_capacity
            && self.max_concurrent_handlers == other.max_concurrent_handlers
            && self.guards.len() == other.guards.len()
            && self
                .guards
                .iter()
                .zip(&other.guards)
                .all(|(a, b)| StdArc::ptr_eq(a, b))
    }
}

impl Eq for EventBusBuilder {}

impl std::hash::Hash for EventBusBuilder {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.history_capacity.hash(state);
        self.guards.len().hash(state);
        self.dead_letter_capacity.hash(state);
        self.max_concurrent_handlers.hash(state);
    }
}

impl Default for EventBusBuilder {
    fn default() -> Self {
        EventBus::builder()
    }
}

impl EventBusBuilder {
    /// How many of the newest events history keeps: exactly this many, any
    /// number up to [`MAX_HISTORY_CAPACITY`]; `0` turns history off.
    ///
    /// Exact history has a price on every publish: a ticket, a 16-byte
    /// compare-and-swap, and a reference-count increment and decrement (about
    /// 23 ns of a 52 ns one-subscriber publish on the reference VM;
    /// `benches/RESULTS.md`, issue 18). A bus with capacity `0` skips the
    /// ring entirely, for publishers that need no history.
    #[must_use]
    pub fn history_capacity(mut self, capacity: usize) -> Self {
        self.history_capacity = capacity;
        self
    }

    /// Adds a [`Guard`]: every event must pass it to enter the bus. Guards
    /// run in the order added; the first rejection wins (see [`Guard`] for
    /// what a rejection means).
    #[must_use]
    pub fn guard(mut self, guard: impl Guard) -> Self {
        self.guards.push(StdArc::new(guard));
        self
    }

    /// How many async handler calls may run at once on this bus, over all
    /// its subscriptions (the original bus's
    /// `configure(max_concurrent_handlers=...)`; `0` is taken as 1). A
    /// publish whose async handler finds no free permit waits for one
    /// (`publish` returns `Pending`, `publish_blocking` parks), first come
    /// first served; nothing is spawned. Sync handlers run inline on the
    /// publishing thread and take no permit. A publish made from inside a
    /// handler runs under that handler's permit, so handlers that publish
    /// cannot deadlock on it; see
    /// [`docs::semantics`](crate::docs::semantics#concurrency-limits).
    ///
    /// Unset (the default), async handlers are not limited and take the
    /// plain path. [`EventBus::set_max_concurrent_handlers`] changes the
    /// limit of a running bus.
    #[must_use]
    pub fn max_concurrent_handlers(mut self, limit: usize) -> Self {
        self.max_concurrent_handlers = Some(limit);
        self
    }

    /// How many [dead letters](crate::DeadLetters) the bus keeps in memory
    /// (default [`DEFAULT_DEAD_LETTER_CAPACITY`], 10,000); beyond it the
    /// oldest is dropped, counted in [`DeadLetters::dropped`](crate::DeadLetters::dropped)
    /// and logged.
    #[must_use]
    pub fn dead_letter_capacity(mut self, capacity: usize) -> Self {
        self.dead_letter_capacity = capacity;
        self
    }

    /// Builds the bus, or says why the settings cannot be built.
    ///
    /// ```
    /// use agentbus::{BuildError, EventBus, MAX_HISTORY_CAPACITY};
    ///
    /// let too_big = EventBus::builder().history_capacity(usize::MAX).try_build();
    /// assert!(matches!(too_big, Err(BuildError::HistoryCapacityTooLarge { .. })));
    /// assert!(EventBus::builder().history_capacity(MAX_HISTORY_CAPACITY).try_build().is_ok());
    /// ```
    pub fn try_build(self) -> Result<EventBus, BuildError> {
        if self.history_capacity > MAX_HISTORY_CAPACITY {
            return Err(BuildError::HistoryCapacityTooLarge {
                requested: self.history_capacity,
                max: MAX_HISTORY_CAPACITY,
            });
        }
        Ok(self.build_unchecked(self.history_capacity))
    }

    /// Builds the bus. A history capacity above [`MAX_HISTORY_CAPACITY`] is
    /// lowered to it, with a `tracing` warning; use
    /// [`try_build`](Self::try_build) to get an error instead.
    pub fn build(self) -> EventBus {
        let requested = self.history_capacity;
        let fallback = self.clone();
        self.try_build().unwrap_or_else(|err| {
            tracing::warn!(requested, error = %err, "history capacity lowered to the maximum");
            fallback.build_unchecked(MAX_HISTORY_CAPACITY)
        })
    }

    fn build_unchecked(&self, history_capacity: usize) -> EventBus {
        EventBus::with_settings(
            history_capacity,
            self.guards.clone(),
            DeliveryState::new(self.dead_letter_capacity, self.max_concurrent_handlers),
        )
    }
}
