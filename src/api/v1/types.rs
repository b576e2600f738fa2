//! Request and response bodies of sandbox-agent's desktop API (`sandbox-agent` 0.4.2,
//! `dist/index.d.ts`): camelCase, unset optionals omitted, window ids as decimal strings.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /v1/health`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// Always "ok".
    pub status: String,
}

/// A screen size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopResolution {
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
    /// Dots per inch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpi: Option<u32>,
}

/// Why the desktop failed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopErrorInfo {
    /// Machine-readable code.
    pub code: String,
    /// What happened.
    pub message: String,
}

/// A supervised process.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopProcessInfo {
    /// Program name.
    pub name: String,
    /// Process id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Whether it is running.
    pub running: bool,
    /// Its log file, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_path: Option<String>,
}

/// A top-level window. `x`/`y` are the client area's top-left corner in root coordinates (as
/// `xwininfo` reports it), `width`/`height` its size.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopWindowInfo {
    /// X window id, decimal.
    pub id: String,
    /// Title.
    pub title: String,
    /// Left.
    pub x: i32,
    /// Top.
    pub y: i32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Whether it is the active window.
    pub is_active: bool,
}

/// inactive, starting, active, stopping, failed (install_required never: deskd has what it
/// needs or does not start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DesktopState {
    /// Stopped.
    Inactive,
    /// Dependencies missing (not used by deskd).
    InstallRequired,
    /// Being (re)started.
    Starting,
    /// Running.
    Active,
    /// Being stopped.
    Stopping,
    /// The last start failed.
    Failed,
}

/// `GET /v1/desktop/status`, also the answer of start and stop.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopStatusResponse {
    /// Lifecycle state.
    pub state: DesktopState,
    /// X display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// Screen size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<DesktopResolution>,
    /// When the display was started (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Why the last start failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<DesktopErrorInfo>,
    /// Missing programs (always empty for deskd).
    pub missing_dependencies: Vec<String>,
    /// X server, window manager and launched applications.
    pub processes: Vec<DesktopProcessInfo>,
    /// Visible windows, when active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub windows: Option<Vec<DesktopWindowInfo>>,
}

/// `POST /v1/desktop/start`. The stream and recording settings are accepted and ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopStartRequest {
    /// X display number.
    pub display_num: Option<i32>,
    /// Dots per inch.
    pub dpi: Option<i32>,
    /// Screen width.
    pub width: Option<i32>,
    /// Screen height.
    pub height: Option<i32>,
}

/// `GET /v1/desktop/display/info`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopDisplayInfoResponse {
    /// X display name.
    pub display: String,
    /// Screen size.
    pub resolution: DesktopResolution,
}

/// Where the pointer is, answered by every mouse call.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopMousePositionResponse {
    /// Root x.
    pub x: i32,
    /// Root y.
    pub y: i32,
    /// Screen number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub screen: Option<i32>,
    /// Top-level window under the pointer (the root window over the background), decimal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

/// left, middle, right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DesktopMouseButton {
    /// Button 1.
    Left,
    /// Button 2.
    Middle,
    /// Button 3.
    Right,
}

impl DesktopMouseButton {
    /// The X button number.
    pub fn number(self) -> u8 {
        match self {
            DesktopMouseButton::Left => 1,
            DesktopMouseButton::Middle => 2,
            DesktopMouseButton::Right => 3,
        }
    }
}

/// `POST /v1/desktop/mouse/move`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopMouseMoveRequest {
    /// Target x.
    pub x: i32,
    /// Target y.
    pub y: i32,
}

/// `POST /v1/desktop/mouse/click`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopMouseClickRequest {
    /// Button (left).
    pub button: Option<DesktopMouseButton>,
    /// Clicks (1).
    pub click_count: Option<i32>,
    /// Target x.
    pub x: i32,
    /// Target y.
    pub y: i32,
}

/// `POST /v1/desktop/mouse/down` and `up`: at (x, y) when both are given, else where the
/// pointer is.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopMouseButtonRequest {
    /// Button (left).
    pub button: Option<DesktopMouseButton>,
    /// Target x.
    pub x: Option<i32>,
    /// Target y.
    pub y: Option<i32>,
}

/// `POST /v1/desktop/mouse/drag`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopMouseDragRequest {
    /// Button (left).
    pub button: Option<DesktopMouseButton>,
    /// Start x.
    pub start_x: i32,
    /// Start y.
    pub start_y: i32,
    /// End x.
    pub end_x: i32,
    /// End y.
    pub end_y: i32,
}

/// `POST /v1/desktop/mouse/scroll`: wheel notches, positive down / right.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopMouseScrollRequest {
    /// Horizontal notches.
    pub delta_x: Option<i32>,
    /// Vertical notches.
    pub delta_y: Option<i32>,
    /// Where.
    pub x: i32,
    /// Where.
    pub y: i32,
}

/// `POST /v1/desktop/keyboard/type`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopKeyboardTypeRequest {
    /// Pause between characters in ms.
    pub delay_ms: Option<u32>,
    /// The text.
    pub text: String,
}

/// Modifiers held during a key press.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopKeyModifiers {
    /// Alt.
    pub alt: Option<bool>,
    /// Super (the Command key).
    pub cmd: Option<bool>,
    /// Control.
    pub ctrl: Option<bool>,
    /// Shift.
    pub shift: Option<bool>,
}

/// `POST /v1/desktop/keyboard/press`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopKeyboardPressRequest {
    /// xdotool key syntax: `Return`, `ctrl+a`, `a b`.
    pub key: String,
    /// Modifiers held around it.
    pub modifiers: Option<DesktopKeyModifiers>,
}

/// `POST /v1/desktop/keyboard/down` and `up`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopKeyboardKeyRequest {
    /// A key name (or a `+` chord).
    pub key: String,
}

/// `{"ok": true}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = v1::DesktopActionResponse)]
#[serde(rename_all = "camelCase")]
pub struct DesktopActionResponse {
    /// Done.
    pub ok: bool,
}

/// `GET /v1/desktop/windows`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopWindowListResponse {
    /// Top-level windows.
    pub windows: Vec<DesktopWindowInfo>,
}

/// `POST /v1/desktop/windows/{id}/move`: the frame's top-left corner goes to (x, y).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopWindowMoveRequest {
    /// Left.
    pub x: i32,
    /// Top.
    pub y: i32,
}

/// `POST /v1/desktop/windows/{id}/resize`: the client area's size.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopWindowResizeRequest {
    /// Width.
    pub width: i32,
    /// Height.
    pub height: i32,
}

/// `GET /v1/desktop/clipboard`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopClipboardResponse {
    /// clipboard or primary.
    pub selection: String,
    /// The text ("" when nothing owns the selection).
    pub text: String,
}

/// `POST /v1/desktop/clipboard`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopClipboardWriteRequest {
    /// clipboard (default) or primary.
    pub selection: Option<String>,
    /// The text.
    pub text: String,
}

/// `POST /v1/desktop/launch`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopLaunchRequest {
    /// Program name (looked up in PATH) or path.
    pub app: String,
    /// Arguments.
    pub args: Option<Vec<String>>,
    /// Answer once the application's window maps (bounded wait).
    pub wait: Option<bool>,
}

/// The answer of launch.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopLaunchResponse {
    /// deskd's id (`proc_N`).
    pub process_id: String,
    /// Process id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Its window, with `wait: true`, once mapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_id: Option<String>,
}

/// `POST /v1/desktop/open`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopOpenRequest {
    /// A path or URL for `xdg-open`.
    pub target: String,
}

/// The answer of open.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopOpenResponse {
    /// deskd's id (`proc_N`).
    pub process_id: String,
    /// Process id of `xdg-open`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// `GET /v1/desktop/stream/status` (and the answer of stop).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopStreamStatusResponse {
    /// Whether a WebRTC stream runs (never, in deskd).
    pub active: bool,
    /// Streamer process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_id: Option<String>,
    /// Streamed window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_id: Option<String>,
}
