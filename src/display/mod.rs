//! The X server: spawn and supervise Xvfb (and a window manager), or attach to a display.
//!
//! Entry point for the rest of deskd: [`start`] with [`DisplayOptions`] returns a
//! [`RunningDesktop`] whose `desktop` field is the [`Desktop`] (frames, input, clipboard,
//! status) sessions and the action API use. Blocking: call it before starting the async
//! runtime or from `spawn_blocking`. Dropping the handle (or [`RunningDesktop::shutdown`])
//! stops capture and kills the Xvfb and window manager deskd started.
//!
//! ```no_run
//! let opts = deskd::display::DisplayOptions::default(); // own Xvfb, 1280x800x24
//! let running = deskd::display::start(opts)?;
//! let desktop = running.desktop.clone();
//! println!("DISPLAY={}", running.display());
//! # Ok::<(), deskd::DesktopError>(())
//! ```

pub mod auth;
pub mod conn;
pub mod demo;
pub mod randr;
pub mod xvfb;

use std::path::PathBuf;
use std::sync::Arc;

use crate::capture::x11::{CaptureOptions, X11Capture};
use crate::clipboard::x11::X11Clipboard;
use crate::desktop::{Desktop, DesktopError, DisplayStatus, StatusSource};
use crate::input::xtest::XTestInput;
use conn::{require_extension, XServer, XTarget};
use xvfb::{Supervisor, XvfbConfig};

/// Which window manager to run on a display deskd starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowManager {
    /// openbox when it is installed, none otherwise.
    Auto,
    /// No window manager.
    None,
    /// This command line (split on whitespace).
    Command(String),
}

/// How to get a display.
#[derive(Debug, Clone)]
pub struct DisplayOptions {
    /// Attach to this existing display (e.g. ":0") instead of starting Xvfb.
    pub attach: Option<String>,
    /// Screen width of a started Xvfb.
    pub width: u16,
    /// Screen height of a started Xvfb.
    pub height: u16,
    /// Colour depth of a started Xvfb (24 or 32).
    pub depth: u8,
    /// Largest width RandR resizes may reach (Xvfb cannot grow past its start size, so it is
    /// started this large and shrunk to `width` x `height`).
    pub max_width: u16,
    /// Largest height RandR resizes may reach.
    pub max_height: u16,
    /// Window manager for a started Xvfb.
    pub window_manager: WindowManager,
    /// Dots per inch of a started Xvfb.
    pub dpi: u16,
    /// The Xvfb binary.
    pub xvfb: String,
    /// Capture settings (frame rate, SHM, DAMAGE).
    pub capture: CaptureOptions,
}

impl Default for DisplayOptions {
    fn default() -> Self {
        DisplayOptions {
            attach: None,
            width: 1280,
            height: 800,
            depth: 24,
            max_width: 2560,
            max_height: 1600,
            window_manager: WindowManager::Auto,
            dpi: 96,
            xvfb: "Xvfb".into(),
            capture: CaptureOptions::default(),
        }
    }
}

/// A running desktop: the [`Desktop`] plus what keeps it alive.
pub struct RunningDesktop {
    /// What sessions and the action API use.
    pub desktop: Desktop,
    /// The X server components connect to.
    server: Arc<XServer>,
    supervisor: Option<Arc<Supervisor>>,
    capture: Arc<X11Capture>,
    input: Arc<XTestInput>,
    clipboard: Arc<X11Clipboard>,
}

impl RunningDesktop {
    /// The current display name (e.g. ":7"); may change if Xvfb had to move after a restart.
    pub fn display(&self) -> String {
        self.server.display()
    }

    /// The Xauthority file of a server deskd started (`None` when attached).
    pub fn xauthority(&self) -> Option<PathBuf> {
        self.supervisor.as_ref().map(|s| s.xauthority())
    }

    /// `DISPLAY` and (when deskd started the server) `XAUTHORITY` for X client processes.
    pub fn client_env(&self) -> Vec<(String, String)> {
        let mut env = vec![("DISPLAY".to_string(), self.display())];
        if let Some(a) = self.xauthority() {
            env.push(("XAUTHORITY".into(), a.to_string_lossy().into_owned()));
        }
        env
    }

    /// The X server handle (to open further connections that follow restarts).
    pub fn server(&self) -> &Arc<XServer> {
        &self.server
    }

    /// The capture source itself (features, resize hook).
    pub fn capture(&self) -> &Arc<X11Capture> {
        &self.capture
    }

    /// The XTEST sink itself.
    pub fn xtest(&self) -> &Arc<XTestInput> {
        &self.input
    }

    /// The Xvfb process id, when deskd started one.
    pub fn xvfb_pid(&self) -> Option<u32> {
        self.supervisor.as_ref().and_then(|s| s.xvfb_pid())
    }

    /// deskd is shutting down: Xvfb exiting from now on is not a crash to recover from.
    pub fn stopping(&self) {
        if let Some(s) = &self.supervisor {
            s.stop_supervising();
        }
    }

    /// Stop capture and the clipboard, and kill the X server and window manager deskd started.
    /// Idempotent; also done on drop.
    pub fn shutdown(&mut self) {
        self.input.unbind_scratch();
        self.capture.stop();
        self.clipboard.stop();
        if let Some(s) = &self.supervisor {
            s.shutdown();
        }
    }
}

impl Drop for RunningDesktop {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct AttachedStatus(String);

impl StatusSource for AttachedStatus {
    fn status(&self) -> DisplayStatus {
        DisplayStatus {
            display: self.0.clone(),
            managed: false,
            state: "attached".into(),
            restarts: 0,
            last_exit: None,
            window_manager: None,
        }
    }
}

fn find_in_path(prog: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
        .unwrap_or(false)
}

/// Start (or attach to) a display and everything on it: capture, XTEST input, clipboard.
pub fn start(opts: DisplayOptions) -> Result<RunningDesktop, DesktopError> {
    // An attached X server started without -noreset regenerates when its last client leaves;
    // the probe connection stays open until capture, input and clipboard hold their own, so
    // the server never sees zero clients while deskd starts.
    let mut _probe = None;
    let (server, supervisor, status): (_, _, Arc<dyn StatusSource>) = match &opts.attach {
        Some(display) => {
            let server = XServer::new(XTarget {
                display: display.clone(),
                cookie: None,
            });
            let (c, _) = server.connect()?;
            // Required even when attached; DAMAGE, MIT-SHM and RANDR are optional there
            // (polling, GetImage, no resize).
            require_extension(&c, "XTEST")?;
            require_extension(&c, "XFIXES")?;
            _probe = Some(c);
            (server, None, Arc::new(AttachedStatus(display.clone())))
        }
        None => {
            let wm = match &opts.window_manager {
                WindowManager::Auto => {
                    find_in_path("openbox").then(|| "openbox --sm-disable".to_string())
                }
                WindowManager::None => None,
                WindowManager::Command(c) => Some(c.clone()),
            };
            let sup = Arc::new(Supervisor::start(XvfbConfig {
                xvfb: opts.xvfb.clone(),
                width: opts.width,
                height: opts.height,
                depth: opts.depth,
                max_width: opts.max_width,
                max_height: opts.max_height,
                window_manager: wm,
                dpi: opts.dpi,
            })?);
            let status = Arc::new(sup.status_source());
            (
                Arc::clone(sup.server()),
                Some(sup),
                status as Arc<dyn StatusSource>,
            )
        }
    };
    let capture = X11Capture::start(Arc::clone(&server), opts.capture.clone())?;
    if let Some(sup) = &supervisor {
        let weak = Arc::downgrade(sup);
        capture.on_resize(move |w, h| {
            if let Some(s) = weak.upgrade() {
                s.set_wanted_size(w, h);
            }
        });
    }
    let input = Arc::new(XTestInput::new(
        Arc::clone(&server),
        Some(Arc::clone(crate::capture::FrameSource::store(&*capture))),
    )?);
    let clipboard = X11Clipboard::start(Arc::clone(&server))?;
    let desktop = Desktop {
        frames: capture.clone(),
        input: input.clone(),
        clipboard: clipboard.clone(),
        status,
        action_lock: Arc::new(tokio::sync::Mutex::new(())),
    };
    Ok(RunningDesktop {
        desktop,
        server,
        supervisor,
        capture,
        input,
        clipboard,
    })
}
