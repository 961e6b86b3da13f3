//! [`Publisher`]: a publishing handle for hot paths, which keeps its own
//! references to the subscriber tables. Its behaviour is documented on the
//! type.

use std::fmt;
use std::future::Future;
use std::sync::Arc as StdArc;

use crate::bus::EventBus;
use crate::dispatch::PublishOutcome;
use crate::event::Event;
use crate::table::TableCache;

/// A handle that publishes on one bus and keeps its own references to the
/// bus's subscriber tables; from [`EventBus::publisher`].
///
/// It holds the bus alive, is `Send` and `Sync`, and publishing takes
/// `&mut self`: make one per thread or task (clone the bus for each).
///
/// # Behaviour
///
/// - A publish through a `Publisher` is a publish on its bus: same history,
///   statistics, handler order, filters, error isolation and outcome. Handlers
///   cannot tell the difference.
/// - Subscribing and unsubscribing keep their guarantees: once
///   [`unsubscribe`](crate::EventBus::unsubscribe) returns, no publish that
///   starts afterwards (through any publisher) calls the handler, and a
///   publish that starts after a subscribe returns reaches the new handler.
/// - **What differs: when a removed handler is dropped.** A publisher keeps
///   a reference to the table of each event type it has published, so a
///   handler removed from the bus (and what it captured) is dropped at this
///   publisher's next publish of that type, within 64 of its publishes of
///   other types, or when the publisher is dropped, rather than as soon as
///   the last running publish ends. It is never *called* after its
///   unsubscribe returned. The same delays the end of an
///   [`EventStream`](crate::EventStream) removed by
///   [`reset`](crate::EventBus::reset), since a stream ends when its handler
///   is dropped. Publish on the bus ([`EventBus::publish`],
///   [`EventBus::publish_blocking`]) where handlers must be released at once
///   (say, a handler that owns a connection other code waits to see closed).
/// - A `Drop` of a removed handler's captures that panics is caught, as
///   everywhere else in the bus.
///
/// # Why
///
/// A publish on the bus protects its table with a hazard slot: two plain
/// stores, a compiler fence and two loads, a few nanoseconds (design:
/// [`docs::design`](crate::docs::design)). A `Publisher` checks its type's
/// version counter with one plain load instead, and reloads a table only
/// after it changed. The README's Performance section has the numbers for
/// both.
///
/// ```
/// use agentbus::{Event, EventBus, EventType};
///
/// let bus = EventBus::new();
/// bus.subscribe(EventType::TaskCompleted, |_e: &Event| {});
///
/// // One per thread or task: publishing takes `&mut self`.
/// let mut publisher = bus.publisher();
/// for _ in 0..3 {
///     let outcome = publisher.publish_blocking(Event::new(EventType::TaskCompleted));
///     assert_eq!(outcome.delivered, 1);
/// }
/// assert_eq!(bus.stats().events_published, 3);
/// ```
pub struct Publisher {
    bus: EventBus,
    tables: TableCache,
}

impl EventBus {
    /// A publishing handle for one thread or task that keeps its own
    /// references to the subscriber tables: faster, and little affected by
    /// subscription churn on other types, but a removed handler is dropped
    /// at the handle's next publish rather than at once. See [`Publisher`].
    pub fn publisher(&self) -> Publisher {
        Publisher::new(self.clone())
    }
}

impl Publisher {
    pub(crate) fn new(bus: EventBus) -> Self {
        Self {
            bus,
            tables: TableCache::new(),
        }
    }

    /// Publishes like [`EventBus::publish`].
    pub fn publish(
        &mut self,
        event: impl Into<StdArc<Event>>,
    ) -> impl Future<Output = PublishOutcome> + Send + '_ {
        self.bus.publish_with(event.into(), Some(&mut self.tables))
    }

    /// Publishes like [`EventBus::publish_blocking`].
    pub fn publish_blocking(&mut self, event: impl Into<StdArc<Event>>) -> PublishOutcome {
        self.bus
            .publish_blocking_with(event.into(), Some(&mut self.tables))
    }

    /// The bus and this handle's tables, for the other publish methods.
    pub(crate) fn parts(&mut self) -> (&EventBus, &mut TableCache) {
        (&self.bus, &mut self.tables)
    }

    /// The bus this publishes on.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher").field("bus", &self.bus).finish()
    }
}
