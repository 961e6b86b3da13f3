//! [`EventFilter`]: which events, said once for the whole workspace.
//!
//! The bus history ([`HistoryQuery`](crate::HistoryQuery)), the store's
//! reads, the web API's query parameters, the CLI's filter flags and the
//! NATS bridge all select events with this one type, so a criterion means
//! the same wherever it is written.

use std::fmt;

use crate::event::Event;
use crate::event_type::EventTypeSet;
use crate::id::EventId;
use crate::scope::Scope;

/// Which events: a set of types, a circle, a source agent, a project and a
/// causal chain.
///
/// An event matches when it meets every criterion set:
///
/// - its type is in the [type set](Self::event_type) (every type unless set);
/// - its `circle_id`, `source_agent_id` and `project_id` equal the ones set;
///   an event without such a field never matches a criterion on it;
/// - it belongs to the [chain](Self::correlation_id) set.
///
/// The default filter matches every event.
///
/// ```
/// use agentbus::{Event, EventFilter, EventType};
///
/// let filter = EventFilter::new()
///     .event_type([EventType::TaskCompleted, EventType::TaskFailed])
///     .circle_id(5);
/// assert!(filter.matches(&Event::new(EventType::TaskFailed).with_circle(5)));
/// assert!(!filter.matches(&Event::new(EventType::TaskFailed).with_circle(6)));
/// assert!(!filter.matches(&Event::new(EventType::TaskFailed)));
/// assert!(!filter.matches(&Event::new(EventType::TaskCreated).with_circle(5)));
/// assert!(EventFilter::default().matches(&Event::new(EventType::TaskCreated)));
/// ```
///
/// The builder methods take the criteria's plain names, so the getters are
/// `get_`-prefixed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EventFilter {
    pub(crate) types: EventTypeSet,
    pub(crate) scope: Scope,
    pub(crate) correlation_id: Option<EventId>,
}

impl Default for EventFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for EventFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventFilter")
            .field("types", &self.types)
            .field("circle_id", &self.scope.circle_id)
            .field("source_agent_id", &self.scope.source_agent_id)
            .field("project_id", &self.scope.project_id)
            .field("correlation_id", &self.correlation_id)
            .finish()
    }
}

impl EventFilter {
    /// Every event.
    pub const fn new() -> Self {
        Self {
            types: EventTypeSet::all(),
            scope: Scope::ANY,
            correlation_id: None,
        }
    }

    /// Only events of these types: one [`EventType`](crate::EventType) or an
    /// [`EventTypeSet`]. Replaces an earlier type criterion; an empty set
    /// matches nothing.
    #[must_use]
    pub fn event_type(mut self, types: impl Into<EventTypeSet>) -> Self {
        self.types = types.into();
        self
    }

    /// Only events of circle `circle_id`.
    #[must_use]
    pub const fn circle_id(mut self, circle_id: i64) -> Self {
        self.scope.circle_id = Some(circle_id);
        self
    }

    /// Only events from agent `agent_id`.
    #[must_use]
    pub const fn source_agent_id(mut self, agent_id: i64) -> Self {
        self.scope.source_agent_id = Some(agent_id);
        self
    }

    /// Only events of project `project_id`.
    #[must_use]
    pub const fn project_id(mut self, project_id: i64) -> Self {
        self.scope.project_id = Some(project_id);
        self
    }

    /// Only the events of one causal chain: the event `id` that started it
    /// and every event whose [`Event::correlation_id`] is `id`.
    ///
    /// An event belongs to the chain its `correlation_id` names, or, when it
    /// has none, to the chain its own id starts. So a chain is named by its
    /// first event's id, and an event that is itself part of another chain
    /// (it has a `correlation_id`) does not start one.
    ///
    /// ```
    /// use agentbus::{Event, EventFilter, EventType};
    ///
    /// let task = Event::new(EventType::TaskCompleted);
    /// let call = Event::new(EventType::AgentToolExecuted).caused_by(&task);
    /// let memory = Event::new(EventType::MemoryShared).caused_by(&call);
    /// let chain = EventFilter::new().correlation_id(task.id);
    /// assert!(chain.matches(&task) && chain.matches(&call) && chain.matches(&memory));
    /// assert!(!chain.matches(&Event::new(EventType::TaskCompleted)));
    /// // `call` is in `task`'s chain, so it starts none of its own.
    /// assert!(!EventFilter::new().correlation_id(call.id).matches(&call));
    /// ```
    #[must_use]
    pub const fn correlation_id(mut self, id: EventId) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// The event types that match (every type unless set).
    pub const fn get_event_types(&self) -> EventTypeSet {
        self.types
    }

    /// The circle required, if any.
    pub const fn get_circle_id(&self) -> Option<i64> {
        self.scope.circle_id
    }

    /// The source agent required, if any.
    pub const fn get_source_agent_id(&self) -> Option<i64> {
        self.scope.source_agent_id
    }

    /// The project required, if any.
    pub const fn get_project_id(&self) -> Option<i64> {
        self.scope.project_id
    }

    /// The chain required, if any.
    pub const fn get_correlation_id(&self) -> Option<EventId> {
        self.correlation_id
    }

    /// Whether `event` meets every criterion.
    #[inline]
    pub fn matches(&self, event: &Event) -> bool {
        self.types.contains(event.event_type) && self.matches_beyond_type(event)
    }

    /// Whether `event` meets every criterion but the type, for callers that
    /// checked the type already (the history ring reads it from its slots).
    #[inline]
    pub(crate) fn matches_beyond_type(&self, event: &Event) -> bool {
        self.scope.admits(event)
            && self
                .correlation_id
                .is_none_or(|chain| event.chain_id() == chain)
    }
}
