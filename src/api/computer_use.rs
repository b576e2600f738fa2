//! `POST /api/v0/desktop/computer-use`: the `input` of Anthropic's computer tool
//! (computer_20250124 and computer_20251124) run as-is, answered with tool_result content
//! blocks (`[{"type":"text",...}, {"type":"image","source":{...}}]`) ready to put in a
//! `tool_result`.
//!
//! Body: either the tool input itself plus `display_width_px`/`display_height_px`, or
//! `{"input": {...}, "display_width_px": W, "display_height_px": H}`. The declared display size
//! is the agent's coordinate space (scaled to native with the same formula as `scaled_width`),
//! and screenshots come back at that size. Durations are in seconds. Every action except
//! `cursor_position` returns a settled screenshot afterwards unless `?screenshot=false`.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::action::{self, ApiError, Op, Plan, Space};
use super::model::{self, Action};
use super::screenshot::{Settle, ShotOptions};
use super::ApiState;

/// The tool input.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ToolInput {
    /// The action.
    #[serde(default)]
    pub action: String,
    /// `[x, y]`.
    pub coordinate: Option<[i64; 2]>,
    /// Drag start.
    pub start_coordinate: Option<[i64; 2]>,
    /// Keys, text, or modifiers for clicks and scrolls.
    pub text: Option<String>,
    /// Seconds (hold_key, wait).
    pub duration: Option<f64>,
    /// up, down, left, right.
    pub scroll_direction: Option<String>,
    /// Notches.
    pub scroll_amount: Option<i64>,
    /// Zoom region `[x1, y1, x2, y2]`.
    pub region: Option<[i64; 4]>,
}

/// The request body.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[schema(as = ComputerUseRequest)]
pub struct Request {
    /// The tool input, when wrapped.
    pub input: Option<ToolInput>,
    /// The tool input, when not wrapped.
    #[serde(flatten)]
    pub inline: ToolInput,
    /// The display width declared in the tool definition.
    pub display_width_px: Option<i64>,
    /// The display height declared in the tool definition.
    pub display_height_px: Option<i64>,
}

fn seconds(field: &str, act: &str, v: Option<f64>, default: f64) -> Result<Duration, ApiError> {
    let s = v.unwrap_or(default);
    let max = model::MAX_DURATION_MS as f64 / 1000.0;
    if !(0.0..=max).contains(&s) {
        return Err(ApiError::bad(format!(
            "Invalid \"{field}\" for {act} action: {s} s is outside 0 to {max} s."
        )));
    }
    Ok(Duration::from_secs_f64(s))
}

fn missing(field: &str, act: &str) -> ApiError {
    ApiError::bad(format!("Missing \"{field}\" for {act} action."))
}

/// Turn a tool input into a plan (everything checked before anything runs).
pub fn plan(
    input: &ToolInput,
    display: (Option<i64>, Option<i64>),
    native: (u32, u32),
    screenshot: bool,
) -> Result<Plan, ApiError> {
    for (name, v) in [
        ("display_width_px", display.0),
        ("display_height_px", display.1),
    ] {
        if let Some(v) = v {
            if v <= 0 || v > action::MAX_SCALED {
                return Err(ApiError::bad(format!(
                    "Invalid \"{name}\": {v}; use 1 to {}.",
                    action::MAX_SCALED
                )));
            }
        }
    }
    let space = Space::new(native, display.0, display.1);
    let act = input.action.as_str();
    let point = |field: &str, c: Option<[i64; 2]>| -> Result<Option<(u16, u16)>, ApiError> {
        c.map(|c| space.point(field, act, c)).transpose()
    };
    let at = point("coordinate", input.coordinate)?;
    let text = || input.text.as_deref().ok_or_else(|| missing("text", act));
    let mods = || model::modifier_keys(act, input.text.as_deref());
    let chords = || model::key_chords("text", act, text()?);
    let need_at = || at.ok_or_else(|| missing("coordinate", act));
    let mut with_shot = screenshot;
    let mut region = None;
    let op = match act {
        "key" => Op::Input(Action::Keys(chords()?)),
        "type" => Op::Input(Action::Type {
            keysyms: model::type_text(act, text()?)?,
            delay: Duration::ZERO,
        }),
        "mouse_move" => Op::Input(Action::Move(need_at()?)),
        "left_click" | "right_click" | "middle_click" | "double_click" | "triple_click" => {
            let (button, count) = model::click_kind(act).unwrap_or((1, 1));
            Op::Input(Action::Click {
                at,
                button,
                count,
                mods: mods()?,
            })
        }
        "left_click_drag" => Op::Input(Action::Drag {
            from: point("start_coordinate", input.start_coordinate)?,
            to: need_at()?,
            button: 1,
            mods: Vec::new(),
        }),
        "left_mouse_down" | "left_mouse_up" => Op::Input(Action::Button {
            at,
            button: 1,
            down: act == "left_mouse_down",
        }),
        "scroll" => {
            let amount = input.scroll_amount.unwrap_or(3);
            if amount < 0 {
                return Err(ApiError::bad(format!(
                    "Invalid \"scroll_amount\" for scroll action: {amount}; use 0 to {}.",
                    model::MAX_SCROLL
                )));
            }
            let amount = model::scroll_amount("scroll_amount", act, amount)?;
            let dir = input
                .scroll_direction
                .as_deref()
                .ok_or_else(|| missing("scroll_direction", act))?;
            let (dx, dy) = model::scroll_delta(dir, amount)
                .ok_or_else(|| ApiError::bad(format!("Invalid scroll direction: {dir}")))?;
            Op::Input(Action::Scroll {
                at,
                dx,
                dy,
                mods: mods()?,
            })
        }
        "hold_key" => Op::Input(Action::Hold {
            keys: chords()?.concat(),
            duration: seconds("duration", act, input.duration, 1.0)?,
        }),
        "wait" => Op::Wait(seconds("duration", act, input.duration, 1.0)?),
        "screenshot" => {
            with_shot = true;
            Op::Capture
        }
        "zoom" => {
            with_shot = true;
            let r = input.region.ok_or_else(|| missing("region", act))?;
            region = Some(space.region(act, r)?);
            Op::Capture
        }
        "cursor_position" => {
            with_shot = false;
            Op::CursorPosition
        }
        _ => return Err(ApiError::bad(format!("Unknown action: {act}"))),
    };
    let shot = with_shot.then(|| ShotOptions {
        region,
        size: region
            .is_none()
            .then(|| (space.x.output_size(), space.y.output_size())),
        // A plain screenshot is taken as is; after an action, wait for the screen to settle.
        settle: (!matches!(op, Op::Capture)).then(Settle::default),
        ..Default::default()
    });
    Ok(Plan {
        action: act.to_owned(),
        op,
        shot,
        axes: (space.x, space.y),
        coder_dims: false,
    })
}

/// A tool_result content block.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ContentBlock {
    /// The action's output.
    Text {
        /// What happened.
        text: String,
    },
    /// A screenshot.
    Image {
        /// The image.
        source: ImageSource,
    },
}

/// An inline image.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImageSource {
    /// Always base64.
    #[serde(rename = "type")]
    pub kind: ImageSourceKind,
    /// image/png, image/jpeg or image/webp.
    pub media_type: String,
    /// The encoded image.
    pub data: String,
}

/// How an image is carried.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageSourceKind {
    /// Base64 in `data`.
    Base64,
}

/// Run Anthropic computer tool input (computer_20250124 / computer_20251124).
///
/// Body: the tool_use input (optionally wrapped as `{"input": ...}`) plus
/// display_width_px/display_height_px from the tool definition. Durations are seconds.
/// Answers with tool_result content blocks: a text block with the output and, except for
/// cursor_position, an image block with a settled screenshot at the declared display size.
#[utoipa::path(post, path = "/api/v0/desktop/computer-use", tag = "v0",
    request_body = Request,
    params(("screenshot" = Option<bool>, Query, description = "false: no screenshot after actions")),
    responses(
        (status = 200, description = "tool_result content blocks", body = Vec<ContentBlock>),
        (status = "4XX", description = "Bad request", body = super::error::ErrorBody),
        (status = "5XX", description = "The desktop failed", body = super::error::ErrorBody),
    ))]
pub async fn handle(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let req: Request = match action::decode(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let input = req.input.as_ref().unwrap_or(&req.inline);
    let screenshot = !matches!(
        q.get("screenshot").map(|s| s.as_str()),
        Some("false" | "0" | "no")
    );
    let native = action::native_size(&state.desktop);
    let plan = match plan(
        input,
        (req.display_width_px, req.display_height_px),
        native,
        screenshot,
    ) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let is_capture = matches!(plan.op, Op::Capture);
    let is_cursor = matches!(plan.op, Op::CursorPosition);
    match action::execute(&state.desktop, plan).await {
        Err(e) => e.into_response(),
        Ok(out) => {
            let mut blocks = Vec::new();
            if is_cursor {
                // The reference implementation's spelling.
                let text = out.output.replace("x=", "X=").replace("y=", "Y=");
                blocks.push(ContentBlock::Text { text });
            } else if !is_capture {
                blocks.push(ContentBlock::Text { text: out.output });
            }
            if let Some(s) = out.shot {
                blocks.push(ContentBlock::Image {
                    source: ImageSource {
                        kind: ImageSourceKind::Base64,
                        media_type: s.format.media_type().into(),
                        data: base64::engine::general_purpose::STANDARD.encode(&s.data),
                    },
                });
            }
            Json(blocks).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::model::Step;

    fn p(json: &str) -> Result<Plan, ApiError> {
        let r: Request = action::decode(json.as_bytes())?;
        let input = r.input.clone().unwrap_or(r.inline.clone());
        plan(
            &input,
            (r.display_width_px, r.display_height_px),
            (1280, 800),
            true,
        )
    }

    #[test]
    fn wrapped_and_inline_inputs() {
        let a = p(r#"{"input":{"action":"left_click","coordinate":[512,320]},"display_width_px":1024,"display_height_px":640}"#).unwrap();
        let Op::Input(act) = a.op else { panic!() };
        let s = act.steps();
        assert_eq!(s[0], Step::Move(640, 400));
        assert_eq!(a.shot.unwrap().size, Some((1024, 640)));
        let a = p(r#"{"action":"left_click"}"#).unwrap();
        let Op::Input(act) = a.op else { panic!() };
        let s = act.steps();
        assert_eq!(s[0], Step::Button(1, true));
    }

    #[test]
    fn seconds_and_scroll() {
        let a = p(r#"{"action":"hold_key","text":"shift","duration":0.5}"#).unwrap();
        let Op::Input(act) = a.op else { panic!() };
        let s = act.steps();
        assert!(s.contains(&Step::Sleep(Duration::from_millis(500))));
        let a = p(r#"{"action":"wait","duration":2}"#).unwrap();
        assert!(matches!(a.op, Op::Wait(d) if d == Duration::from_secs(2)));
        let a = p(r#"{"action":"scroll","coordinate":[10,10],"scroll_direction":"up","scroll_amount":2,"text":"ctrl"}"#).unwrap();
        let Op::Input(act) = a.op else { panic!() };
        let s = act.steps();
        assert_eq!(s[1], Step::Key(0xffe3, true));
        assert_eq!(s.iter().filter(|x| **x == Step::Button(4, true)).count(), 2);
        assert!(p(r#"{"action":"scroll","coordinate":[1,1]}"#).is_err());
        assert!(p(r#"{"action":"wait","duration":-1}"#).is_err());
        assert!(p(r#"{"action":"zoom"}"#).is_err());
        let a = p(r#"{"action":"cursor_position"}"#).unwrap();
        assert!(a.shot.is_none());
    }
}
