//! The extractors the handlers take for the query string and the path:
//! each parses strictly and rejects with the crate's JSON [`ApiError`].

use agentbus::EventId;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::params::{Params, LIVE_PARAMS, ONE_PARAMS, READ_PARAMS};

/// The query parameters of `GET /api/events` ([`READ_PARAMS`]).
#[derive(Debug)]
pub(crate) struct ReadParams(pub(crate) Params);

/// The query parameters of `/ws` and `/api/stream` ([`LIVE_PARAMS`]).
#[derive(Debug)]
pub(crate) struct LiveParams(pub(crate) Params);

/// The query parameters of `/api/events/{id}` ([`ONE_PARAMS`]).
#[derive(Debug)]
pub(crate) struct OneParams(pub(crate) Params);

/// The event id of `/api/events/{id}`: 400 unless it is a uuid.
#[derive(Debug)]
pub(crate) struct EventIdPath(pub(crate) EventId);

impl<S: Send + Sync> FromRequestParts<S> for ReadParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Params::parse(&query_pairs(parts)?, READ_PARAMS).map(Self)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for LiveParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Params::parse(&query_pairs(parts)?, LIVE_PARAMS).map(Self)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for OneParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Params::parse(&query_pairs(parts)?, ONE_PARAMS).map(Self)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for EventIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::rejected(rejection.status(), &rejection.body_text()))?;
        id.parse()
            .map(Self)
            .map_err(|_| ApiError::bad_request(format!("\"{id}\" is not an event id (a uuid)")))
    }
}

/// The query string as name/value pairs, or a 400.
pub(crate) fn query_pairs(parts: &Parts) -> Result<Vec<(String, String)>, ApiError> {
    Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|Query(pairs)| pairs)
        .map_err(|error| ApiError::bad_request(format!("malformed query string: {error}")))
}
