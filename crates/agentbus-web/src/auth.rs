//! Bearer-token authentication, compared in constant time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The configured token.
pub(crate) struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    pub(crate) fn new(token: String) -> Self {
        Self(token.into_bytes())
    }

    /// Constant time in the content; only the length can leak.
    fn accepts(&self, candidate: &[u8]) -> bool {
        self.0.ct_eq(candidate).into()
    }
}

/// Lets the request through when no token is configured, or when it carries
/// the token as `Authorization: Bearer <token>` or as `?token=<token>`.
pub(crate) async fn require_token(
    State(token): State<Option<Arc<Token>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &token else {
        return next.run(request).await;
    };
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, rest) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    let accepted = match from_header {
        Some(candidate) => token.accepts(candidate.as_bytes()),
        None => query_token(request.uri().query()).is_some_and(|c| token.accepts(c.as_bytes())),
    };
    if accepted {
        next.run(request).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send `Authorization: Bearer <token>` or `?token=<token>`",
        )
        .into_response()
    }
}

fn query_token(query: Option<&str>) -> Option<String> {
    let pairs: Vec<(String, String)> =
        axum::extract::Query::try_from_uri(&format!("/?{}", query?).parse().ok()?)
            .ok()
            .map(|axum::extract::Query(pairs)| pairs)?;
    pairs
        .into_iter()
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value)
}
