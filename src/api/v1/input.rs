//! Mouse and keyboard. Requests are checked and turned into the typed [`Action`] model the
//! other adapters use before anything reaches X; it runs under the desktop's action lock. Mouse calls
//! answer with where the pointer ended up and the window under it, as the reference does.
//! Coordinates are clamped to the screen (X clamps pointer motion the same way).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;

use super::problem::Problem;
use super::types::{
    DesktopActionResponse, DesktopKeyModifiers, DesktopKeyboardKeyRequest,
    DesktopKeyboardPressRequest, DesktopKeyboardTypeRequest, DesktopMouseButton,
    DesktopMouseButtonRequest, DesktopMouseClickRequest, DesktopMouseDragRequest,
    DesktopMouseMoveRequest, DesktopMousePositionResponse, DesktopMouseScrollRequest,
};
use super::{blocking, ensure_active, parse, V1};
use crate::api::action;
use crate::api::model::{self, Action};
use crate::api::{keys, ApiState};
use crate::desktop::DesktopError;

/// Longest pause between typed characters, in ms.
pub const MAX_DELAY_MS: u32 = 1000;

fn input_failed(e: &DesktopError) -> Problem {
    Problem::from_desktop("desktop_input_failed", "Desktop Input Failed", "input", e)
}

/// A point clamped to the screen.
fn point(state: &ApiState, x: i32, y: i32) -> (u16, u16) {
    let (w, h) = action::native_size(&state.desktop);
    let clamp = |v: i32, n: u32| {
        u16::try_from(i64::from(v).clamp(0, i64::from(n.max(1)) - 1)).unwrap_or(u16::MAX)
    };
    (clamp(x, w), clamp(y, h))
}

/// Run an action under the action lock.
pub async fn run(state: &ApiState, action: &Action) -> Result<(), Problem> {
    action::perform(&state.desktop, action)
        .await
        .map_err(|e| input_failed(&e))
}

/// Where the pointer is and the window under it.
async fn position_of(state: &ApiState) -> V1<DesktopMousePositionResponse> {
    let w = Arc::clone(&state.windows);
    let (x, y, window) = blocking(move || w.pointer())
        .await
        .map_err(|e| input_failed(&e))?;
    Ok(Json(DesktopMousePositionResponse {
        x,
        y,
        screen: Some(0),
        window: Some(window.to_string()),
    }))
}

/// Run `action`, then answer where the pointer is. A window manager holding the pointer in a
/// synchronous grab (openbox's click-to-focus) delays the queued motion past our round trip,
/// so when the steps end at a known point, wait briefly until X reports it.
async fn act_then_position(state: &ApiState, action: Action) -> V1<DesktopMousePositionResponse> {
    let target = action.steps().iter().rev().find_map(|s| match *s {
        model::Step::Move(x, y) => Some((i32::from(x), i32::from(y))),
        _ => None,
    });
    run(state, &action).await?;
    let deadline = std::time::Instant::now() + Duration::from_millis(250);
    loop {
        let p = position_of(state).await?;
        if target.is_none_or(|t| t == (p.x, p.y)) || std::time::Instant::now() >= deadline {
            return Ok(p);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn button(b: Option<DesktopMouseButton>) -> u8 {
    b.unwrap_or(DesktopMouseButton::Left).number()
}

/// `GET /v1/desktop/mouse/position`.
#[utoipa::path(get, path = "/v1/desktop/mouse/position", tag = "v1", responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopMousePositionResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn position(State(state): State<ApiState>) -> V1<DesktopMousePositionResponse> {
    ensure_active(&state)?;
    position_of(&state).await
}

/// `POST /v1/desktop/mouse/move`.
#[utoipa::path(post, path = "/v1/desktop/mouse/move", tag = "v1", request_body = crate::api::v1::types::DesktopMouseMoveRequest, responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopMousePositionResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn mouse_move(
    State(state): State<ApiState>,
    body: Bytes,
) -> V1<DesktopMousePositionResponse> {
    ensure_active(&state)?;
    let r: DesktopMouseMoveRequest = parse(&body)?;
    act_then_position(&state, Action::Move(point(&state, r.x, r.y))).await
}

/// `POST /v1/desktop/mouse/click`.
#[utoipa::path(post, path = "/v1/desktop/mouse/click", tag = "v1", request_body = crate::api::v1::types::DesktopMouseClickRequest, responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopMousePositionResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn click(State(state): State<ApiState>, body: Bytes) -> V1<DesktopMousePositionResponse> {
    ensure_active(&state)?;
    let r: DesktopMouseClickRequest = parse(&body)?;
    let count = model::click_count("clickCount", "click", i64::from(r.click_count.unwrap_or(1)))
        .map_err(|e| Problem::invalid(e.message))?;
    let click = Action::Click {
        at: Some(point(&state, r.x, r.y)),
        button: button(r.button),
        count,
        mods: Vec::new(),
    };
    act_then_position(&state, click).await
}

fn optional_point(
    state: &ApiState,
    r: &DesktopMouseButtonRequest,
) -> Result<Option<model::Point>, Problem> {
    match (r.x, r.y) {
        (Some(x), Some(y)) => Ok(Some(point(state, x, y))),
        (None, None) => Ok(None),
        _ => Err(Problem::invalid(
            "x and y must both be provided when setting coordinates",
        )),
    }
}

async fn button_action(
    state: ApiState,
    body: Bytes,
    down: bool,
) -> V1<DesktopMousePositionResponse> {
    ensure_active(&state)?;
    let r: DesktopMouseButtonRequest = parse(&body)?;
    let action = Action::Button {
        at: optional_point(&state, &r)?,
        button: button(r.button),
        down,
    };
    act_then_position(&state, action).await
}

/// `POST /v1/desktop/mouse/down`.
#[utoipa::path(post, path = "/v1/desktop/mouse/down", tag = "v1", request_body = crate::api::v1::types::DesktopMouseButtonRequest, responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopMousePositionResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn mouse_down(
    State(state): State<ApiState>,
    body: Bytes,
) -> V1<DesktopMousePositionResponse> {
    button_action(state, body, true).await
}

/// `POST /v1/desktop/mouse/up`.
#[utoipa::path(post, path = "/v1/desktop/mouse/up", tag = "v1", request_body = crate::api::v1::types::DesktopMouseButtonRequest, responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopMousePositionResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn mouse_up(
    State(state): State<ApiState>,
    body: Bytes,
) -> V1<DesktopMousePositionResponse> {
    button_action(state, body, false).await
}

/// `POST /v1/desktop/mouse/drag`.
#[utoipa::path(post, path = "/v1/desktop/mouse/drag", tag = "v1", request_body = crate::api::v1::types::DesktopMouseDragRequest, responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopMousePositionResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn drag(State(state): State<ApiState>, body: Bytes) -> V1<DesktopMousePositionResponse> {
    ensure_active(&state)?;
    let r: DesktopMouseDragRequest = parse(&body)?;
    let drag = Action::Drag {
        from: Some(point(&state, r.start_x, r.start_y)),
        to: point(&state, r.end_x, r.end_y),
        button: button(r.button),
        mods: Vec::new(),
    };
    act_then_position(&state, drag).await
}

/// A scroll: `delta_y` notches down (negative: up) and `delta_x` right, at `at`.
pub fn scroll_action(at: model::Point, delta_x: i32, delta_y: i32) -> Result<Action, Problem> {
    if delta_x == 0 && delta_y == 0 {
        return Err(Problem::invalid("deltaX or deltaY must be non-zero"));
    }
    let check = |field, v: i32| {
        model::scroll_amount(field, "scroll", i64::from(v)).map_err(|e| Problem::invalid(e.message))
    };
    Ok(Action::Scroll {
        at: Some(at),
        dx: check("deltaX", delta_x)?,
        dy: check("deltaY", delta_y)?,
        mods: Vec::new(),
    })
}

/// `POST /v1/desktop/mouse/scroll`.
#[utoipa::path(post, path = "/v1/desktop/mouse/scroll", tag = "v1", request_body = crate::api::v1::types::DesktopMouseScrollRequest, responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopMousePositionResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn scroll(
    State(state): State<ApiState>,
    body: Bytes,
) -> V1<DesktopMousePositionResponse> {
    ensure_active(&state)?;
    let r: DesktopMouseScrollRequest = parse(&body)?;
    let at = point(&state, r.x, r.y);
    let action = scroll_action(at, r.delta_x.unwrap_or(0), r.delta_y.unwrap_or(0))?;
    act_then_position(&state, action).await
}

fn key_error(field: &str, e: keys::KeyError) -> Problem {
    Problem::invalid(format!("invalid {field}: {e}"))
}

/// Typing `text`, pausing `delay_ms` after each character.
pub fn type_action(text: &str, delay_ms: u32) -> Result<Action, Problem> {
    if text.is_empty() {
        return Err(Problem::invalid("text must not be empty"));
    }
    if delay_ms > MAX_DELAY_MS {
        return Err(Problem::invalid(format!(
            "delayMs must be at most {MAX_DELAY_MS}"
        )));
    }
    let keysyms = model::type_text("type", text).map_err(|e| Problem::invalid(e.message))?;
    let total = u64::from(delay_ms) * keysyms.len() as u64;
    if total > model::MAX_DURATION_MS.unsigned_abs() {
        return Err(Problem::invalid(format!(
            "typing {} characters {delay_ms} ms apart takes longer than {} ms",
            keysyms.len(),
            model::MAX_DURATION_MS
        )));
    }
    Ok(Action::Type {
        keysyms,
        delay: Duration::from_millis(u64::from(delay_ms)),
    })
}

/// `POST /v1/desktop/keyboard/type`.
#[utoipa::path(post, path = "/v1/desktop/keyboard/type", tag = "v1", request_body = crate::api::v1::types::DesktopKeyboardTypeRequest, responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopActionResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn type_text(State(state): State<ApiState>, body: Bytes) -> V1<DesktopActionResponse> {
    ensure_active(&state)?;
    let r: DesktopKeyboardTypeRequest = parse(&body)?;
    run(&state, &type_action(&r.text, r.delay_ms.unwrap_or(0))?).await?;
    Ok(Json(DesktopActionResponse { ok: true }))
}

/// The keysyms of a modifiers object, in press order.
pub fn modifier_keysyms(m: &DesktopKeyModifiers) -> Vec<u32> {
    [
        (m.ctrl, 0xffe3),  // Control_L
        (m.shift, 0xffe1), // Shift_L
        (m.alt, 0xffe9),   // Alt_L
        (m.cmd, 0xffeb),   // Super_L
    ]
    .into_iter()
    .filter_map(|(on, sym)| (on == Some(true)).then_some(sym))
    .collect()
}

/// A key press: each chord of `key` pressed and released with the modifiers held around it.
pub fn press_action(key: &str, mods: &DesktopKeyModifiers) -> Result<Action, Problem> {
    let combos = model::key_chords("key", "press", key).map_err(|e| Problem::invalid(e.message))?;
    let mods = modifier_keysyms(mods);
    Ok(Action::Keys(
        combos
            .into_iter()
            .map(|c| mods.iter().copied().chain(c).collect())
            .collect(),
    ))
}

/// `POST /v1/desktop/keyboard/press`.
#[utoipa::path(post, path = "/v1/desktop/keyboard/press", tag = "v1", request_body = crate::api::v1::types::DesktopKeyboardPressRequest, responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopActionResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn press(State(state): State<ApiState>, body: Bytes) -> V1<DesktopActionResponse> {
    ensure_active(&state)?;
    let r: DesktopKeyboardPressRequest = parse(&body)?;
    run(
        &state,
        &press_action(&r.key, &r.modifiers.unwrap_or_default())?,
    )
    .await?;
    Ok(Json(DesktopActionResponse { ok: true }))
}

async fn key_action(state: ApiState, body: Bytes, down: bool) -> V1<DesktopActionResponse> {
    ensure_active(&state)?;
    let r: DesktopKeyboardKeyRequest = parse(&body)?;
    let keys = keys::combo(r.key.trim()).map_err(|e| key_error("key", e))?;
    run(&state, &Action::KeyChord { keys, down }).await?;
    Ok(Json(DesktopActionResponse { ok: true }))
}

/// `POST /v1/desktop/keyboard/down`.
#[utoipa::path(post, path = "/v1/desktop/keyboard/down", tag = "v1", request_body = crate::api::v1::types::DesktopKeyboardKeyRequest, responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopActionResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn key_down(State(state): State<ApiState>, body: Bytes) -> V1<DesktopActionResponse> {
    key_action(state, body, true).await
}

/// `POST /v1/desktop/keyboard/up`.
#[utoipa::path(post, path = "/v1/desktop/keyboard/up", tag = "v1", request_body = crate::api::v1::types::DesktopKeyboardKeyRequest, responses((status = 200, description = "OK", body = crate::api::v1::types::DesktopActionResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn key_up(State(state): State<ApiState>, body: Bytes) -> V1<DesktopActionResponse> {
    key_action(state, body, false).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::model::Step;

    #[test]
    fn scrolls() {
        let s = scroll_action((5, 6), 0, 3).unwrap().steps();
        assert_eq!(s[0], Step::Move(5, 6));
        assert_eq!(s.iter().filter(|x| **x == Step::Button(5, true)).count(), 3);
        let s = scroll_action((5, 6), -2, -1).unwrap().steps();
        assert_eq!(s.iter().filter(|x| **x == Step::Button(4, true)).count(), 1);
        assert_eq!(s.iter().filter(|x| **x == Step::Button(6, true)).count(), 2);
        assert!(scroll_action((0, 0), 0, 0).is_err());
        assert!(scroll_action((0, 0), 0, i32::MIN).is_err());
    }

    #[test]
    fn typing_and_keys() {
        assert!(type_action("", 0).is_err());
        assert!(type_action("x", MAX_DELAY_MS + 1).is_err());
        let s = type_action("hi", 5).unwrap().steps();
        assert_eq!(s.len(), 6);
        assert_eq!(s[2], Step::Sleep(Duration::from_millis(5)));
        let mods = DesktopKeyModifiers {
            ctrl: Some(true),
            shift: Some(true),
            ..Default::default()
        };
        let s = press_action("a", &mods).unwrap().steps();
        assert_eq!(
            s,
            vec![
                Step::Key(0xffe3, true),
                Step::Key(0xffe1, true),
                Step::Key(0x41, true),
                Step::Key(0x41, false),
                Step::Key(0xffe1, false),
                Step::Key(0xffe3, false),
            ]
        );
        assert!(press_action("notakey", &DesktopKeyModifiers::default()).is_err());
        let s = press_action("ctrl+a", &DesktopKeyModifiers::default()).unwrap();
        assert_eq!(s.steps().len(), 4);
    }
}
