//! How capture, input and clipboard reach the X server: one shared, swappable target (display
//! name and cookie) so that after the supervisor restarts Xvfb every component reconnects to the
//! new server by itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use x11rb::connection::{Connection, RequestConnection};
use x11rb::rust_connection::{DefaultStream, RustConnection};

use crate::desktop::DesktopError;

/// Where the X server is and how to authenticate to it.
#[derive(Debug, Clone)]
pub struct XTarget {
    /// Display name, e.g. ":7".
    pub display: String,
    /// MIT-MAGIC-COOKIE-1 data for a server deskd started; `None` means "use $XAUTHORITY".
    pub cookie: Option<Vec<u8>>,
}

/// The X server components connect to. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct XServer {
    target: Mutex<XTarget>,
    /// Bumped every time the server is (re)started, so components can tell a new server.
    generation: AtomicU64,
}

impl XServer {
    /// A handle for the given target.
    pub fn new(target: XTarget) -> Arc<XServer> {
        Arc::new(XServer {
            target: Mutex::new(target),
            generation: AtomicU64::new(1),
        })
    }

    /// The current target.
    pub fn target(&self) -> XTarget {
        self.target
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The current display name.
    pub fn display(&self) -> String {
        self.target().display
    }

    /// Point at a new server (after a restart).
    pub(crate) fn set_target(&self, target: XTarget) {
        *self.target.lock().unwrap_or_else(|e| e.into_inner()) = target;
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Note that the server was restarted at the same address.
    pub(crate) fn bump_generation(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// How many times the server was (re)started.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Open a new connection; returns it with the screen number.
    pub fn connect(&self) -> Result<(RustConnection, usize), DesktopError> {
        connect(&self.target())
    }
}

/// Open a connection to `target`.
pub fn connect(target: &XTarget) -> Result<(RustConnection, usize), DesktopError> {
    let unavailable = |e: &dyn std::fmt::Display| {
        DesktopError::Unavailable(format!("cannot connect to {}: {e}", target.display))
    };
    let Some(cookie) = &target.cookie else {
        return RustConnection::connect(Some(&target.display)).map_err(|e| unavailable(&e));
    };
    let parsed =
        x11rb::reexports::x11rb_protocol::parse_display::parse_display(Some(&target.display))
            .map_err(|e| DesktopError::Invalid(format!("bad display {}: {e}", target.display)))?;
    let screen = usize::from(parsed.screen);
    let mut last: Option<String> = None;
    for addr in parsed.connect_instruction() {
        match DefaultStream::connect(&addr) {
            Ok((stream, _)) => {
                return RustConnection::connect_to_stream_with_auth_info(
                    stream,
                    screen,
                    b"MIT-MAGIC-COOKIE-1".to_vec(),
                    cookie.clone(),
                )
                .map(|c| (c, screen))
                .map_err(|e| unavailable(&e));
            }
            Err(e) => last = Some(e.to_string()),
        }
    }
    Err(unavailable(&last.unwrap_or_else(|| "no address".into())))
}

/// Fail with [`DesktopError::MissingExtension`] when `name` is absent.
pub fn require_extension(
    conn: &impl RequestConnection,
    name: &'static str,
) -> Result<(), DesktopError> {
    if has_extension(conn, name)? {
        Ok(())
    } else {
        Err(DesktopError::MissingExtension(name))
    }
}

/// Whether the server has extension `name`.
pub fn has_extension(
    conn: &impl RequestConnection,
    name: &'static str,
) -> Result<bool, DesktopError> {
    conn.extension_information(name)
        .map(|i| i.is_some())
        .map_err(x_err)
}

/// Map any x11rb error to [`DesktopError`]: connection trouble is `Unavailable` (the supervisor
/// or the component's reconnect loop deals with it), a protocol error is `Other`.
pub fn x_err(e: impl Into<XError>) -> DesktopError {
    match e.into() {
        XError::Conn(e) => DesktopError::Unavailable(e.to_string()),
        XError::Reply(x11rb::errors::ReplyError::ConnectionError(e)) => {
            DesktopError::Unavailable(e.to_string())
        }
        XError::Reply(e) => DesktopError::Other(format!("X error: {e}")),
        XError::Id(x11rb::errors::ReplyOrIdError::ConnectionError(e)) => {
            DesktopError::Unavailable(e.to_string())
        }
        XError::Id(e) => DesktopError::Other(format!("X error: {e}")),
    }
}

/// The x11rb error kinds [`x_err`] accepts.
#[derive(Debug)]
pub enum XError {
    /// Connection broke.
    Conn(x11rb::errors::ConnectionError),
    /// Request failed.
    Reply(x11rb::errors::ReplyError),
    /// Request or id allocation failed.
    Id(x11rb::errors::ReplyOrIdError),
}

impl From<x11rb::errors::ConnectionError> for XError {
    fn from(e: x11rb::errors::ConnectionError) -> Self {
        XError::Conn(e)
    }
}
impl From<x11rb::errors::ReplyError> for XError {
    fn from(e: x11rb::errors::ReplyError) -> Self {
        XError::Reply(e)
    }
}
impl From<x11rb::errors::ReplyOrIdError> for XError {
    fn from(e: x11rb::errors::ReplyOrIdError) -> Self {
        XError::Id(e)
    }
}

/// A round trip: everything sent before has been processed by the server.
pub fn sync(conn: &impl Connection) -> Result<(), DesktopError> {
    x11rb::protocol::xproto::get_input_focus(conn)
        .map_err(x_err)?
        .reply()
        .map(|_| ())
        .map_err(x_err)
}
