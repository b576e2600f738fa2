//! `GET` / `POST /v1/desktop/clipboard`: the X clipboard or primary selection as text, through
//! the desktop's clipboard (deskd owns the selection itself, so a write answers at once).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::Json;

use super::problem::Problem;
use super::types::{DesktopActionResponse, DesktopClipboardResponse, DesktopClipboardWriteRequest};
use super::{blocking, ensure_active, parse, V1};
use crate::api::clipboard::MAX_CLIPBOARD;
use crate::api::ApiState;
use crate::clipboard::Selection;
use crate::desktop::DesktopError;

fn selection(s: Option<&str>) -> Result<(Selection, &'static str), Problem> {
    match s.unwrap_or("clipboard") {
        "clipboard" => Ok((Selection::Clipboard, "clipboard")),
        "primary" => Ok((Selection::Primary, "primary")),
        other => Err(Problem::invalid(format!(
            "unsupported selection {other:?}: use clipboard or primary"
        ))),
    }
}

fn clipboard_failed(e: &DesktopError) -> Problem {
    Problem::from_desktop(
        "desktop_clipboard_failed",
        "Desktop Clipboard Failed",
        "clipboard",
        e,
    )
}

/// `GET /v1/desktop/clipboard?selection=`.
#[utoipa::path(get, path = "/v1/desktop/clipboard", tag = "v1", params(("selection" = Option<String>, Query, description = "clipboard (default) or primary")), responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopClipboardResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn read(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> V1<DesktopClipboardResponse> {
    ensure_active(&state)?;
    let (sel, name) = selection(q.get("selection").map(String::as_str))?;
    let cb = Arc::clone(&state.desktop.clipboard);
    let text = blocking(move || cb.get_text(sel))
        .await
        .map_err(|e| clipboard_failed(&e))?;
    Ok(Json(DesktopClipboardResponse {
        selection: name.into(),
        text: text.unwrap_or_default(),
    }))
}

/// `POST /v1/desktop/clipboard`.
#[utoipa::path(post, path = "/v1/desktop/clipboard", tag = "v1", request_body = crate::api::v1::types::DesktopClipboardWriteRequest, responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopActionResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn write(State(state): State<ApiState>, body: Bytes) -> V1<DesktopActionResponse> {
    ensure_active(&state)?;
    let r: DesktopClipboardWriteRequest = parse(&body)?;
    let (sel, _) = selection(r.selection.as_deref())?;
    if r.text.len() > MAX_CLIPBOARD {
        return Err(Problem::invalid(format!(
            "text is {} bytes, more than the {MAX_CLIPBOARD} allowed",
            r.text.len()
        )));
    }
    let cb = Arc::clone(&state.desktop.clipboard);
    blocking(move || cb.set_text(sel, &r.text))
        .await
        .map_err(|e| clipboard_failed(&e))?;
    Ok(Json(DesktopActionResponse { ok: true }))
}
