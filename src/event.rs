//! [`Event`]: what is published, recorded in history and handed to handlers.

use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::{DecodeEventError, EncodeEventError};
use crate::event_type::EventType;
use crate::id::EventId;
use crate::trace::{TraceContext, TraceParent, TraceState};
use crate::wire::Rfc3339;

/// One thing that happened, published once and shared by every subscriber.
///
/// # JSON form
///
/// ```json
/// {"id": "019ab3c2-…", "type": "task.completed", "data": {"task_id": 123},
///  "source_agent_id": 1, "circle_id": 5, "project_id": null,
///  "correlation_id": null, "causation_id": null,
///  "timestamp": "2026-11-23T23:54:30.123456789Z",
///  "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
///  "tracestate": "rojo=00f067aa0ba902b7"}
/// ```
///
/// `traceparent` and `tracestate` (the W3C trace context, see
/// [`TraceContext`]) are absent when unset; JSON without them decodes with
/// none. A `tracestate` without a `traceparent`, or either one breaking the
/// W3C rules, is a [`DecodeEventError`].
///
/// The timestamp is RFC 3339 in UTC with nanoseconds, so a round trip is exact.
/// On decode `"type"` is required; a missing `id`, `timestamp` or `data` gets a
/// fresh id, the current time and `{}`. A fresh id always carries the real
/// clock's time, whatever `timestamp` claims, so input can neither back- nor
/// future-date ids. Unknown fields are ignored, so newer
/// producers can add fields. Malformed JSON, unknown type names and fields of
/// the wrong type are a [`DecodeEventError`], never a panic. An event from a
/// newer build with a type this build lacks is such an error, one that
/// names the type ([`DecodeEventError::unknown_type`]) so the caller can skip
/// it or keep its JSON; it is never retyped or dropped silently.
///
/// # Example
///
/// ```
/// use agentbus::{Event, EventType};
/// use serde_json::json;
///
/// let event = Event::new(EventType::TaskCompleted)
///     .with_data(json!({"task_id": 123, "result": "success"}))
///     .with_source_agent(1)
///     .with_circle(5);
/// assert_eq!(event.data["task_id"], 123);
/// assert_eq!(event.project_id, None);
///
/// let json = event.to_json().unwrap();
/// assert_eq!(Event::from_json(&json).unwrap(), event);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Unique, time-ordered id, set by [`Event::new`].
    pub id: EventId,
    /// What happened; the JSON field is `"type"`.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The payload. An object by convention (`{}` from [`Event::new`]).
    pub data: Value,
    /// The agent that triggered the event.
    pub source_agent_id: Option<i64>,
    /// The circle the event belongs to.
    pub circle_id: Option<i64>,
    /// The project the event belongs to.
    pub project_id: Option<i64>,
    /// The chain this event belongs to: the id of the event that started it.
    /// `None` for an event that starts no chain and was caused by none (an
    /// event with `None` is the root of the chain named by its own id).
    /// Set by [`with_correlation`](Self::with_correlation),
    /// [`caused_by`](Self::caused_by), or by the bus when the event is
    /// published from inside a handler (see
    /// [`EventBus::publish`](crate::EventBus::publish)).
    pub correlation_id: Option<EventId>,
    /// The event whose handling published this one; set like
    /// `correlation_id`.
    pub causation_id: Option<EventId>,
    /// When the event was created.
    #[serde(serialize_with = "Rfc3339::serialize_time")]
    pub timestamp: SystemTime,
    /// The W3C trace context of the span that published the event, written
    /// as the JSON fields `"traceparent"` and `"tracestate"`. Set by
    /// [`with_trace_context`](Self::with_trace_context), or by the bus when
    /// the event is published from inside a handler of an event that has
    /// one (see [`EventBus::publish`](crate::EventBus::publish)).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub trace_context: Option<TraceContext>,
}

impl Event {
    /// A new event of `event_type` with empty data, a fresh id and the
    /// current time. Makes no system call beyond reading the clock.
    pub fn new(event_type: EventType) -> Self {
        let timestamp = SystemTime::now();
        Self {
            id: EventId::generate(timestamp),
            event_type,
            data: Value::Object(Map::new()),
            source_agent_id: None,
            circle_id: None,
            project_id: None,
            correlation_id: None,
            causation_id: None,
            timestamp,
            trace_context: None,
        }
    }

    /// Sets the payload.
    #[must_use]
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }

    /// Sets the agent that triggered the event.
    #[must_use]
    pub fn with_source_agent(mut self, agent_id: i64) -> Self {
        self.source_agent_id = Some(agent_id);
        self
    }

    /// Sets the circle the event belongs to.
    #[must_use]
    pub fn with_circle(mut self, circle_id: i64) -> Self {
        self.circle_id = Some(circle_id);
        self
    }

    /// Sets the project the event belongs to.
    #[must_use]
    pub fn with_project(mut self, project_id: i64) -> Self {
        self.project_id = Some(project_id);
        self
    }

    /// Puts the event in the chain `correlation_id`.
    #[must_use]
    pub fn with_correlation(mut self, correlation_id: EventId) -> Self {
        self.correlation_id = Some(correlation_id);
        self
    }

    /// Sets the W3C trace context (see [`TraceContext`] for parsing and
    /// validation).
    ///
    /// ```
    /// use agentbus::{Event, EventType, TraceContext};
    ///
    /// let context =
    ///     TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None)?;
    /// let event = Event::new(EventType::TaskCreated).with_trace_context(context);
    /// assert!(event.trace_context.unwrap().traceparent.sampled());
    /// # Ok::<(), agentbus::ParseTraceContextError>(())
    /// ```
    #[must_use]
    pub fn with_trace_context(mut self, trace_context: TraceContext) -> Self {
        self.trace_context = Some(trace_context);
        self
    }

    /// Marks the event as caused by `parent`: its causation id becomes the
    /// parent's id, and it joins the parent's chain (the parent's correlation
    /// id, or the parent's own id when the parent starts the chain).
    ///
    /// ```
    /// use agentbus::{Event, EventType};
    ///
    /// let task = Event::new(EventType::TaskCompleted);
    /// let call = Event::new(EventType::AgentToolExecuted).caused_by(&task);
    /// let memory = Event::new(EventType::MemoryShared).caused_by(&call);
    /// assert_eq!(call.causation_id, Some(task.id));
    /// assert_eq!(memory.causation_id, Some(call.id));
    /// assert_eq!(memory.correlation_id, Some(task.id));
    /// ```
    #[must_use]
    pub fn caused_by(mut self, parent: &Event) -> Self {
        self.causation_id = Some(parent.id);
        self.correlation_id = Some(parent.chain_id());
        self
    }

    /// The causal chain the event belongs to: the one its `correlation_id`
    /// names, or, without one, the chain its own id starts. The one
    /// statement of that rule ([`EventFilter::correlation_id`] selects by
    /// it; the stores' SQL renders it).
    ///
    /// [`EventFilter::correlation_id`]: crate::EventFilter::correlation_id
    #[inline]
    pub(crate) fn chain_id(&self) -> EventId {
        self.correlation_id.unwrap_or(self.id)
    }

    /// Encodes the event as JSON (see [`Event`]'s JSON form).
    ///
    /// Fails only for a timestamp before 1970 or after 9999.
    pub fn to_json(&self) -> Result<String, EncodeEventError> {
        serde_json::to_string(self).map_err(EncodeEventError::new)
    }

    /// Decodes an event from JSON (see [`Event`]'s JSON form).
    ///
    /// Use this rather than `serde_json::from_str::<Event>`: both reject the
    /// same input, but only this one's error tells an unknown event type
    /// apart ([`DecodeEventError::kind`]).
    ///
    /// ```
    /// use agentbus::{Event, EventType};
    ///
    /// let event = Event::from_json(r#"{"type": "memory.shared", "circle_id": 5}"#).unwrap();
    /// assert_eq!(event.event_type, EventType::MemoryShared);
    /// assert!(event.data.as_object().unwrap().is_empty());
    ///
    /// let newer = Event::from_json(r#"{"type": "memory.forgotten"}"#).unwrap_err();
    /// assert_eq!(newer.unknown_type(), Some("memory.forgotten"));
    /// assert!(Event::from_json(r#"{"type": "memory.shared", "circle_id": "five"}"#).is_err());
    /// ```
    pub fn from_json(json: &str) -> Result<Self, DecodeEventError> {
        DecodeEventError::catch(|| serde_json::from_str(json))
    }

    /// [`from_json`](Self::from_json) for bytes, such as a message payload;
    /// bytes that are not UTF-8 are a [`DecodeEventError`] too.
    ///
    /// ```
    /// use agentbus::{Event, EventType};
    ///
    /// let event = Event::from_json_slice(br#"{"type": "task.created"}"#).unwrap();
    /// assert_eq!(event.event_type, EventType::TaskCreated);
    /// ```
    pub fn from_json_slice(json: &[u8]) -> Result<Self, DecodeEventError> {
        DecodeEventError::catch(|| serde_json::from_slice(json))
    }

    /// [`from_json`](Self::from_json) for a parsed JSON value, such as a
    /// `jsonb` column; the error's line and column are 0.
    ///
    /// ```
    /// use agentbus::Event;
    /// use serde_json::json;
    ///
    /// let err = Event::from_json_value(json!({"type": "agent.dreamed"})).unwrap_err();
    /// assert_eq!(err.unknown_type(), Some("agent.dreamed"));
    /// ```
    pub fn from_json_value(json: Value) -> Result<Self, DecodeEventError> {
        DecodeEventError::catch(|| serde_json::from_value(json))
    }
}

/// The wire shape, with the optional fields the decoder fills in.
#[derive(Deserialize)]
struct WireEvent {
    #[serde(rename = "type")]
    event_type: EventType,
    id: Option<EventId>,
    #[serde(default = "empty_object")]
    data: Value,
    source_agent_id: Option<i64>,
    circle_id: Option<i64>,
    project_id: Option<i64>,
    correlation_id: Option<EventId>,
    causation_id: Option<EventId>,
    timestamp: Option<Rfc3339>,
    traceparent: Option<TraceParent>,
    tracestate: Option<TraceState>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireEvent::deserialize(deserializer)?;
        let timestamp = wire.timestamp.map_or_else(SystemTime::now, |t| t.0);
        let trace_context = match (wire.traceparent, wire.tracestate) {
            (Some(traceparent), tracestate) => Some(TraceContext {
                traceparent,
                tracestate,
            }),
            (None, None) => None,
            (None, Some(_)) => {
                return Err(serde::de::Error::custom("a tracestate needs a traceparent"))
            }
        };
        Ok(Event {
            // From the real clock, not the claimed timestamp (see `generate`).
            id: wire
                .id
                .unwrap_or_else(|| EventId::generate(SystemTime::now())),
            event_type: wire.event_type,
            data: wire.data,
            source_agent_id: wire.source_agent_id,
            circle_id: wire.circle_id,
            project_id: wire.project_id,
            correlation_id: wire.correlation_id,
            causation_id: wire.causation_id,
            timestamp,
            trace_context,
        })
    }
}
