//! [`ReadQuery`]: which stored events to read, in which order, how many.

use std::time::SystemTime;

use agentbus::{Event, EventFilter, EventId, EventTypeSet, Order};

/// Which stored events to read: a sequence range, an [`EventFilter`], time
/// bounds, an [`Order`] (by sequence) and a limit. Every criterion narrows
/// the result; an event without a filtered field (say, no `circle_id`)
/// never matches that criterion.
///
/// Page forwards with `after(last_sequence_seen)`, backwards with
/// `descending().before(first_sequence_seen)`.
///
/// ```
/// use agentbus::EventType;
/// use agentbus_store::{Order, ReadQuery};
///
/// let query = ReadQuery::new()
///     .after(100)
///     .event_type(EventType::TaskCompleted)
///     .circle_id(5)
///     .limit(50);
/// assert_eq!(query.get_after(), 100);
/// assert_eq!(query.get_limit(), 50);
/// assert_eq!(query.get_order(), Order::Ascending);
/// ```
///
/// A filter built elsewhere (from the web API's parameters, the CLI's flags)
/// becomes a query with [`filter`](Self::filter) or `From`:
///
/// ```
/// use agentbus::{EventFilter, EventType};
/// use agentbus_store::ReadQuery;
///
/// let filter = EventFilter::new().event_type(EventType::TaskCompleted).circle_id(5);
/// let query = ReadQuery::from(filter.clone()).after(100).limit(50);
/// assert_eq!(query.get_filter(), &filter);
/// assert_eq!(
///     query,
///     ReadQuery::new().after(100).event_type(EventType::TaskCompleted).circle_id(5).limit(50)
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadQuery {
    pub(crate) after: u64,
    pub(crate) up_to: Option<u64>,
    pub(crate) filter: EventFilter,
    pub(crate) since: Option<SystemTime>,
    pub(crate) until: Option<SystemTime>,
    pub(crate) order: Order,
    pub(crate) limit: usize,
}

impl Default for ReadQuery {
    fn default() -> Self {
        Self::new()
    }
}

impl From<EventFilter> for ReadQuery {
    /// Every stored event `filter` matches, ascending, with no limit.
    fn from(filter: EventFilter) -> Self {
        Self::new().filter(filter)
    }
}

impl ReadQuery {
    /// Every stored event, ascending, with no limit: on a large store, page
    /// with [`limit`](Self::limit) and [`after`](Self::after).
    pub fn new() -> Self {
        Self {
            after: 0,
            up_to: None,
            filter: EventFilter::new(),
            since: None,
            until: None,
            order: Order::Ascending,
            limit: usize::MAX,
        }
    }

    /// Only sequences greater than `sequence` (`0`, the default, is "from the
    /// start": sequences begin at 1).
    #[must_use]
    pub fn after(mut self, sequence: u64) -> Self {
        self.after = sequence;
        self
    }

    /// Only sequences up to and including `sequence`.
    #[must_use]
    pub fn up_to(mut self, sequence: u64) -> Self {
        self.up_to = Some(sequence);
        self
    }

    /// Only sequences less than `sequence` (for paging backwards).
    #[must_use]
    pub fn before(self, sequence: u64) -> Self {
        self.up_to(sequence.saturating_sub(1))
    }

    /// Only the events `filter` matches; replaces every criterion of an
    /// earlier [`filter`](Self::filter), [`event_type`](Self::event_type),
    /// [`circle_id`](Self::circle_id) and the like (sequence and time bounds,
    /// order and limit stay).
    #[must_use]
    pub fn filter(mut self, filter: EventFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Only events of these types: one [`EventType`](agentbus::EventType) or an
    /// [`EventTypeSet`].
    /// Replaces an earlier type filter. See [`EventFilter::event_type`].
    #[must_use]
    pub fn event_type(mut self, types: impl Into<EventTypeSet>) -> Self {
        self.filter = self.filter.event_type(types);
        self
    }

    /// Only events of circle `circle_id`.
    #[must_use]
    pub fn circle_id(mut self, circle_id: i64) -> Self {
        self.filter = self.filter.circle_id(circle_id);
        self
    }

    /// Only events from agent `agent_id`.
    #[must_use]
    pub fn source_agent_id(mut self, agent_id: i64) -> Self {
        self.filter = self.filter.source_agent_id(agent_id);
        self
    }

    /// Only events of project `project_id`.
    #[must_use]
    pub fn project_id(mut self, project_id: i64) -> Self {
        self.filter = self.filter.project_id(project_id);
        self
    }

    /// Only the events of one causal chain, as [`EventFilter::correlation_id`]
    /// defines it (and [`HistoryQuery`](agentbus::HistoryQuery) selects it
    /// from the bus history): the event `correlation_id` that started the
    /// chain (if stored) and every event whose [`Event::correlation_id`] is
    /// `correlation_id`. Both backends answer from indexes (on ids and on
    /// correlation ids).
    ///
    /// ```
    /// use agentbus::{Event, EventType};
    /// use agentbus_store::ReadQuery;
    ///
    /// let task = Event::new(EventType::TaskCompleted);
    /// let call = Event::new(EventType::AgentToolExecuted).caused_by(&task);
    /// let chain = ReadQuery::new().correlation_id(task.id);
    /// assert!(chain.matches(&task) && chain.matches(&call));
    /// assert!(!chain.matches(&Event::new(EventType::TaskCompleted)));
    /// ```
    #[must_use]
    pub fn correlation_id(mut self, correlation_id: EventId) -> Self {
        self.filter = self.filter.correlation_id(correlation_id);
        self
    }

    /// Only events whose timestamp is at or after `at`.
    #[must_use]
    pub fn since(mut self, at: SystemTime) -> Self {
        self.since = Some(at);
        self
    }

    /// Only events whose timestamp is before `at`.
    #[must_use]
    pub fn until(mut self, at: SystemTime) -> Self {
        self.until = Some(at);
        self
    }

    /// The order by sequence (ascending by default).
    #[must_use]
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// Oldest first (the default): shorthand for `order(Order::Ascending)`.
    #[must_use]
    pub fn ascending(self) -> Self {
        self.order(Order::Ascending)
    }

    /// Newest first: shorthand for `order(Order::Descending)`.
    #[must_use]
    pub fn descending(self) -> Self {
        self.order(Order::Descending)
    }

    /// At most `limit` events (no limit unless set).
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// The exclusive lower sequence bound.
    pub fn get_after(&self) -> u64 {
        self.after
    }

    /// The inclusive upper sequence bound, if any.
    pub fn get_up_to(&self) -> Option<u64> {
        self.up_to
    }

    /// The criteria on the events themselves (types, fields, chain).
    pub fn get_filter(&self) -> &EventFilter {
        &self.filter
    }

    /// The event types that match.
    pub fn get_event_types(&self) -> EventTypeSet {
        self.filter.get_event_types()
    }

    /// The circle filter.
    pub fn get_circle_id(&self) -> Option<i64> {
        self.filter.get_circle_id()
    }

    /// The agent filter.
    pub fn get_source_agent_id(&self) -> Option<i64> {
        self.filter.get_source_agent_id()
    }

    /// The project filter.
    pub fn get_project_id(&self) -> Option<i64> {
        self.filter.get_project_id()
    }

    /// The causal chain filter.
    pub fn get_correlation_id(&self) -> Option<EventId> {
        self.filter.get_correlation_id()
    }

    /// The inclusive lower time bound.
    pub fn get_since(&self) -> Option<SystemTime> {
        self.since
    }

    /// The exclusive upper time bound.
    pub fn get_until(&self) -> Option<SystemTime> {
        self.until
    }

    /// The order.
    pub fn get_order(&self) -> Order {
        self.order
    }

    /// The most events returned.
    pub fn get_limit(&self) -> usize {
        self.limit
    }

    /// Whether `event` passes the query's filters (types, fields, time
    /// bounds); sequence bounds, order and limit are not checked.
    ///
    /// ```
    /// use agentbus::{Event, EventType};
    /// use agentbus_store::ReadQuery;
    ///
    /// let query = ReadQuery::new().event_type(EventType::TaskCompleted).circle_id(5);
    /// assert!(query.matches(&Event::new(EventType::TaskCompleted).with_circle(5)));
    /// assert!(!query.matches(&Event::new(EventType::TaskCompleted)));
    /// assert!(!query.matches(&Event::new(EventType::TaskCreated).with_circle(5)));
    /// ```
    pub fn matches(&self, event: &Event) -> bool {
        self.filter.matches(event)
            && self.since.is_none_or(|since| event.timestamp >= since)
            && self.until.is_none_or(|until| event.timestamp < until)
    }
}
