//! Building a subscription ([`SubscriptionBuilder`]) and scoping one to a
//! value's lifetime ([`SubscriptionGuard`]).

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc as StdArc;

use crate::bus::{EventBus, WeakEventBus};
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

    /// A name for logs (defaults to the subscription id, `sub-N`).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
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
        self.bus
            .register(self.types, self.name, self.scope, self.filter, handler)
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
