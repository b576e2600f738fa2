//! `GET /api/v0/desktop/status` (JSON) and `GET /metrics` (Prometheus text format).

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::ApiState;
use crate::metrics;

fn avg_ms(total_micros: u64, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        total_micros as f64 / count as f64 / 1000.0
    }
}

/// Display, screen size, X server state and restarts, clients, frames and timings.
pub async fn status(State(state): State<ApiState>) -> Response {
    let d = state.desktop.status.status();
    let (version, frame) = state.desktop.frames.store().snapshot();
    let m = metrics::global();
    Json(json!({
        "display": state.display,
        "width": frame.width,
        "height": frame.height,
        "frame_version": version,
        "x_server": {
            "display": d.display,
            "managed": d.managed,
            "state": d.state,
            "restarts": d.restarts,
            "last_exit": d.last_exit,
            "window_manager": d.window_manager,
        },
        "clients": {"rfb": m.rfb_clients.get()},
        "frames_captured": m.frames_captured.get(),
        "capture": {
            "total_ms": m.capture_micros.get() as f64 / 1000.0,
            "avg_ms": avg_ms(m.capture_micros.get(), m.frames_captured.get()),
        },
        "encode": {
            "updates_sent": m.updates_sent.get(),
            "update_bytes": m.update_bytes.get(),
            "total_ms": m.encode_micros.get() as f64 / 1000.0,
            "avg_ms": avg_ms(m.encode_micros.get(), m.updates_sent.get()),
        },
        "rfb_protocol_errors": m.rfb_protocol_errors.get(),
        "actions": m.actions.get(),
    }))
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

/// `GET /metrics`.
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
