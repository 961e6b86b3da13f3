//! The JSON the API sends, as types a client decodes (feature `client`,
//! without the server) and the server writes: one definition of each.

use std::collections::BTreeMap;

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

/// The reply to `GET /api/stats`: the bus's counters, what the API's
/// clients saw, and the store's when the server has one.
///
/// Per-type maps are keyed by the dotted type (`task.completed`) and hold
/// only the types seen.
///
/// ```
/// use agentbus_web::StatsReply;
///
/// let reply: StatsReply = serde_json::from_value(serde_json::json!({
///     "events_published": 3, "events_delivered": 5, "handler_errors": 0,
///     "active_subscribers": 2, "history_size": 3,
///     "per_type": {"task.completed": 3}, "publish_rate": 0.6,
///     "clients": 1, "websocket_clients": 1, "sse_clients": 0,
///     "store": null, "store_lag": null,
///     "rates": {"end": 1_700_000_000, "seconds": 300, "per_type": {}},
/// }))
/// .unwrap();
/// assert_eq!(reply.per_type["task.completed"], 3);
/// assert!(reply.store.is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatsReply {
    /// Events published on the bus; this and the next four are the bus's
    /// [`BusStats`](agentbus::BusStats) of the same names.
    pub events_published: u64,
    /// Handler calls that completed successfully.
    pub events_delivered: u64,
    /// Handler calls that returned `Err` or panicked.
    pub handler_errors: u64,
    /// Subscriptions registered on the bus.
    pub active_subscribers: usize,
    /// Events the bus's history holds.
    pub history_size: usize,
    /// Events the bus's guards kept out, for any reason (not counted in
    /// `events_published`).
    #[serde(default)]
    pub events_rejected: u64,
    /// Of `events_rejected`: duplicates.
    #[serde(default)]
    pub events_deduplicated: u64,
    /// Of `events_rejected`: over a rate limit.
    #[serde(default)]
    pub events_rate_limited: u64,
    /// Of `events_rejected`: failed a schema.
    #[serde(default)]
    pub events_invalid: u64,
    /// Retry attempts made; this and the next four are the bus's
    /// [`BusStats`](agentbus::BusStats) of the same names (`0` when decoding
    /// a reply of a server that predates them).
    #[serde(default)]
    pub retries: u64,
    /// Deliveries waiting for or running a retry now.
    #[serde(default)]
    pub retries_pending: usize,
    /// Handler attempts that ran past their timeout.
    #[serde(default)]
    pub timed_out: u64,
    /// Deliveries given up on and kept as dead letters.
    #[serde(default)]
    pub dead_lettered: u64,
    /// Dead letters held now.
    #[serde(default)]
    pub dead_letters: usize,
    /// Events published per type since the API was made (`WebApi::new`
    /// turns on [`EventBus::count_per_type`](agentbus::EventBus::count_per_type));
    /// types not published are left out.
    pub per_type: BTreeMap<String, u64>,
    /// Events per second over the last five complete seconds.
    pub publish_rate: f64,
    /// Live clients: `websocket_clients + sse_clients`.
    pub clients: usize,
    /// WebSocket clients connected.
    pub websocket_clients: usize,
    /// SSE clients connected.
    pub sse_clients: usize,
    /// The store's counters; `None` without a store.
    pub store: Option<StoreCounters>,
    /// Events handed to the store but not yet committed; `None` without a
    /// store.
    pub store_lag: Option<u64>,
    /// Events per second, per type, over the last
    /// [`seconds`](RateWindow::seconds).
    pub rates: RateWindow,
}

/// The store part of [`StatsReply`]: the recorder's counters of the same
/// names (`agentbus_store::RecorderStats`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreCounters {
    /// The store's last sequence after the recorder's latest commit.
    pub last_sequence: u64,
    /// Events committed by the recorder (duplicates excluded).
    pub committed: u64,
    /// Events skipped because their id was already stored.
    pub duplicates: u64,
    /// Events not recorded because the recorder's queue was full.
    pub dropped: u64,
    /// Events the store can never hold (a timestamp outside 1970..2262, or
    /// data the backend refuses), skipped.
    pub rejected: u64,
    /// Failed write attempts (each is retried).
    pub errors: u64,
    /// The error of the latest failed attempt, cleared by the next success.
    pub last_error: Option<String>,
}

/// The per-second rates of [`StatsReply`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateWindow {
    /// The Unix second of the last count of each series.
    pub end: u64,
    /// How many seconds each series covers.
    pub seconds: usize,
    /// For each type seen in the window: one count per second, oldest first.
    pub per_type: BTreeMap<String, Vec<u32>>,
}

/// A dead letter as `GET /api/dead-letters` and `GET /api/dead-letters/{id}`
/// return it: an [`agentbus::DeadLetter`], its times in milliseconds since
/// the Unix epoch.
///
/// ```
/// use agentbus_web::DeadLetterReply;
///
/// let reply: DeadLetterReply = serde_json::from_value(serde_json::json!({
///     "id": 7, "subscription": "metrics exporter", "subscription_id": "sub-3",
///     "error": "exporter down", "attempts": 3,
///     "first_failed_at_ms": 1_700_000_000_000_u64, "last_failed_at_ms": 1_700_000_000_050_u64,
///     "event": {"id": "0190b3a4-5b6c-7d8e-9f00-112233445566", "type": "task.completed",
///               "data": {}, "timestamp": "2024-07-01T12:00:00Z"},
/// }))
/// .unwrap();
/// assert_eq!((reply.id, reply.attempts), (7, 3));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterReply {
    /// Its id on the server's bus.
    pub id: u64,
    /// The subscription's name, if it has one.
    pub subscription: Option<String>,
    /// The subscription's id (`sub-N`).
    pub subscription_id: String,
    /// Why the last attempt failed.
    pub error: String,
    /// How many calls failed, redrives included.
    pub attempts: u32,
    /// When the first attempt failed.
    pub first_failed_at_ms: u64,
    /// When the last attempt failed.
    pub last_failed_at_ms: u64,
    /// The event that was not delivered.
    pub event: Event,
}

/// A page of `GET /api/dead-letters`, oldest first (newest first with
/// `order=desc`). `next` is the `after` (with `order=desc`, the `before`)
/// for the following page, `None` when this page was the last.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLettersPage {
    /// The dead letters of this page.
    pub dead_letters: Vec<DeadLetterReply>,
    /// The cursor of the next page.
    pub next: Option<u64>,
}
