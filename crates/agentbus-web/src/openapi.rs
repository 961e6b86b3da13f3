//! `GET /api/openapi.json`: the OpenAPI 3.1 document, embedded.

use axum::response::Response;

/// The document served at `/api/openapi.json`.
pub(crate) const OPENAPI_JSON: &str = include_str!("../assets/openapi.json");

pub(crate) async fn document() -> Response {
    crate::read::json_response(OPENAPI_JSON.to_owned())
}
