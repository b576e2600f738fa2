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
pub mod timestamp;
pub mod types;
pub mod windows;

use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;

use super::routes::{route, Route, Verb};
use super::ApiState;
use crate::desktop::DesktopError;
use problem::Problem;

/// A JSON answer or a problem.
pub type V1<T> = Result<Json<T>, Problem>;

/// Every `/v1` route.
pub fn routes() -> Vec<Route<ApiState>> {
    use Verb::{Delete, Get, Post};
    vec![
        route(Get, "/v1/health", lifecycle::health),
        route(Get, "/v1/desktop/status", lifecycle::status),
        route(Post, "/v1/desktop/start", lifecycle::start),
        route(Post, "/v1/desktop/stop", lifecycle::stop),
        route(Get, "/v1/desktop/display/info", lifecycle::display_info),
        route(Get, "/v1/desktop/screenshot", screen::full),
        route(Get, "/v1/desktop/screenshot/region", screen::region_shot),
        route(Get, "/v1/desktop/mouse/position", input::position),
        route(Post, "/v1/desktop/mouse/move", input::mouse_move),
        route(Post, "/v1/desktop/mouse/click", input::click),
        route(Post, "/v1/desktop/mouse/down", input::mouse_down),
        route(Post, "/v1/desktop/mouse/up", input::mouse_up),
        route(Post, "/v1/desktop/mouse/drag", input::drag),
        route(Post, "/v1/desktop/mouse/scroll", input::scroll),
        route(Post, "/v1/desktop/keyboard/type", input::type_text),
        route(Post, "/v1/desktop/keyboard/press", input::press),
        route(Post, "/v1/desktop/keyboard/down", input::key_down),
        route(Post, "/v1/desktop/keyboard/up", input::key_up),
        route(Get, "/v1/desktop/windows", windows::list),
        route(Get, "/v1/desktop/windows/focused", windows::focused),
        route(Post, "/v1/desktop/windows/{id}/focus", windows::focus),
        route(Post, "/v1/desktop/windows/{id}/move", windows::move_to),
        route(Post, "/v1/desktop/windows/{id}/resize", windows::resize),
        route(Get, "/v1/desktop/clipboard", clipboard::read),
        route(Post, "/v1/desktop/clipboard", clipboard::write),
        route(Post, "/v1/desktop/launch", apps::launch),
        route(Post, "/v1/desktop/open", apps::open),
        route(Post, "/v1/desktop/recording/start", recording::start),
        route(Post, "/v1/desktop/recording/stop", recording::stop),
        route(Get, "/v1/desktop/recordings", recording::list),
        route(Get, "/v1/desktop/recordings/{id}", recording::get),
        route(Delete, "/v1/desktop/recordings/{id}", recording::delete),
        route(
            Get,
            "/v1/desktop/recordings/{id}/download",
            recording::download,
        ),
        route(Get, "/v1/desktop/stream/status", stream::status),
        route(Post, "/v1/desktop/stream/start", stream::start),
        route(Post, "/v1/desktop/stream/stop", stream::stop),
        route(Get, "/v1/desktop/stream/signaling", stream::signaling),
    ]
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
