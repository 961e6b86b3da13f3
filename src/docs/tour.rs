//! The whole API on one page. Every block here is a doctest.
//!
//! # The bus
//!
//! ```
//! use agentbus::{event_bus, BuildError, EventBus};
//!
//! let bus = EventBus::new(); // history of 1000 events
//! let small = EventBus::builder().history_capacity(10).build(); // exactly 10; 0 turns history off
//! let checked = EventBus::builder().history_capacity(1 << 30).try_build();
//! assert!(matches!(checked, Err(BuildError::HistoryCapacityTooLarge { .. })));
//! let global: &'static EventBus = event_bus(); // the process-wide bus
//! let same_bus = bus.clone(); // a cheap handle to the same bus
//! let weak = bus.downgrade(); // a handle that does not keep it alive
//! assert!(weak.upgrade().is_some());
//! # let _ = (small, global, same_bus);
//! ```
//!
//! `build()` lowers a capacity above
//! [`MAX_HISTORY_CAPACITY`](crate::MAX_HISTORY_CAPACITY) to it with a
//! `tracing` warning; `try_build()` returns the error instead.
//!
//! # Events
//!
//! ```
//! use agentbus::{Event, EventType};
//! use serde_json::json;
//!
//! let event = Event::new(EventType::TaskCompleted) // fresh id and timestamp, data = {}
//!     .with_data(json!({"task_id": 123, "result": "success"}))
//!     .with_source_agent(1)
//!     .with_circle(5)
//!     .with_project(7);
//!
//! let json = event.to_json()?; // Result<String, EncodeEventError>
//! let decoded = Event::from_json(&json)?; // Result<Event, DecodeEventError>
//! assert_eq!(decoded, event);
//!
//! // A follow-up joins the chain of the event that caused it.
//! let reaction = Event::new(EventType::AgentToolExecuted).caused_by(&event);
//! assert_eq!(reaction.causation_id, Some(event.id));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Event`](crate::Event) documents the JSON form. The 24
//! [`EventType`](crate::EventType)s each have a stable dotted name
//! (`task.completed`) used by `Display`, `FromStr` and serde.
//!
//! # Subscribing
//!
//! ```
//! use std::sync::Arc;
//!
//! use agentbus::{Event, EventBus, EventType};
//!
//! let bus = EventBus::new();
//! // A sync handler, called inline on the publishing thread.
//! bus.subscribe(EventType::TaskCompleted, |event: &Event| {
//!     println!("task {} done", event.data["task_id"]);
//! });
//!
//! // An async handler; the async handlers of one publish run concurrently.
//! bus.subscribe_async(EventType::MemoryShared, |event: Arc<Event>| async move {
//!     println!("new knowledge: {}", event.data["content"]);
//! });
//!
//! // A filter, a name for the logs, then the handler
//! // (or .async_handler(..), or .stream(capacity)).
//! bus.subscription(EventType::TaskCompleted)
//!     .filter(|event: &Event| event.data["priority"] == "high")
//!     .name("high-priority-watcher")
//!     .handler(|event: &Event| println!("urgent: {}", event.data["task_id"]));
//!
//! // Field filters on the ids every event carries: checked inline, cheaper
//! // than the same test as a closure; they combine with one.
//! bus.subscription(EventType::TaskCompleted)
//!     .circle_id(5) // also .source_agent_id(..), .project_id(..)
//!     .handler(|event: &Event| println!("circle 5 finished {}", event.data["task_id"]));
//!
//! // Several types at once, or all of them.
//! bus.subscribe([EventType::TaskStarted, EventType::TaskFailed], |event: &Event| {
//!     println!("{}", event.event_type);
//! });
//! bus.subscribe_all(|event: &Event| println!("{}", event.event_type));
//!
//! // A handler returns () or Result<(), E: Display>; an Err is a failed delivery.
//! bus.subscribe(EventType::SystemError, |_event: &Event| -> Result<(), String> {
//!     Err("pager service unreachable".to_owned())
//! });
//! let outcome = bus.publish_blocking(Event::new(EventType::SystemError));
//! assert_eq!(outcome.failed, 1);
//! ```
//!
//! # Unsubscribing
//!
//! ```
//! use agentbus::{Event, EventBus, EventType};
//!
//! let bus = EventBus::new();
//! let id = bus.subscribe(EventType::TaskStarted, |_event: &Event| {});
//! assert!(bus.unsubscribe(id)); // true the first time
//! assert!(!bus.unsubscribe(id)); // then false: ids are never reused
//! assert!(!EventBus::new().unsubscribe(id)); // an id also names its bus
//!
//! {
//!     let _guard = bus.guard(bus.subscribe(EventType::TaskStarted, |_event: &Event| {}));
//!     assert_eq!(bus.stats().active_subscribers, 1);
//! } // unsubscribed here
//! assert_eq!(bus.stats().active_subscribers, 0);
//!
//! let guard = bus.guard(bus.subscribe(EventType::TaskStarted, |_event: &Event| {}));
//! let id = guard.detach(); // keep it after all
//! assert!(bus.unsubscribe(id));
//! ```
//!
//! A guard holds no strong reference to the bus: if the bus is gone,
//! dropping it does nothing.
//!
//! # Publishing
//!
//! ```
//! use agentbus::{Event, EventBus, EventType, PublishOutcome};
//!
//! let bus = EventBus::new();
//! # futures::executor::block_on(async {
//! // From async code: resolves when every handler (sync and async) has finished.
//! let outcome: PublishOutcome = bus.publish(Event::new(EventType::TaskCreated)).await;
//! # let _ = outcome;
//! # });
//! // From sync code: no runtime needed.
//! let outcome = bus.publish_blocking(Event::new(EventType::TaskCreated));
//! println!("{} delivered, {} failed", outcome.delivered, outcome.failed);
//!
//! // On a hot path, one Publisher per thread or task.
//! let mut publisher = bus.publisher();
//! publisher.publish_blocking(Event::new(EventType::TaskCreated));
//! assert_eq!(bus.stats().events_published, 3);
//! ```
//!
//! Both accept an `Event` or an `Arc<Event>`. A [`Publisher`](crate::Publisher)
//! gives the same outcomes, history and stats and sees every subscribe and
//! unsubscribe at once, but keeps its own references to the subscriber
//! tables; its type's docs say what that costs.
//!
//! # History
//!
//! ```
//! use agentbus::{Event, EventBus, EventType, HistoryQuery};
//!
//! let bus = EventBus::new();
//! bus.publish_blocking(Event::new(EventType::TaskCompleted).with_circle(1));
//! let last_10_completions =
//!     bus.history(&HistoryQuery::new().event_type(EventType::TaskCompleted).limit(10));
//! let circle_1 = bus.history(&HistoryQuery::new().circle_id(1));
//! let narrow = bus.history(&HistoryQuery::new().source_agent_id(7).project_id(2).circle_id(1));
//! assert_eq!((last_10_completions.len(), circle_1.len(), narrow.len()), (1, 1, 0));
//!
//! bus.clear_history(); // forget and release every recorded event
//! assert!(bus.history(&HistoryQuery::new()).is_empty());
//! ```
//!
//! `history` returns `Vec<Arc<Event>>`, newest first: the newest `limit`
//! events (100 by default) that match every criterion set. The criteria are
//! an [`EventFilter`](crate::EventFilter), the type the store's reads, the
//! web API and the CLI select events with too; a filter also takes several
//! types at once:
//!
//! ```
//! use agentbus::{Event, EventBus, EventFilter, EventType, HistoryQuery};
//!
//! let bus = EventBus::new();
//! bus.publish_blocking(Event::new(EventType::TaskFailed).with_circle(1));
//! let ends = EventFilter::new()
//!     .event_type([EventType::TaskCompleted, EventType::TaskFailed])
//!     .circle_id(1);
//! assert_eq!(bus.history(&HistoryQuery::from(ends).limit(10)).len(), 1);
//! ```
//!
//! # Streams
//!
//! ```
//! use agentbus::{Event, EventBus, EventType, Lagged, TryRecvError};
//!
//! let bus = EventBus::new();
//! let mut dashboard = bus.stream([EventType::TaskCompleted, EventType::MemoryShared], 2);
//! for _ in 0..3 {
//!     bus.publish_blocking(Event::new(EventType::TaskCompleted));
//! }
//! assert!(matches!(dashboard.try_recv(), Err(TryRecvError::Lagged(1))));
//! assert!(dashboard.try_recv().is_ok());
//! assert!(dashboard.try_recv().is_ok());
//! assert!(matches!(dashboard.try_recv(), Err(TryRecvError::Empty)));
//! # futures::executor::block_on(async {
//! bus.publish_blocking(Event::new(EventType::MemoryShared));
//! // Async: None once the subscription is gone and the buffer drained.
//! match dashboard.recv().await {
//!     Some(Ok(event)) => println!("{} {}", event.event_type, event.data),
//!     Some(Err(Lagged(missed))) => println!("fell behind, missed {missed} events"),
//!     None => {}
//! }
//! # });
//! ```
//!
//! [`EventStream`](crate::EventStream) is also a
//! `Stream<Item = Result<Arc<Event>, Lagged>>`. A filtered or named stream
//! comes from the builder: `bus.subscription(types).filter(..).stream(capacity)`.
//!
//! # Stats and reset
//!
//! ```
//! use agentbus::EventBus;
//!
//! let bus = EventBus::new();
//! let stats = bus.stats();
//! println!(
//!     "{} published, {} delivered, {} handler errors, {} subscribers, {} in history",
//!     stats.events_published,
//!     stats.events_delivered,
//!     stats.handler_errors,
//!     stats.active_subscribers,
//!     stats.history_size,
//! );
//! bus.reset(); // for tests: removes every subscription, clears history, zeroes stats
//! ```
//!
//! `reset` keeps counting subscription ids, so an id from before it stays
//! stale instead of removing a newer subscription.
