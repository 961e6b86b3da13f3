//! What a bridge puts on the wire besides the event's JSON: subjects and
//! headers.

use std::str::FromStr;

use agentbus::{Event, EventType, TraceContext};
use async_nats::header::{HeaderMap, HeaderName, HeaderValue};
use async_nats::Subject;

/// The sending bridge's name ([`BridgeConfig::name`](crate::BridgeConfig::name)).
pub(crate) const ORIGIN: HeaderName = HeaderName::from_static("Agentbus-Origin");
/// Core mode: the event's id (JetStream mode carries it in `Nats-Msg-Id`).
pub(crate) const EVENT_ID: HeaderName = HeaderName::from_static("Agentbus-Event-Id");
/// Core mode: `<instance> <n>`, a token unique to the connected sending
/// bridge and its sequence number for this event type, from 1.
pub(crate) const SEQUENCE: HeaderName = HeaderName::from_static("Agentbus-Seq");
/// JetStream's deduplication id.
pub(crate) const MSG_ID: HeaderName = HeaderName::from_static("Nats-Msg-Id");
/// The event's W3C `traceparent`, under the W3C header name, so NATS
/// tooling that propagates trace context sees it.
pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// The event's W3C `tracestate`, sent only with a `traceparent`.
pub(crate) const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// `<prefix>.<dotted type>` for every type, built once.
pub(crate) fn subjects(prefix: &str) -> Vec<Subject> {
    EventType::ALL
        .iter()
        .map(|t| Subject::from(format!("{prefix}.{}", t.as_str())))
        .collect()
}

/// The event type a subject names, if it is `<prefix>.<known type>`.
pub(crate) fn subject_type(prefix: &str, subject: &str) -> Result<EventType, ()> {
    subject
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|name| EventType::from_str(name).ok())
        .ok_or(())
}

pub(crate) fn header<'a>(headers: Option<&'a HeaderMap>, name: &HeaderName) -> Option<&'a str> {
    headers?.get(name.clone()).map(HeaderValue::as_str)
}

/// What a bridge stamps on every message.
pub(crate) struct Stamp {
    pub(crate) origin: HeaderValue,
    pub(crate) instance: String,
}

impl Stamp {
    /// Core mode: origin, event id, instance and sequence.
    pub(crate) fn core(&self, event_id: &str, sequence: u64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, self.origin.clone());
        headers.insert(EVENT_ID, event_id);
        headers.insert(SEQUENCE, format!("{} {sequence}", self.instance));
        headers
    }

    /// JetStream mode: origin, and the event id as the dedup id.
    pub(crate) fn jetstream(&self, event_id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, self.origin.clone());
        headers.insert(MSG_ID, event_id);
        headers
    }
}

/// Adds the event's trace context, if it has one, as `traceparent` and
/// `tracestate` headers.
pub(crate) fn put_trace_context(headers: &mut HeaderMap, event: &Event) {
    if let Some(context) = &event.trace_context {
        headers.insert(TRACEPARENT, context.traceparent.to_string());
        if let Some(state) = &context.tracestate {
            headers.insert(TRACESTATE, state.as_str());
        }
    }
}

/// The trace context of the headers, for a message whose event carries none
/// in its JSON (one from a producer that only sets the headers). Invalid
/// headers are ignored, as the W3C rules say; a `tracestate` is kept only
/// with a valid `traceparent`, and dropped if it alone is invalid.
pub(crate) fn trace_context(headers: Option<&HeaderMap>) -> Option<TraceContext> {
    let traceparent = header(headers, &TRACEPARENT)?.parse().ok()?;
    Some(TraceContext {
        traceparent,
        tracestate: header(headers, &TRACESTATE).and_then(|state| state.parse().ok()),
    })
}

/// Core mode: the sending instance and sequence number, if well formed.
pub(crate) fn sequence(headers: Option<&HeaderMap>) -> Option<(&str, u64)> {
    let (instance, number) = header(headers, &SEQUENCE)?.split_once(' ')?;
    Some((instance, number.parse().ok()?))
}
