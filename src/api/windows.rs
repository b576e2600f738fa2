//! Top-level windows: list them (EWMH `_NET_CLIENT_LIST`, `_NET_WM_NAME`, `WM_CLASS`,
//! `_NET_WM_PID`, `_NET_ACTIVE_WINDOW`) and focus, close, move or resize one.
//!
//! Exception to the layering rule that only `capture::x11` and `input::xtest` import x11rb:
//! window management is property reads and client messages to the window manager, which the
//! `FrameSource`/`InputSink` traits do not cover, so this module opens its own X connection to
//! the display given to [`super::router`] (lazily, and again after the X server restarts).
//! Without a window manager it falls back to mapped top-level windows and core requests.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ClientMessageEvent, ConfigureWindowAux, ConnectionExt as _, EventMask, InputFocus,
    MapState, StackMode, Window,
};
use x11rb::rust_connection::RustConnection;

use super::action::{decode, ApiError};
use super::ApiState;
use crate::desktop::DesktopError;
use crate::display::conn::XServer;

x11rb::atom_manager! {
    Atoms: AtomsCookie {
        _NET_CLIENT_LIST,
        _NET_ACTIVE_WINDOW,
        _NET_WM_NAME,
        _NET_WM_PID,
        _NET_SUPPORTED,
        _NET_CLOSE_WINDOW,
        _NET_MOVERESIZE_WINDOW,
        _NET_FRAME_EXTENTS,
        WM_PROTOCOLS,
        WM_DELETE_WINDOW,
        UTF8_STRING,
    }
}

/// A position and size in root coordinates.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, ToSchema)]
pub struct Geometry {
    /// Left.
    pub x: i32,
    /// Top.
    pub y: i32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// One top-level window.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Window)]
pub struct WindowInfo {
    /// X window id.
    pub id: u32,
    /// `_NET_WM_NAME`, else `WM_NAME`.
    pub title: String,
    /// `WM_CLASS` class part.
    pub class: String,
    /// `WM_CLASS` instance part.
    pub instance: String,
    /// `_NET_WM_PID`, when set.
    pub pid: Option<u32>,
    /// The client area (the application's own pixels).
    pub geometry: Geometry,
    /// The window including its decorations (`_NET_FRAME_EXTENTS`) or X border; `move`
    /// puts this frame's top-left corner at the given point.
    pub frame: Geometry,
    /// Whether it is the active (focused) window.
    pub focused: bool,
}

struct Conn {
    conn: RustConnection,
    root: Window,
    atoms: Atoms,
}

/// The window helper: one lazily opened X connection.
pub struct Windows {
    display: String,
    /// The server handle of a display deskd started (carries its cookie and follows restarts);
    /// without one, `$XAUTHORITY` is used.
    server: Option<Arc<XServer>>,
    conn: Mutex<Option<Conn>>,
}

type XResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn unavailable(e: impl std::fmt::Display) -> DesktopError {
    DesktopError::Unavailable(e.to_string())
}

impl Windows {
    /// For the display name (e.g. ":7"); connects on first use.
    pub fn new(display: String, server: Option<Arc<XServer>>) -> Windows {
        Windows {
            display,
            server,
            conn: Mutex::new(None),
        }
    }

    /// Run `f` with a connection; a failure drops the connection and, if it was an old one
    /// (the X server may have restarted since), tries once more on a new one.
    fn with<T>(&self, f: impl Fn(&Conn) -> XResult<T>) -> Result<T, DesktopError> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut fresh = guard.is_none();
        loop {
            if guard.is_none() {
                *guard = Some(self.open()?);
            }
            let Some(c) = guard.as_ref() else {
                return Err(unavailable("no X connection"));
            };
            match f(c) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    *guard = None;
                    if fresh {
                        return Err(unavailable(e));
                    }
                    fresh = true;
                }
            }
        }
    }

    fn open(&self) -> Result<Conn, DesktopError> {
        let (conn, screen) = match &self.server {
            Some(server) => server.connect()?,
            None => x11rb::connect(Some(&self.display)).map_err(unavailable)?,
        };
        let root = conn
            .setup()
            .roots
            .get(screen)
            .map(|s| s.root)
            .ok_or_else(|| unavailable("no such screen"))?;
        let atoms = Atoms::new(&conn)
            .map_err(unavailable)?
            .reply()
            .map_err(unavailable)?;
        Ok(Conn { conn, root, atoms })
    }

    /// All top-level windows, in stacking/creation order as the window manager lists them.
    pub fn list(&self) -> Result<Vec<WindowInfo>, DesktopError> {
        self.with(|c| {
            let ids = client_list(c)?;
            let active = active_window(c)?;
            let mut out = Vec::new();
            for id in ids {
                // A window may vanish between listing and asking; skip it.
                if let Ok(w) = info(c, id, active) {
                    out.push(w);
                }
            }
            Ok(out)
        })
    }

    fn known(&self, id: u32) -> Result<bool, DesktopError> {
        self.with(|c| Ok(client_list(c)?.contains(&id)))
    }

    /// One listed top-level window (`None` when the window manager does not list it).
    pub fn window(&self, id: u32) -> Result<Option<WindowInfo>, DesktopError> {
        self.with(|c| {
            if !client_list(c)?.contains(&id) {
                return Ok(None);
            }
            Ok(Some(info(c, id, active_window(c)?)?))
        })
    }

    /// The active window, when one is listed.
    pub fn active(&self) -> Result<Option<WindowInfo>, DesktopError> {
        self.with(|c| {
            let active = active_window(c)?;
            if active == 0 || !client_list(c)?.contains(&active) {
                return Ok(None);
            }
            Ok(Some(info(c, active, active)?))
        })
    }

    /// The pointer in root coordinates and the listed window under it (the root window over
    /// the background).
    pub fn pointer(&self) -> Result<(i32, i32, u32), DesktopError> {
        self.with(|c| {
            let p = c.conn.query_pointer(c.root)?.reply()?;
            let clients = client_list(c)?;
            // With a window manager the root's child is a frame: descend to the client.
            let mut under = if p.child == x11rb::NONE {
                c.root
            } else {
                p.child
            };
            let mut w = p.child;
            for _ in 0..8 {
                if w == x11rb::NONE {
                    break;
                }
                if clients.contains(&w) {
                    under = w;
                    break;
                }
                w = c.conn.query_pointer(w)?.reply()?.child;
            }
            Ok((i32::from(p.root_x), i32::from(p.root_y), under))
        })
    }

    /// The screen's size in pixels and its resolution in dots per inch.
    pub fn screen(&self) -> Result<(u32, u32, u32), DesktopError> {
        self.with(|c| {
            let g = c.conn.get_geometry(c.root)?.reply()?;
            let screen = c
                .conn
                .setup()
                .roots
                .iter()
                .find(|s| s.root == c.root)
                .map(|s| (s.width_in_millimeters, s.height_in_millimeters));
            let dpi = match screen {
                Some((mm, _)) if mm > 0 => {
                    (f64::from(g.width) * 25.4 / f64::from(mm)).round() as u32
                }
                _ => 96,
            };
            Ok((u32::from(g.width), u32::from(g.height), dpi))
        })
    }

    /// Make `id` the active window.
    pub fn focus(&self, id: u32) -> Result<(), DesktopError> {
        self.with(|c| {
            if supported(c, c.atoms._NET_ACTIVE_WINDOW)? {
                // Source indication 2: a pager/tool, which window managers obey.
                send_root(c, id, c.atoms._NET_ACTIVE_WINDOW, [2, 0, 0, 0, 0])?;
            } else {
                c.conn.configure_window(
                    id,
                    &ConfigureWindowAux::new().stack_mode(StackMode::ABOVE),
                )?;
                c.conn
                    .set_input_focus(InputFocus::PARENT, id, x11rb::CURRENT_TIME)?;
            }
            c.conn.get_input_focus()?.reply()?;
            Ok(())
        })
    }

    /// Ask `id` to close (as its close button would).
    pub fn close(&self, id: u32) -> Result<(), DesktopError> {
        self.with(|c| {
            if supported(c, c.atoms._NET_CLOSE_WINDOW)? {
                send_root(c, id, c.atoms._NET_CLOSE_WINDOW, [0, 2, 0, 0, 0])?;
            } else {
                let protocols = c
                    .conn
                    .get_property(false, id, c.atoms.WM_PROTOCOLS, AtomEnum::ATOM, 0, 64)?
                    .reply()?;
                let polite = protocols
                    .value32()
                    .is_some_and(|mut v| v.any(|a| a == c.atoms.WM_DELETE_WINDOW));
                if polite {
                    let ev = ClientMessageEvent::new(
                        32,
                        id,
                        c.atoms.WM_PROTOCOLS,
                        [c.atoms.WM_DELETE_WINDOW, x11rb::CURRENT_TIME, 0, 0, 0],
                    );
                    c.conn.send_event(false, id, EventMask::NO_EVENT, ev)?;
                } else {
                    c.conn.kill_client(id)?;
                }
            }
            c.conn.get_input_focus()?.reply()?;
            Ok(())
        })
    }

    /// Move and/or resize `id`: the frame's top-left to (x, y), the client area to w x h.
    pub fn configure(
        &self,
        id: u32,
        pos: Option<(i32, i32)>,
        size: Option<(u32, u32)>,
    ) -> Result<(), DesktopError> {
        self.with(|c| {
            if supported(c, c.atoms._NET_MOVERESIZE_WINDOW)? {
                // NorthWestGravity (1): the frame's top-left corner goes to (x, y).
                let mut flags = 1u32 | (2 << 12);
                let (mut x, mut y, mut w, mut h) = (0u32, 0u32, 0u32, 0u32);
                if let Some((px, py)) = pos {
                    flags |= (1 << 8) | (1 << 9);
                    x = px as u32;
                    y = py as u32;
                }
                if let Some((sw, sh)) = size {
                    flags |= (1 << 10) | (1 << 11);
                    w = sw;
                    h = sh;
                }
                send_root(c, id, c.atoms._NET_MOVERESIZE_WINDOW, [flags, x, y, w, h])?;
            } else {
                let mut aux = ConfigureWindowAux::new();
                if let Some((x, y)) = pos {
                    aux = aux.x(x).y(y);
                }
                if let Some((w, h)) = size {
                    aux = aux.width(w).height(h);
                }
                c.conn.configure_window(id, &aux)?;
            }
            c.conn.get_input_focus()?.reply()?;
            Ok(())
        })
    }
}

fn send_root(c: &Conn, id: u32, kind: u32, data: [u32; 5]) -> XResult<()> {
    let ev = ClientMessageEvent::new(32, id, kind, data);
    c.conn.send_event(
        false,
        c.root,
        EventMask::SUBSTRUCTURE_REDIRECT | EventMask::SUBSTRUCTURE_NOTIFY,
        ev,
    )?;
    Ok(())
}

fn supported(c: &Conn, atom: u32) -> XResult<bool> {
    let r = c
        .conn
        .get_property(
            false,
            c.root,
            c.atoms._NET_SUPPORTED,
            AtomEnum::ATOM,
            0,
            4096,
        )?
        .reply()?;
    Ok(r.value32().is_some_and(|mut v| v.any(|a| a == atom)))
}

/// `_NET_CLIENT_LIST`, or mapped top-level windows when no window manager sets it.
fn client_list(c: &Conn) -> XResult<Vec<u32>> {
    let r = c
        .conn
        .get_property(
            false,
            c.root,
            c.atoms._NET_CLIENT_LIST,
            AtomEnum::WINDOW,
            0,
            4096,
        )?
        .reply()?;
    if r.type_ != u32::from(AtomEnum::NONE) {
        return Ok(r.value32().map(|v| v.collect()).unwrap_or_default());
    }
    let tree = c.conn.query_tree(c.root)?.reply()?;
    let mut out = Vec::new();
    for w in tree.children {
        if let Ok(a) = c.conn.get_window_attributes(w)?.reply() {
            if a.map_state == MapState::VIEWABLE && !a.override_redirect {
                out.push(w);
            }
        }
    }
    Ok(out)
}

fn active_window(c: &Conn) -> XResult<u32> {
    let r = c
        .conn
        .get_property(
            false,
            c.root,
            c.atoms._NET_ACTIVE_WINDOW,
            AtomEnum::WINDOW,
            0,
            1,
        )?
        .reply()?;
    if let Some(w) = r.value32().and_then(|mut v| v.next()) {
        return Ok(w);
    }
    Ok(c.conn.get_input_focus()?.reply()?.focus)
}

fn info(c: &Conn, id: u32, active: u32) -> XResult<WindowInfo> {
    let net_name = c.conn.get_property(
        false,
        id,
        c.atoms._NET_WM_NAME,
        c.atoms.UTF8_STRING,
        0,
        1024,
    )?;
    let wm_name = c
        .conn
        .get_property(false, id, AtomEnum::WM_NAME, AtomEnum::ANY, 0, 1024)?;
    let class = c
        .conn
        .get_property(false, id, AtomEnum::WM_CLASS, AtomEnum::STRING, 0, 1024)?;
    let pid = c
        .conn
        .get_property(false, id, c.atoms._NET_WM_PID, AtomEnum::CARDINAL, 0, 1)?;
    let extents = c.conn.get_property(
        false,
        id,
        c.atoms._NET_FRAME_EXTENTS,
        AtomEnum::CARDINAL,
        0,
        4,
    )?;
    let geom = c.conn.get_geometry(id)?;
    let pos = c.conn.translate_coordinates(id, c.root, 0, 0)?;

    let net_name = net_name.reply()?.value;
    let title = if net_name.is_empty() {
        // WM_NAME is usually Latin-1.
        wm_name
            .reply()?
            .value
            .iter()
            .map(|b| char::from(*b))
            .collect()
    } else {
        String::from_utf8_lossy(&net_name).into_owned()
    };
    let class = class.reply()?.value;
    let mut parts = class
        .split(|b| *b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let instance = parts.next().unwrap_or_default();
    let class = parts.next().unwrap_or_default();
    let pid = pid.reply()?.value32().and_then(|mut v| v.next());
    let geom = geom.reply()?;
    let pos = pos.reply()?;
    let ext: Vec<i32> = extents
        .reply()?
        .value32()
        .map(|v| v.map(|e| e.min(10_000) as i32).collect())
        .unwrap_or_default();
    let bw = i32::from(geom.border_width);
    let [left, right, top, bottom] = match ext[..] {
        [l, r, t, b] => [l, r, t, b],
        _ => [bw; 4],
    };
    Ok(WindowInfo {
        id,
        title,
        class,
        instance,
        pid,
        geometry: Geometry {
            x: i32::from(pos.dst_x),
            y: i32::from(pos.dst_y),
            width: u32::from(geom.width),
            height: u32::from(geom.height),
        },
        frame: Geometry {
            x: i32::from(pos.dst_x) - left,
            y: i32::from(pos.dst_y) - top,
            width: u32::from(geom.width) + (left + right).unsigned_abs(),
            height: u32::from(geom.height) + (top + bottom).unsigned_abs(),
        },
        focused: id == active,
    })
}

/// A window id from a path: decimal or `0x` hex.
pub fn parse_id(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

async fn blocking<T: Send + 'static>(
    state: &ApiState,
    what: &'static str,
    f: impl FnOnce(&Windows) -> Result<T, DesktopError> + Send + 'static,
) -> Result<T, ApiError> {
    let w = Arc::clone(&state.windows);
    crate::desktop::blocking(what, move || f(&w))
        .await
        .map_err(|e| ApiError::desktop(what, &e))
}

/// Resolve a path id to a window we list (so no request pokes arbitrary X resources).
async fn window_id(state: &ApiState, raw: &str) -> Result<u32, ApiError> {
    let id = parse_id(raw).ok_or_else(|| {
        ApiError::bad(format!(
            "Invalid window id {raw:?}: use a decimal or 0x-prefixed hex X window id."
        ))
    })?;
    if !blocking(state, "Window lookup failed.", move |w| w.known(id)).await? {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("No window {id} (0x{id:x})."),
            detail: String::new(),
        });
    }
    Ok(id)
}

/// `GET /api/v0/desktop/windows`: `{"windows": [...]}`.
/// The window list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WindowList {
    /// Top-level windows.
    pub windows: Vec<WindowInfo>,
}

/// The answer of focus, close, move and resize.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WindowResult {
    /// What was done.
    pub output: String,
    /// The window.
    pub id: u32,
}

/// A move (`x`, `y`: the frame's top-left corner) or a resize (`width`, `height`: the client
/// area).
#[derive(serde::Deserialize, ToSchema)]
#[schema(as = WindowChange)]
struct Body {
    x: Option<i64>,
    y: Option<i64>,
    width: Option<i64>,
    height: Option<i64>,
}

/// List top-level windows.
#[utoipa::path(get, path = "/api/v0/desktop/windows", tag = "v0",
    responses((status = 200, description = "Windows", body = WindowList), (status = "4XX", description = "Bad request or unknown window", body = super::error::ErrorBody), (status = "5XX", description = "The desktop failed", body = super::error::ErrorBody)))]
pub async fn list(State(state): State<ApiState>) -> Response {
    match blocking(&state, "Window listing failed.", |w| w.list()).await {
        Ok(windows) => Json(WindowList { windows }).into_response(),
        Err(e) => e.into_response(),
    }
}

fn done(what: &str, id: u32) -> Response {
    Json(WindowResult {
        output: format!("{what} action performed"),
        id,
    })
    .into_response()
}

/// `POST /api/v0/desktop/windows/{id}/focus`.
#[utoipa::path(post, path = "/api/v0/desktop/windows/{id}/focus", tag = "v0", params(("id" = String, Path, description = "X window id, decimal or 0x hex")), responses((status = 200, description = "Done", body = WindowResult), (status = "4XX", description = "Bad request or unknown window", body = super::error::ErrorBody), (status = "5XX", description = "The desktop failed", body = super::error::ErrorBody)))]
pub async fn focus(State(state): State<ApiState>, Path(raw): Path<String>) -> Response {
    let id = match window_id(&state, &raw).await {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match blocking(&state, "Window focus failed.", move |w| w.focus(id)).await {
        Ok(()) => done("focus", id),
        Err(e) => e.into_response(),
    }
}

/// `POST /api/v0/desktop/windows/{id}/close`.
#[utoipa::path(post, path = "/api/v0/desktop/windows/{id}/close", tag = "v0", params(("id" = String, Path, description = "X window id, decimal or 0x hex")), responses((status = 200, description = "Done", body = WindowResult), (status = "4XX", description = "Bad request or unknown window", body = super::error::ErrorBody), (status = "5XX", description = "The desktop failed", body = super::error::ErrorBody)))]
pub async fn close(State(state): State<ApiState>, Path(raw): Path<String>) -> Response {
    let id = match window_id(&state, &raw).await {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match blocking(&state, "Window close failed.", move |w| w.close(id)).await {
        Ok(()) => done("close", id),
        Err(e) => e.into_response(),
    }
}

fn field(v: Option<i64>, name: &str, what: &str, lo: i64, hi: i64) -> Result<i64, ApiError> {
    let v = v.ok_or_else(|| ApiError::bad(format!("Missing \"{name}\" for {what}.")))?;
    if !(lo..=hi).contains(&v) {
        return Err(ApiError::bad(format!(
            "Invalid \"{name}\" for {what}: {v} is outside {lo} to {hi}."
        )));
    }
    Ok(v)
}

/// `POST /api/v0/desktop/windows/{id}/move` with `{"x": .., "y": ..}`.
#[utoipa::path(post, path = "/api/v0/desktop/windows/{id}/move", tag = "v0", params(("id" = String, Path, description = "X window id, decimal or 0x hex")), request_body = Body, responses((status = 200, description = "Done", body = WindowResult), (status = "4XX", description = "Bad request or unknown window", body = super::error::ErrorBody), (status = "5XX", description = "The desktop failed", body = super::error::ErrorBody)))]
pub async fn move_to(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    let pos = decode::<Body>(&body).and_then(|b| {
        Ok((
            field(b.x, "x", "move", -32768, 32767)? as i32,
            field(b.y, "y", "move", -32768, 32767)? as i32,
        ))
    });
    let pos = match pos {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let id = match window_id(&state, &raw).await {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match blocking(&state, "Window move failed.", move |w| {
        w.configure(id, Some(pos), None)
    })
    .await
    {
        Ok(()) => done("move", id),
        Err(e) => e.into_response(),
    }
}

/// `POST /api/v0/desktop/windows/{id}/resize` with `{"width": .., "height": ..}`.
#[utoipa::path(post, path = "/api/v0/desktop/windows/{id}/resize", tag = "v0", params(("id" = String, Path, description = "X window id, decimal or 0x hex")), request_body = Body, responses((status = 200, description = "Done", body = WindowResult), (status = "4XX", description = "Bad request or unknown window", body = super::error::ErrorBody), (status = "5XX", description = "The desktop failed", body = super::error::ErrorBody)))]
pub async fn resize(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    let size = decode::<Body>(&body).and_then(|b| {
        Ok((
            field(b.width, "width", "resize", 1, 32767)? as u32,
            field(b.height, "height", "resize", 1, 32767)? as u32,
        ))
    });
    let size = match size {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let id = match window_id(&state, &raw).await {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match blocking(&state, "Window resize failed.", move |w| {
        w.configure(id, None, Some(size))
    })
    .await
    {
        Ok(()) => done("resize", id),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_id;

    #[test]
    fn ids() {
        assert_eq!(parse_id("123"), Some(123));
        assert_eq!(parse_id("0x1a00003"), Some(0x1a0_0003));
        assert_eq!(parse_id("nope"), None);
        assert_eq!(parse_id("-1"), None);
    }
}
