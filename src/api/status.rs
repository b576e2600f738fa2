//! `GET /api/v0/desktop/status` (JSON) and `GET /metrics` (Prometheus text format).

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use crate::metrics;

fn avg_ms(total_micros: u64, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        total_micros as f64 / count as f64 / 1000.0
    }
}

/// `GET /api/v0/desktop/status`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Status {
    /// The X display name.
    pub display: String,
    /// Screen width.
    pub width: u16,
    /// Screen height.
    pub height: u16,
    /// Bumped on every captured change.
    pub frame_version: u64,
    /// The X server.
    pub x_server: XServerStatus,
    /// Connected clients.
    pub clients: Clients,
    /// Frames captured so far.
    pub frames_captured: u64,
    /// Capture time.
    pub capture: Timing,
    /// RFB encoding.
    pub encode: EncodeStats,
    /// RFB clients dropped for protocol errors.
    pub rfb_protocol_errors: u64,
    /// Actions run.
    pub actions: u64,
}

/// The X server's state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct XServerStatus {
    /// The X display name.
    pub display: String,
    /// Whether deskd started (and supervises) it.
    pub managed: bool,
    /// running, restarting, stopped or attached.
    pub state: String,
    /// Restarts so far.
    pub restarts: u32,
    /// How the last X server process ended.
    pub last_exit: Option<String>,
    /// The window manager running.
    pub window_manager: Option<String>,
}

/// Connected clients.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Clients {
    /// RFB clients (TCP and WebSocket).
    pub rfb: u64,
}

/// Time spent.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Timing {
    /// In total, ms.
    pub total_ms: f64,
    /// Per frame, ms.
    pub avg_ms: f64,
}

/// RFB updates sent.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EncodeStats {
    /// Framebuffer updates.
    pub updates_sent: u64,
    /// Their bytes.
    pub update_bytes: u64,
    /// Encoding time in total, ms.
    pub total_ms: f64,
    /// Per update, ms.
    pub avg_ms: f64,
}

/// Display, screen size, X server state and restarts, clients, frames and timings.
#[utoipa::path(get, path = "/api/v0/desktop/status", tag = "v0",
    responses((status = 200, description = "Status", body = Status)))]
pub async fn status(State(state): State<ApiState>) -> Response {
    let d = state.desktop.status.status();
    let (version, frame) = state.desktop.frames.store().snapshot();
    let m = metrics::global();
    Json(Status {
        display: state.display.clone(),
        width: frame.width,
        height: frame.height,
        frame_version: version,
        x_server: XServerStatus {
            display: d.display,
            managed: d.managed,
            state: d.state,
            restarts: d.restarts,
            last_exit: d.last_exit,
            window_manager: d.window_manager,
        },
        clients: Clients {
            rfb: m.rfb_clients.get(),
        },
        frames_captured: m.frames_captured.get(),
        capture: Timing {
            total_ms: m.capture_micros.get() as f64 / 1000.0,
            avg_ms: avg_ms(m.capture_micros.get(), m.frames_captured.get()),
        },
        encode: EncodeStats {
            updates_sent: m.updates_sent.get(),
            update_bytes: m.update_bytes.get(),
            total_ms: m.encode_micros.get() as f64 / 1000.0,
            avg_ms: avg_ms(m.encode_micros.get(), m.updates_sent.get()),
        },
        rfb_protocol_errors: m.rfb_protocol_errors.get(),
        actions: m.actions.get(),
    })
    .into_response()
}

/// Prometheus exposition format, version 0.0.4.
pub fn render_metrics(state: &ApiState) -> String {
    let m = metrics::global();
    let d = state.desktop.status.status();
    let (_, frame) = state.desktop.frames.store().snapshot();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    let secs = |micros: u64| format!("{}", micros as f64 / 1e6);
    metric(
        "deskd_frames_captured_total",
        "counter",
        "Frame versions captured.",
        m.frames_captured.get().to_string(),
    );
    metric(
        "deskd_capture_seconds_total",
        "counter",
        "Time spent reading pixels from the X server.",
        secs(m.capture_micros.get()),
    );
    metric(
        "deskd_updates_sent_total",
        "counter",
        "Framebuffer updates sent to RFB clients.",
        m.updates_sent.get().to_string(),
    );
    metric(
        "deskd_update_bytes_total",
        "counter",
        "Bytes of framebuffer updates sent.",
        m.update_bytes.get().to_string(),
    );
    metric(
        "deskd_encode_seconds_total",
        "counter",
        "Time spent encoding framebuffer updates.",
        secs(m.encode_micros.get()),
    );
    metric(
        "deskd_rfb_clients",
        "gauge",
        "RFB clients connected.",
        m.rfb_clients.get().to_string(),
    );
    metric(
        "deskd_rfb_protocol_errors_total",
        "counter",
        "RFB clients disconnected for protocol errors.",
        m.rfb_protocol_errors.get().to_string(),
    );
    metric(
        "deskd_actions_total",
        "counter",
        "Action API requests served.",
        m.actions.get().to_string(),
    );
    metric(
        "deskd_x_server_restarts_total",
        "counter",
        "X server restarts.",
        d.restarts.to_string(),
    );
    metric(
        "deskd_x_server_up",
        "gauge",
        "1 when the X server is running or attached.",
        u8::from(matches!(d.state.as_str(), "running" | "attached")).to_string(),
    );
    metric(
        "deskd_screen_width_pixels",
        "gauge",
        "Screen width.",
        frame.width.to_string(),
    );
    metric(
        "deskd_screen_height_pixels",
        "gauge",
        "Screen height.",
        frame.height.to_string(),
    );
    out
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "v0",
    responses((status = 200, description = "Metrics", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)))]
pub async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render_metrics(&state),
    )
        .into_response()
}
