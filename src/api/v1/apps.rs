//! `POST /v1/desktop/launch` and `open`: applications started on the display by deskd
//! ([`crate::apps::Apps`]), with `wait: true` answering once the application's window maps.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::problem::Problem;
use super::types::{
    DesktopLaunchRequest, DesktopLaunchResponse, DesktopOpenRequest, DesktopOpenResponse,
};
use super::{blocking, ensure_active, parse, V1};
use crate::api::ApiState;
use crate::apps::{LaunchError, Launched};

/// Longest `wait: true` waits for a window.
pub const WINDOW_WAIT: Duration = Duration::from_secs(10);
/// Most arguments.
pub const MAX_ARGS: usize = 256;

fn launch_failed(e: LaunchError) -> Problem {
    match e {
        LaunchError::NotFound(_) => Problem::app_not_found(e.to_string()),
        LaunchError::TooMany => Problem::conflict(e.to_string()),
        LaunchError::Spawn(..) => Problem {
            status: StatusCode::BAD_GATEWAY,
            code: "desktop_launch_failed",
            title: "Desktop Launch Failed",
            detail: e.to_string(),
            desktop: true,
            details: None,
        },
    }
}

async fn spawn(state: &ApiState, program: String, args: Vec<String>) -> Result<Launched, Problem> {
    let apps = Arc::clone(&state.apps);
    let env = state.desktop.status.client_env();
    tokio::task::spawn_blocking(move || apps.launch(&program, &args, &env))
        .await
        .map_err(|e| Problem::runtime_failed(e.to_string()))?
        .map_err(launch_failed)
}

/// The first window that belongs to `pid` (`_NET_WM_PID`) or, failing that, one that was not
/// there before the launch; `None` if the application exits or [`WINDOW_WAIT`] passes.
async fn window_of(state: &ApiState, app: &Launched, before: HashSet<u32>) -> Option<u32> {
    let deadline = Instant::now() + WINDOW_WAIT;
    while Instant::now() < deadline {
        let w = Arc::clone(&state.windows);
        if let Ok(list) = blocking(move || w.list()).await {
            let mine = list.iter().find(|w| w.pid == Some(app.pid));
            let new = list.iter().find(|w| !before.contains(&w.id));
            if let Some(w) = mine.or(new) {
                return Some(w.id);
            }
        }
        if !state.apps.running(&app.id) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// `POST /v1/desktop/launch`.
#[utoipa::path(post, path = "/v1/desktop/launch", tag = "v1", request_body = crate::api::v1::types::DesktopLaunchRequest, responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopLaunchResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn launch(State(state): State<ApiState>, body: Bytes) -> V1<DesktopLaunchResponse> {
    ensure_active(&state)?;
    let r: DesktopLaunchRequest = parse(&body)?;
    if r.app.trim().is_empty() {
        return Err(Problem::invalid("app must not be empty"));
    }
    let args = r.args.unwrap_or_default();
    if args.len() > MAX_ARGS {
        return Err(Problem::invalid(format!("at most {MAX_ARGS} args")));
    }
    let wait = r.wait == Some(true);
    let before: HashSet<u32> = if wait {
        let w = Arc::clone(&state.windows);
        blocking(move || w.list())
            .await
            .map(|l| l.iter().map(|w| w.id).collect())
            .unwrap_or_default()
    } else {
        HashSet::new()
    };
    let app = spawn(&state, r.app, args).await?;
    let window_id = if wait {
        window_of(&state, &app, before)
            .await
            .map(|id| id.to_string())
    } else {
        None
    };
    Ok(Json(DesktopLaunchResponse {
        process_id: app.id,
        pid: Some(app.pid),
        window_id,
    }))
}

/// `POST /v1/desktop/open`: `xdg-open <target>`.
#[utoipa::path(post, path = "/v1/desktop/open", tag = "v1", request_body = crate::api::v1::types::DesktopOpenRequest, responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopOpenResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn open(State(state): State<ApiState>, body: Bytes) -> V1<DesktopOpenResponse> {
    ensure_active(&state)?;
    let r: DesktopOpenRequest = parse(&body)?;
    if r.target.trim().is_empty() {
        return Err(Problem::invalid("target must not be empty"));
    }
    let app = spawn(&state, "xdg-open".into(), vec![r.target]).await?;
    Ok(Json(DesktopOpenResponse {
        process_id: app.id,
        pid: Some(app.pid),
    }))
}
