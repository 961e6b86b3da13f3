//! Building a subscription ([`SubscriptionBuilder`]) and scoping one to a
//! value's lifetime ([`SubscriptionGuard`]).

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc as StdArc;

use std::hash::{BuildHasher, Hash};
use std::time::Duration;

use crate::bus::{EventBus, WeakEventBus};
use crate::delivery::{Options, Retry};
use crate::event::Event;
use crate::event_type::EventTypeSet;
use crate::handler::{Filter, Handler, HandlerResult};
use crate::id::SubscriptionId;
use crate::overflow::Overflow;
use crate::scope::Scope;
use crate::stream::EventStream;

/// A subscription being set up; from [`EventBus::subscription`].
///
/// Finish it with [`handler`](Self::handler), [`async_handler`](Self::async_handler)
/// or [`stream`](Self::stream).
#[must_use = "a subscription is registered only by handler, async_handler or stream"]
pub struct SubscriptionBuilder<'bus> {
    bus: &'bus EventBus,
    types: EventTypeSet,
    name: Option<Cow<'static, str>>,
    scope: Scope,
    filter: Option<Filter>,
    delivery: Options,
}

impl std::fmt::Debug for SubscriptionBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionBuilder")
            .field("types", &self.types)
            .field("name", &self.name)
            .field("circle_id", &self.scope.circle_id)
            .field("source_agent_id", &self.scope.source_agent_id)
            .field("project_id", &self.scope.project_id)
            .field("filter", &self.filter.as_ref().map(|_| "<closure>"))
            .field("retry", &self.delivery.retry)
            .field("timeout", &self.delivery.timeout)
            .field("max_concurrency", &self.delivery.max_concurrency)
            .field(
                "ordered_by",
                &self.delivery.ordered_by.as_ref().map(|_| "<closure>"),
            )
            .field("dead_letters", &self.delivery.dead_letters)
            .finish_non_exhaustive()
    }
}

impl EventBus {
    /// Starts a subscription with a filter, a name, or a stream as its end.
    ///
    /// ```
    /// use agentbus::{Event, EventBus, EventType};
    ///
    /// let bus = EventBus::new();
    /// bus.subscription(EventType::TaskCompleted)
    ///     .filter(|e: &Event| e.circle_id == Some(5))
    ///     .name("circle-5-watcher")
    ///     .handler(|e: &Event| println!("circle 5 finished {}", e.data["task_id"]));
    ///
    /// let hit = bus.publish_blocking(Event::new(EventType::TaskCompleted).with_circle(5));
    /// let miss = bus.publish_blocking(Event::new(EventType::TaskCompleted).with_circle(6));
    /// assert_eq!((hit.delivered, miss.delivered), (1, 0));
    /// ```
    pub fn subscription(&self, types: impl Into<EventTypeSet>) -> SubscriptionBuilder<'_> {
        SubscriptionBuilder::new(self, types.into())
    }

    /// A bounded stream of the events of `types`, buffering at most
    /// `capacity` of them (see [`EventStream`]).
    pub fn stream(&self, types: impl Into<EventTypeSet>, capacity: usize) -> EventStream {
        self.subscription(types).stream(capacity)
    }

    /// A guard that unsubscribes `id` from this bus when dropped.
    ///
    /// ```
    /// use agentbus::{Event, EventBus, EventType};
    ///
    /// let bus = EventBus::new();
    /// {
    ///     let _guard = bus.guard(bus.subscribe(EventType::TaskStarted, |_e: &Event| {}));
    ///     assert_eq!(bus.stats().active_subscribers, 1);
    /// }
    /// assert_eq!(bus.stats().active_subscribers, 0);
    /// ```
    pub fn guard(&self, id: SubscriptionId) -> SubscriptionGuard {
        SubscriptionGuard::new(self, id)
    }
}

impl<'bus> SubscriptionBuilder<'bus> {
    pub(crate) fn new(bus: &'bus EventBus, types: EventTypeSet) -> Self {
        Self {
            bus,
            types,
            name: None,
            scope: Scope::ANY,
            filter: None,
            delivery: Options::default(),
        }
    }

    /// Only events for which `filter` returns `true` reach the handler. The
    /// filter runs on the publishing thread before the handler; if it panics
    /// the delivery counts as failed.
    pub fn filter<F>(mut self, filter: F) -> Self
    where
        F: Fn(&Event) -> bool + Send + Sync + 'static,
    {
        self.filter = Some(Box::new(filter));
        self
    }

    /// Only events whose `circle_id` is `circle_id` reach the handler.
    ///
    /// The field filters ([`circle_id`](Self::circle_id),
    /// [`source_agent_id`](Self::source_agent_id),
    /// [`project_id`](Self::project_id)) combine with each other and with
    /// [`filter`](Self::filter): an event must pass all of them, and an
    /// event without the field never matches. They are checked inline on
    /// the publishing thread, before any filter closure, and cost less than
    /// the same test written as a closure; they never fail.
    ///
    /// ```
    /// use agentbus::{Event, EventBus, EventType};
    ///
    /// let bus = EventBus::new();
    /// bus.subscription(EventType::TaskCompleted)
    ///     .circle_id(5)
    ///     .handler(|e: &Event| assert_eq!(e.circle_id, Some(5)));
    /// let to_5 = bus.publish_blocking(Event::new(EventType::TaskCompleted).with_circle(5));
    /// let to_6 = bus.publish_blocking(Event::new(EventType::TaskCompleted).with_circle(6));
    /// assert_eq!((to_5.delivered, to_6.delivered), (1, 0));
    /// ```
    pub fn circle_id(mut self, circle_id: i64) -> Self {
        self.scope.circle_id = Some(circle_id);
        self
    }

    /// Only events from agent `agent_id` reach the handler; see
    /// [`circle_id`](Self::circle_id).
    pub fn source_agent_id(mut self, agent_id: i64) -> Self {
        self.scope.source_agent_id = Some(agent_id);
        self
    }

    /// Only events of project `project_id` reach the handler; see
    /// [`circle_id`](Self::circle_id).
    pub fn project_id(mut self, project_id: i64) -> Self {
        self.scope.project_id = Some(project_id);
        self
    }

    /// A name for logs and [dead letters](crate::DeadLetter::subscription_name)
    /// (defaults to the subscription id, `sub-N`). A redrive after a restart
    /// finds the subscription by this name.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Retries a failed delivery in the background per `retry`; the last
    /// failure becomes a [dead letter](crate::DeadLetters). The publish
    /// resolves after the first attempt and counts the delivery in
    /// [`PublishOutcome::retrying`](crate::PublishOutcome::retrying); later
    /// events are not held back (except, with
    /// [`ordered_by`](Self::ordered_by), those of the same key). See
    /// [`docs::semantics`](crate::docs::semantics#retries-timeouts-and-dead-letters).
    ///
    /// ```
    /// use agentbus::{Event, EventBus, EventType, Retry};
    /// use std::time::Duration;
    ///
    /// # futures::executor::block_on(async {
    /// let bus = EventBus::new();
    /// bus.subscription(EventType::TaskCompleted)
    ///     .name("metrics exporter")
    ///     .retry(Retry::attempts(3).delay(Duration::from_millis(1)))
    ///     .handler(|_e: &Event| -> Result<(), String> { Err("exporter down".into()) });
    /// let outcome = bus.publish(Event::new(EventType::TaskCompleted)).await;
    /// assert_eq!((outcome.delivered, outcome.failed, outcome.retrying), (0, 0, 1));
    /// bus.settled().await;
    /// let dead = bus.dead_letters().list(&Default::default());
    /// assert_eq!((dead[0].attempts(), dead[0].error()), (3, "exporter down"));
    /// # });
    /// ```
    pub fn retry(mut self, retry: Retry) -> Self {
        self.delivery.retry = Some(retry);
        self
    }

    /// An async handler's attempt that has not finished after `timeout`
    /// fails with the error `timed out` (its future is dropped), and is
    /// retried or dead-lettered like any failure. Sync handlers cannot be
    /// interrupted and ignore it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.delivery.timeout = Some(timeout);
        self
    }

    /// At most `limit` calls of this subscription's handler run at once
    /// (`0` is taken as 1); a publish that finds none free waits for one,
    /// first come first served. See
    /// [`EventBusBuilder::max_concurrent_handlers`](crate::EventBusBuilder::max_concurrent_handlers)
    /// for the bus-wide limit and the rule for handlers that publish.
    pub fn max_concurrency(mut self, limit: usize) -> Self {
        self.delivery.max_concurrency = Some(limit);
        self
    }

    /// Deliveries whose events have equal keys run one at a time, in
    /// publish order; different keys run in parallel. A retry holds back
    /// only its own key, and never reorders it. A publish of an event whose
    /// key is busy waits for its turn.
    ///
    /// ```
    /// use agentbus::{Event, EventBus, EventType};
    /// use std::sync::{Arc, Mutex};
    ///
    /// # futures::executor::block_on(async {
    /// let bus = EventBus::new();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// bus.subscription(EventType::TaskCompleted)
    ///     .ordered_by(|e: &Event| e.circle_id)
    ///     .async_handler(move |e: Arc<Event>| {
    ///         let log = Arc::clone(&log);
    ///         async move { log.lock().unwrap().push(e.data["n"].as_i64()) }
    ///     });
    /// let publishes = (0..3).map(|n| {
    ///     let event = Event::new(EventType::TaskCompleted).with_circle(1);
    ///     bus.publish(event.with_data(serde_json::json!({ "n": n })))
    /// });
    /// futures::future::join_all(publishes).await;
    /// assert_eq!(*seen.lock().unwrap(), [Some(0), Some(1), Some(2)]);
    /// # });
    /// ```
    pub fn ordered_by<K, F>(mut self, key: F) -> Self
    where
        F: Fn(&Event) -> K + Send + Sync + 'static,
        K: Hash,
    {
        // Fixed keys: lanes are per subscription and never persisted, so
        // one process-wide seed is enough.
        static SEED: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
        let seed = SEED.get_or_init(std::hash::RandomState::new);
        self.delivery.ordered_by = Some(Box::new(move |event| seed.hash_one(key(event))));
        self
    }

    /// Whether a delivery given up on becomes a [dead letter](crate::DeadLetters)
    /// (the default) or is only counted and logged.
    pub fn dead_letters(mut self, keep: bool) -> Self {
        self.delivery.dead_letters = keep;
        self
    }

    /// Registers a sync handler (see [`EventBus::subscribe`]).
    pub fn handler<F, R>(self, handler: F) -> SubscriptionId
    where
        F: Fn(&Event) -> R + Send + Sync + 'static,
        R: HandlerResult,
    {
        self.register(Handler::sync(handler))
    }

    /// Registers a sync handler that receives the published `Arc<Event>`
    /// itself, so it can keep the event (hand it to another thread, queue it
    /// for a writer) for the cost of a reference count instead of a copy.
    ///
    /// It runs inline on the publishing thread like [`handler`](Self::handler);
    /// a panic counts as a failed delivery and is logged.
    ///
    /// ```
    /// use agentbus::{Event, EventBus, EventType, EventTypeSet};
    /// use std::sync::{Arc, Mutex};
    ///
    /// let bus = EventBus::new();
    /// let kept: Arc<Mutex<Vec<Arc<Event>>>> = Arc::default();
    /// let sink = Arc::clone(&kept);
    /// bus.subscription(EventTypeSet::all())
    ///     .shared_handler(move |event: &Arc<Event>| sink.lock().unwrap().push(Arc::clone(event)));
    ///
    /// let event = Arc::new(Event::new(EventType::TaskCreated));
    /// bus.publish_blocking(Arc::clone(&event));
    /// assert!(Arc::ptr_eq(&kept.lock().unwrap()[0], &event));
    /// ```
    pub fn shared_handler<F>(self, handler: F) -> SubscriptionId
    where
        F: Fn(&StdArc<Event>) + Send + Sync + 'static,
    {
        self.register(Handler::Shared(Box::new(handler)))
    }

    /// Registers an async handler (see [`EventBus::subscribe_async`]).
    pub fn async_handler<F, Fut>(self, handler: F) -> SubscriptionId
    where
        F: Fn(StdArc<Event>) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerResult,
    {
        self.register(Handler::from_async(handler))
    }

    /// Registers a bounded stream buffering at most `capacity` events (`0` is
    /// taken as 1) that drops the oldest when full
    /// ([`Overflow::DropOldest`]). See [`EventStream`].
    pub fn stream(self, capacity: usize) -> EventStream {
        self.stream_with(capacity, Overflow::DropOldest)
    }

    /// [`stream`](Self::stream) with the [`Overflow`] policy of the full
    /// buffer chosen: see [`EventStream`] and [`Overflow`].
    pub fn stream_with(self, capacity: usize, overflow: Overflow) -> EventStream {
        let bus = self.bus;
        EventStream::subscribe(capacity, overflow, |handler| {
            bus.guard(self.register(handler))
        })
    }

    fn register(self, handler: Handler) -> SubscriptionId {
        self.bus.register_with(
            self.types,
            self.name,
            self.scope,
            self.filter,
            handler,
            self.delivery,
        )
    }
}

/// Unsubscribes when dropped; from [`EventBus::guard`].
///
/// The guard does not keep the bus alive: if the bus is gone, dropping the
/// guard does nothing.
#[must_use = "dropping the guard unsubscribes at once"]
#[derive(Debug)]
pub struct SubscriptionGuard {
    bus: WeakEventBus,
    id: SubscriptionId,
    armed: bool,
}

impl SubscriptionGuard {
    pub(crate) fn new(bus: &EventBus, id: SubscriptionId) -> Self {
        Self {
            bus: bus.downgrade(),
            id,
            armed: true,
        }
    }

    /// The guarded subscription.
    pub fn id(&self) -> SubscriptionId {
        self.id
    }

    /// Unsubscribes now; `true` if the subscription was still registered.
    pub fn unsubscribe(mut self) -> bool {
        self.release()
    }

    /// Keeps the subscription for the life of the bus and returns its id.
    pub fn detach(mut self) -> SubscriptionId {
        self.armed = false;
        self.id
    }

    fn release(&mut self) -> bool {
        if !std::mem::replace(&mut self.armed, false) {
            return false;
        }
        self.bus
            .upgrade()
            .is_some_and(|bus| bus.unsubscribe(self.id))
    }
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        self.release();
    }
}
