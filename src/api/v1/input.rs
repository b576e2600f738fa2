//! Mouse and keyboard. Requests are checked and turned into the action API's input steps
//! before anything reaches X; the steps run under the desktop's action lock. Mouse calls
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
use crate::api::action::{self, Step};
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

/// Run steps under the action lock, off the async threads.
pub async fn run(state: &ApiState, steps: Vec<Step>) -> Result<(), Problem> {
    let guard = Arc::clone(&state.desktop.action_lock).lock_owned().await;
    let input = Arc::clone(&state.desktop.input);
    crate::metrics::global().actions.add(1);
    blocking(move || {
        // The guard lives in the task, so a client going away mid-drag cannot let another
        // action interleave.
        let _guard = guard;
        action::run_steps(input.as_ref(), &steps)
    })
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

/// Run `steps`, then answer where the pointer is. A window manager holding the pointer in a
/// synchronous grab (openbox's click-to-focus) delays the queued motion past our round trip,
/// so when the steps end at a known point, wait briefly until X reports it.
async fn act_then_position(state: &ApiState, steps: Vec<Step>) -> V1<DesktopMousePositionResponse> {
    let target = steps.iter().rev().find_map(|s| match *s {
        Step::Move(x, y) => Some((i32::from(x), i32::from(y))),
        _ => None,
    });
    run(state, steps).await?;
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
pub async fn position(State(state): State<ApiState>) -> V1<DesktopMousePositionResponse> {
    ensure_active(&state)?;
    position_of(&state).await
}

/// `POST /v1/desktop/mouse/move`.
pub async fn mouse_move(
    State(state): State<ApiState>,
    body: Bytes,
) -> V1<DesktopMousePositionResponse> {
    ensure_active(&state)?;
    let r: DesktopMouseMoveRequest = parse(&body)?;
    let (x, y) = point(&state, r.x, r.y);
    act_then_position(&state, vec![Step::Move(x, y)]).await
}

/// `POST /v1/desktop/mouse/click`.
pub async fn click(State(state): State<ApiState>, body: Bytes) -> V1<DesktopMousePositionResponse> {
    ensure_active(&state)?;
    let r: DesktopMouseClickRequest = parse(&body)?;
    let count = r.click_count.unwrap_or(1);
    let max = action::MAX_CLICKS as i32;
    if !(1..=max).contains(&count) {
        return Err(Problem::invalid(format!(
            "clickCount must be between 1 and {max}"
        )));
    }
    let at = point(&state, r.x, r.y);
    let steps = action::click_steps(Some(at), button(r.button), count.unsigned_abs(), &[]);
    act_then_position(&state, steps).await
}

fn optional_point(state: &ApiState, r: &DesktopMouseButtonRequest) -> Result<Vec<Step>, Problem> {
    match (r.x, r.y) {
        (Some(x), Some(y)) => {
            let (x, y) = point(state, x, y);
            Ok(vec![Step::Move(x, y)])
        }
        (None, None) => Ok(Vec::new()),
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
    let mut steps = optional_point(&state, &r)?;
    steps.push(Step::Button(button(r.button), down));
    act_then_position(&state, steps).await
}

/// `POST /v1/desktop/mouse/down`.
pub async fn mouse_down(
    State(state): State<ApiState>,
    body: Bytes,
) -> V1<DesktopMousePositionResponse> {
    button_action(state, body, true).await
}

/// `POST /v1/desktop/mouse/up`.
pub async fn mouse_up(
    State(state): State<ApiState>,
    body: Bytes,
) -> V1<DesktopMousePositionResponse> {
    button_action(state, body, false).await
}

/// `POST /v1/desktop/mouse/drag`.
pub async fn drag(State(state): State<ApiState>, body: Bytes) -> V1<DesktopMousePositionResponse> {
    ensure_active(&state)?;
    let r: DesktopMouseDragRequest = parse(&body)?;
    let from = point(&state, r.start_x, r.start_y);
    let to = point(&state, r.end_x, r.end_y);
    act_then_position(
        &state,
        action::drag_steps(Some(from), to, button(r.button), &[]),
    )
    .await
}

/// The steps of a scroll: `delta_y` notches down (negative: up), then `delta_x` right.
pub fn scroll_steps(at: (u16, u16), delta_x: i32, delta_y: i32) -> Result<Vec<Step>, Problem> {
    if delta_x == 0 && delta_y == 0 {
        return Err(Problem::invalid("deltaX or deltaY must be non-zero"));
    }
    let max = action::MAX_SCROLL;
    if i64::from(delta_x).abs() > max || i64::from(delta_y).abs() > max {
        return Err(Problem::invalid(format!(
            "deltaX and deltaY must be between -{max} and {max}"
        )));
    }
    let mut steps = vec![Step::Move(at.0, at.1)];
    for (dir, amount) in [("down", delta_y), ("right", delta_x)] {
        if amount != 0 {
            steps.extend(
                action::scroll_steps(None, dir, i64::from(amount), &[]).unwrap_or_default(),
            );
        }
    }
    Ok(steps)
}

/// `POST /v1/desktop/mouse/scroll`.
pub async fn scroll(
    State(state): State<ApiState>,
    body: Bytes,
) -> V1<DesktopMousePositionResponse> {
    ensure_active(&state)?;
    let r: DesktopMouseScrollRequest = parse(&body)?;
    let at = point(&state, r.x, r.y);
    let steps = scroll_steps(at, r.delta_x.unwrap_or(0), r.delta_y.unwrap_or(0))?;
    act_then_position(&state, steps).await
}

fn key_error(field: &str, e: keys::KeyError) -> Problem {
    Problem::invalid(format!("invalid {field}: {e}"))
}

/// The steps that type `text`, pausing `delay_ms` after each character.
pub fn type_steps(text: &str, delay_ms: u32) -> Result<Vec<Step>, Problem> {
    if text.is_empty() {
        return Err(Problem::invalid("text must not be empty"));
    }
    if delay_ms > MAX_DELAY_MS {
        return Err(Problem::invalid(format!(
            "delayMs must be at most {MAX_DELAY_MS}"
        )));
    }
    let syms = action::type_text("type", text).map_err(|e| Problem::invalid(e.message))?;
    let total = u64::from(delay_ms) * syms.len() as u64;
    if total > action::MAX_DURATION_MS.unsigned_abs() {
        return Err(Problem::invalid(format!(
            "typing {} characters {delay_ms} ms apart takes longer than {} ms",
            syms.len(),
            action::MAX_DURATION_MS
        )));
    }
    if delay_ms == 0 {
        return Ok(action::type_steps(&syms));
    }
    let pause = Duration::from_millis(u64::from(delay_ms));
    let mut steps = Vec::with_capacity(syms.len() * 3);
    for k in syms {
        steps.push(Step::Key(k, true));
        steps.push(Step::Key(k, false));
        steps.push(Step::Sleep(pause));
    }
    Ok(steps)
}

/// `POST /v1/desktop/keyboard/type`.
pub async fn type_text(State(state): State<ApiState>, body: Bytes) -> V1<DesktopActionResponse> {
    ensure_active(&state)?;
    let r: DesktopKeyboardTypeRequest = parse(&body)?;
    run(&state, type_steps(&r.text, r.delay_ms.unwrap_or(0))?).await?;
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

/// The steps of a key press: each chord of `key` pressed and released with the modifiers
/// held around it.
pub fn press_steps(key: &str, mods: &DesktopKeyModifiers) -> Result<Vec<Step>, Problem> {
    let combos = keys::parse(key).map_err(|e| key_error("key", e))?;
    let mods = modifier_keysyms(mods);
    let mut steps = Vec::new();
    for c in &combos {
        let chord: Vec<u32> = mods.iter().chain(c).copied().collect();
        action::press(&chord, &mut steps);
    }
    Ok(steps)
}

/// `POST /v1/desktop/keyboard/press`.
pub async fn press(State(state): State<ApiState>, body: Bytes) -> V1<DesktopActionResponse> {
    ensure_active(&state)?;
    let r: DesktopKeyboardPressRequest = parse(&body)?;
    run(
        &state,
        press_steps(&r.key, &r.modifiers.unwrap_or_default())?,
    )
    .await?;
    Ok(Json(DesktopActionResponse { ok: true }))
}

async fn key_action(state: ApiState, body: Bytes, down: bool) -> V1<DesktopActionResponse> {
    ensure_active(&state)?;
    let r: DesktopKeyboardKeyRequest = parse(&body)?;
    let chord = keys::combo(r.key.trim()).map_err(|e| key_error("key", e))?;
    let steps: Vec<Step> = if down {
        chord.iter().map(|k| Step::Key(*k, true)).collect()
    } else {
        chord.iter().rev().map(|k| Step::Key(*k, false)).collect()
    };
    run(&state, steps).await?;
    Ok(Json(DesktopActionResponse { ok: true }))
}

/// `POST /v1/desktop/keyboard/down`.
pub async fn key_down(State(state): State<ApiState>, body: Bytes) -> V1<DesktopActionResponse> {
    key_action(state, body, true).await
}

/// `POST /v1/desktop/keyboard/up`.
pub async fn key_up(State(state): State<ApiState>, body: Bytes) -> V1<DesktopActionResponse> {
    key_action(state, body, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrolls() {
        let s = scroll_steps((5, 6), 0, 3).unwrap();
        assert_eq!(s[0], Step::Move(5, 6));
        assert_eq!(s.iter().filter(|x| **x == Step::Button(5, true)).count(), 3);
        let s = scroll_steps((5, 6), -2, -1).unwrap();
        assert_eq!(s.iter().filter(|x| **x == Step::Button(4, true)).count(), 1);
        assert_eq!(s.iter().filter(|x| **x == Step::Button(6, true)).count(), 2);
        assert!(scroll_steps((0, 0), 0, 0).is_err());
        assert!(scroll_steps((0, 0), 0, i32::MIN).is_err());
    }

    #[test]
    fn typing_and_keys() {
        assert!(type_steps("", 0).is_err());
        assert!(type_steps("x", MAX_DELAY_MS + 1).is_err());
        let s = type_steps("hi", 5).unwrap();
        assert_eq!(s.len(), 6);
        assert_eq!(s[2], Step::Sleep(Duration::from_millis(5)));
        let mods = DesktopKeyModifiers {
            ctrl: Some(true),
            shift: Some(true),
            ..Default::default()
        };
        let s = press_steps("a", &mods).unwrap();
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
        assert!(press_steps("notakey", &DesktopKeyModifiers::default()).is_err());
        assert_eq!(
            press_steps("ctrl+a", &DesktopKeyModifiers::default())
                .unwrap()
                .len(),
            4
        );
    }
}
