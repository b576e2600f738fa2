//! `GET` / `PUT /api/v0/desktop/clipboard?selection=clipboard|primary`: read and set the X
//! selection text through the desktop's [`crate::clipboard::Clipboard`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::action::{decode, ApiError};
use super::ApiState;
use crate::clipboard::Selection;

/// The answer of `GET`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ClipboardText)]
pub struct ClipboardText {
    /// clipboard or primary.
    pub selection: String,
    /// The text; null when nothing owns the selection or it has no text.
    pub text: Option<String>,
}

/// The answer of `PUT`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClipboardSet {
    /// clipboard or primary.
    pub selection: String,
    /// Bytes set.
    pub length: usize,
}

/// The JSON body of `PUT` (any other Content-Type carries the text itself).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ClipboardBody {
    /// The text.
    pub text: Option<String>,
}

/// Largest text accepted by `PUT`.
pub const MAX_CLIPBOARD: usize = 1024 * 1024;

fn selection(q: &HashMap<String, String>) -> Result<Selection, ApiError> {
    match q.get("selection").map(|s| s.to_ascii_lowercase()) {
        None => Ok(Selection::Clipboard),
        Some(s) if s == "clipboard" => Ok(Selection::Clipboard),
        Some(s) if s == "primary" => Ok(Selection::Primary),
        Some(s) => Err(ApiError::bad(format!(
            "Invalid \"selection\" query parameter {s:?}: use clipboard or primary."
        ))),
    }
}

fn name(s: Selection) -> &'static str {
    match s {
        Selection::Clipboard => "clipboard",
        Selection::Primary => "primary",
    }
}

/// `GET`: `{"selection": "clipboard", "text": "..."}` (`text` is null when nothing owns the
/// selection or it has no text).
#[utoipa::path(get, path = "/api/v0/desktop/clipboard", tag = "v0", params(("selection" = Option<String>, Query, description = "clipboard (default) or primary")),
    responses((status = 200, description = "The text", body = ClipboardText), (status = "4XX", description = "Bad request", body = super::error::ErrorBody), (status = "5XX", description = "The desktop failed", body = super::error::ErrorBody)))]
pub async fn get_text(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let sel = match selection(&q) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let cb = Arc::clone(&state.desktop.clipboard);
    match crate::desktop::blocking("clipboard", move || cb.get_text(sel)).await {
        Ok(text) => Json(ClipboardText {
            selection: name(sel).into(),
            text,
        })
        .into_response(),
        Err(e) => ApiError::desktop("Clipboard read failed.", &e).into_response(),
    }
}

/// `PUT`: body `{"text": "..."}` (JSON) or the text itself (any other Content-Type).
#[utoipa::path(put, path = "/api/v0/desktop/clipboard", tag = "v0", params(("selection" = Option<String>, Query, description = "clipboard (default) or primary")),
    request_body(content((ClipboardBody = "application/json"), (String = "text/plain"))),
    responses((status = 200, description = "Set", body = ClipboardSet), (status = "4XX", description = "Bad request", body = super::error::ErrorBody), (status = "5XX", description = "The desktop failed", body = super::error::ErrorBody)))]
pub async fn put_text(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sel = match selection(&q) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let is_json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let text = if is_json {
        match decode::<ClipboardBody>(&body) {
            Ok(ClipboardBody { text: Some(t) }) => t,
            Ok(ClipboardBody { text: None }) => {
                return ApiError::bad("Missing \"text\" for clipboard.").into_response()
            }
            Err(e) => return e.into_response(),
        }
    } else {
        match String::from_utf8(body.to_vec()) {
            Ok(t) => t,
            Err(_) => return ApiError::bad("Clipboard text must be UTF-8.").into_response(),
        }
    };
    if text.len() > MAX_CLIPBOARD {
        return ApiError::bad(format!(
            "Invalid \"text\" for clipboard: {} bytes is longer than the {MAX_CLIPBOARD} bytes \
             allowed.",
            text.len()
        ))
        .into_response();
    }
    let cb = Arc::clone(&state.desktop.clipboard);
    let len = text.len();
    match crate::desktop::blocking("clipboard", move || cb.set_text(sel, &text)).await {
        Ok(()) => Json(ClipboardSet {
            selection: name(sel).into(),
            length: len,
        })
        .into_response(),
        Err(e) => ApiError::desktop("Clipboard write failed.", &e).into_response(),
    }
}
