//! `GET /api/events` and `GET /api/events/{id}`.

use agentbus::{HistoryQuery, Order};
use agentbus_store::{EventStore, ReadQuery};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::cloudevents;
use crate::error::ApiError;
use crate::extract::{EventIdPath, OneParams, ReadParams};
use crate::params::{Format, Params, DEFAULT_LIMIT};
use crate::state::SharedState;
use crate::wire::EventsPage;

/// The cursor of the next page of a CloudEvents batch (`GET
/// /api/events?format=cloudevents`), which has no room for it in its body.
pub(crate) const NEXT_HEADER: &str = "agentbus-next";

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
    let format = params.format;
    // The history stops at `limit` matches, newest first.
    let query = HistoryQuery::from(params.filter).limit(limit);
    tokio::task::spawn_blocking(move || {
        let mut events = bus.history(&query);
        if !descending {
            events.reverse();
        }
        let encoded = events.iter().filter_map(|event| format.encode(event, None));
        page(format, encoded, None)
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
            return Ok(page(params.format, [], None));
        }
        query = query.before(before);
    }
    let stored = store.read(&query).await?;
    let next = if stored.len() == limit {
        stored.last().map(|stored| stored.sequence)
    } else {
        None
    };
    let encoded = stored
        .iter()
        .filter_map(|stored| params.format.encode(&stored.event, Some(stored.sequence)));
    Ok(page(params.format, encoded, next))
}

/// A page of encoded events: `{"events":[...],"next":n|null}`, or in
/// CloudEvents format a batch (`application/cloudevents-batch+json`, a
/// JSON array) with the cursor in the `Agentbus-Next` header (absent on
/// the last page).
fn page(format: Format, events: impl IntoIterator<Item = String>, next: Option<u64>) -> Response {
    match format {
        Format::Native => json_response(EventsPage::encode(events, next)),
        Format::CloudEvents => {
            let mut body = String::from("[");
            for (index, event) in events.into_iter().enumerate() {
                if index > 0 {
                    body.push(',');
                }
                body.push_str(&event);
            }
            body.push(']');
            let mut response = ([(header::CONTENT_TYPE, cloudevents::BATCH)], body).into_response();
            if let Some(next) = next {
                response
                    .headers_mut()
                    .insert(NEXT_HEADER, HeaderValue::from(next));
            }
            response
        }
    }
}

pub(crate) async fn one(
    State(state): State<SharedState>,
    EventIdPath(id): EventIdPath,
    OneParams(params): OneParams,
) -> Result<Response, ApiError> {
    let format = params.format;
    // The store first: it has the event's sequence and keeps events long
    // after the history ring drops them. An event published but not yet
    // committed is still found in the history.
    if let Some(recorder) = &state.recorder {
        let stored = recorder.store().get(id).await?;
        if let Some(json) =
            stored.and_then(|stored| format.encode(&stored.event, Some(stored.sequence)))
        {
            return Ok(one_response(format, json));
        }
    }
    // The history has no index by id: scan it off the runtime.
    let bus = state.bus.clone();
    tokio::task::spawn_blocking(move || {
        bus.history(&HistoryQuery::new().limit(usize::MAX))
            .into_iter()
            .find(|event| event.id == id)
            .and_then(|event| format.encode(&event, None))
    })
    .await
    .map_err(|_| ApiError::unavailable("the server is shutting down"))?
    .map(|json| one_response(format, json))
    .ok_or_else(|| ApiError::not_found(format!("no event with id {id}")))
}

/// One event: `application/json`, or a structured-mode CloudEvent.
fn one_response(format: Format, body: String) -> Response {
    match format {
        Format::Native => json_response(body),
        Format::CloudEvents => {
            ([(header::CONTENT_TYPE, cloudevents::STRUCTURED)], body).into_response()
        }
    }
}

pub(crate) fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
