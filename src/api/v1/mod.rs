//! sandbox-agent's desktop API (`/v1/health`, `/v1/desktop/*`), so the `sandbox-agent` SDK
//! drives deskd as it drives its own server: same paths, bodies, status codes and
//! `application/problem+json` errors. Thin adapters over the same desktop, input steps,
//! screenshots and window helper as the `/api/v0` endpoints.
//!
//! Where the reference server (0.4.2) is plainly wrong deskd does the right thing:
//! window x/y are the client area's real root position (the reference adds the frame offset
//! twice, an xdotool bug), clipboard writes answer at once (the reference's can hang),
//! unknown key names and empty `open` targets are refused with 400 instead of silently doing
//! nothing, and malformed bodies get problem+json instead of plain text.

pub mod apps;
pub mod clipboard;
pub mod input;
pub mod lifecycle;
pub mod problem;
pub mod recording;
pub mod screen;
pub mod stream;
pub mod types;
pub mod windows;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;

use super::ApiState;
use crate::desktop::DesktopError;
use problem::Problem;

/// A JSON answer or a problem.
pub type V1<T> = Result<Json<T>, Problem>;

/// Every `/v1` route.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/v1/health", get(lifecycle::health))
        .route("/v1/desktop/status", get(lifecycle::status))
        .route("/v1/desktop/start", post(lifecycle::start))
        .route("/v1/desktop/stop", post(lifecycle::stop))
        .route("/v1/desktop/display/info", get(lifecycle::display_info))
        .route("/v1/desktop/screenshot", get(screen::full))
        .route("/v1/desktop/screenshot/region", get(screen::region_shot))
        .route("/v1/desktop/mouse/position", get(input::position))
        .route("/v1/desktop/mouse/move", post(input::mouse_move))
        .route("/v1/desktop/mouse/click", post(input::click))
        .route("/v1/desktop/mouse/down", post(input::mouse_down))
        .route("/v1/desktop/mouse/up", post(input::mouse_up))
        .route("/v1/desktop/mouse/drag", post(input::drag))
        .route("/v1/desktop/mouse/scroll", post(input::scroll))
        .route("/v1/desktop/keyboard/type", post(input::type_text))
        .route("/v1/desktop/keyboard/press", post(input::press))
        .route("/v1/desktop/keyboard/down", post(input::key_down))
        .route("/v1/desktop/keyboard/up", post(input::key_up))
        .route("/v1/desktop/windows", get(windows::list))
        .route("/v1/desktop/windows/focused", get(windows::focused))
        .route("/v1/desktop/windows/{id}/focus", post(windows::focus))
        .route("/v1/desktop/windows/{id}/move", post(windows::move_to))
        .route("/v1/desktop/windows/{id}/resize", post(windows::resize))
        .route(
            "/v1/desktop/clipboard",
            get(clipboard::read).post(clipboard::write),
        )
        .route("/v1/desktop/launch", post(apps::launch))
        .route("/v1/desktop/open", post(apps::open))
        .route("/v1/desktop/recording/start", post(recording::start))
        .route("/v1/desktop/recording/stop", post(recording::stop))
        .route("/v1/desktop/recordings", get(recording::list))
        .route(
            "/v1/desktop/recordings/{id}",
            get(recording::get).delete(recording::delete),
        )
        .route(
            "/v1/desktop/recordings/{id}/download",
            get(recording::download),
        )
        .route("/v1/desktop/stream/status", get(stream::status))
        .route("/v1/desktop/stream/start", post(stream::start))
        .route("/v1/desktop/stream/stop", post(stream::stop))
        .route("/v1/desktop/stream/signaling", get(stream::signaling))
}

/// Decode a JSON body (an empty one reads as `{}`): syntax errors are 400, well-formed bodies
/// of the wrong shape 422, as the reference answers them (but as problem+json).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        let status = if e.is_data() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::BAD_REQUEST
        };
        Problem::invalid_request(status, e.to_string())
    })
}

/// 409 unless the display is up.
pub fn ensure_active(state: &ApiState) -> Result<(), Problem> {
    match state.desktop.status.status().state.as_str() {
        "running" | "attached" => Ok(()),
        "restarting" => Err(Problem::starting()),
        _ => Err(Problem::inactive()),
    }
}

/// Run blocking X work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DesktopError> + Send + 'static,
) -> Result<T, DesktopError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DesktopError::Other(format!("task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        #[derive(serde::Deserialize, Debug)]
        struct B {
            #[allow(dead_code)]
            text: String,
        }
        assert_eq!(
            parse::<B>(b"garbage").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            parse::<B>(b"{}").unwrap_err().status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            parse::<B>(b"").unwrap_err().status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert!(parse::<B>(br#"{"text":"x","extra":1}"#).is_ok());
    }
}
