//! Health, status, start, stop and display info. When deskd runs its own Xvfb, `start`
//! (re)starts it with the requested display number, size and dpi and `stop` stops it; attached
//! to someone else's display, deskd reports it active and refuses to stop it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::problem::Problem;
use super::timestamp;
use super::types::{
    DesktopDisplayInfoResponse, DesktopErrorInfo, DesktopProcessInfo, DesktopResolution,
    DesktopStartRequest, DesktopState, DesktopStatusResponse, HealthResponse,
};
use super::{blocking, ensure_active, parse, V1};
use crate::api::ApiState;
use crate::desktop::{DesktopError, DisplaySettings};

/// The SDK's defaults for a desktop started without settings.
pub const DEFAULT_SETTINGS: DisplaySettings = DisplaySettings {
    number: None,
    width: 1440,
    height: 900,
    dpi: 96,
};

/// Largest screen side `start` accepts (the capture and screenshot limit).
pub const MAX_SIDE: i32 = crate::api::screenshot::MAX_SIDE as i32;

/// How long `start` waits for capture to see the new X server.
const CAPTURE_WAIT: Duration = Duration::from_secs(10);

/// `GET /v1/health`.
#[utoipa::path(get, path = "/v1/health", tag = "v1", responses((status = 200, description = "OK", body = crate::api::v1::types::HealthResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn health() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".into(),
    })
}

fn state_of(raw: &str) -> DesktopState {
    match raw {
        "running" | "attached" => DesktopState::Active,
        "restarting" => DesktopState::Starting,
        "failed" => DesktopState::Failed,
        _ => DesktopState::Inactive,
    }
}

/// The screen's size and dpi as X reports them.
async fn resolution(state: &ApiState) -> Result<DesktopResolution, DesktopError> {
    let w = Arc::clone(&state.windows);
    let (width, height, dpi) = blocking(move || w.screen()).await?;
    Ok(DesktopResolution {
        width,
        height,
        dpi: Some(dpi),
    })
}

/// The status answer (also returned by start and stop).
pub async fn status_of(state: &ApiState) -> DesktopStatusResponse {
    let raw = state.desktop.status.status();
    let st = state_of(&raw.state);
    let source = Arc::clone(&state.desktop.status);
    let (mut processes, started) = match source.control() {
        Some(c) => (c.processes(), c.started_at()),
        None => (Vec::new(), state.started),
    };
    processes.extend(state.apps.list());
    let mut r = DesktopStatusResponse {
        state: st,
        display: None,
        resolution: None,
        started_at: None,
        last_error: None,
        missing_dependencies: Vec::new(),
        processes: processes
            .into_iter()
            .map(|p| DesktopProcessInfo {
                name: p.name,
                pid: p.pid,
                running: p.running,
                log_path: None,
            })
            .collect(),
        windows: None,
    };
    if st == DesktopState::Failed {
        r.last_error = Some(DesktopErrorInfo {
            code: "desktop_start_failed".into(),
            message: raw.last_exit.clone().unwrap_or_default(),
        });
    }
    if st == DesktopState::Active {
        r.display = Some(raw.display);
        r.resolution = resolution(state).await.ok();
        r.started_at = Some(timestamp::format(started));
        r.windows = super::windows::all(state).await.ok();
    }
    r
}

/// `GET /v1/desktop/status`.
#[utoipa::path(get, path = "/v1/desktop/status", tag = "v1", responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopStatusResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn status(State(state): State<ApiState>) -> Json<DesktopStatusResponse> {
    Json(status_of(&state).await)
}

fn check(req: &DesktopStartRequest) -> Result<(), Problem> {
    for v in [req.width, req.height].into_iter().flatten() {
        if v <= 0 {
            return Err(Problem::invalid(
                "Desktop width and height must be greater than 0",
            ));
        }
        if v > MAX_SIDE {
            return Err(Problem::invalid(format!(
                "Desktop width and height must be at most {MAX_SIDE}"
            )));
        }
    }
    if let Some(d) = req.dpi {
        if !(1..=1000).contains(&d) {
            return Err(Problem::invalid("dpi must be between 1 and 1000"));
        }
    }
    if let Some(n) = req.display_num {
        if !(1..=32767).contains(&n) {
            return Err(Problem::invalid("displayNum must be > 0"));
        }
    }
    Ok(())
}

/// The settings a start request asks for: its fields, the SDK's defaults for the rest, and
/// the current display number unless another is named.
pub fn wanted(req: &DesktopStartRequest, current: Option<u16>) -> DisplaySettings {
    let side = |v: Option<i32>, d: u16| v.and_then(|v| u16::try_from(v).ok()).unwrap_or(d);
    DisplaySettings {
        number: req
            .display_num
            .and_then(|n| u16::try_from(n).ok())
            .or(current),
        width: side(req.width, DEFAULT_SETTINGS.width),
        height: side(req.height, DEFAULT_SETTINGS.height),
        dpi: side(req.dpi, DEFAULT_SETTINGS.dpi),
    }
}

fn explicit(req: &DesktopStartRequest) -> bool {
    req.width.is_some() || req.height.is_some() || req.dpi.is_some() || req.display_num.is_some()
}

/// Wait until capture has connected to the (new) X server and sees `size`.
async fn capture_follows(state: &ApiState, size: (u16, u16)) -> Result<(), DesktopError> {
    let deadline = Instant::now() + CAPTURE_WAIT;
    loop {
        let frames = Arc::clone(&state.desktop.frames);
        let r = blocking(move || frames.refresh()).await;
        let (_, f) = state.desktop.frames.store().snapshot();
        if r.is_ok() && (f.width, f.height) == size {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(r.err().unwrap_or_else(|| {
                DesktopError::Timeout(format!(
                    "capture still sees {}x{} instead of {}x{}",
                    f.width, f.height, size.0, size.1
                ))
            }));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `POST /v1/desktop/start`. Active and asked for nothing in particular (or for what it
/// already is): the status, as the reference answers. Otherwise the display restarts with the
/// requested settings (the SDK's 1440x900 at 96 dpi where unset; the same display number
/// unless `displayNum` names another); launched applications end with it.
#[utoipa::path(post, path = "/v1/desktop/start", tag = "v1", request_body = crate::api::v1::types::DesktopStartRequest, responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopStatusResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn start(State(state): State<ApiState>, body: Bytes) -> V1<DesktopStatusResponse> {
    let req: DesktopStartRequest = parse(&body)?;
    check(&req)?;
    let raw = state.desktop.status.status();
    let active = state_of(&raw.state) == DesktopState::Active;
    let source = Arc::clone(&state.desktop.status);
    let Some(control) = source.control() else {
        let (_, f) = state.desktop.frames.store().snapshot();
        let number = raw.display.trim_start_matches(':').split('.').next();
        let same = req.width.is_none_or(|w| w == i32::from(f.width))
            && req.height.is_none_or(|h| h == i32::from(f.height))
            && req
                .display_num
                .is_none_or(|n| number == Some(n.to_string().as_str()));
        if !same {
            return Err(Problem::conflict(format!(
                "deskd is attached to display {}, which it did not start; it cannot restart \
                 it with other settings",
                raw.display
            )));
        }
        return Ok(Json(status_of(&state).await));
    };
    let current = control.settings();
    let want = wanted(&req, current.number);
    if active && (!explicit(&req) || want == current) {
        return Ok(Json(status_of(&state).await));
    }
    state.apps.stop_all();
    let s = Arc::clone(&source);
    blocking(move || match s.control() {
        Some(c) => c.restart(want),
        None => Err(DesktopError::Other("display control went away".into())),
    })
    .await
    .map_err(|e| start_failed(&e))?;
    capture_follows(&state, (want.width, want.height))
        .await
        .map_err(|e| start_failed(&e))?;
    Ok(Json(status_of(&state).await))
}

fn start_failed(e: &DesktopError) -> Problem {
    Problem {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "desktop_start_failed",
        title: "Desktop Start Failed",
        detail: format!("starting the desktop failed: {e}"),
        desktop: true,
        details: None,
    }
}

/// `POST /v1/desktop/stop`: stops launched applications, the window manager and Xvfb. Refused
/// (409) when deskd is attached to a display it did not start.
#[utoipa::path(post, path = "/v1/desktop/stop", tag = "v1", responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopStatusResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn stop(State(state): State<ApiState>) -> V1<DesktopStatusResponse> {
    let source = Arc::clone(&state.desktop.status);
    if source.control().is_none() {
        return Err(Problem {
            status: StatusCode::CONFLICT,
            code: "desktop_not_managed",
            title: "Desktop Not Managed",
            detail: format!(
                "deskd is attached to display {}, which it did not start (--display); stop \
                 that X server where it was started",
                source.status().display
            ),
            desktop: true,
            details: None,
        });
    }
    state.apps.stop_all();
    blocking(move || {
        if let Some(c) = source.control() {
            c.stop();
        }
        Ok(())
    })
    .await
    .map_err(|e| Problem::runtime_failed(e.to_string()))?;
    Ok(Json(status_of(&state).await))
}

/// `GET /v1/desktop/display/info`.
#[utoipa::path(get, path = "/v1/desktop/display/info", tag = "v1", responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopDisplayInfoResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn display_info(State(state): State<ApiState>) -> V1<DesktopDisplayInfoResponse> {
    ensure_active(&state)?;
    let resolution = resolution(&state)
        .await
        .map_err(|e| Problem::runtime_failed(format!("display query failed: {e}")))?;
    Ok(Json(DesktopDisplayInfoResponse {
        display: state.desktop.status.status().display,
        resolution,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_settings() {
        let req: DesktopStartRequest = serde_json::from_str("{}").unwrap();
        assert!(!explicit(&req));
        assert_eq!(
            wanted(&req, Some(7)),
            DisplaySettings {
                number: Some(7),
                ..DEFAULT_SETTINGS
            }
        );
        let req: DesktopStartRequest =
            serde_json::from_str(r#"{"width":800,"height":600,"dpi":120,"displayNum":77}"#)
                .unwrap();
        assert_eq!(
            wanted(&req, Some(7)),
            DisplaySettings {
                number: Some(77),
                width: 800,
                height: 600,
                dpi: 120
            }
        );
        assert!(check(&req).is_ok());
        for bad in [
            r#"{"width":0}"#,
            r#"{"height":100000}"#,
            r#"{"displayNum":-1}"#,
            r#"{"dpi":0}"#,
        ] {
            let req: DesktopStartRequest = serde_json::from_str(bad).unwrap();
            assert_eq!(
                check(&req).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
    }
}
