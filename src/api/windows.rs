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
use serde_json::json;
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
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
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
#[derive(Debug, Clone, Serialize)]
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

    /// Run `f` with a connection; a failure drops the connection so the next call reconnects
    /// (the X server may have restarted).
    fn with<T>(&self, f: impl FnOnce(&Conn) -> XResult<T>) -> Result<T, DesktopError> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
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
            *guard = Some(Conn { conn, root, atoms });
        }
        let Some(c) = guard.as_ref() else {
            return Err(unavailable("no X connection"));
        };
        match f(c) {
            Ok(v) => Ok(v),
            Err(e) => {
                *guard = None;
                Err(unavailable(e))
            }
        }
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
pub async fn list(State(state): State<ApiState>) -> Response {
    match blocking(&state, "Window listing failed.", |w| w.list()).await {
        Ok(ws) => Json(json!({ "windows": ws })).into_response(),
        Err(e) => e.into_response(),
    }
}

fn done(what: &str, id: u32) -> Response {
    Json(json!({"output": format!("{what} action performed"), "id": id})).into_response()
}

/// `POST /api/v0/desktop/windows/{id}/focus`.
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

#[derive(serde::Deserialize)]
struct Body {
    x: Option<i64>,
    y: Option<i64>,
    width: Option<i64>,
    height: Option<i64>,
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
