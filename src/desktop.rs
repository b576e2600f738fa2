//! The desktop as the rest of deskd sees it: frames, input, clipboard and display status,
//! each behind a trait so sessions and the action API can run against fakes.

use std::sync::Arc;

use crate::capture::FrameSource;
use crate::clipboard::Clipboard;
use crate::input::InputSink;

/// Failures of the desktop side (X server, capture, input). Sessions log them; the action API
/// answers 500 with the message.
#[derive(Debug, thiserror::Error)]
pub enum DesktopError {
    /// The X server is gone or not answering (it may be restarting).
    #[error("X server unavailable: {0}")]
    Unavailable(String),
    /// A required X extension is missing.
    #[error("X extension {0} is missing")]
    MissingExtension(&'static str),
    /// The request cannot be satisfied (bad size, unknown key...).
    #[error("{0}")]
    Invalid(String),
    /// Timed out waiting for the X server or another X client.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// What the display supervisor reports.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DisplayStatus {
    /// The X display name, e.g. ":7".
    pub display: String,
    /// True when deskd started (and supervises) the X server itself.
    pub managed: bool,
    /// "running", "restarting", "stopped" or "attached".
    pub state: String,
    /// How many times the X server was restarted.
    pub restarts: u32,
    /// How the last X server process ended, if one did.
    pub last_exit: Option<String>,
    /// The window manager running, if any.
    pub window_manager: Option<String>,
}

/// Reports display status.
pub trait StatusSource: Send + Sync {
    /// The current status.
    fn status(&self) -> DisplayStatus;
}

/// One desktop: what sessions and the action API share.
#[derive(Clone)]
pub struct Desktop {
    /// Pixels, damage, cursor and resize.
    pub frames: Arc<dyn FrameSource>,
    /// Pointer and keyboard.
    pub input: Arc<dyn InputSink>,
    /// Clipboard and primary selection.
    pub clipboard: Arc<dyn Clipboard>,
    /// Display supervision state.
    pub status: Arc<dyn StatusSource>,
    /// Serializes multi-step actions (drags, typing) across agents and clients.
    pub action_lock: Arc<tokio::sync::Mutex<()>>,
}

/// How long an API request waits for the X server (or for another request stuck on it) before
/// answering 503: a stopped X server must not hang every caller.
pub const X_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Run blocking desktop work off the async threads, giving up after [`X_WAIT`] with
/// [`DesktopError::Timeout`]. The work itself finishes (or fails) once X answers again.
pub async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T, DesktopError> + Send + 'static,
) -> Result<T, DesktopError> {
    within(what, async {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| DesktopError::Other(format!("{what} task failed: {e}")))?
    })
    .await
}

/// Await `f`, giving up after [`X_WAIT`] with [`DesktopError::Timeout`].
pub async fn within<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, DesktopError>>,
) -> Result<T, DesktopError> {
    tokio::time::timeout(X_WAIT, f).await.unwrap_or_else(|_| {
        Err(DesktopError::Timeout(format!(
            "{what}: no answer within {} s (is the X server stopped?)",
            X_WAIT.as_secs()
        )))
    })
}
