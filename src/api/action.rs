//! `POST /api/v0/desktop/action`: Coder's agent desktop action endpoint, same request and
//! response shapes, messages and defaults, plus deskd's extensions (modifiers on clicks and
//! scrolls, key_down/key_up, any mouse button, zoom, wait, screenshot format/quality/cursor/
//! settle, `screenshot_after`).
//!
//! A request is checked completely (fields, coordinates, key names, text) and turned into a
//! list of input steps before anything is sent to the desktop, so a bad request changes
//! nothing. The steps then run on a blocking thread while holding the desktop's action lock, so
//! actions from several agents never interleave and a held key is always released even if the
//! client goes away.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::model::{self, Action};
use super::scale::Axis;
use super::screenshot::{self, Format, Region, Settle, Shot, ShotOptions};
use super::screenshot_options::{OptionError, Rules, ScreenshotOptions, Size};
use super::ApiState;
use crate::desktop::{self, Desktop, DesktopError};
use crate::input::held::Held;
use crate::input::InputSink;

pub use super::model::{
    Step, MAX_CHORDS, MAX_CLICKS, MAX_DURATION_MS, MAX_MODIFIERS, MAX_SCROLL, MAX_TEXT,
};

/// Largest `scaled_width` / `scaled_height` / zoom size.
pub const MAX_SCALED: i64 = screenshot::MAX_SIDE as i64;

/// Every action name [`plan`] accepts (the OpenAPI document's enum).
pub const ACTIONS: &[&str] = &[
    "key",
    "type",
    "cursor_position",
    "mouse_move",
    "left_click",
    "right_click",
    "middle_click",
    "double_click",
    "triple_click",
    "left_click_drag",
    "left_mouse_down",
    "left_mouse_up",
    "mouse_down",
    "mouse_up",
    "click",
    "scroll",
    "hold_key",
    "key_down",
    "key_up",
    "wait",
    "screenshot",
    "zoom",
];

fn action_names() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::Schema::Object(
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(ACTIONS.iter().copied()))
            .description(Some("The action name."))
            .build(),
    )
}

/// The request body (Coder's `DesktopAction` plus extensions).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct DesktopAction {
    /// The action name.
    #[serde(default)]
    #[schema(schema_with = action_names)]
    pub action: String,
    /// Target point `[x, y]`.
    pub coordinate: Option<[i64; 2]>,
    /// Drag start `[x, y]`.
    pub start_coordinate: Option<[i64; 2]>,
    /// Keys, text to type, or modifiers held during a click/scroll.
    pub text: Option<String>,
    /// Milliseconds (hold_key, wait).
    pub duration: Option<i64>,
    /// Scroll notches (default 3).
    pub scroll_amount: Option<i64>,
    /// up, down (default), left, right.
    pub scroll_direction: Option<String>,
    /// The agent's coordinate space width.
    pub scaled_width: Option<i64>,
    /// The agent's coordinate space height.
    pub scaled_height: Option<i64>,
    /// Extension: mouse button for mouse_down/mouse_up/click.
    pub button: Option<ButtonName>,
    /// Extension: number of clicks for `click` (default 1).
    pub count: Option<i64>,
    /// Extension: zoom region `[x1, y1, x2, y2]` in the agent's coordinates.
    pub region: Option<[i64; 4]>,
    /// Extension: zoom output width (default: the region's native width).
    pub width: Option<i64>,
    /// Extension: zoom output height.
    pub height: Option<i64>,
    /// Extension: png (default), jpeg, webp.
    pub format: Option<String>,
    /// Extension: JPEG quality 1..=100.
    pub quality: Option<i64>,
    /// Extension: draw the pointer into the screenshot.
    pub cursor: Option<bool>,
    /// Extension: `true` (100 ms) or a quiet period in ms before the screenshot is taken.
    pub settle: Option<SettleValue>,
    /// Extension: bound on the settle wait in ms (default 2000).
    pub settle_timeout: Option<i64>,
    /// Extension: return a (settled) screenshot after the action.
    pub screenshot_after: Option<bool>,
}

/// A button given as a name or a number.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ButtonName {
    /// 1..=9.
    Number(i64),
    /// left, middle, right, back, forward, wheel_up, wheel_down, wheel_left, wheel_right.
    Name(String),
}

/// `settle: true` or `settle: 250`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SettleValue {
    /// true: the default quiet period; false: no settling.
    Flag(bool),
    /// Quiet period in ms.
    Millis(i64),
}

/// The response body (Coder's `DesktopActionResponse` plus `screenshot_format`/`settled`
/// when those options were used).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct DesktopActionResponse {
    /// What happened.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
    /// Base64 image.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub screenshot_data: String,
    /// Image width.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub screenshot_width: u32,
    /// Image height.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub screenshot_height: u32,
    /// Media type when not PNG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screenshot_media_type: Option<String>,
    /// Whether the screen went quiet, when `settle` was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled: Option<bool>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

pub use super::error::ApiError;

/// What a validated request does.
#[derive(Debug, Clone)]
pub enum Op {
    /// Input.
    Input(Action),
    /// Report the pointer position.
    CursorPosition,
    /// Sleep without holding the action lock.
    Wait(Duration),
    /// Only the screenshot.
    Capture,
}

/// A validated request.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The action name (for outputs and messages).
    pub action: String,
    /// What to do.
    pub op: Op,
    /// The screenshot to return afterwards, if any.
    pub shot: Option<ShotOptions>,
    /// Coordinate mapping of this request.
    pub axes: (Axis, Axis),
    /// Coder's `screenshot_width`/`screenshot_height` rule applies (screenshot action).
    pub coder_dims: bool,
}

/// The result of running a plan.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Output text.
    pub output: String,
    /// Screenshot, if one was asked for.
    pub shot: Option<Shot>,
}

/// The mapping context of one request: native size and the agent's axes.
#[derive(Debug, Clone, Copy)]
pub struct Space {
    /// X axis.
    pub x: Axis,
    /// Y axis.
    pub y: Axis,
}

impl Space {
    /// Build from the native screen size and the request's scaled size.
    pub fn new(native: (u32, u32), scaled_w: Option<i64>, scaled_h: Option<i64>) -> Space {
        Space {
            x: Axis::new(native.0, scaled_w),
            y: Axis::new(native.1, scaled_h),
        }
    }

    /// Map and check a point. Without scaling, a coordinate off the screen is refused; with
    /// scaling it is clamped (Coder's rule).
    pub fn point(&self, field: &str, action: &str, c: [i64; 2]) -> Result<(u16, u16), ApiError> {
        let one = |axis: &Axis, v: i64, name: &str| -> Result<u16, ApiError> {
            if axis.scaled.is_none() && (v < 0 || v >= i64::from(axis.native)) {
                return Err(ApiError::bad(format!(
                    "Invalid \"{field}\" for {action} action: {name}={v} is outside the screen \
                     (0 to {}).",
                    axis.native - 1
                )));
            }
            Ok(u16::try_from(axis.to_native(v)).unwrap_or(u16::MAX))
        };
        Ok((one(&self.x, c[0], "x")?, one(&self.y, c[1], "y")?))
    }

    /// Map and check a region `[x1, y1, x2, y2]` (edges, x2/y2 exclusive) to native pixels.
    pub fn region(&self, action: &str, r: [i64; 4]) -> Result<Region, ApiError> {
        let bad =
            |why: String| ApiError::bad(format!("Invalid \"region\" for {action} action: {why}."));
        let [x1, y1, x2, y2] = r;
        let (sw, sh) = (
            i64::from(self.x.output_size()),
            i64::from(self.y.output_size()),
        );
        if x1 < 0 || y1 < 0 || x2 > sw || y2 > sh {
            return Err(bad(format!(
                "[{x1}, {y1}, {x2}, {y2}] is outside the screen (0, 0, {sw}, {sh})"
            )));
        }
        if x2 <= x1 || y2 <= y1 {
            return Err(bad(format!(
                "[{x1}, {y1}, {x2}, {y2}] is empty (x2 must exceed x1 and y2 exceed y1)"
            )));
        }
        let edge = |axis: &Axis, v: i64| -> u32 {
            let out = i64::from(axis.output_size());
            ((v as f64) * f64::from(axis.native) / (out as f64)).round() as u32
        };
        let (nx1, nx2) = (edge(&self.x, x1), edge(&self.x, x2));
        let (ny1, ny2) = (edge(&self.y, y1), edge(&self.y, y2));
        Ok(Region {
            x: nx1,
            y: ny1,
            width: (nx2 - nx1).max(1),
            height: (ny2 - ny1).max(1),
        })
    }
}

/// A mouse button number from a request value.
pub fn button(b: &ButtonName) -> Result<u8, ApiError> {
    let n = match b {
        ButtonName::Number(n) => *n,
        ButtonName::Name(s) => match s.to_ascii_lowercase().as_str() {
            "left" => 1,
            "middle" | "wheel" => 2,
            "right" => 3,
            "wheel_up" | "scroll_up" => 4,
            "wheel_down" | "scroll_down" => 5,
            "wheel_left" | "scroll_left" => 6,
            "wheel_right" | "scroll_right" => 7,
            "back" => 8,
            "forward" => 9,
            other => other.parse().unwrap_or(0),
        },
    };
    u8::try_from(n)
        .ok()
        .filter(|n| (1..=9).contains(n))
        .ok_or_else(|| {
            ApiError::bad(format!(
                "Invalid \"button\": {b:?}; use left, middle, right, back, forward or 1 to 9."
            ))
        })
}

/// Screenshot options from the request's extension fields; `region` and `size` are the
/// action's own (zoom region, scaled space).
fn shot_options(
    a: &DesktopAction,
    default_settle: bool,
    native: (u32, u32),
    region: Option<Region>,
    size: Size,
) -> Result<ShotOptions, ApiError> {
    let timeout = match a.settle_timeout {
        None => Settle::DEFAULT_TIMEOUT,
        Some(t) => settle_ms("settle_timeout", t)?,
    };
    let settle = match &a.settle {
        None if default_settle => Some(Settle {
            timeout,
            ..Settle::default()
        }),
        None | Some(SettleValue::Flag(false)) => None,
        Some(SettleValue::Flag(true)) => Some(Settle {
            timeout,
            ..Settle::default()
        }),
        Some(SettleValue::Millis(ms)) => Some(Settle {
            quiet: settle_ms("settle", *ms)?,
            timeout,
        }),
    };
    ScreenshotOptions {
        format: a.format.clone(),
        quality: a.quality,
        region,
        size,
        cursor: a.cursor.unwrap_or(false),
        settle,
    }
    .validate(native, Rules::V0)
    .map_err(|e| match e {
        OptionError::Format(f) => {
            ApiError::bad(format!("Invalid \"format\": {f:?}; use png, jpeg or webp."))
        }
        OptionError::Quality(q) => {
            ApiError::bad(format!("Invalid \"quality\": {q}; use 1 to 100."))
        }
        OptionError::Width(_) | OptionError::Height(_) | OptionError::Scale(_) => {
            ApiError::bad(format!(
                "Invalid \"width\"/\"height\" for zoom action: {:?}x{:?}; give both, \
                 1 to {MAX_SCALED}.",
                a.width, a.height
            ))
        }
        OptionError::Output(e) => ApiError::bad(e),
    })
}

fn settle_ms(field: &str, ms: i64) -> Result<Duration, ApiError> {
    let max = Settle::MAX.as_millis() as i64;
    if !(0..=max).contains(&ms) {
        return Err(ApiError::bad(format!(
            "Invalid \"{field}\": {ms} ms is outside 0 to {max} ms."
        )));
    }
    Ok(Duration::from_millis(ms.unsigned_abs()))
}

fn scaled_dim(field: &str, v: Option<i64>) -> Result<(), ApiError> {
    match v {
        Some(v) if v > MAX_SCALED => Err(ApiError::bad(format!(
            "Invalid \"{field}\": {v} is larger than {MAX_SCALED}."
        ))),
        _ => Ok(()),
    }
}

fn missing(field: &str, action: &str) -> ApiError {
    ApiError::bad(format!("Missing \"{field}\" for {action} action."))
}

/// Check a request completely and turn it into a plan. `native` is the screen size.
pub fn plan(a: &DesktopAction, native: (u32, u32)) -> Result<Plan, ApiError> {
    scaled_dim("scaled_width", a.scaled_width)?;
    scaled_dim("scaled_height", a.scaled_height)?;
    let space = Space::new(native, a.scaled_width, a.scaled_height);
    let act = a.action.as_str();
    let coord = || -> Result<(u16, u16), ApiError> {
        let c = a.coordinate.ok_or_else(|| missing("coordinate", act))?;
        space.point("coordinate", act, c)
    };
    let opt_coord = || -> Result<Option<(u16, u16)>, ApiError> {
        a.coordinate
            .map(|c| space.point("coordinate", act, c))
            .transpose()
    };
    let text = || a.text.as_deref().ok_or_else(|| missing("text", act));
    let mods = || model::modifier_keys(act, a.text.as_deref());
    let chords = || model::key_chords("text", act, text()?);
    let mut coder_dims = false;
    let mut capture_only = false;
    let op = match act {
        "key" => Op::Input(Action::Keys(chords()?)),
        "type" => Op::Input(Action::Type {
            keysyms: model::type_text(act, text()?)?,
            delay: Duration::ZERO,
        }),
        "cursor_position" => Op::CursorPosition,
        "mouse_move" => Op::Input(Action::Move(coord()?)),
        "left_click" | "right_click" | "middle_click" | "double_click" | "triple_click" => {
            let at = coord()?;
            let (button, count) = model::click_kind(act).unwrap_or((1, 1));
            Op::Input(Action::Click {
                at: Some(at),
                button,
                count,
                mods: mods()?,
            })
        }
        "left_click_drag" => {
            let (Some(start), Some(end)) = (a.start_coordinate, a.coordinate) else {
                return Err(ApiError::bad(
                    "Missing \"coordinate\" or \"start_coordinate\" for left_click_drag.",
                ));
            };
            Op::Input(Action::Drag {
                from: Some(space.point("start_coordinate", act, start)?),
                to: space.point("coordinate", act, end)?,
                button: 1,
                mods: mods()?,
            })
        }
        "left_mouse_down" | "left_mouse_up" | "mouse_down" | "mouse_up" => {
            let b = match (act, &a.button) {
                ("mouse_down" | "mouse_up", Some(b)) => button(b)?,
                _ => 1,
            };
            Op::Input(Action::Button {
                at: opt_coord()?,
                button: b,
                down: act.ends_with("_down"),
            })
        }
        "click" => Op::Input(Action::Click {
            at: opt_coord()?,
            button: a.button.as_ref().map(button).transpose()?.unwrap_or(1),
            count: model::click_count("count", act, a.count.unwrap_or(1))?,
            mods: mods()?,
        }),
        "scroll" => {
            let at = coord()?;
            let amount = model::scroll_amount("scroll_amount", act, a.scroll_amount.unwrap_or(3))?;
            let dir = a.scroll_direction.as_deref().unwrap_or("down");
            let (dx, dy) = model::scroll_delta(dir, amount)
                .ok_or_else(|| ApiError::bad(format!("Invalid scroll direction: {dir}")))?;
            Op::Input(Action::Scroll {
                at: Some(at),
                dx,
                dy,
                mods: mods()?,
            })
        }
        "hold_key" => Op::Input(Action::Hold {
            keys: chords()?.concat(),
            duration: model::duration_ms("duration", act, a.duration.unwrap_or(1000))?,
        }),
        "key_down" | "key_up" => Op::Input(Action::KeyChord {
            keys: chords()?.concat(),
            down: act == "key_down",
        }),
        "wait" => Op::Wait(model::duration_ms(
            "duration",
            act,
            a.duration.unwrap_or(1000),
        )?),
        "screenshot" => {
            coder_dims = true;
            capture_only = true;
            Op::Capture
        }
        "zoom" => {
            capture_only = true;
            Op::Capture
        }
        _ => return Err(ApiError::bad(format!("Unknown action: {act}"))),
    };
    let shot = if capture_only || a.screenshot_after == Some(true) {
        let (region, size) = if act == "zoom" {
            let r = a.region.ok_or_else(|| missing("region", act))?;
            let size = match (a.width, a.height) {
                (None, None) => Size::Native,
                (Some(w), Some(h)) => Size::Exact(w, h),
                (w, h) => {
                    return Err(ApiError::bad(format!(
                        "Invalid \"width\"/\"height\" for zoom action: {w:?}x{h:?}; give both, \
                         1 to {MAX_SCALED}."
                    )))
                }
            };
            (Some(space.region(act, r)?), size)
        } else {
            (
                None,
                Size::Pixels(space.x.output_size(), space.y.output_size()),
            )
        };
        Some(shot_options(a, !capture_only, native, region, size)?)
    } else {
        None
    };
    Ok(Plan {
        action: a.action.clone(),
        op,
        shot,
        axes: (space.x, space.y),
        coder_dims,
    })
}

/// Coder's 500 message for an action.
pub fn failure_message(action: &str) -> &'static str {
    match action {
        "key" => "Key press failed.",
        "type" => "Type action failed.",
        "cursor_position" => "Cursor position failed.",
        "mouse_move" => "Mouse move failed.",
        "left_click" => "Left click failed.",
        "left_click_drag" => "Left click drag failed.",
        "left_mouse_down" => "Left mouse down failed.",
        "left_mouse_up" => "Left mouse up failed.",
        "right_click" => "Right click failed.",
        "middle_click" => "Middle click failed.",
        "double_click" => "Double click failed.",
        "triple_click" => "Triple click failed.",
        "scroll" => "Scroll failed.",
        "hold_key" | "key_down" => "Key down failed.",
        "key_up" => "Key up failed.",
        "mouse_down" => "Mouse down failed.",
        "mouse_up" => "Mouse up failed.",
        "click" => "Click failed.",
        "zoom" => "Zoom failed.",
        "wait" => "Wait failed.",
        _ => "Screenshot failed.",
    }
}

/// Run input steps, recording in `held` what X has down; on failure release all of it (going
/// on past releases that fail), then report. A `Sleep` step is not allowed here (see
/// [`execute`], which sleeps without the action lock).
pub fn run_steps(
    input: &dyn InputSink,
    steps: &[Step],
    held: &mut Held,
) -> Result<(), DesktopError> {
    let result = (|| {
        for step in steps {
            match *step {
                Step::Move(x, y) => input.pointer_move(x, y)?,
                Step::Button(b, down) => held.button(input, b, down)?,
                Step::Key(k, down) => held.key(input, k, down)?,
                Step::Sleep(d) => {
                    input.sync()?;
                    std::thread::sleep(d);
                }
                Step::Sync => input.sync()?,
            }
        }
        input.sync()
    })();
    if result.is_err() {
        let _ = held.release_all(input);
        let _ = input.sync();
    }
    result
}

/// Run input steps under the action lock, sleeping (hold_key) without it so other callers run
/// meanwhile. Runs as its own task: a caller that goes away mid-hold cannot leave keys down.
/// Returns the lock, held again, for the screenshot that may follow.
async fn run_input(
    desktop: Desktop,
    steps: Vec<Step>,
    mut guard: Option<tokio::sync::OwnedMutexGuard<()>>,
) -> (
    Option<tokio::sync::OwnedMutexGuard<()>>,
    Result<(), DesktopError>,
) {
    let mut held = Held::new();
    for part in steps.split_inclusive(|s| matches!(s, Step::Sleep(_))) {
        let (run, sleep) = match part.split_last() {
            Some((Step::Sleep(d), run)) => (run, Some(*d)),
            _ => (part, None),
        };
        if guard.is_none() {
            match desktop::within("waiting for the desktop", async {
                Ok(Arc::clone(&desktop.action_lock).lock_owned().await)
            })
            .await
            {
                Ok(g) => guard = Some(g),
                Err(e) => return (None, Err(release(&desktop, held, e).await)),
            }
        }
        let input = Arc::clone(&desktop.input);
        let run = run.to_vec();
        let r = desktop::blocking("input", move || {
            let r = run_steps(input.as_ref(), &run, &mut held);
            Ok((held, r))
        })
        .await;
        held = match r {
            Ok((held, Ok(()))) => held,
            // run_steps released what it pressed.
            Ok((_, Err(e))) => return (guard, Err(e)),
            // Still running on a stuck X server; it releases on failure by itself.
            Err(e) => return (guard, Err(e)),
        };
        if let Some(d) = sleep {
            guard = None;
            tokio::time::sleep(d).await;
        }
    }
    (guard, Ok(()))
}

/// Run one action's input under the action lock (what `/v1` and other callers without a
/// screenshot to take use).
pub async fn perform(desktop: &Desktop, action: &Action) -> Result<(), DesktopError> {
    crate::metrics::global().actions.add(1);
    let task = tokio::spawn(run_input(desktop.clone(), action.steps(), None));
    task.await
        .map_err(|e| DesktopError::Other(format!("input task failed: {e}")))?
        .1
}

/// Release what `held` has down after `e` stopped a run; returns `e`.
async fn release(desktop: &Desktop, mut held: Held, e: DesktopError) -> DesktopError {
    let input = Arc::clone(&desktop.input);
    let _ = desktop::blocking("release", move || held.release_all(input.as_ref())).await;
    e
}

/// Native screen size now.
pub fn native_size(desktop: &Desktop) -> (u32, u32) {
    let (_, f) = desktop.frames.store().snapshot();
    (u32::from(f.width), u32::from(f.height))
}

/// Run a plan: input under the action lock on a blocking thread, then the screenshot.
pub async fn execute(desktop: &Desktop, plan: Plan) -> Result<Outcome, ApiError> {
    let fail = failure_message(&plan.action);
    crate::metrics::global().actions.add(1);
    let mut output = format!("{} action performed", plan.action);
    // The guard lives until the screenshot is taken, so it shows this action's effect and not
    // another agent's half-done drag.
    let guard = match plan.op {
        Op::Wait(_) => None,
        _ => Some(
            desktop::within("waiting for the desktop", async {
                Ok(Arc::clone(&desktop.action_lock).lock_owned().await)
            })
            .await
            .map_err(|e| ApiError::desktop(fail, &e))?,
        ),
    };
    match &plan.op {
        Op::Input(action) => {
            // Its own task, so the lock and the held keys are handled to the end even if the
            // request is dropped mid-way.
            let task = tokio::spawn(run_input(desktop.clone(), action.steps(), guard));
            let (held, res) = task.await.map_err(|e| ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: fail.into(),
                detail: format!("input task failed: {e}"),
            })?;
            res.map_err(|e| ApiError::desktop(fail, &e))?;
            return finish(desktop, plan, output, held).await;
        }
        Op::CursorPosition => {
            let input = Arc::clone(&desktop.input);
            let (x, y) = desktop::blocking("pointer position", move || input.pointer_position())
                .await
                .map_err(|e| ApiError::desktop(fail, &e))?;
            let (ax, ay) = plan.axes;
            output = format!(
                "x={},y={}",
                ax.to_scaled(u32::from(x)),
                ay.to_scaled(u32::from(y))
            );
        }
        Op::Wait(d) => tokio::time::sleep(*d).await,
        Op::Capture => output = plan.action.clone(),
    }
    if plan.action == "screenshot" {
        output = "screenshot".into();
    }
    finish(desktop, plan, output, guard).await
}

async fn finish(
    desktop: &Desktop,
    plan: Plan,
    output: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
) -> Result<Outcome, ApiError> {
    let shot = match &plan.shot {
        Some(o) => Some(
            screenshot::capture(desktop, o)
                .await
                .map_err(|e| ApiError::desktop(failure_message(&plan.action), &e))?,
        ),
        None => None,
    };
    drop(guard);
    Ok(Outcome { output, shot })
}

/// The Coder response for an outcome.
pub fn response(plan_axes: (Axis, Axis), coder_dims: bool, out: Outcome) -> DesktopActionResponse {
    let mut r = DesktopActionResponse {
        output: out.output,
        ..Default::default()
    };
    if let Some(s) = out.shot {
        r.screenshot_data = base64::engine::general_purpose::STANDARD.encode(&s.data);
        if coder_dims {
            r.screenshot_width = plan_axes.0.output_size();
            r.screenshot_height = plan_axes.1.output_size();
        } else {
            r.screenshot_width = s.width;
            r.screenshot_height = s.height;
        }
        if s.format != Format::Png {
            r.screenshot_media_type = Some(s.format.media_type().into());
        }
        r.settled = s.settled;
    }
    r
}

/// Decode a body the way Coder does (400 "Failed to decode request body." on any error).
pub fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad("Failed to decode request body.").with_detail(e.to_string()))
}

/// Run one action (Coder's `DesktopAction` plus extensions).
///
/// Requests that fail validation change nothing. With `scaled_width`/`scaled_height`
/// coordinates are in the agent's space and screenshots come back at that size.
#[utoipa::path(post, path = "/api/v0/desktop/action", tag = "v0",
    request_body = DesktopAction,
    responses(
        (status = 200, description = "Done", body = DesktopActionResponse),
        (status = "4XX", description = "Bad request", body = super::error::ErrorBody),
        (status = "5XX", description = "The desktop failed", body = super::error::ErrorBody),
    ))]
pub async fn handle(State(state): State<ApiState>, body: Bytes) -> Response {
    let action: DesktopAction = match decode(&body) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let native = native_size(&state.desktop);
    let plan = match plan(&action, native) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let axes = plan.axes;
    let coder_dims = plan.coder_dims;
    match execute(&state.desktop, plan).await {
        Ok(out) => Json(response(axes, coder_dims, out)).into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(json: &str) -> Result<Plan, ApiError> {
        let a: DesktopAction = decode(json.as_bytes())?;
        plan(&a, (1280, 800))
    }

    fn steps(json: &str) -> Vec<Step> {
        match act(json).unwrap().op {
            Op::Input(a) => a.steps(),
            other => panic!("not input: {other:?}"),
        }
    }

    fn msg(json: &str) -> String {
        let e = act(json).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        e.message
    }

    #[test]
    fn every_documented_action_is_known() {
        for a in ACTIONS {
            if let Err(e) = act(&format!(r#"{{"action":"{a}"}}"#)) {
                assert!(
                    !e.message.starts_with("Unknown action"),
                    "{a}: {}",
                    e.message
                );
            }
        }
    }

    #[test]
    fn coder_messages() {
        assert_eq!(
            msg(r#"{"action":"left_click"}"#),
            "Missing \"coordinate\" for left_click action."
        );
        assert_eq!(
            msg(r#"{"action":"key"}"#),
            "Missing \"text\" for key action."
        );
        assert_eq!(
            msg(r#"{"action":"type"}"#),
            "Missing \"text\" for type action."
        );
        assert_eq!(
            msg(r#"{"action":"hold_key"}"#),
            "Missing \"text\" for hold_key action."
        );
        assert_eq!(
            msg(r#"{"action":"left_click_drag","coordinate":[1,1]}"#),
            "Missing \"coordinate\" or \"start_coordinate\" for left_click_drag."
        );
        assert_eq!(msg(r#"{"action":"fly"}"#), "Unknown action: fly");
        assert_eq!(msg(r#"{}"#), "Unknown action: ");
        assert_eq!(
            msg(r#"{"action":"scroll","coordinate":[1,1],"scroll_direction":"sideways"}"#),
            "Invalid scroll direction: sideways"
        );
        assert_eq!(msg("{not json"), "Failed to decode request body.");
    }

    #[test]
    fn out_of_range_names_the_field() {
        let m = msg(r#"{"action":"left_click","coordinate":[1280,10]}"#);
        assert!(m.contains("\"coordinate\"") && m.contains("x=1280"), "{m}");
        let m = msg(r#"{"action":"mouse_move","coordinate":[5,-1]}"#);
        assert!(m.contains("y=-1"), "{m}");
        let m = msg(r#"{"action":"left_click_drag","start_coordinate":[-3,0],"coordinate":[1,1]}"#);
        assert!(m.contains("\"start_coordinate\""), "{m}");
        // With scaling, Coder clamps.
        let s = steps(
            r#"{"action":"mouse_move","coordinate":[5000,-7],"scaled_width":1024,"scaled_height":640}"#,
        );
        assert_eq!(s, vec![Step::Move(1279, 0)]);
    }

    #[test]
    fn scaled_coordinates_map() {
        let s = steps(
            r#"{"action":"left_click","coordinate":[512,360],"scaled_width":1024,"scaled_height":720}"#,
        );
        assert_eq!(s[0], Step::Move(640, 400));
    }

    #[test]
    fn clicks_with_modifiers() {
        let s = steps(r#"{"action":"left_click","coordinate":[1,2],"text":"ctrl+shift"}"#);
        assert_eq!(
            s,
            vec![
                Step::Move(1, 2),
                Step::Key(0xffe3, true),
                Step::Key(0xffe1, true),
                Step::Button(1, true),
                Step::Button(1, false),
                Step::Key(0xffe1, false),
                Step::Key(0xffe3, false),
            ]
        );
        let s = steps(r#"{"action":"triple_click","coordinate":[1,2]}"#);
        assert_eq!(s.iter().filter(|x| **x == Step::Button(1, true)).count(), 3);
        let s = steps(r#"{"action":"click","button":"back","count":2}"#);
        assert_eq!(s.iter().filter(|x| **x == Step::Button(8, true)).count(), 2);
        let s = steps(r#"{"action":"mouse_down","button":3,"coordinate":[4,4]}"#);
        assert_eq!(s, vec![Step::Move(4, 4), Step::Button(3, true)]);
        assert!(msg(r#"{"action":"click","button":"tail"}"#).contains("button"));
    }

    #[test]
    fn scroll_defaults() {
        let s = steps(r#"{"action":"scroll","coordinate":[1,2]}"#);
        assert_eq!(s.iter().filter(|x| **x == Step::Button(5, true)).count(), 3);
        let s = steps(
            r#"{"action":"scroll","coordinate":[1,2],"scroll_direction":"left","scroll_amount":2,"text":"shift"}"#,
        );
        assert_eq!(s[1], Step::Key(0xffe1, true));
        assert_eq!(s.iter().filter(|x| **x == Step::Button(6, true)).count(), 2);
    }

    #[test]
    fn keys_parse_before_anything() {
        let m = msg(r#"{"action":"key","text":"ctrl+Bogus"}"#);
        assert!(m.contains("Bogus"), "{m}");
        let s = steps(r#"{"action":"key","text":"ctrl+l"}"#);
        assert_eq!(
            s,
            vec![
                Step::Key(0xffe3, true),
                Step::Key(0x6c, true),
                Step::Key(0x6c, false),
                Step::Key(0xffe3, false)
            ]
        );
        let s = steps(r#"{"action":"hold_key","text":"shift","duration":5}"#);
        assert!(s.contains(&Step::Sleep(Duration::from_millis(5))));
        let p = act(r#"{"action":"hold_key","text":"a"}"#).unwrap();
        let Op::Input(a) = p.op else { panic!() };
        let s = a.steps();
        assert!(s.contains(&Step::Sleep(Duration::from_millis(1000))));
        assert!(msg(r#"{"action":"hold_key","text":"a","duration":-1}"#).contains("duration"));
    }

    /// Issue 13 item 1: i64::MIN has no absolute value; it must be refused, not wrapped into
    /// 2^63 scroll steps.
    #[test]
    fn extreme_scroll_amounts_are_refused() {
        for amount in [
            i64::MIN,
            i64::MIN + 1,
            i64::MAX,
            MAX_SCROLL + 1,
            -MAX_SCROLL - 1,
        ] {
            let m = msg(&format!(
                r#"{{"action":"scroll","coordinate":[5,5],"scroll_amount":{amount}}}"#
            ));
            assert!(m.contains("scroll_amount"), "{amount}: {m}");
        }
        let s = steps(r#"{"action":"scroll","coordinate":[5,5],"scroll_amount":-1000}"#);
        assert_eq!(
            s.iter().filter(|x| **x == Step::Button(4, true)).count(),
            1000
        );
    }

    /// Issue 13 item 10: the work of one request is bounded.
    #[test]
    fn key_requests_are_bounded() {
        let many = vec!["a"; MAX_CHORDS + 1].join(" ");
        let m = msg(&format!(r#"{{"action":"key","text":"{many}"}}"#));
        assert!(m.contains("key combinations"), "{m}");
        let many = vec!["a"; MAX_CHORDS].join(" ");
        assert_eq!(
            steps(&format!(r#"{{"action":"key","text":"{many}"}}"#)).len(),
            2 * MAX_CHORDS
        );
        let mods = vec!["shift"; MAX_MODIFIERS + 1].join("+");
        let m = msg(&format!(
            r#"{{"action":"left_click","coordinate":[1,1],"text":"{mods}"}}"#
        ));
        assert!(m.contains("keys is more than"), "{m}");
        let m = msg(r#"{"action":"screenshot","scaled_width":8192,"scaled_height":8192}"#);
        assert!(m.contains("pixels"), "{m}");
    }

    #[test]
    fn long_text_is_refused() {
        let big = "a".repeat(MAX_TEXT + 1);
        let m = msg(&format!(r#"{{"action":"type","text":"{big}"}}"#));
        assert!(m.contains("\"text\""), "{m}");
    }

    #[test]
    fn screenshot_options() {
        let p = act(r#"{"action":"screenshot","scaled_width":1280,"scaled_height":720}"#).unwrap();
        let o = p.shot.unwrap();
        assert_eq!(o.size, Some((1280, 720)));
        assert!(o.settle.is_none());
        let p =
            act(r#"{"action":"screenshot","format":"jpeg","quality":50,"settle":250}"#).unwrap();
        let o = p.shot.unwrap();
        assert_eq!(o.format, Format::Jpeg);
        assert_eq!(o.settle.unwrap().quiet, Duration::from_millis(250));
        let p =
            act(r#"{"action":"left_click","coordinate":[1,1],"screenshot_after":true}"#).unwrap();
        assert_eq!(p.shot.unwrap().settle, Some(Settle::default()));
        assert!(msg(r#"{"action":"screenshot","format":"gif"}"#).contains("format"));
        assert!(msg(r#"{"action":"screenshot","scaled_width":100000}"#).contains("scaled_width"));
        let p = act(r#"{"action":"zoom","region":[0,0,640,400]}"#).unwrap();
        let o = p.shot.unwrap();
        assert_eq!(
            o.region,
            Some(Region {
                x: 0,
                y: 0,
                width: 640,
                height: 400
            })
        );
        assert_eq!(o.size, None);
        let p = act(
            r#"{"action":"zoom","region":[0,0,512,320],"scaled_width":1024,"scaled_height":640}"#,
        )
        .unwrap();
        assert_eq!(
            p.shot.unwrap().region,
            Some(Region {
                x: 0,
                y: 0,
                width: 640,
                height: 400
            })
        );
        assert!(msg(r#"{"action":"zoom","region":[10,0,5,5]}"#).contains("region"));
        assert!(msg(r#"{"action":"zoom"}"#).contains("region"));
    }
}
