//! The HTTP API for agents and tools: Coder's action endpoint (plus extensions), an Anthropic
//! computer-use adapter, screenshots, windows, clipboard, status, Prometheus metrics and the
//! OpenAPI document. Input and pixels go through the same [`Desktop`] traits as RFB clients.

pub mod action;
pub mod clipboard;
pub mod computer_use;
pub mod keys;
pub mod openapi;
pub mod scale;
pub mod screenshot;
pub mod status;
pub mod windows;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::desktop::Desktop;
use crate::display::conn::XServer;

/// Bodies above this are refused (413) before parsing; below it, oversized fields such as a
/// 1 MB `type` text get a 400 that names them.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The desktop.
    pub desktop: Desktop,
    /// The X display name, e.g. ":7".
    pub display: String,
    /// The EWMH window helper (its own X connection, opened on first use).
    pub windows: Arc<windows::Windows>,
}

/// Every API route: `/api/v0/desktop/...`, `/api/v0/openapi.json` and `/metrics`. The window
/// endpoints connect to `display` with `$XAUTHORITY`; for a display deskd started, use
/// [`router_with_server`] so they get its cookie and follow restarts.
pub fn router(desktop: Desktop, display: String) -> Router {
    build(desktop, display, None)
}

/// [`router`] whose window endpoints connect through `server` (e.g.
/// `RunningDesktop::server()`).
pub fn router_with_server(desktop: Desktop, display: String, server: Arc<XServer>) -> Router {
    build(desktop, display, Some(server))
}

fn build(desktop: Desktop, display: String, server: Option<Arc<XServer>>) -> Router {
    let state = ApiState {
        windows: Arc::new(windows::Windows::new(display.clone(), server)),
        desktop,
        display,
    };
    Router::new()
        .route("/api/v0/desktop/action", post(action::handle))
        .route("/api/v0/desktop/computer-use", post(computer_use::handle))
        .route("/api/v0/desktop/screenshot", get(screenshot::handle_get))
        .route("/api/v0/desktop/windows", get(windows::list))
        .route("/api/v0/desktop/windows/{id}/focus", post(windows::focus))
        .route("/api/v0/desktop/windows/{id}/close", post(windows::close))
        .route("/api/v0/desktop/windows/{id}/move", post(windows::move_to))
        .route("/api/v0/desktop/windows/{id}/resize", post(windows::resize))
        .route(
            "/api/v0/desktop/clipboard",
            get(clipboard::get_text).put(clipboard::put_text),
        )
        .route("/api/v0/desktop/status", get(status::status))
        .route("/metrics", get(status::metrics))
        .route("/api/v0/openapi.json", get(openapi::document))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}
