//! `GET /api/v0/openapi.json`: a hand-written OpenAPI 3.1 description of every endpoint
//! (kept in `openapi.json` beside this file so it reads as a document, not as code).

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The document.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// The handler.
pub async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response()
}
