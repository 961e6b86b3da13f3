//! The bus's guards at `POST /api/events`: every event of a body is let in
//! before any is published, so a body is all-or-nothing for schema errors,
//! rate limits and custom guards as it is for decode errors; duplicates are
//! left out and reported per event.

use agentbus::{Admission, Event, EventBus, EventId, Rejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::body::at;
use crate::error::ApiError;
use crate::wire::{RejectedReply, ViolationReply};

/// The events of a body the guards let in, and per event of the body what
/// it duplicates (if anything).
pub(crate) struct Admitted {
    /// `(index in the body, admission)`, in body order.
    pub(crate) admissions: Vec<(usize, Admission)>,
    /// Per event of the body; `None` when no event was a duplicate.
    pub(crate) duplicate_of: Option<Vec<Option<EventId>>>,
}

/// Runs the bus's guards on every event of a body. A rejection other than
/// a duplicate fails the whole body; the admissions made so far are then
/// dropped, which withdraws them from the guards (nothing was published).
pub(crate) fn admit(bus: &EventBus, events: Vec<Event>, array: bool) -> Result<Admitted, Refused> {
    let total = events.len();
    let mut admissions = Vec::with_capacity(total);
    let mut duplicate_of: Option<Vec<Option<EventId>>> = None;
    for (index, event) in events.into_iter().enumerate() {
        match bus.admit(event) {
            Ok(admission) => admissions.push((index, admission)),
            Err(rejected) => match rejected.reason() {
                Rejection::Duplicate { of } => {
                    duplicate_of.get_or_insert_with(|| vec![None; total])[index] = Some(*of);
                }
                reason => return Err(Refused::new(reason, index, array)),
            },
        }
    }
    Ok(Admitted {
        admissions,
        duplicate_of,
    })
}

/// Puts the sequences of the admitted events (in admission order) back in
/// body order; duplicates get `None`, and `duplicate_of` says why.
pub(crate) fn spread(
    admitted: &[usize],
    sequences: Vec<Option<u64>>,
    total: usize,
) -> Vec<Option<u64>> {
    let mut all = vec![None; total];
    for (&index, sequence) in admitted.iter().zip(sequences) {
        all[index] = sequence;
    }
    all
}

/// A body a guard refused: 422 (schema, custom guard) or 429 with
/// `Retry-After` (rate limit), with a [`RejectedReply`].
#[derive(Debug)]
pub(crate) struct Refused {
    status: StatusCode,
    retry_after_secs: Option<u64>,
    /// Boxed: errors stay small on the happy path's stack.
    reply: Box<RejectedReply>,
}

impl Refused {
    fn new(reason: &Rejection, index: usize, array: bool) -> Self {
        let (status, violations, retry_after) = match reason {
            Rejection::Invalid { violations } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                violations
                    .iter()
                    .map(|v| ViolationReply {
                        pointer: v.pointer.clone(),
                        message: v.message.clone(),
                    })
                    .collect(),
                None,
            ),
            Rejection::RateLimited { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                Vec::new(),
                Some(*retry_after),
            ),
            _ => (StatusCode::UNPROCESSABLE_ENTITY, Vec::new(), None),
        };
        let retry_after_ms = retry_after.map(|d| (d.as_millis() as u64).max(1));
        Self {
            status,
            retry_after_secs: retry_after.map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0)),
            reply: Box::new(RejectedReply {
                error: format!(
                    "{}{reason}; nothing of this request was published",
                    at(index, array)
                ),
                reason: reason.kind().to_owned(),
                index: array.then_some(index),
                violations,
                retry_after_ms,
            }),
        }
    }
}

/// What `POST /api/events` can fail with.
pub(crate) enum PublishError {
    Api(ApiError),
    Refused(Refused),
}

impl From<ApiError> for PublishError {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

impl From<Refused> for PublishError {
    fn from(refused: Refused) -> Self {
        Self::Refused(refused)
    }
}

impl IntoResponse for PublishError {
    fn into_response(self) -> Response {
        let refused = match self {
            Self::Api(error) => return error.into_response(),
            Self::Refused(refused) => refused,
        };
        let mut response = (refused.status, Json(*refused.reply)).into_response();
        if let Some(secs) = refused.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}
