//! `GET /api/events` and `GET /api/events/{id}`.

use agentbus::{HistoryQuery, Order};
use agentbus_store::{EventStore, ReadQuery};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::extract::{EventIdPath, ReadParams};
use crate::params::{Params, DEFAULT_LIMIT};
use crate::state::SharedState;
use crate::wire::EventsPage;

pub(crate) async fn list(
    State(state): State<SharedState>,
    ReadParams(params): ReadParams,
) -> Result<Response, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if let Some(recorder) = &state.recorder {
        return list_stored(recorder.store().as_ref(), &params, limit).await;
    }
    if params.after.is_some() || params.before.is_some() {
        return Err(ApiError::bad_request(
            "query parameters `after` and `before` need a store: this server keeps no sequences",
        ));
    }
    // Off the runtime: with a large history and a sparse filter the scan
    // is long, and a worker must keep answering other requests meanwhile.
    let bus = state.bus.clone();
    let descending = params.order.unwrap_or_default() == Order::Descending;
    // The history stops at `limit` matches, newest first.
    let query = HistoryQuery::from(params.filter).limit(limit);
    tokio::task::spawn_blocking(move || {
        let mut events = bus.history(&query);
        if !descending {
            events.reverse();
        }
        let encoded = events
            .iter()
            .filter_map(|event| crate::hub::encode(event, None));
        let body = EventsPage::encode(encoded, None);
        json_response(body)
    })
    .await
    .map_err(|_| ApiError::unavailable("the server is shutting down"))
}

/// A page from the store. `next` is the cursor for the following page: the
/// `after` to pass in ascending order, the `before` in descending order;
/// `null` when this page was the last.
async fn list_stored(
    store: &dyn EventStore,
    params: &Params,
    limit: usize,
) -> Result<Response, ApiError> {
    let mut query = ReadQuery::from(params.filter.clone())
        .after(params.after.unwrap_or(0))
        .limit(limit)
        .order(params.order.unwrap_or_default());
    if let Some(before) = params.before {
        if before == 0 {
            return Ok(json_response(EventsPage::encode([], None)));
        }
        query = query.before(before);
    }
    let page = store.read(&query).await?;
    let next = if page.len() == limit {
        page.last().map(|stored| stored.sequence)
    } else {
        None
    };
    let encoded = page
        .iter()
        .filter_map(|stored| crate::hub::encode(&stored.event, Some(stored.sequence)));
    let body = EventsPage::encode(encoded, next);
    Ok(json_response(body))
}

pub(crate) async fn one(
    State(state): State<SharedState>,
    EventIdPath(id): EventIdPath,
) -> Result<Response, ApiError> {
    // The store first: it has the event's sequence and keeps events long
    // after the history ring drops them. An event published but not yet
    // committed is still found in the history.
    if let Some(recorder) = &state.recorder {
        let stored = recorder.store().get(id).await?;
        if let Some(json) =
            stored.and_then(|stored| crate::hub::encode(&stored.event, Some(stored.sequence)))
        {
            return Ok(json_response(json));
        }
    }
    // The history has no index by id: scan it off the runtime.
    let bus = state.bus.clone();
    tokio::task::spawn_blocking(move || {
        bus.history(&HistoryQuery::new().limit(usize::MAX))
            .into_iter()
            .find(|event| event.id == id)
            .and_then(|event| crate::hub::encode(&event, None))
    })
    .await
    .map_err(|_| ApiError::unavailable("the server is shutting down"))?
    .map(json_response)
    .ok_or_else(|| ApiError::not_found(format!("no event with id {id}")))
}

pub(crate) fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
