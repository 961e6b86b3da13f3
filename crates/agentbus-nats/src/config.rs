//! [`BridgeConfig`]: what a bridge sends and receives, and how.

use std::sync::Arc;
use std::time::Duration;

use agentbus::{Event, EventFilter, EventTypeSet};

/// How events travel through NATS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Core NATS: at most once, fastest; losses are counted
    /// ([`BridgeStats::incoming_lost`](crate::BridgeStats::incoming_lost)).
    #[default]
    Core,
    /// JetStream: a durable stream, a durable consumer per bridge name, acks,
    /// server-side and receive-side deduplication.
    JetStream,
}

/// What a JetStream bridge does when its outgoing buffer is full (the server
/// is unreachable, or slower than the local publishers): the core's
/// [`agentbus::Overflow`], re-exported here.
///
/// - [`Wait`](Overflow::Wait) (the default): publishers on the local bus
///   wait (their `publish` blocks the thread until there is room): slower,
///   nothing lost. A publish from one of the bridge's own threads drops and
///   counts instead, since that thread is the one that makes room.
/// - [`DropOldest`](Overflow::DropOldest): the oldest events not yet handed
///   to NATS are dropped and counted in
///   [`BridgeStats::outgoing_dropped`](crate::BridgeStats::outgoing_dropped).
/// - [`DropNewest`](Overflow::DropNewest): the event being published is
///   dropped and counted the same way; the buffered ones are kept.
///
/// Core mode always drops the oldest and counts it, whatever the policy.
pub use agentbus::Overflow;

/// Where a JetStream bridge's durable consumer starts the first time it is
/// created (afterwards it always resumes where it stopped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// Events published after the consumer was created. The default.
    #[default]
    New,
    /// Everything the stream still holds.
    All,
}

/// Which events may cross, either way: any of these filters. `None` lets
/// every event through; an empty list lets none through.
pub(crate) type Scope = Option<Arc<[EventFilter]>>;

/// Whether `event` is in `scope`: some filter of it
/// [matches](EventFilter::matches) the event.
pub(crate) fn in_scope(scope: &Scope, event: &Event) -> bool {
    scope
        .as_deref()
        .is_none_or(|filters| filters.iter().any(|filter| filter.matches(event)))
}

/// The settings of a [`NatsBridge`](crate::NatsBridge); every setter
/// returns the changed config.
///
/// ```
/// use agentbus::{EventType, EventTypeSet};
/// use agentbus_nats::{BridgeConfig, Overflow};
///
/// let config = BridgeConfig::default()
///     .name("worker-1")
///     .jetstream(true)
///     .outgoing_types(EventTypeSet::from(EventType::TaskCompleted))
///     .circles([5, 6])
///     .overflow(Overflow::DropOldest);
/// assert_eq!(config.subject_prefix(), "agentbus");
/// assert_eq!(config.scope_filters().map(<[_]>::len), Some(2));
/// ```
#[derive(Clone)]
pub struct BridgeConfig {
    pub(crate) name: Option<String>,
    pub(crate) prefix: String,
    pub(crate) mode: Mode,
    pub(crate) outgoing_types: EventTypeSet,
    pub(crate) incoming_types: EventTypeSet,
    pub(crate) scope: Scope,
    pub(crate) outgoing_buffer: usize,
    pub(crate) overflow: Overflow,
    pub(crate) subscription_capacity: usize,
    pub(crate) max_event_bytes: usize,
    pub(crate) acks_in_flight: usize,
    pub(crate) ack_timeout: Duration,
    pub(crate) ack_wait: Duration,
    pub(crate) dedup_window: usize,
    pub(crate) stream_name: Option<String>,
    pub(crate) max_age: Duration,
    pub(crate) start_from: StartFrom,
    pub(crate) max_reconnect_delay: Duration,
    pub(crate) worker_threads: usize,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            name: None,
            prefix: "agentbus".to_owned(),
            mode: Mode::Core,
            outgoing_types: EventTypeSet::all(),
            incoming_types: EventTypeSet::all(),
            scope: None,
            outgoing_buffer: 65_536,
            overflow: Overflow::Wait,
            subscription_capacity: 65_536,
            max_event_bytes: 1024 * 1024,
            acks_in_flight: 256,
            ack_timeout: Duration::from_secs(5),
            ack_wait: Duration::from_secs(10),
            dedup_window: 100_000,
            stream_name: None,
            max_age: Duration::from_secs(24 * 60 * 60),
            start_from: StartFrom::New,
            max_reconnect_delay: Duration::from_secs(2),
            worker_threads: 2,
        }
    }
}

impl std::fmt::Debug for BridgeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeConfig")
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .field("mode", &self.mode)
            .field("outgoing_types", &self.outgoing_types)
            .field("incoming_types", &self.incoming_types)
            .field("scope", &self.scope)
            .field("outgoing_buffer", &self.outgoing_buffer)
            .field("overflow", &self.overflow)
            .finish_non_exhaustive()
    }
}

impl BridgeConfig {
    /// This process's name on the bus: the `Agentbus-Origin` header of what
    /// it sends and, in JetStream mode, the name of its durable consumer, so
    /// a restarted process with the same name resumes where it stopped. Give
    /// every process its own. Default: `<host>-<pid>` (no resume across
    /// restarts).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The subject prefix: events go out on `<prefix>.<dotted type>`, e.g.
    /// `agentbus.task.completed`. Default `agentbus`.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The subject prefix in use.
    pub fn subject_prefix(&self) -> &str {
        &self.prefix
    }

    /// JetStream mode (`true`) or core mode (`false`, the default).
    #[must_use]
    pub fn jetstream(mut self, enabled: bool) -> Self {
        self.mode = if enabled { Mode::JetStream } else { Mode::Core };
        self
    }

    /// Sets the mode.
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Which local event types go out (all by default).
    #[must_use]
    pub fn outgoing_types(mut self, types: impl Into<EventTypeSet>) -> Self {
        self.outgoing_types = types.into();
        self
    }

    /// Which event types are taken in from NATS (all by default). The bridge
    /// subscribes to just these subjects.
    #[must_use]
    pub fn incoming_types(mut self, types: impl Into<EventTypeSet>) -> Self {
        self.incoming_types = types.into();
        self
    }

    /// Only events that one of these filters
    /// [matches](EventFilter::matches) cross the bridge, either way.
    /// Replaces the scope set before; an empty list lets nothing cross.
    /// Default: every event (within [`outgoing_types`](Self::outgoing_types)
    /// and [`incoming_types`](Self::incoming_types)).
    ///
    /// Publishers on the local bus run this check inline, one filter after
    /// another: keep the list short.
    ///
    /// ```
    /// use agentbus::{Event, EventFilter, EventType};
    /// use agentbus_nats::BridgeConfig;
    ///
    /// // Circle 5's events, and project 9's task completions.
    /// let config = BridgeConfig::default().scope([
    ///     EventFilter::new().circle_id(5),
    ///     EventFilter::new().project_id(9).event_type(EventType::TaskCompleted),
    /// ]);
    /// assert_eq!(config.scope_filters().map(<[_]>::len), Some(2));
    /// ```
    #[must_use]
    pub fn scope(mut self, filters: impl IntoIterator<Item = EventFilter>) -> Self {
        self.scope = Some(filters.into_iter().collect());
        self
    }

    /// The filters of the [scope](Self::scope), `None` when every event may
    /// cross.
    pub fn scope_filters(&self) -> Option<&[EventFilter]> {
        self.scope.as_deref()
    }

    /// Only events of these circles cross the bridge, either way (an event
    /// without a circle does not). Default: every event.
    ///
    /// A shorthand for [`scope`](Self::scope): each filter of the scope (or
    /// [`EventFilter::new()`] when none is set) becomes one filter per
    /// circle, with the circle replaced. So `circles([5, 6])` then
    /// `projects([9])` is the scope "circle 5 and project 9, or circle 6 and
    /// project 9", in either order.
    ///
    /// ```
    /// use agentbus::{Event, EventFilter, EventType};
    /// use agentbus_nats::BridgeConfig;
    ///
    /// let config = BridgeConfig::default().circles([5, 6]).projects([9]);
    /// assert_eq!(
    ///     config.scope_filters(),
    ///     Some(&[
    ///         EventFilter::new().circle_id(5).project_id(9),
    ///         EventFilter::new().circle_id(6).project_id(9),
    ///     ][..])
    /// );
    /// ```
    #[must_use]
    pub fn circles(self, circles: impl IntoIterator<Item = i64>) -> Self {
        self.narrow(circles, EventFilter::circle_id)
    }

    /// Only events of these projects cross the bridge, either way (an event
    /// without a project does not). Default: every event.
    ///
    /// A shorthand for [`scope`](Self::scope), like
    /// [`circles`](Self::circles): each filter of the scope becomes one per
    /// project, with the project replaced.
    #[must_use]
    pub fn projects(self, projects: impl IntoIterator<Item = i64>) -> Self {
        self.narrow(projects, EventFilter::project_id)
    }

    /// Replaces one criterion of every scope filter with each of `values`
    /// in turn, dropping filters that become equal.
    fn narrow(
        mut self,
        values: impl IntoIterator<Item = i64>,
        criterion: fn(EventFilter, i64) -> EventFilter,
    ) -> Self {
        let values: Vec<i64> = values.into_iter().collect();
        let current: Vec<EventFilter> = match self.scope.take() {
            Some(filters) => filters.to_vec(),
            None => vec![EventFilter::new()],
        };
        let mut narrowed: Vec<EventFilter> = Vec::with_capacity(current.len() * values.len());
        for filter in &current {
            for &value in &values {
                let filter = criterion(filter.clone(), value);
                if !narrowed.contains(&filter) {
                    narrowed.push(filter);
                }
            }
        }
        self.scope = Some(narrowed.into());
        self
    }

    /// How many local events may wait to go out (default 65,536). In core
    /// mode a full buffer drops its oldest event; in JetStream mode the
    /// [`overflow`](Self::overflow) policy decides.
    #[must_use]
    pub fn outgoing_buffer(mut self, capacity: usize) -> Self {
        self.outgoing_buffer = capacity.max(1);
        self
    }

    /// What a JetStream bridge does with a full outgoing buffer (default
    /// [`Overflow::Wait`]). Core mode always drops the oldest and counts it.
    #[must_use]
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// How many incoming messages the NATS client buffers before it drops
    /// (core mode; default 65,536). Drops are found and counted anyway.
    #[must_use]
    pub fn subscription_capacity(mut self, capacity: usize) -> Self {
        self.subscription_capacity = capacity.max(1);
        self
    }

    /// The largest event, as JSON, that is sent or accepted (default 1 MiB,
    /// NATS's default payload limit). Larger ones are counted and skipped.
    #[must_use]
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// JetStream: how many publish acks may be outstanding (default 256).
    #[must_use]
    pub fn acks_in_flight(mut self, count: usize) -> Self {
        self.acks_in_flight = count.max(1);
        self
    }

    /// JetStream: how long to wait for a publish ack before sending again
    /// (default 5 s; the server drops the duplicate by its `Nats-Msg-Id`).
    #[must_use]
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// JetStream: how long the server waits for this bridge's ack of a
    /// delivered event before delivering it again (default 10 s).
    #[must_use]
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.ack_wait = wait;
        self
    }

    /// JetStream: how many recently delivered event ids are remembered to
    /// drop redeliveries (default 100,000; 0 turns it off).
    #[must_use]
    pub fn dedup_window(mut self, ids: usize) -> Self {
        self.dedup_window = ids;
        self
    }

    /// JetStream: the stream's name (default: the prefix in upper case, with
    /// characters a stream name cannot hold replaced by `_`).
    #[must_use]
    pub fn stream_name(mut self, name: impl Into<String>) -> Self {
        self.stream_name = Some(name.into());
        self
    }

    /// JetStream: how long the stream keeps events when the bridge creates
    /// it (default 24 h; zero keeps them until removed). The server's window
    /// for dropping a publish sent twice (by its `Nats-Msg-Id`) is 2
    /// minutes, or this age if it is shorter.
    #[must_use]
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// JetStream: where a new durable consumer starts (default
    /// [`StartFrom::New`]).
    #[must_use]
    pub fn start_from(mut self, start: StartFrom) -> Self {
        self.start_from = start;
        self
    }

    /// The longest pause between reconnection attempts (default 2 s;
    /// attempts start at 10 ms and double).
    #[must_use]
    pub fn max_reconnect_delay(mut self, delay: Duration) -> Self {
        self.max_reconnect_delay = delay;
        self
    }

    /// How many threads the bridge's own Tokio runtime has (default 2):
    /// encoding and decoding then overlap the socket I/O.
    #[must_use]
    pub fn worker_threads(mut self, threads: usize) -> Self {
        self.worker_threads = threads.max(1);
        self
    }

    pub(crate) fn resolved_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".to_owned());
            format!("{host}-{}", std::process::id())
        })
    }

    pub(crate) fn resolved_stream_name(&self) -> String {
        self.stream_name.clone().unwrap_or_else(|| {
            self.prefix
                .chars()
                .map(|c| match c {
                    'a'..='z' => c.to_ascii_uppercase(),
                    'A'..='Z' | '0'..='9' | '-' | '_' => c,
                    _ => '_',
                })
                .collect()
        })
    }
}
