//! [`TraceHeader`]: the W3C `traceparent`/`tracestate` headers of a `POST`,
//! given to the posted events that carry no trace context of their own.

use agentbus::{Event, TraceContext};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::error::ApiError;

/// The request's trace context, if it sent a `traceparent` header.
///
/// A `traceparent` that breaks the W3C rules, or a `tracestate` next to a
/// valid one that does, is a 400 naming the header: the client asked for
/// its events to join a trace and that cannot be done as sent. A
/// `tracestate` without a `traceparent` is ignored, as the W3C rules say.
#[derive(Debug, Default)]
pub(crate) struct TraceHeader(Option<TraceContext>);

impl TraceHeader {
    fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let text = |name: &str| -> Result<Option<&str>, ApiError> {
            headers
                .get(name)
                .map(|value| {
                    value.to_str().map_err(|_| {
                        ApiError::bad_request(format!("header `{name}` is not visible ascii"))
                    })
                })
                .transpose()
        };
        let Some(traceparent) = text("traceparent")? else {
            return Ok(Self(None));
        };
        TraceContext::parse(traceparent, text("tracestate")?)
            .map(|context| Self(Some(context)))
            .map_err(|error| ApiError::bad_request(format!("header {error}")))
    }

    /// Gives the context to every event that has none.
    pub(crate) fn apply(&self, events: &mut [Event]) {
        let Some(context) = &self.0 else { return };
        for event in events.iter_mut().filter(|e| e.trace_context.is_none()) {
            event.trace_context = Some(context.clone());
        }
    }
}

impl<S: Sync> FromRequestParts<S> for TraceHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Self::from_headers(&parts.headers)
    }
}
