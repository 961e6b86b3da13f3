//! [`BridgeConfig`]: what a bridge sends and receives, and how.

use std::sync::Arc;
use std::time::Duration;

use agentbus::{Event, EventTypeSet};

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

/// The circle and project check both directions run. Not an
/// [`agentbus::EventFilter`]: that holds one circle and one project, the
/// bridge a set of each; the rule is the same (an event without the field
/// never matches).
pub(crate) type ScopeCheck = Arc<dyn Fn(&Event) -> bool + Send + Sync>;

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
/// ```
#[derive(Clone)]
pub struct BridgeConfig {
    pub(crate) name: Option<String>,
    pub(crate) prefix: String,
    pub(crate) mode: Mode,
    pub(crate) outgoing_types: EventTypeSet,
    pub(crate) incoming_types: EventTypeSet,
    pub(crate) circles: Option<Arc<[i64]>>,
    pub(crate) projects: Option<Arc<[i64]>>,
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
            circles: None,
            projects: None,
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
            .field("circles", &self.circles)
            .field("projects", &self.projects)
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

    /// Only events of these circles cross the bridge, either way (an event
    /// without a circle does not). Default: every event.
    #[must_use]
    pub fn circles(mut self, circles: impl IntoIterator<Item = i64>) -> Self {
        self.circles = Some(circles.into_iter().collect());
        self
    }

    /// Only events of these projects cross the bridge, either way (an event
    /// without a project does not). Default: every event.
    #[must_use]
    pub fn projects(mut self, projects: impl IntoIterator<Item = i64>) -> Self {
        self.projects = Some(projects.into_iter().collect());
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
    /// it (default 24 h).
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

    /// The circle and project filter, `None` when both are open.
    pub(crate) fn scope_filter(&self) -> Option<ScopeCheck> {
        let circles = self.circles.clone();
        let projects = self.projects.clone();
        if circles.is_none() && projects.is_none() {
            return None;
        }
        Some(Arc::new(move |event: &Event| {
            let allowed = |set: &Option<Arc<[i64]>>, value: Option<i64>| match set {
                None => true,
                Some(set) => value.is_some_and(|v| set.contains(&v)),
            };
            allowed(&circles, event.circle_id) && allowed(&projects, event.project_id)
        }))
    }
}
