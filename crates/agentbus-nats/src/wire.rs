//! What a bridge puts on the wire besides the event's JSON: subjects and
//! headers.

use std::str::FromStr;

use agentbus::EventType;
use async_nats::header::{HeaderMap, HeaderName, HeaderValue};
use async_nats::Subject;

/// The sending bridge's name ([`BridgeConfig::name`](crate::BridgeConfig::name)).
pub(crate) const ORIGIN: HeaderName = HeaderName::from_static("Agentbus-Origin");
/// A token unique to one connected bridge: tells its own messages apart
/// even from another process of the same name.
pub(crate) const INSTANCE: HeaderName = HeaderName::from_static("Agentbus-Instance");
/// The event's id.
pub(crate) const EVENT_ID: HeaderName = HeaderName::from_static("Agentbus-Event-Id");
/// Core mode: the sender's sequence number for this event type, from 1.
pub(crate) const SEQUENCE: HeaderName = HeaderName::from_static("Agentbus-Seq");
/// JetStream's deduplication id.
pub(crate) const MSG_ID: HeaderName = HeaderName::from_static("Nats-Msg-Id");

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

/// The headers every message carries.
pub(crate) struct Stamp {
    pub(crate) origin: HeaderValue,
    pub(crate) instance: HeaderValue,
}

impl Stamp {
    pub(crate) fn headers(&self, event_id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, self.origin.clone());
        headers.insert(INSTANCE, self.instance.clone());
        headers.insert(EVENT_ID, event_id);
        headers
    }
}
