//! `GET /api/events` and `GET /api/events/{id}`.

use agentbus::{EventId, HistoryQuery};
use axum::extract::{Path, State};
use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};

use crate::api::SharedState;
use crate::error::ApiError;
use crate::params::{Order, Params, DEFAULT_LIMIT, READ_PARAMS};

/// The query string as name/value pairs, or a 400.
pub(crate) fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, ApiError> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|axum::extract::Query(pairs)| pairs)
        .map_err(|error| ApiError::bad_request(format!("malformed query string: {error}")))
}

pub(crate) async fn list(State(state): State<SharedState>, uri: Uri) -> Result<Response, ApiError> {
    let params = Params::parse(&query_pairs(&uri)?, READ_PARAMS)?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if params.after.is_some() {
        return Err(ApiError::bad_request(
            "query parameter `after`: this server has no store, so events have no sequence",
        ));
    }
    // History is newest first; take every match, then order and cut.
    let mut events: Vec<_> = state
        .bus
        .history(&HistoryQuery::new().limit(usize::MAX))
        .into_iter()
        .filter(|event| params.filter.matches(event))
        .collect();
    if params.order.unwrap_or_default() == Order::Asc {
        events.reverse();
    }
    events.truncate(limit);
    let mut body = String::with_capacity(64 + events.len() * 256);
    body.push_str("{\"events\":[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        match crate::hub::encode(event, None) {
            Some(json) => body.push_str(&json),
            None => continue,
        }
    }
    body.push_str("],\"next\":null}");
    Ok(json_response(body))
}

pub(crate) async fn one(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: EventId = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("\"{id}\" is not an event id (a uuid)")))?;
    let event = state
        .bus
        .history(&HistoryQuery::new().limit(usize::MAX))
        .into_iter()
        .find(|event| event.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no event with id {id}")))?;
    let json = crate::hub::encode(&event, None)
        .ok_or_else(|| ApiError::internal("the event cannot be encoded"))?;
    Ok(json_response(json))
}

pub(crate) fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
