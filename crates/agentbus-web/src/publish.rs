//! `POST /api/events`: decode all, then publish all.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use agentbus::{Event, EventId};
use agentbus_store::{EventStore, StoreError};
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
    /// stored (a retry, or a repeat earlier in the body), so it was not
    /// stored again, and for no other reason.
    sequences: Option<Vec<Option<u64>>>,
}

pub(crate) async fn publish(
    State(state): State<SharedState>,
    request: Request,
) -> Result<Json<Published>, ApiError> {
    require_json(request.headers())?;
    let limit = state.body_limit;
    // Before the body is read: a client that sent `Expect: 100-continue`
    // gets the 413 instead of an invitation to send what will be refused.
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large(limit));
    }
    let body = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|error| {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if too_large {
                self::too_large(limit)
            } else {
                ApiError::bad_request(format!("could not read the request body: {error}"))
            }
        })?;
    let (events, array) = decode(&body)?;
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
    // Refuse what the store would skip: a 200 then always means stored.
    for (index, event) in events.iter().enumerate() {
        recorder
            .store()
            .check(event)
            .map_err(|error| unstorable(at(index, array), &error))?;
    }
    // The writer reports each sequence as it commits: no store read after.
    let tracked = recorder.track(&ids);
    // One deadline for room and commit: a stalled store gets the client a
    // 503 in bounded time, and no worker ever waits on the recorder's queue.
    let deadline = tokio::time::Instant::now() + state.durable_timeout;
    let total = events.len();
    let mut published = 0;
    let mut events = events.into_iter();
    while published < total {
        let room = tokio::time::timeout_at(deadline, recorder.reserve(total - published)).await;
        let room = match room {
            Ok(Ok(room)) => room,
            Ok(Err(error)) => return Err(not_durable(published, total, &error.to_string())),
            Err(_) => {
                let why = format!(
                    "the store is not keeping up: no room in the recorder's queue within {:?}",
                    state.durable_timeout
                );
                return Err(not_durable(published, total, &why));
            }
        };
        for event in events.by_ref().take(room.events()) {
            state.bus.publish(Arc::new(event)).await;
            published += 1;
        }
    }
    let sequences = match tokio::time::timeout_at(deadline, tracked.commit()).await {
        Ok(Ok(sequences)) => sequences,
        Ok(Err(StoreError::NotRecorded { index, .. })) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "{}was published but the store refused it (counted in `store.rejected` \
                     of /api/stats); the other events are stored",
                    at(index, array)
                ),
            ))
        }
        Ok(Err(error)) => return Err(not_durable(total, total, &error.to_string())),
        Err(_) => {
            let why = format!("not committed within {:?}", state.durable_timeout);
            return Err(not_durable(total, total, &why));
        }
    };
    Ok(Json(Published {
        ids,
        sequences: Some(sequences),
    }))
}

/// `event 2: ` inside an array body, nothing for a single event.
fn at(index: usize, array: bool) -> String {
    if array {
        format!("event {index}: ")
    } else {
        String::new()
    }
}

/// The 400 for an event the attached store cannot hold.
fn unstorable(at: String, error: &StoreError) -> ApiError {
    match error {
        StoreError::TimestampOutOfRange { .. } => ApiError::bad_request(format!(
            "{at}field `timestamp`: the store holds timestamps from 1970-01-01T00:00:00Z \
             to 2262-04-11T23:47:16.854775807Z"
        )),
        other => ApiError::bad_request(format!("{at}the store cannot hold this event: {other}")),
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is larger than the limit of {limit} bytes"),
    )
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

/// One event object or an array of them (and whether it was an array);
/// every error names where it is.
pub(crate) fn decode(body: &[u8]) -> Result<(Vec<Event>, bool), ApiError> {
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
    let array = first == Some(&b'[');
    if let Some((index, literal)) = first_inexact_integer(body) {
        return Err(ApiError::bad_request(format!(
            "{}integer {literal} is beyond 64 bits and would lose its exact value: \
             send it as a string",
            at(index, array)
        )));
    }
    for (index, event) in events.iter().enumerate() {
        if !encodable(event.timestamp) {
            return Err(ApiError::bad_request(format!(
                "{}field `timestamp`: must be between 1970-01-01 and 9999-12-31",
                at(index, array)
            )));
        }
    }
    Ok((events, array))
}

/// The first integer literal beyond `i64`/`u64` in a body that parsed, and
/// the index of the event holding it (among the top-level array's items).
///
/// serde_json reads such a literal as an `f64`, silently rounding it; its
/// `arbitrary_precision` feature would keep it, but features are shared by
/// the whole build and that one changes the core's `Value`s for everyone.
/// One pass over bytes already known to be valid JSON.
fn first_inexact_integer(body: &[u8]) -> Option<(usize, String)> {
    let (mut depth, mut index, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    let mut at = 0;
    while at < body.len() {
        let byte = body[at];
        at += 1;
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => index += 1,
            b'-' | b'0'..=b'9' => {
                let start = at - 1;
                while at < body.len()
                    && matches!(body[at], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    at += 1;
                }
                let literal = &body[start..at];
                // 19 digits always fit; only longer integers can overflow.
                if literal.len() >= 19 && !literal.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) {
                    let text = String::from_utf8_lossy(literal);
                    let fits = if text.starts_with('-') {
                        text.parse::<i64>().is_ok()
                    } else {
                        text.parse::<u64>().is_ok()
                    };
                    if !fits {
                        return Some((index, text.into_owned()));
                    }
                }
            }
            _ => {}
        }
    }
    None
}

fn encodable(at: SystemTime) -> bool {
    const RFC3339_MAX_SECS: u64 = 253_402_300_800;
    at.duration_since(UNIX_EPOCH)
        .is_ok_and(|since| since.as_secs() < RFC3339_MAX_SECS)
}

fn from_slice<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Plain serde_json accepts exactly what the tracked parse below does;
    // only a body that fails pays for tracking the path to name where.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
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
