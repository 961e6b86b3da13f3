//! The JSON the API sends, as types a client decodes (feature `client`,
//! without the server) and the server writes: one definition of each.

use agentbus::{Event, EventId};
use serde::{Deserialize, Serialize};

/// The reply to `POST /api/events`.
///
/// ```
/// use agentbus_web::PublishReply;
///
/// let reply: PublishReply = serde_json::from_str(r#"{"ids":[],"sequences":null}"#).unwrap();
/// assert_eq!(reply.sequences, None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishReply {
    /// The ids of the published events, in the order sent.
    pub ids: Vec<EventId>,
    /// Their store sequences; `None` when the server has no store. Per
    /// event, `None` when its id was already stored (a retry, or a repeat
    /// earlier in the body), so it was not stored again, and for no other
    /// reason.
    pub sequences: Option<Vec<Option<u64>>>,
    /// Per event, `Some(id)` when the server's dedup guard kept it out as a
    /// repeat of the event `id` (so it was neither published nor stored,
    /// unlike an event whose id was already stored, which has `None` in
    /// `sequences`); absent when no event of the body was a duplicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<Vec<Option<EventId>>>,
}

/// The body of a `422` or `429` from `POST /api/events`: a guard kept an
/// event out, so nothing of the body was published.
///
/// ```
/// use agentbus_web::RejectedReply;
///
/// let reply: RejectedReply = serde_json::from_str(
///     r#"{"error":"event 1: invalid data: at /task_id: \"x\" is not of type \"integer\"","reason":"invalid","index":1,
///        "violations":[{"pointer":"/task_id","message":"\"x\" is not of type \"integer\""}]}"#,
/// ).unwrap();
/// assert_eq!(reply.violations[0].pointer, "/task_id");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedReply {
    /// What went wrong, for people (as every error reply).
    pub error: String,
    /// Why: `"invalid"`, `"rate_limited"` or `"custom"`.
    pub reason: String,
    /// The index of the event in an array body; absent for a single event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// Every schema violation of that event (for `"invalid"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<ViolationReply>,
    /// For `"rate_limited"`: milliseconds until a retry can succeed (the
    /// `Retry-After` header gives it in whole seconds, rounded up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// One schema violation in a [`RejectedReply`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViolationReply {
    /// A JSON pointer into the event's `data` (`""`: the whole of it).
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

/// An event as the API returns it (`GET /api/events`, `/ws`,
/// `/api/stream`): the core's JSON form plus its store `sequence` when the
/// server has a store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SequencedEvent {
    /// The event.
    #[serde(flatten)]
    pub event: Event,
    /// Its store sequence, when stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

/// One page of `GET /api/events`: `{"events":[...],"next":n|null}`.
///
/// ```
/// use agentbus_web::EventsPage;
///
/// let page: EventsPage = serde_json::from_str(r#"{"events":[],"next":null}"#).unwrap();
/// assert!(page.events.is_empty() && page.next.is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventsPage {
    /// The events of this page.
    pub events: Vec<SequencedEvent>,
    /// The cursor of the next page (its `after`, or in `order=desc` its
    /// `before`), or `None` on the last one.
    #[serde(default)]
    pub next: Option<u64>,
}

#[cfg(feature = "server")]
impl EventsPage {
    /// The page's JSON from events already encoded as [`SequencedEvent`]s
    /// (the hub's encoding, so each event is encoded once).
    pub(crate) fn encode(events: impl IntoIterator<Item = String>, next: Option<u64>) -> String {
        let mut body = String::from("{\"events\":[");
        for (index, event) in events.into_iter().enumerate() {
            if index > 0 {
                body.push(',');
            }
            body.push_str(&event);
        }
        body.push_str("],\"next\":");
        match next {
            Some(next) => body.push_str(&next.to_string()),
            None => body.push_str("null"),
        }
        body.push('}');
        body
    }
}

/// Every error reply's body: `{"error": "..."}`, one lowercase line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What went wrong.
    pub error: String,
}
