//! Spawning Xvfb (and a window manager) and keeping them running.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::auth::AuthDir;
use super::conn::{require_extension, XServer, XTarget};
use super::randr;
use crate::desktop::{
    DesktopError, DisplayControl, DisplaySettings, DisplayStatus, ProcessStatus, StatusSource,
};

/// Extensions deskd needs from a server it starts.
pub const REQUIRED_EXTENSIONS: [&str; 5] = ["DAMAGE", "MIT-SHM", "XTEST", "XFIXES", "RANDR"];

/// How to start Xvfb.
#[derive(Debug, Clone)]
pub struct XvfbConfig {
    /// The Xvfb binary.
    pub xvfb: String,
    /// Initial screen size.
    pub width: u16,
    /// Initial screen size.
    pub height: u16,
    /// Colour depth (24 or 32 are supported by capture).
    pub depth: u8,
    /// Largest size RandR may later set (Xvfb cannot grow past the size it starts with).
    pub max_width: u16,
    /// Largest size RandR may later set.
    pub max_height: u16,
    /// Window manager command, if one should run.
    pub window_manager: Option<String>,
    /// Screen resolution in dots per inch (Xvfb `-dpi`).
    pub dpi: u16,
}

struct Procs {
    xvfb: Option<Child>,
    wm: Option<Child>,
    display_number: u16,
    started: Instant,
    wm_started: Instant,
}

struct Inner {
    cfg: Mutex<XvfbConfig>,
    auth: AuthDir,
    server: Arc<XServer>,
    status: Mutex<DisplayStatus>,
    procs: Mutex<Procs>,
    stop: AtomicBool,
    /// The size to restore after a restart (the last one set through RandR).
    size: Mutex<(u16, u16)>,
    /// Stopped on request ([`DisplayControl::stop`]): do not restart until asked.
    held: AtomicBool,
    /// Serializes the supervisor's crash restarts with requested stops and restarts.
    lifecycle: Mutex<()>,
    /// When the current X server was started on request (or at startup).
    started_at: Mutex<SystemTime>,
}

/// A supervised Xvfb: restarted with backoff when it dies.
pub struct Supervisor {
    inner: Arc<Inner>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What [`Supervisor`] reports (shared with the desktop's status source).
pub struct SupervisorStatus(Arc<Inner>);

impl StatusSource for SupervisorStatus {
    fn status(&self) -> DisplayStatus {
        self.0
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn control(&self) -> Option<&dyn DisplayControl> {
        Some(self)
    }

    fn client_env(&self) -> Vec<(String, String)> {
        vec![
            ("DISPLAY".into(), self.0.server.display()),
            (
                "XAUTHORITY".into(),
                self.0.auth.file().to_string_lossy().into_owned(),
            ),
        ]
    }
}

impl DisplayControl for SupervisorStatus {
    fn settings(&self) -> DisplaySettings {
        let dpi = lock(&self.0.cfg).dpi;
        let (width, height) = *lock(&self.0.size);
        let number = lock(&self.0.procs).display_number;
        DisplaySettings {
            number: Some(number),
            width,
            height,
            dpi,
        }
    }

    fn restart(&self, settings: DisplaySettings) -> Result<(), DesktopError> {
        self.0.restart_with(settings)
    }

    fn stop(&self) {
        let _g = lock(&self.0.lifecycle);
        self.0.held.store(true, Ordering::SeqCst);
        self.0.kill_all();
        lock(&self.0.status).state = "stopped".into();
    }

    fn processes(&self) -> Vec<ProcessStatus> {
        let name = lock(&self.0.cfg).xvfb.clone();
        let wm = lock(&self.0.status).window_manager.clone();
        let mut guard = lock(&self.0.procs);
        let p = &mut *guard;
        let mut out = Vec::new();
        for (name, child) in [(Some(name), p.xvfb.as_mut()), (wm, p.wm.as_mut())] {
            let (Some(name), Some(child)) = (name, child) else {
                continue;
            };
            let name = name.rsplit('/').next().unwrap_or_default().to_string();
            out.push(ProcessStatus {
                name,
                pid: Some(child.id()),
                running: matches!(child.try_wait(), Ok(None)),
            });
        }
        out
    }

    fn started_at(&self) -> SystemTime {
        *lock(&self.0.started_at)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Supervisor {
    /// Start Xvfb on a free display and wait until it accepts connections.
    pub fn start(cfg: XvfbConfig) -> Result<Supervisor, DesktopError> {
        if cfg.depth != 24 && cfg.depth != 32 {
            return Err(DesktopError::Invalid(format!(
                "depth {} not supported (24 or 32)",
                cfg.depth
            )));
        }
        let auth = AuthDir::create()?;
        let (child, number) = spawn_xvfb(&cfg, &auth, None)?;
        let target = XTarget {
            display: format!(":{number}"),
            cookie: Some(auth.cookie().to_vec()),
        };
        let server = XServer::new(target.clone());
        let inner = Arc::new(Inner {
            status: Mutex::new(DisplayStatus {
                display: target.display.clone(),
                managed: true,
                state: "running".into(),
                restarts: 0,
                last_exit: None,
                window_manager: None,
            }),
            procs: Mutex::new(Procs {
                xvfb: Some(child),
                wm: None,
                display_number: number,
                started: Instant::now(),
                wm_started: Instant::now(),
            }),
            size: Mutex::new((cfg.width, cfg.height)),
            cfg: Mutex::new(cfg),
            auth,
            server,
            stop: AtomicBool::new(false),
            held: AtomicBool::new(false),
            lifecycle: Mutex::new(()),
            started_at: Mutex::new(SystemTime::now()),
        });
        let sup = Supervisor {
            inner: Arc::clone(&inner),
            thread: Mutex::new(None),
        };
        // On failure `sup` is dropped, which kills the child.
        inner.prepare_server()?;
        inner.start_wm();
        let t = std::thread::Builder::new()
            .name("deskd-xvfb".into())
            .spawn(move || inner.supervise())
            .map_err(|e| DesktopError::Other(format!("spawning supervisor thread: {e}")))?;
        *lock(&sup.thread) = Some(t);
        Ok(sup)
    }

    /// The server handle components connect through.
    pub fn server(&self) -> &Arc<XServer> {
        &self.inner.server
    }

    /// The Xauthority file X clients need.
    pub fn xauthority(&self) -> PathBuf {
        self.inner.auth.file().to_path_buf()
    }

    /// A status source for [`crate::desktop::Desktop::status`].
    pub fn status_source(&self) -> SupervisorStatus {
        SupervisorStatus(Arc::clone(&self.inner))
    }

    /// Remember the size to restore after a restart.
    pub fn set_wanted_size(&self, width: u16, height: u16) {
        *lock(&self.inner.size) = (width, height);
    }

    /// The current Xvfb process id (tests kill it to exercise supervision).
    pub fn xvfb_pid(&self) -> Option<u32> {
        lock(&self.inner.procs).xvfb.as_ref().map(|c| c.id())
    }

    /// Stop supervising: deskd is shutting down, so Xvfb exiting from now on (a signal to the
    /// whole process group reaches it too) is expected and not restarted or logged.
    pub fn stop_supervising(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
    }

    /// Stop the window manager and Xvfb and wait for them.
    pub fn shutdown(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
        self.inner.kill_all();
        lock(&self.inner.status).state = "stopped".into();
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Inner {
    /// Check extensions and apply the wanted size on a freshly started server.
    fn prepare_server(&self) -> Result<(), DesktopError> {
        let (conn, screen) = self.server.connect()?;
        for ext in REQUIRED_EXTENSIONS {
            require_extension(&conn, ext)?;
        }
        let root = x11rb::connection::Connection::setup(&conn).roots[screen].root;
        let (w, h) = *lock(&self.size);
        let (w, h) = randr::set_screen_size(&conn, root, w, h)?;
        // RandR resizing assumes 96 dpi; keep the requested resolution.
        let dpi = u32::from(lock(&self.cfg).dpi.max(1));
        let mm = |px: u16| (u32::from(px) * 254 / (dpi * 10)).max(1);
        {
            use x11rb::protocol::randr::ConnectionExt as _;
            conn.randr_set_screen_size(root, w, h, mm(w), mm(h))
                .map_err(crate::display::conn::x_err)?
                .check()
                .map_err(crate::display::conn::x_err)?;
        }
        // Viewers send their own key repeats (noVNC repeats keydown while a key is held); the
        // X server's autorepeat on top of that would double them. x11vnc turns it off too.
        use x11rb::connection::Connection as _;
        use x11rb::protocol::xproto::{AutoRepeatMode, ChangeKeyboardControlAux, ConnectionExt};
        conn.change_keyboard_control(
            &ChangeKeyboardControlAux::new().auto_repeat_mode(AutoRepeatMode::OFF),
        )
        .map_err(|e| DesktopError::Unavailable(e.to_string()))?;
        conn.flush()
            .map_err(|e| DesktopError::Unavailable(e.to_string()))?;
        Ok(())
    }

    fn start_wm(&self) {
        let Some(cmd) = lock(&self.cfg).window_manager.clone() else {
            return;
        };
        let mut parts = cmd.split_whitespace();
        let Some(prog) = parts.next() else { return };
        let child = Command::new(prog)
            .args(parts)
            .env("DISPLAY", self.server.display())
            .env("XAUTHORITY", self.auth.file())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(c) => {
                {
                    let mut p = lock(&self.procs);
                    p.wm = Some(c);
                    p.wm_started = Instant::now();
                }
                lock(&self.status).window_manager = Some(prog.to_string());
                self.wait_for_wm(prog);
            }
            Err(e) => tracing::warn!("window manager {prog} did not start: {e}"),
        }
    }

    /// Wait (at most 5 s) until the window manager announces itself with EWMH
    /// `_NET_SUPPORTING_WM_CHECK`. A client that maps a window while openbox is still starting
    /// can have its MapRequest lost (the window then stays unmapped for good, seen in about
    /// half of the starts here), so the desktop is handed out only once the WM is managing.
    fn wait_for_wm(&self, prog: &str) {
        use x11rb::connection::Connection as _;
        use x11rb::protocol::xproto::{AtomEnum, ConnectionExt};
        let Ok((conn, screen)) = self.server.connect() else {
            return;
        };
        let Some(root) = conn.setup().roots.get(screen).map(|s| s.root) else {
            return;
        };
        let Ok(Ok(atom)) = conn
            .intern_atom(false, b"_NET_SUPPORTING_WM_CHECK")
            .map(|c| c.reply().map(|r| r.atom))
        else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let announced = conn
                .get_property(false, root, atom, AtomEnum::WINDOW, 0, 1)
                .ok()
                .and_then(|c| c.reply().ok())
                .is_some_and(|r| r.value_len > 0);
            if announced {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        tracing::warn!("window manager {prog} did not announce itself (EWMH) within 5 s");
    }

    fn kill_all(&self) {
        let mut p = lock(&self.procs);
        for child in [p.wm.take(), p.xvfb.take()].into_iter().flatten() {
            kill(child);
        }
    }

    fn sleep_unless_stopped(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
        }
        !self.stop.load(Ordering::SeqCst)
    }

    fn supervise(self: Arc<Self>) {
        let mut failures = 0u32;
        while self.sleep_unless_stopped(Duration::from_millis(100)) {
            let _lifecycle = lock(&self.lifecycle);
            if self.held.load(Ordering::SeqCst) {
                continue;
            }
            let (xvfb_exit, wm_exit, ran_for) = {
                let mut p = lock(&self.procs);
                let x = match p.xvfb.as_mut().map(|c| c.try_wait()) {
                    Some(Ok(Some(st))) => Some(st.to_string()),
                    Some(Err(e)) => Some(format!("wait failed: {e}")),
                    None => Some("not running".into()),
                    _ => None,
                };
                let w = matches!(p.wm.as_mut().map(|c| c.try_wait()), Some(Ok(Some(_))));
                (x, w, p.started.elapsed())
            };
            if let Some(exit) = xvfb_exit {
                // A SIGTERM to the whole process group reaches Xvfb and deskd together: give
                // deskd's own shutdown a moment, so stopping is not logged as a crash.
                if !self.sleep_unless_stopped(Duration::from_millis(250)) {
                    break;
                }
                tracing::warn!("Xvfb exited ({exit}); restarting");
                {
                    let mut s = lock(&self.status);
                    s.state = "restarting".into();
                    s.last_exit = Some(exit);
                    s.restarts += 1;
                }
                self.kill_all();
                if ran_for > Duration::from_secs(30) {
                    failures = 0;
                }
                let backoff = [100u64, 250, 500, 1000, 2000, 5000]
                    [usize::try_from(failures).unwrap_or(5).min(5)];
                if !self.sleep_unless_stopped(Duration::from_millis(backoff)) {
                    break;
                }
                failures += 1;
                if let Err(e) = self.restart() {
                    tracing::warn!("Xvfb restart failed: {e}");
                    lock(&self.status).last_exit = Some(format!("restart failed: {e}"));
                }
                continue;
            }
            if wm_exit {
                let since = lock(&self.procs).wm_started.elapsed();
                if since > Duration::from_secs(2) {
                    tracing::warn!("window manager exited; restarting it");
                    if let Some(c) = lock(&self.procs).wm.take() {
                        kill(c);
                    }
                    self.start_wm();
                }
            }
        }
    }

    /// Stop the X server (and everything on it) and start it again with `settings`, on
    /// request. A failure leaves the display stopped, with the reason in the status.
    fn restart_with(&self, settings: DisplaySettings) -> Result<(), DesktopError> {
        let _g = lock(&self.lifecycle);
        self.held.store(true, Ordering::SeqCst);
        lock(&self.status).state = "restarting".into();
        self.kill_all();
        {
            let mut cfg = lock(&self.cfg);
            cfg.width = settings.width;
            cfg.height = settings.height;
            cfg.max_width = cfg.max_width.max(settings.width);
            cfg.max_height = cfg.max_height.max(settings.height);
            cfg.dpi = settings.dpi;
        }
        *lock(&self.size) = (settings.width, settings.height);
        let cfg = lock(&self.cfg).clone();
        let spawned = spawn_xvfb(&cfg, &self.auth, settings.number).and_then(|(child, n)| {
            {
                let mut p = lock(&self.procs);
                p.xvfb = Some(child);
                p.display_number = n;
                p.started = Instant::now();
            }
            // The status names the new display before capture can reach it: sessions read
            // the desktop name from it when frames change.
            lock(&self.status).display = format!(":{n}");
            self.server.set_target(XTarget {
                display: format!(":{n}"),
                cookie: Some(self.auth.cookie().to_vec()),
            });
            self.prepare_server()
        });
        match spawned {
            Ok(()) => {
                {
                    let mut s = lock(&self.status);
                    s.state = "running".into();
                    s.last_exit = None;
                }
                *lock(&self.started_at) = SystemTime::now();
                self.start_wm();
                self.held.store(false, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => {
                self.kill_all();
                let mut s = lock(&self.status);
                s.state = "failed".into();
                s.last_exit = Some(format!("start failed: {e}"));
                Err(e)
            }
        }
    }

    fn restart(&self) -> Result<(), DesktopError> {
        let number = lock(&self.procs).display_number;
        let cfg = lock(&self.cfg).clone();
        // Same display number first, so clients that remember it can reconnect; a new one if
        // something else took it meanwhile.
        let (child, n) = match spawn_xvfb(&cfg, &self.auth, Some(number)) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("Xvfb on :{number} failed ({e}); trying a new display");
                spawn_xvfb(&cfg, &self.auth, None)?
            }
        };
        {
            let mut p = lock(&self.procs);
            p.xvfb = Some(child);
            p.display_number = n;
            p.started = Instant::now();
        }
        let display = format!(":{n}");
        // Named before capture can reach it, as in `restart_with`.
        lock(&self.status).display.clone_from(&display);
        if n == number {
            self.server.bump_generation();
        } else {
            self.server.set_target(XTarget {
                display: display.clone(),
                cookie: Some(self.auth.cookie().to_vec()),
            });
        }
        let prepared = self.prepare_server();
        {
            lock(&self.status).state = "running".into();
        }
        self.start_wm();
        prepared
    }
}

fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Start Xvfb (on `display` or a free one) and wait until it is ready.
fn spawn_xvfb(
    cfg: &XvfbConfig,
    auth: &AuthDir,
    display: Option<u16>,
) -> Result<(Child, u16), DesktopError> {
    let log_path = auth.dir().join("Xvfb.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| DesktopError::Other(format!("creating Xvfb log: {e}")))?;
    let (mw, mh) = (cfg.max_width.max(cfg.width), cfg.max_height.max(cfg.height));
    let mut cmd = Command::new(&cfg.xvfb);
    if let Some(n) = display {
        cmd.arg(format!(":{n}"));
    }
    cmd.args(["-displayfd", "1", "-screen", "0"])
        .arg(format!("{mw}x{mh}x{}", cfg.depth))
        .arg("-dpi")
        .arg(cfg.dpi.to_string())
        .arg("-auth")
        .arg(auth.file())
        .args(["-nolisten", "tcp", "-noreset"]);
    for ext in REQUIRED_EXTENSIONS {
        cmd.args(["+extension", ext]);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| {
            DesktopError::Unavailable(format!(
                "cannot run {} ({e}); install the xvfb package",
                cfg.xvfb
            ))
        })?;
    let Some(stdout) = child.stdout.take() else {
        kill(child);
        return Err(DesktopError::Other("Xvfb stdout missing".into()));
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let r = reader.read_line(&mut line).map(|_| line);
        let _ = tx.send(r);
        // Keep the pipe open for Xvfb's lifetime: a write to a closed pipe would kill it.
        let mut rest = String::new();
        while matches!(reader.read_line(&mut rest), Ok(n) if n > 0) {
            rest.clear();
        }
    });
    let fail = |child: Child, why: String| {
        kill(child);
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
        Err(DesktopError::Unavailable(format!(
            "Xvfb: {why}; log: {tail}"
        )))
    };
    match rx.recv_timeout(Duration::from_secs(15)) {
        Ok(Ok(line)) => match line.trim().parse::<u16>() {
            Ok(n) => Ok((child, n)),
            Err(_) => fail(child, format!("did not report a display ({line:?})")),
        },
        Ok(Err(e)) => fail(child, format!("reading -displayfd: {e}")),
        Err(_) => fail(child, "not ready after 15 s".into()),
    }
}
