//! [`ApiError`]: every error reply is `{"error": "..."}` with its status.

use agentbus_store::StoreError;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::wire::ErrorReply;

/// An error reply: a status and a one-line, lowercase message sent as
/// `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// axum's own error (an extractor's rejection, a 405) as JSON: its
    /// status and the first line of its text, lowercase but for names in
    /// backticks; the status's reason when there is no text.
    pub(crate) fn rejected(status: StatusCode, text: &str) -> Self {
        let line = text.lines().next().map(str::trim).unwrap_or_default();
        let message = if line.is_empty() {
            status.canonical_reason().unwrap_or("error").to_lowercase()
        } else {
            lowercase_outside_backticks(line)
        };
        Self::new(status, message)
    }
}

/// A store that cannot be read: 503, the server works but its store does
/// not answer.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        Self::unavailable(format!("the store cannot be read: {error}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorReply {
                error: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"agentbus\""),
            );
        }
        response
    }
}

/// The largest non-JSON error body read to build the JSON one; longer
/// ones give the status's reason instead.
const MAX_FOREIGN_ERROR: usize = 4 << 10;

/// Turns an error reply that is not JSON (axum's own: 405, a path that does
/// not decode, any extractor's rejection) into `{"error": "..."}`, keeping
/// its status and headers (`Allow` on a 405).
pub(crate) async fn to_json(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let is_error = status.is_client_error() || status.is_server_error();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if !is_error || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let json = if status == StatusCode::METHOD_NOT_ALLOWED {
        // axum adds `Allow` outside this layer, so it is not known here.
        ApiError::new(
            status,
            format!("method {method} is not allowed on this route (the `Allow` header lists those that are)"),
        )
    } else {
        let text = axum::body::to_bytes(body, MAX_FOREIGN_ERROR)
            .await
            .ok()
            .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
            .unwrap_or_default();
        ApiError::rejected(status, &text)
    }
    .into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    let (json_parts, json_body) = json.into_parts();
    parts.headers.extend(json_parts.headers);
    Response::from_parts(parts, json_body)
}

/// axum's messages are capitalized; ours are not. Names in backticks
/// keep their case.
fn lowercase_outside_backticks(text: &str) -> String {
    text.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 0 {
                part.to_lowercase()
            } else {
                part.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_text_outside_backticks_is_lowercased() {
        assert_eq!(
            lowercase_outside_backticks("Failed To Parse `CircleId` As A Number, `Limit` Too"),
            "failed to parse `CircleId` as a number, `Limit` too"
        );
        assert_eq!(lowercase_outside_backticks("No Backticks"), "no backticks");
    }
}
