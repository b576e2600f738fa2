//! Stream endpoints. The SDK's stream is WebRTC with neko's signalling, which deskd does not
//! speak; these answer as the reference does when its streamer is unavailable (status
//! inactive, start 409), naming deskd's own live view: RFB over WebSocket at `/websockify`.

use axum::Json;

use super::problem::Problem;
use super::types::DesktopStreamStatusResponse;
use super::V1;

/// Why there is no WebRTC stream, and what to use instead.
pub const UNAVAILABLE: &str = "deskd does not provide the WebRTC (neko) desktop stream; \
     connect an RFB client (e.g. noVNC) to deskd's RFB WebSocket at /websockify, or open its \
     viewer at /";

fn inactive() -> Json<DesktopStreamStatusResponse> {
    Json(DesktopStreamStatusResponse {
        active: false,
        process_id: None,
        window_id: None,
    })
}

/// `GET /v1/desktop/stream/status`.
#[utoipa::path(get, path = "/v1/desktop/stream/status", tag = "v1", responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopStreamStatusResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn status() -> Json<DesktopStreamStatusResponse> {
    inactive()
}

/// `POST /v1/desktop/stream/start`: 409.
#[utoipa::path(post, path = "/v1/desktop/stream/start", tag = "v1", responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopStreamStatusResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn start() -> V1<DesktopStreamStatusResponse> {
    Err(Problem::conflict(UNAVAILABLE))
}

/// `POST /v1/desktop/stream/stop`: nothing runs, so nothing to stop.
#[utoipa::path(post, path = "/v1/desktop/stream/stop", tag = "v1", responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopStreamStatusResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn stop() -> Json<DesktopStreamStatusResponse> {
    inactive()
}

/// `GET /v1/desktop/stream/signaling`: 409, before any WebSocket upgrade.
#[utoipa::path(get, path = "/v1/desktop/stream/signaling", tag = "v1", responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopStreamStatusResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn signaling() -> V1<DesktopStreamStatusResponse> {
    Err(Problem::conflict(UNAVAILABLE))
}
