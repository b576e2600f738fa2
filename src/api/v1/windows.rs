//! Windows: list, focused, focus, move, resize, through the same EWMH helper as
//! `/api/v0/desktop/windows`. Ids are decimal strings; x/y are the client area's root position
//! (what `xwininfo` calls "Absolute upper-left"), width/height its size.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;

use super::problem::Problem;
use super::types::{
    DesktopWindowInfo, DesktopWindowListResponse, DesktopWindowMoveRequest,
    DesktopWindowResizeRequest,
};
use super::{blocking, ensure_active, parse, V1};
use crate::api::windows::{WindowInfo, Windows};
use crate::api::ApiState;
use crate::desktop::DesktopError;

/// How long move and resize wait for the window manager to apply them before answering.
const SETTLE: Duration = Duration::from_millis(1000);

fn window_failed(e: &DesktopError) -> Problem {
    Problem::from_desktop(
        "desktop_window_failed",
        "Desktop Window Failed",
        "window",
        e,
    )
}

/// The v1 shape of a window.
pub fn to_v1(w: &WindowInfo) -> DesktopWindowInfo {
    DesktopWindowInfo {
        id: w.id.to_string(),
        title: w.title.clone(),
        x: w.geometry.x,
        y: w.geometry.y,
        width: w.geometry.width,
        height: w.geometry.height,
        is_active: w.focused,
    }
}

async fn with_windows<T: Send + 'static>(
    state: &ApiState,
    f: impl FnOnce(&Windows) -> Result<T, DesktopError> + Send + 'static,
) -> Result<T, Problem> {
    let w = Arc::clone(&state.windows);
    blocking(move || f(&w)).await.map_err(|e| window_failed(&e))
}

/// Every listed window.
pub async fn all(state: &ApiState) -> Result<Vec<DesktopWindowInfo>, Problem> {
    let ws = with_windows(state, |w| w.list()).await?;
    Ok(ws.iter().map(to_v1).collect())
}

/// `GET /v1/desktop/windows`.
#[utoipa::path(get, path = "/v1/desktop/windows", tag = "v1", responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopWindowListResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn list(State(state): State<ApiState>) -> V1<DesktopWindowListResponse> {
    ensure_active(&state)?;
    Ok(Json(DesktopWindowListResponse {
        windows: all(&state).await?,
    }))
}

/// `GET /v1/desktop/windows/focused`.
#[utoipa::path(get, path = "/v1/desktop/windows/focused", tag = "v1", responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopWindowInfo), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn focused(State(state): State<ApiState>) -> V1<DesktopWindowInfo> {
    ensure_active(&state)?;
    match with_windows(&state, |w| w.active()).await? {
        Some(w) => Ok(Json(to_v1(&w))),
        None => Err(Problem::no_focused_window()),
    }
}

/// A listed window by its decimal id.
async fn lookup(state: &ApiState, raw: &str) -> Result<WindowInfo, Problem> {
    let Ok(id) = raw.parse::<u32>() else {
        return Err(Problem::window_not_found(raw));
    };
    with_windows(state, move |w| w.window(id))
        .await?
        .ok_or_else(|| Problem::window_not_found(raw))
}

/// Poll the window until `done` holds (the window manager applies requests asynchronously),
/// bounded by [`SETTLE`]; answers its latest state either way.
async fn settled(
    state: &ApiState,
    id: u32,
    raw: &str,
    done: impl Fn(&WindowInfo) -> bool,
) -> V1<DesktopWindowInfo> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let w = with_windows(state, move |w| w.window(id))
            .await?
            .ok_or_else(|| Problem::window_not_found(raw))?;
        if done(&w) || Instant::now() >= deadline {
            return Ok(Json(to_v1(&w)));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `POST /v1/desktop/windows/{id}/focus`.
#[utoipa::path(post, path = "/v1/desktop/windows/{id}/focus", tag = "v1", params(("id" = String, Path, description = "Decimal X window id")), responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopWindowInfo), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn focus(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> V1<DesktopWindowInfo> {
    ensure_active(&state)?;
    let id = lookup(&state, &raw).await?.id;
    with_windows(&state, move |w| w.focus(id)).await?;
    settled(&state, id, &raw, |w| w.focused).await
}

/// `POST /v1/desktop/windows/{id}/move`: the frame's top-left corner to (x, y).
#[utoipa::path(post, path = "/v1/desktop/windows/{id}/move", tag = "v1", request_body = crate::api::v1::types::DesktopWindowMoveRequest, params(("id" = String, Path, description = "Decimal X window id")), responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopWindowInfo), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn move_to(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    body: Bytes,
) -> V1<DesktopWindowInfo> {
    ensure_active(&state)?;
    let r: DesktopWindowMoveRequest = parse(&body)?;
    let limit = -32768..=32767;
    if !limit.contains(&r.x) || !limit.contains(&r.y) {
        return Err(Problem::invalid("x and y must be between -32768 and 32767"));
    }
    let id = lookup(&state, &raw).await?.id;
    with_windows(&state, move |w| w.configure(id, Some((r.x, r.y)), None)).await?;
    settled(&state, id, &raw, |w| (w.frame.x, w.frame.y) == (r.x, r.y)).await
}

/// `POST /v1/desktop/windows/{id}/resize`: the client area to width x height (applications
/// may round it, e.g. terminals to whole character cells).
#[utoipa::path(post, path = "/v1/desktop/windows/{id}/resize", tag = "v1", request_body = crate::api::v1::types::DesktopWindowResizeRequest, params(("id" = String, Path, description = "Decimal X window id")), responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopWindowInfo), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn resize(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    body: Bytes,
) -> V1<DesktopWindowInfo> {
    ensure_active(&state)?;
    let r: DesktopWindowResizeRequest = parse(&body)?;
    if !(1..=32767).contains(&r.width) || !(1..=32767).contains(&r.height) {
        return Err(Problem::invalid(
            "width and height must be between 1 and 32767",
        ));
    }
    let before = lookup(&state, &raw).await?;
    let (id, old) = (before.id, before.geometry);
    let size = (r.width.unsigned_abs(), r.height.unsigned_abs());
    with_windows(&state, move |w| w.configure(id, None, Some(size))).await?;
    settled(&state, id, &raw, move |w| {
        (w.geometry.width, w.geometry.height) == size
            || (w.geometry.width, w.geometry.height) != (old.width, old.height)
    })
    .await
}
