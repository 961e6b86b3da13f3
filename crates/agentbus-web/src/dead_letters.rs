//! `GET /api/dead-letters`, `GET|DELETE /api/dead-letters/{id}` and
//! `POST /api/dead-letters/{id}/redrive`: the bus's
//! [`DeadLetters`](agentbus::DeadLetters) over HTTP.
//!
//! The list takes `subscription` (a name), `type`, `order` (`asc`, oldest
//! first, the default, or `desc`, newest first), `after` / `before` (ids:
//! the next page in `asc` / `desc` order is `after` / `before` the `next`
//! of the last) and `limit` (1 to 1000, default 100); any other parameter
//! is a 400. A redrive answers 200 when delivered, 404 for an unknown id, 409
//! when no subscription has the letter's name or the handler failed again
//! (the letter stays), and 504 if the handler has not finished within 30 s
//! (the redrive is dropped and the letter goes back).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentbus::{DeadLetter, DeadLetterId, DeadLetterQuery, EventType, RedriveError};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;

use crate::error::ApiError;
use crate::extract::query_pairs;
use crate::state::SharedState;
use crate::wire::{DeadLetterReply, DeadLettersPage};

/// The most dead letters one page returns.
const MAX_PAGE: usize = 1000;
/// How long a redrive may run before the request gives up on it.
const REDRIVE_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) async fn list(
    State(state): State<SharedState>,
    ListParams(query): ListParams,
) -> Json<DeadLettersPage> {
    let limit = query.max_results();
    let letters = state.bus.dead_letters().list(&query);
    let next = if letters.len() == limit {
        letters.last().map(|letter| letter.id().get())
    } else {
        None
    };
    Json(DeadLettersPage {
        dead_letters: letters.iter().map(reply).collect(),
        next,
    })
}

pub(crate) async fn one(
    State(state): State<SharedState>,
    IdPath(id): IdPath,
) -> Result<Json<DeadLetterReply>, ApiError> {
    let letter = state
        .bus
        .dead_letters()
        .get(id)
        .ok_or_else(|| unknown(id))?;
    Ok(Json(reply(&letter)))
}

pub(crate) async fn discard(
    State(state): State<SharedState>,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    if state.bus.dead_letters().discard(id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(unknown(id))
    }
}

pub(crate) async fn redrive(
    State(state): State<SharedState>,
    IdPath(id): IdPath,
) -> Result<Json<serde_json::Value>, ApiError> {
    let dead = state.bus.dead_letters();
    match tokio::time::timeout(REDRIVE_TIMEOUT, dead.redrive(id)).await {
        Ok(Ok(())) => Ok(Json(serde_json::json!({ "redriven": id.get() }))),
        Ok(Err(RedriveError::UnknownId(_))) => Err(unknown(id)),
        Ok(Err(error)) => Err(ApiError::new(StatusCode::CONFLICT, error.to_string())),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "the handler did not finish within 30 s; the dead letter is kept",
        )),
    }
}

fn unknown(id: DeadLetterId) -> ApiError {
    ApiError::not_found(format!("no dead letter with id {id}"))
}

fn reply(letter: &DeadLetter) -> DeadLetterReply {
    DeadLetterReply {
        id: letter.id().get(),
        subscription: letter.subscription_name().map(str::to_owned),
        subscription_id: letter.subscription_id().to_string(),
        error: letter.error().to_owned(),
        attempts: letter.attempts(),
        first_failed_at_ms: millis(letter.first_failed_at()),
        last_failed_at_ms: millis(letter.last_failed_at()),
        event: (**letter.event()).clone(),
    }
}

fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

/// The list's query parameters, or a 400.
pub(crate) struct ListParams(DeadLetterQuery);

impl<S: Send + Sync> FromRequestParts<S> for ListParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut query = DeadLetterQuery::new();
        for (name, value) in query_pairs(parts)? {
            query = match name.as_str() {
                "subscription" => query.subscription(value),
                "type" => query.event_type(value.parse::<EventType>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "query parameter `type`: \"{value}\" is not an event type"
                    ))
                })?),
                "after" => query.after(id_param("after", &value)?),
                "before" => query.before(id_param("before", &value)?),
                "order" => match value.as_str() {
                    "asc" => query,
                    "desc" => query.newest_first(),
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "query parameter `order`: expected asc or desc, got \"{value}\""
                        )))
                    }
                },
                "limit" => match value.parse::<usize>() {
                    Ok(limit @ 1..=MAX_PAGE) => query.limit(limit),
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "query parameter `limit`: expected an integer between 1 and {MAX_PAGE}, got \"{value}\""
                        )))
                    }
                },
                // The bearer token, for browsers: checked by the auth layer.
                "token" => query,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unknown query parameter `{other}` (expected subscription, type, order, after, before, limit)"
                    )))
                }
            };
        }
        Ok(Self(query))
    }
}

fn id_param(name: &str, value: &str) -> Result<DeadLetterId, ApiError> {
    value.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "query parameter `{name}`: expected a dead letter id, got \"{value}\""
        ))
    })
}

/// The `{id}` of a dead letter route: 400 unless it is a number.
pub(crate) struct IdPath(DeadLetterId);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::rejected(rejection.status(), &rejection.body_text()))?;
        id.parse().map(Self).map_err(|_| {
            ApiError::bad_request(format!("\"{id}\" is not a dead letter id (a number)"))
        })
    }
}
