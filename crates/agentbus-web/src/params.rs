//! Query parameters shared by `GET /api/events`, `/ws` and `/api/stream`:
//! parsed strictly, so a typo or an out-of-range value is a 400 naming it
//! rather than a silently wider result.

use agentbus::{EventFilter, EventType, EventTypeSet, Order};

use crate::error::ApiError;

/// The most events one `GET /api/events` page returns.
pub(crate) const MAX_LIMIT: usize = 10_000;
/// The page size when `limit` is not given.
pub(crate) const DEFAULT_LIMIT: usize = 100;

/// Every parameter any reading endpoint accepts; each endpoint says which
/// it allows.
#[derive(Clone, Debug, Default)]
pub(crate) struct Params {
    pub(crate) filter: EventFilter,
    pub(crate) after: Option<u64>,
    pub(crate) before: Option<u64>,
    pub(crate) limit: Option<usize>,
    pub(crate) order: Option<Order>,
    pub(crate) format: Format,
}

/// How events are written in a reply or a live feed: `?format=json` (the
/// default, the core's JSON with `sequence`) or `?format=cloudevents`
/// (see [`CloudEvent`](crate::CloudEvent)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Format {
    #[default]
    Native,
    CloudEvents,
}

impl Format {
    /// One event in this format, `None` (logged) when it cannot be
    /// encoded (a timestamp outside 1970..=9999).
    pub(crate) fn encode(self, event: &agentbus::Event, sequence: Option<u64>) -> Option<String> {
        match self {
            Format::Native => crate::hub::encode(event, sequence),
            Format::CloudEvents => crate::cloudevents::encode(event, sequence)
                .inspect_err(|error| {
                    tracing::warn!(%error, id = %event.id, "event skipped: it cannot be encoded");
                })
                .ok(),
        }
    }
}

/// The parameters of the live endpoints (`/ws`, `/api/stream`).
pub(crate) const LIVE_PARAMS: &[&str] = &[
    "type",
    "circle_id",
    "source_agent_id",
    "project_id",
    "correlation_id",
    "after",
    "format",
];

/// The parameters of `GET /api/events`.
pub(crate) const READ_PARAMS: &[&str] = &[
    "type",
    "circle_id",
    "source_agent_id",
    "project_id",
    "correlation_id",
    "after",
    "before",
    "limit",
    "order",
    "format",
];

/// The parameters of `GET /api/events/{id}`.
pub(crate) const ONE_PARAMS: &[&str] = &["format"];

impl Params {
    /// Parses `pairs`; only names in `allowed` (and `token`, checked by the
    /// auth layer) are accepted. An empty value means "not set", so
    /// `?circle_id=&type=` is the same as no filter.
    pub(crate) fn parse(pairs: &[(String, String)], allowed: &[&str]) -> Result<Self, ApiError> {
        let mut params = Params::default();
        // Every `type` parameter adds to one set.
        let mut types: Option<EventTypeSet> = None;
        for (name, value) in pairs {
            if name == "token" {
                continue;
            }
            if !allowed.contains(&name.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{name}` (expected one of: {})",
                    allowed.join(", ")
                )));
            }
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match name.as_str() {
                "type" => {
                    let types = types.get_or_insert_with(EventTypeSet::empty);
                    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                        let event_type: EventType = part.parse().map_err(|_| {
                            ApiError::bad_request(format!(
                                "query parameter `type`: unknown event type \"{part}\""
                            ))
                        })?;
                        *types = types.with(event_type);
                    }
                }
                "circle_id" => params.filter = params.filter.circle_id(integer(name, value)?),
                "source_agent_id" => {
                    params.filter = params.filter.source_agent_id(integer(name, value)?);
                }
                "project_id" => params.filter = params.filter.project_id(integer(name, value)?),
                "correlation_id" => {
                    let id = value.parse().map_err(|_| {
                        ApiError::bad_request(format!(
                            "query parameter `correlation_id`: \"{value}\" is not an event id (a uuid)"
                        ))
                    })?;
                    params.filter = params.filter.correlation_id(id);
                }
                "after" => params.after = Some(sequence("query parameter `after`", value)?),
                "before" => params.before = Some(sequence("query parameter `before`", value)?),
                "limit" => {
                    let limit: usize = value.parse().map_err(|_| {
                        ApiError::bad_request(format!(
                            "query parameter `limit`: expected an integer between 1 and {MAX_LIMIT}, got \"{value}\""
                        ))
                    })?;
                    if !(1..=MAX_LIMIT).contains(&limit) {
                        return Err(ApiError::bad_request(format!(
                            "query parameter `limit`: {limit} is out of range 1..={MAX_LIMIT}"
                        )));
                    }
                    params.limit = Some(limit);
                }
                "order" => {
                    params.order = Some(match value {
                        "asc" => Order::Ascending,
                        "desc" => Order::Descending,
                        _ => {
                            return Err(ApiError::bad_request(format!(
                                "query parameter `order`: expected \"asc\" or \"desc\", got \"{value}\""
                            )))
                        }
                    });
                }
                "format" => {
                    params.format = match value {
                        "json" => Format::Native,
                        "cloudevents" => Format::CloudEvents,
                        _ => {
                            return Err(ApiError::bad_request(format!(
                                "query parameter `format`: expected \"json\" or \"cloudevents\", got \"{value}\""
                            )))
                        }
                    };
                }
                _ => unreachable!("every allowed name is handled"),
            }
        }
        if let Some(types) = types {
            params.filter = params.filter.event_type(types);
        }
        Ok(params)
    }
}

fn integer(name: &str, value: &str) -> Result<i64, ApiError> {
    value.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "query parameter `{name}`: expected a 64-bit integer, got \"{value}\""
        ))
    })
}

/// A sequence number (from a query parameter or `Last-Event-ID`).
pub(crate) fn sequence(what: &str, value: &str) -> Result<u64, ApiError> {
    value.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "{what}: expected a sequence number (0..={}), got \"{value}\"",
            u64::MAX
        ))
    })
}
