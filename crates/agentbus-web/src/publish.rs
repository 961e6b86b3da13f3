//! `POST /api/events`: decode all, then publish all.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentbus::{Event, EventId};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::Serialize;

use crate::api::SharedState;
use crate::error::ApiError;

/// The reply to a successful publish.
#[derive(Serialize)]
pub(crate) struct Published {
    ids: Vec<EventId>,
    /// `None` without a store; per event, `None` when its id was already
    /// stored (a retry), so it was not stored again.
    sequences: Option<Vec<Option<u64>>>,
}

pub(crate) async fn publish(
    State(state): State<SharedState>,
    request: Request,
) -> Result<Json<Published>, ApiError> {
    require_json(request.headers())?;
    let limit = state.body_limit;
    let body = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|error| {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if too_large {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body is larger than the limit of {limit} bytes"),
                )
            } else {
                ApiError::bad_request(format!("could not read the request body: {error}"))
            }
        })?;
    let events = decode(&body)?;
    let ids: Vec<EventId> = events.iter().map(|event| event.id).collect();
    let Some(recorder) = &state.recorder else {
        for event in events {
            state.bus.publish(Arc::new(event)).await;
        }
        state.hub.nudge();
        return Ok(Json(Published {
            ids,
            sequences: None,
        }));
    };
    // The hub must be following the store before these commit, or it
    // could not report their sequences.
    tokio::time::timeout(SEQUENCE_PATIENCE, state.hub.ready())
        .await
        .map_err(|_| {
            ApiError::unavailable(
                "the store cannot be read yet (its last sequence is unknown); nothing was published",
            )
        })?;
    let expected = state.hub.expect(&ids);
    // One deadline for room and commit: a stalled store gets the client a
    // 503 in bounded time, and no worker ever waits on the recorder's queue.
    let deadline = tokio::time::Instant::now() + state.durable_timeout;
    let total = events.len();
    let mut published = 0;
    let mut events = events.into_iter();
    while published < total {
        let room =
            match tokio::time::timeout_at(deadline, recorder.reserve(total - published)).await {
                Ok(Ok(room)) => room,
                Ok(Err(error)) => return Err(not_durable(published, total, &error.to_string())),
                Err(_) => {
                    return Err(not_durable(
                        published,
                        total,
                        &format!(
                        "the store is not keeping up: no room in the recorder's queue within {:?}",
                        state.durable_timeout
                    ),
                    ))
                }
            };
        for event in events.by_ref().take(room.events()) {
            state.bus.publish(Arc::new(event)).await;
            published += 1;
        }
    }
    let last = match tokio::time::timeout_at(deadline, recorder.flush()).await {
        Ok(Ok(last)) => last,
        Ok(Err(error)) => return Err(not_durable(total, total, &error.to_string())),
        Err(_) => {
            return Err(not_durable(
                total,
                total,
                &format!("not committed within {:?}", state.durable_timeout),
            ))
        }
    };
    let sequences = expected.sequences(last, SEQUENCE_PATIENCE).await;
    Ok(Json(Published {
        ids,
        sequences: Some(sequences),
    }))
}

/// The 503 of a `POST` whose events are not confirmed durable: says what
/// was published (and so may still be committed) and that a retry is safe.
fn not_durable(published: usize, total: usize, why: &str) -> ApiError {
    let what = if published == 0 {
        "nothing was published".to_owned()
    } else if published == total {
        "the events were published but are not confirmed durable; they stay queued and may \
         still be committed, and posting them again with the same ids is safe"
            .to_owned()
    } else {
        format!(
            "the first {published} of the {total} events were published and may still be \
             committed, the others were not; posting them all again with the same ids is safe"
        )
    };
    ApiError::unavailable(format!("{why}; {what}"))
}

/// How long a durable `POST` waits for the hub to report its sequences.
const SEQUENCE_PATIENCE: Duration = Duration::from_secs(10);

/// 415 unless the body is declared JSON (`application/json` or any
/// `application/*+json`, parameters allowed).
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match declared.as_deref() {
        Some("application/json") => Ok(()),
        Some(media) if media.starts_with("application/") && media.ends_with("+json") => Ok(()),
        Some(other) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type must be application/json, got {other}"),
        )),
        None => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content type must be application/json, got none",
        )),
    }
}

/// One event object or an array of them; every error names where it is.
pub(crate) fn decode(body: &[u8]) -> Result<Vec<Event>, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let events = match first {
        Some(b'[') => {
            let events: Vec<Event> = from_slice(body)?;
            if events.is_empty() {
                return Err(ApiError::bad_request("the array holds no event"));
            }
            events
        }
        Some(b'{') => vec![from_slice::<Event>(body)?],
        Some(_) => {
            return Err(ApiError::bad_request(
                "malformed json: expected an event object or an array of them",
            ))
        }
        None => return Err(ApiError::bad_request("malformed json: the body is empty")),
    };
    for (index, event) in events.iter().enumerate() {
        if !encodable(event.timestamp) {
            let at = if first == Some(&b'[') {
                format!("event {index}: ")
            } else {
                String::new()
            };
            return Err(ApiError::bad_request(format!(
                "{at}field `timestamp`: must be between 1970-01-01 and 9999-12-31"
            )));
        }
    }
    Ok(events)
}

fn encodable(at: SystemTime) -> bool {
    const RFC3339_MAX_SECS: u64 = 253_402_300_800;
    at.duration_since(UNIX_EPOCH)
        .is_ok_and(|since| since.as_secs() < RFC3339_MAX_SECS)
}

fn from_slice<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(describe)?;
    deserializer
        .end()
        .map_err(|error| ApiError::bad_request(format!("malformed json: {error}")))?;
    Ok(value)
}

/// `event 2: field `circle_id`: invalid type: ...` for data errors,
/// `malformed json: ...` for syntax errors.
fn describe(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = error.inner();
    if inner.is_syntax() || inner.is_eof() || inner.is_io() {
        return ApiError::bad_request(format!("malformed json: {inner}"));
    }
    let mut index = None;
    let mut fields = Vec::new();
    for segment in error.path().iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index: i }
                if index.is_none() && fields.is_empty() =>
            {
                index = Some(*i)
            }
            other => fields.push(other.to_string()),
        }
    }
    let mut message = String::new();
    if let Some(index) = index {
        message.push_str(&format!("event {index}: "));
    }
    let field = fields.join(".").trim_start_matches('.').to_owned();
    let text = strip_position(&inner.to_string());
    if field.is_empty() || field == "?" {
        message.push_str(&text);
    } else {
        message.push_str(&format!("field `{field}`: {text}"));
    }
    ApiError::bad_request(message)
}

/// serde_json appends " at line L column C"; the path says more.
fn strip_position(text: &str) -> String {
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}
