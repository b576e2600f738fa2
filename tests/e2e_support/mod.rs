//! Shared pieces of the end-to-end tests (`mod e2e_support;`): a deskd subprocess attached to a
//! bare Xvfb, X drawing and reading with x11rb, an input-recording X window, a headless
//! Chromium driven through `tests/browser/driver.mjs`, and pixel comparison.
//!
//! A test file declares `mod common;` (the X11 helpers, for `bare_xvfb`) before this module.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt as _, CreateGCAux, CreateWindowAux, EventMask, ImageFormat, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

pub use crate::common::xvfb::{bare_xvfb, require_tool, ChildGuard};

pub mod echo;
pub mod ffmpeg;
pub mod relay;
pub mod tight;
pub mod tls;

/// Repository root (for the web/ and tests/browser/ paths).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A deskd process (attached to a bare Xvfb, or running its own), killed on drop.
pub struct Deskd {
    // Field order is drop order: deskd first, then its X server.
    pub proc: ChildGuard,
    /// The bare Xvfb of attach mode (`None` when deskd runs its own X server).
    pub xvfb: Option<ChildGuard>,
    pub display: String,
    /// The Xauthority file of the X server deskd started (managed mode).
    pub xauthority: Option<String>,
    pub http: SocketAddr,
    pub rfb: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

/// A managed deskd is asked to stop (SIGTERM) so that it takes its own Xvfb and window
/// manager down; a SIGKILL from the guard alone would leave them running.
impl Drop for Deskd {
    fn drop(&mut self) {
        if self.xvfb.is_some() {
            return;
        }
        let pid = self.proc.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.proc.0.try_wait(), Ok(None)) {
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Deskd {
    /// Start Xvfb at `width`x`height` and deskd on it with `extra` flags, on free ports.
    pub fn start(width: u16, height: u16, extra: &[&str]) -> Deskd {
        // -noreset: the server must not reset when its last client leaves mid-test.
        let (xvfb, display) = bare_xvfb(width, height, &["-noreset"]);
        wait_for_x(&display);
        let mut d = Deskd::spawn(&["--display", &display], extra);
        d.xvfb = Some(xvfb);
        d.display = display;
        d
    }

    /// deskd with its own Xvfb and window manager (no demo clients), on free ports.
    pub fn start_managed(extra: &[&str]) -> Deskd {
        require_tool("Xvfb", "xvfb");
        Deskd::spawn(&["--no-demo"], extra)
    }

    fn spawn(mode: &[&str], extra: &[&str]) -> Deskd {
        // Session debug logs unless the test picks its own level.
        let level: &[&str] = if extra.contains(&"--log-level") {
            &[]
        } else {
            &["--log-level", "info,deskd::session=debug"]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_deskd"))
            .args(mode)
            .args(level)
            .args([
                "--listen-http",
                "127.0.0.1:0",
                "--listen-rfb",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("NO_COLOR", "1")
            .env("RUST_LOG_STYLE", "never")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn deskd");
        let stderr = child.stderr.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let proc = ChildGuard(child);
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        // Keep draining both pipes for deskd's whole life so it never blocks on logging.
        for pipe in [
            Box::new(stderr) as Box<dyn std::io::Read + Send>,
            Box::new(stdout),
        ] {
            let tx = tx.clone();
            let log = Arc::clone(&log);
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let line = strip_ansi(&line);
                    log.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        let (mut http, mut rfb, mut display, mut xauthority) = (None, None, None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        // With its own X server deskd also logs the Xauthority file, on stderr: the stdout line
        // may come first.
        let managed = !mode.contains(&"--display");
        while http.is_none()
            || rfb.is_none()
            || display.is_none()
            || (managed && xauthority.is_none())
        {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => panic!(
                    "deskd did not report its ports within 30 s; log:\n{}",
                    log.lock().unwrap().join("\n")
                ),
            };
            if let Some(a) = addr_after(&line, "RFB (VNC) on ") {
                rfb = Some(a);
            }
            if let Some(a) = addr_after(&line, "viewer on http://")
                .or_else(|| addr_after(&line, "viewer on https://"))
            {
                http = Some(a);
            }
            // The one-line form for scripts: `deskd: listening http=A rfb=B display=:N`.
            if let Some(a) = addr_after(&line, "http=") {
                http = Some(a);
            }
            if let Some(a) = addr_after(&line, "rfb=") {
                rfb = Some(a);
            }
            if let Some(d) = word_after(&line, "display=") {
                display = Some(d);
            }
            if let Some(x) = word_after(&line, "xauthority=Some(\"") {
                xauthority = Some(x.trim_end_matches(['"', ')']).to_string());
            }
        }
        Deskd {
            proc,
            xvfb: None,
            display: display.unwrap(),
            xauthority,
            http: http.unwrap(),
            rfb: rfb.unwrap(),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.0.id()
    }

    pub fn url(&self, query: &str) -> String {
        format!("http://{}/{query}", self.http)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// A command for an X client on this display.
    pub fn x_command(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        c.env("DISPLAY", &self.display);
        match &self.xauthority {
            Some(a) => c.env("XAUTHORITY", a),
            None => c.env_remove("XAUTHORITY"),
        };
        c
    }

    /// Resident memory of the deskd process in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }
}

/// Wait until the X server accepts connections (it may still be initializing).
pub fn wait_for_x(display: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match x11rb::connect(Some(display)) {
            Ok(_) => return,
            Err(e) if Instant::now() > deadline => panic!("X server {display} not ready: {e}"),
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn word_after(line: &str, marker: &str) -> Option<String> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    (end > 0).then(|| rest[..end].to_string())
}

fn addr_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '/' || c == ',' || c == ';')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

// ---------------------------------------------------------------------------------------------
// X drawing and reading

/// An X connection to a test display.
pub struct X {
    pub conn: RustConnection,
    pub root: u32,
    pub gc: u32,
}

impl X {
    pub fn connect(display: &str) -> X {
        let (conn, screen) = x11rb::connect(Some(display)).expect("connect to Xvfb");
        let root = conn.setup().roots[screen].root;
        let gc = conn.generate_id().unwrap();
        conn.create_gc(gc, root, &CreateGCAux::new()).unwrap();
        X { conn, root, gc }
    }

    pub fn size(&self) -> (u16, u16) {
        let g = self.conn.get_geometry(self.root).unwrap().reply().unwrap();
        (g.width, g.height)
    }

    /// Where a mapped top-level window of exactly `w`x`h` is, if there is one.
    pub fn find_window(&self, w: u16, h: u16) -> Option<(i16, i16)> {
        use x11rb::protocol::xproto::MapState;
        let tree = self.conn.query_tree(self.root).ok()?.reply().ok()?;
        tree.children.iter().rev().find_map(|&win| {
            let attrs = self.conn.get_window_attributes(win).ok()?.reply().ok()?;
            let g = self.conn.get_geometry(win).ok()?.reply().ok()?;
            (attrs.map_state == MapState::VIEWABLE && g.width == w && g.height == h)
                .then_some((g.x, g.y))
        })
    }

    /// A `w`x`h` region of the root window as RGB.
    pub fn region_rgb(&self, x: i16, y: i16, w: u16, h: u16) -> Vec<u8> {
        let img = self
            .conn
            .get_image(ImageFormat::Z_PIXMAP, self.root, x, y, w, h, !0)
            .unwrap()
            .reply()
            .unwrap();
        img.data
            .chunks_exact(4)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect()
    }

    /// Draw a picture that exercises every encoder path: solid areas, two-colour text-like
    /// strokes, small palettes, smooth gradients and noise. `seed` changes every region.
    pub fn draw_picture(&self, seed: u32) {
        let (w, h) = self.size();
        let rgb = picture(w, h, seed);
        self.put_rgb(0, 0, w, h, &rgb);
    }

    /// Put an RGB image (3 bytes a pixel) at (x, y).
    pub fn put_rgb(&self, x: i16, y: i16, w: u16, h: u16, rgb: &[u8]) {
        self.put_bgrx(x, y, w, h, &bgrx(rgb));
    }

    /// Put a BGRX image (X's own layout, 4 bytes a pixel) at (x, y).
    pub fn put_bgrx(&self, x: i16, y: i16, w: u16, h: u16, bgrx: &[u8]) {
        let band = 16u16;
        let mut y0 = 0u16;
        while y0 < h {
            let rows = band.min(h - y0);
            let start = y0 as usize * w as usize * 4;
            let data = &bgrx[start..start + rows as usize * w as usize * 4];
            self.conn
                .put_image(
                    ImageFormat::Z_PIXMAP,
                    self.root,
                    self.gc,
                    w,
                    rows,
                    x,
                    y + y0 as i16,
                    0,
                    24,
                    data,
                )
                .unwrap();
            y0 += rows;
        }
        self.sync();
    }

    pub fn fill(&self, x: i16, y: i16, w: u16, h: u16, rgb: u32) {
        use x11rb::protocol::xproto::{ChangeGCAux, Rectangle};
        self.conn
            .change_gc(self.gc, &ChangeGCAux::new().foreground(rgb))
            .unwrap();
        self.conn
            .poly_fill_rectangle(
                self.root,
                self.gc,
                &[Rectangle {
                    x,
                    y,
                    width: w,
                    height: h,
                }],
            )
            .unwrap();
        self.sync();
    }

    pub fn sync(&self) {
        self.conn.get_input_focus().unwrap().reply().unwrap();
    }

    /// The whole root window as RGB.
    pub fn root_rgb(&self) -> (u16, u16, Vec<u8>) {
        let (w, h) = self.size();
        let mut out = Vec::with_capacity(w as usize * h as usize * 3);
        let band = 64u16;
        let mut y0 = 0;
        while y0 < h {
            let rows = band.min(h - y0);
            let img = self
                .conn
                .get_image(ImageFormat::Z_PIXMAP, self.root, 0, y0 as i16, w, rows, !0)
                .unwrap()
                .reply()
                .unwrap();
            for px in img.data.chunks_exact(4) {
                out.extend_from_slice(&[px[2], px[1], px[0]]);
            }
            y0 += rows;
        }
        (w, h, out)
    }
}

/// RGB (3 bytes a pixel) as X's BGRX.
pub fn bgrx(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0], 0])
        .collect()
}

/// The test picture as RGB.
pub fn picture(w: u16, h: u16, seed: u32) -> Vec<u8> {
    let mut out = vec![0u8; w as usize * h as usize * 3];
    let mut noise = seed.wrapping_mul(2_654_435_761) | 1;
    for y in 0..h as u32 {
        for x in 0..w as u32 {
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            let region = ((x / 96) + (y / 72) * 3 + seed) % 6;
            let (r, g, b) = match region {
                // Flat colour.
                0 => (0x20u8.wrapping_add(seed.wrapping_mul(40) as u8), 0x60, 0xa0),
                // Black "text" strokes on white.
                1 => {
                    if (x * 7 + y * 3 + seed) % 11 < 2 || (x / 3 + y / 5) % 9 == 0 {
                        (0, 0, 0)
                    } else {
                        (0xff, 0xff, 0xff)
                    }
                }
                // A small palette in stripes.
                2 => match (x / 4 + y / 6 + seed) % 5 {
                    0 => (0xff, 0, 0),
                    1 => (0, 0xc0, 0),
                    2 => (0, 0, 0xff),
                    3 => (0xff, 0xff, 0),
                    _ => (0x30, 0x30, 0x30),
                },
                // Smooth gradient, like a photo or a shaded UI.
                3 => (
                    (x * 255 / w as u32) as u8,
                    (y * 255 / h as u32) as u8,
                    (seed * 17) as u8,
                ),
                // Noise.
                4 => (noise as u8, (noise >> 8) as u8, (noise >> 16) as u8),
                // Gradient plus mild noise.
                _ => (
                    ((x + y) as u8).wrapping_add((noise & 7) as u8),
                    ((x * 2) as u8).wrapping_add(((noise >> 3) & 7) as u8),
                    (y as u8).wrapping_add(seed as u8),
                ),
            };
            let i = (y as usize * w as usize + x as usize) * 3;
            out[i..i + 3].copy_from_slice(&[r, g, b]);
        }
    }
    out
}

/// Compares two RGB images; `None` when equal, otherwise a description of the difference.
pub fn diff(w: u16, h: u16, want: &[u8], got: &[u8]) -> Option<String> {
    if want.len() != got.len() {
        return Some(format!(
            "sizes differ: {} vs {} bytes",
            want.len(),
            got.len()
        ));
    }
    let mut count = 0usize;
    let mut first = None;
    for (i, (a, b)) in want.chunks_exact(3).zip(got.chunks_exact(3)).enumerate() {
        if a != b {
            count += 1;
            if first.is_none() {
                first = Some((i % w as usize, i / w as usize, a.to_vec(), b.to_vec()));
            }
        }
    }
    let (x, y, a, b) = first?;
    Some(format!(
        "{count} of {} pixels differ; first at ({x},{y}): X has {a:?}, client has {b:?}",
        w as usize * h as usize
    ))
}

/// Peak signal-to-noise ratio in dB over RGB.
pub fn psnr(want: &[u8], got: &[u8]) -> f64 {
    let n = want.len().min(got.len()) as f64;
    let se: f64 = want
        .iter()
        .zip(got)
        .map(|(a, b)| {
            let d = f64::from(*a) - f64::from(*b);
            d * d
        })
        .sum();
    if se == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0f64 * 255.0 / (se / n)).log10()
}

/// Polls `got` until it equals X's root window, or panics after `timeout` with the last
/// difference.
pub fn wait_equal(
    x: &X,
    what: &str,
    timeout: Duration,
    mut got: impl FnMut() -> (u16, u16, Vec<u8>),
) {
    let deadline = Instant::now() + timeout;
    loop {
        let (w, h, want) = x.root_rgb();
        let (gw, gh, rgb) = got();
        let d = if (gw, gh) != (w, h) {
            Some(format!("client is {gw}x{gh}, X is {w}x{h}"))
        } else {
            diff(w, h, &want, &rgb)
        };
        match d {
            None => return,
            Some(d) if Instant::now() > deadline => panic!("{what}: pixels differ from X: {d}"),
            Some(_) => thread::sleep(Duration::from_millis(100)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// An X window that records pointer clicks and typed characters.

#[derive(Debug, Default, Clone)]
pub struct Recorded {
    /// Root coordinates and button of each ButtonPress.
    pub clicks: Vec<(i16, i16, u8)>,
    /// Characters typed (keysyms turned into chars where they are Latin-1 or Return/Tab).
    pub text: String,
    /// Every keysym pressed.
    pub keysyms: Vec<u32>,
}

pub struct Recorder {
    pub window: u32,
    pub events: Arc<Mutex<Recorded>>,
}

impl Recorder {
    /// Map a window at (x, y, w, h) that records button and key presses, and give it focus.
    pub fn start(display: &str, x: i16, y: i16, w: u16, h: u16) -> Recorder {
        let (conn, screen) = x11rb::connect(Some(display)).expect("connect to Xvfb");
        let scr = &conn.setup().roots[screen];
        let root = scr.root;
        let win = conn.generate_id().unwrap();
        conn.create_window(
            0,
            win,
            root,
            x,
            y,
            w,
            h,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new()
                .background_pixel(0x00c0_c0c0)
                .override_redirect(1)
                .event_mask(EventMask::BUTTON_PRESS | EventMask::KEY_PRESS | EventMask::EXPOSURE),
        )
        .unwrap();
        conn.map_window(win).unwrap();
        conn.set_input_focus(x11rb::protocol::xproto::InputFocus::POINTER_ROOT, win, 0u32)
            .unwrap();
        conn.get_input_focus().unwrap().reply().unwrap();
        let setup = conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let events = Arc::new(Mutex::new(Recorded::default()));
        let ev = Arc::clone(&events);
        thread::spawn(move || loop {
            let Ok(event) = conn.wait_for_event() else {
                return;
            };
            match event {
                Event::ButtonPress(b) => {
                    ev.lock()
                        .unwrap()
                        .clicks
                        .push((b.root_x, b.root_y, b.detail));
                }
                Event::KeyPress(k) => {
                    // Read the mapping each time: deskd may bind keysyms to spare keycodes.
                    let Ok(Ok(map)) = conn
                        .get_keyboard_mapping(min, max - min + 1)
                        .map(|c| c.reply())
                    else {
                        return;
                    };
                    let per = map.keysyms_per_keycode as usize;
                    let base = (k.detail - min) as usize * per;
                    let syms = &map.keysyms[base..base + per];
                    let sym = keysym_for(syms, u16::from(k.state));
                    let mut r = ev.lock().unwrap();
                    r.keysyms.push(sym);
                    match sym {
                        0x20..=0x7e | 0xa0..=0xff => {
                            r.text.push(char::from_u32(sym).unwrap_or('?'))
                        }
                        0xff0d => r.text.push('\n'),
                        0xff09 => r.text.push('\t'),
                        0x0100_0100..=0x0110_ffff => r
                            .text
                            .push(char::from_u32(sym - 0x0100_0000).unwrap_or('?')),
                        _ => {}
                    }
                }
                _ => {}
            }
        });
        Recorder {
            window: win,
            events,
        }
    }

    pub fn snapshot(&self) -> Recorded {
        self.events.lock().unwrap().clone()
    }

    /// Wait until `pred` holds for the recorded events, or panic with them after `timeout`.
    pub fn wait(&self, what: &str, timeout: Duration, pred: impl Fn(&Recorded) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.snapshot();
            if pred(&r) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: recorded only {r:?}");
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The keysym a key with core keysyms `syms` types in modifier `state`, as XKB's default types
/// do: columns 4/5 with ISO_Level3_Shift (Mod5), Shift picks the second of a pair, a missing
/// capital is derived, and Caps Lock inverts Shift for letter keys only.
pub fn keysym_for(syms: &[u32], state: u16) -> u32 {
    let col = |i: usize| syms.get(i).copied().unwrap_or(0);
    let (shift, lock, level3) = (state & 1 != 0, state & 2 != 0, state & 0x80 != 0);
    let first = if level3 && (col(4) != 0 || col(5) != 0) {
        4
    } else {
        0
    };
    let lower = col(first);
    // Small Latin letters (ASCII and Latin-1 but for the division sign) have a capital 32 below.
    let small = (0x61..=0x7a).contains(&lower) || (0xe0..=0xfe).contains(&lower) && lower != 0xf7;
    let upper = match col(first + 1) {
        0 if small => lower - 32,
        0 => lower,
        u => u,
    };
    let letter = small && upper == lower - 32;
    if shift ^ (lock && letter) {
        upper
    } else {
        lower
    }
}

// ---------------------------------------------------------------------------------------------
// Headless Chromium through tests/browser/driver.mjs

pub struct Browser {
    child: ChildGuard,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Browser {
    pub fn start() -> Browser {
        Browser::start_with_home(None)
    }

    /// A browser whose HOME is `home` (e.g. with an NSS database trusting a test CA).
    pub fn start_with_home(home: Option<&std::path::Path>) -> Browser {
        require_tool("node", "nodejs");
        require_tool("chromium", "chromium");
        let modules = root().join("web/node_modules/playwright-core");
        assert!(
            modules.is_dir(),
            "{} missing: run `npm ci` in web/",
            modules.display()
        );
        let mut command = Command::new("node");
        if let Some(home) = home {
            command.env("HOME", home);
        }
        let mut child = command
            .arg(root().join("tests/browser/driver.mjs"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run node");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Browser {
            child: ChildGuard(child),
            stdin,
            stdout,
        }
    }

    /// Send one command; returns its result or panics with the driver's error.
    pub fn call(&mut self, cmd: Value) -> Value {
        let text = cmd.to_string();
        writeln!(self.stdin, "{text}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "browser driver exited during {text}");
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["ok"] != json!(true) {
            panic!(
                "browser command {text} failed: {}\nconsole: {}",
                v["error"], v["console"]
            );
        }
        v["result"].clone()
    }

    pub fn open(&mut self, url: &str, width: u32, height: u32) {
        self.call(json!({"cmd": "open", "url": url, "width": width, "height": height}));
    }

    pub fn eval(&mut self, js: &str) -> Value {
        self.call(json!({"cmd": "eval", "js": js}))
    }

    /// noVNC's framebuffer as RGB.
    pub fn pixels(&mut self) -> (u16, u16, Vec<u8>) {
        let r = self.call(json!({"cmd": "pixels"}));
        let w = r["width"].as_u64().unwrap() as u16;
        let h = r["height"].as_u64().unwrap() as u16;
        let rgba = base64::engine::general_purpose::STANDARD
            .decode(r["rgba"].as_str().unwrap())
            .unwrap();
        let rgb = rgba
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        (w, h, rgb)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "close"}));
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.0.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        // ChildGuard kills node; Chromium dies with its pipe.
    }
}

/// Run an X client and return its stdout (e.g. `xclip -o`), `None` on failure.
pub fn x_output(display: &str, prog: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(prog)
        .args(args)
        .env("DISPLAY", display)
        .env_remove("XAUTHORITY")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Hold the X clipboard with `text` (xclip in the foreground), until the guard drops.
pub fn x_set_clipboard(display: &str, text: &str) -> ChildGuard {
    let mut child = Command::new("xclip")
        .args(["-selection", "clipboard", "-quiet", "-i"])
        .env("DISPLAY", display)
        .env_remove("XAUTHORITY")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run xclip");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).unwrap();
    drop(stdin);
    ChildGuard(child)
}

// ---------------------------------------------------------------------------------------------
// vncdotool (Python) one-shot captures.

/// Decode an image file to RGB with ImageMagick.
pub fn image_rgb(path: &std::path::Path) -> (u16, u16, Vec<u8>) {
    require_tool("convert", "imagemagick");
    let size = Command::new("identify")
        .args(["-format", "%w %h"])
        .arg(path)
        .output()
        .expect("identify");
    let size = String::from_utf8_lossy(&size.stdout).into_owned();
    let mut it = size.split_whitespace().map(|v| v.parse::<u16>().unwrap());
    let (w, h) = (it.next().unwrap(), it.next().unwrap());
    let out = Command::new("convert")
        .arg(path)
        .args(["-depth", "8", "rgb:-"])
        .output()
        .expect("convert");
    assert!(out.status.success(), "convert {} failed", path.display());
    (w, h, out.stdout)
}

const VNCDO_CAPTURE: &str = r#"
import sys
from vncdotool import api, rfb
from vncdotool.client import VNCDoToolClient
VNCDoToolClient.encoding = {"raw": rfb.Encoding.RAW, "hextile": rfb.Encoding.HEXTILE,
                            "zrle": rfb.Encoding.ZRLE}[sys.argv[2]]
client = api.connect(sys.argv[1], timeout=60)
try:
    client.captureScreen(sys.argv[3])
finally:
    client.disconnect()
    api.shutdown()
"#;

/// One screen capture by vncdotool asking for `enc` (raw, hextile or zrle), as RGB.
pub fn vncdotool_capture(d: &Deskd, enc: &str) -> (u16, u16, Vec<u8>) {
    require_tool("python3", "python3");
    let ok = Command::new("python3")
        .args(["-c", "import vncdotool"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "vncdotool missing: pip install -r scripts/deps-pip.txt");
    let file = std::env::temp_dir().join(format!(
        "deskd-e2e-{}-{:?}-vncdo-{enc}.png",
        std::process::id(),
        thread::current().id()
    ));
    let out = Command::new("python3")
        .args(["-c", VNCDO_CAPTURE])
        .arg(format!("127.0.0.1::{}", d.rfb.port()))
        .arg(enc)
        .arg(&file)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "vncdotool {enc} failed: {}\ndeskd log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log_text()
    );
    let rgb = image_rgb(&file);
    let _ = std::fs::remove_file(&file);
    rgb
}

// ---------------------------------------------------------------------------------------------
// A small RFB client (None security, Raw only) that keeps a decoded framebuffer, for tests with
// many clients. Native clients we did not write are in e2e_native.rs.

pub struct RawClient {
    pub stream: std::net::TcpStream,
    pub fb: Arc<Mutex<(u16, u16, Vec<u8>)>>,
    pub updates: Arc<std::sync::atomic::AtomicUsize>,
    pub error: Arc<Mutex<Option<String>>>,
    /// What came as Open H.264 (encoding 50), when the client offered it.
    pub h264: Arc<Mutex<H264Dump>>,
}

/// The Open H.264 rectangles a [`RawClient`] received: their Annex B payloads concatenated
/// (a stream for a decoder), and each rectangle's (x, y, w, h, flags, payload length).
#[derive(Debug, Default, Clone)]
pub struct H264Dump {
    pub annexb: Vec<u8>,
    pub rects: Vec<(u16, u16, u16, u16, u32, usize)>,
}

/// Largest Open H.264 payload the test client accepts.
const MAX_H264_PAYLOAD: usize = 64 << 20;

/// RFB 3.8 with security None, 32 bpp, Raw and DesktopSize: the stream and the screen size.
pub fn rfb_handshake(addr: SocketAddr) -> (std::net::TcpStream, u16, u16) {
    rfb_handshake_with(addr, &[])
}

/// [`rfb_handshake`] offering `first` ahead of Raw and DesktopSize.
pub fn rfb_handshake_with(addr: SocketAddr, first: &[i32]) -> (std::net::TcpStream, u16, u16) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).expect("connect to deskd");
    s.set_nodelay(true).unwrap();
    let mut version = [0u8; 12];
    s.read_exact(&mut version).unwrap();
    assert_eq!(&version[..4], b"RFB ");
    s.write_all(b"RFB 003.008\n").unwrap();
    let mut n = [0u8; 1];
    s.read_exact(&mut n).unwrap();
    let mut types = vec![0u8; n[0] as usize];
    s.read_exact(&mut types).unwrap();
    assert!(
        types.contains(&1),
        "deskd offers no None security: {types:?}"
    );
    s.write_all(&[1]).unwrap();
    let mut result = [0u8; 4];
    s.read_exact(&mut result).unwrap();
    assert_eq!(result, [0; 4], "security result");
    s.write_all(&[1]).unwrap();
    let mut init = [0u8; 24];
    s.read_exact(&mut init).unwrap();
    let w = u16::from_be_bytes([init[0], init[1]]);
    let h = u16::from_be_bytes([init[2], init[3]]);
    let name_len = u32::from_be_bytes([init[20], init[21], init[22], init[23]]) as usize;
    let mut name = vec![0u8; name_len.min(1 << 16)];
    s.read_exact(&mut name).unwrap();
    // 32 bpp little-endian, red at bit 16; Raw and DesktopSize.
    let mut msg = vec![
        0u8, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0,
    ];
    let encodings: Vec<i32> = first.iter().copied().chain([0, -223]).collect();
    msg.extend_from_slice(&[2, 0]);
    msg.extend_from_slice(&(encodings.len() as u16).to_be_bytes());
    for e in encodings {
        msg.extend_from_slice(&e.to_be_bytes());
    }
    s.write_all(&msg).unwrap();
    (s, w, h)
}

fn update_request(incremental: bool, w: u16, h: u16) -> Vec<u8> {
    let mut m = vec![3u8, u8::from(incremental), 0, 0, 0, 0];
    m.extend_from_slice(&w.to_be_bytes());
    m.extend_from_slice(&h.to_be_bytes());
    m
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        RawClient::connect_with(addr, &[])
    }

    /// A client that offers `first` (e.g. 50, Open H.264) ahead of Raw: Raw rectangles are
    /// decoded, H.264 ones dumped into [`RawClient::h264`].
    pub fn connect_with(addr: SocketAddr, first: &[i32]) -> RawClient {
        let (mut s, w, h) = rfb_handshake_with(addr, first);
        s.write_all(&update_request(false, w, h)).unwrap();
        let fb = Arc::new(Mutex::new((w, h, vec![0u8; w as usize * h as usize * 3])));
        let updates = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let error = Arc::new(Mutex::new(None));
        let h264 = Arc::new(Mutex::new(H264Dump::default()));
        let (fb2, up2, err2, h2) = (
            Arc::clone(&fb),
            Arc::clone(&updates),
            Arc::clone(&error),
            Arc::clone(&h264),
        );
        let reader = s.try_clone().unwrap();
        thread::spawn(move || {
            if let Err(e) = raw_reader(reader, &fb2, &up2, &h2) {
                *err2.lock().unwrap() = Some(e.to_string());
            }
        });
        RawClient {
            stream: s,
            fb,
            updates,
            error,
            h264,
        }
    }

    pub fn pixels(&self) -> (u16, u16, Vec<u8>) {
        if let Some(e) = self.error.lock().unwrap().as_ref() {
            panic!("RFB client failed: {e}");
        }
        self.fb.lock().unwrap().clone()
    }
}

impl Drop for RawClient {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

fn raw_reader(
    mut s: std::net::TcpStream,
    fb: &Mutex<(u16, u16, Vec<u8>)>,
    updates: &std::sync::atomic::AtomicUsize,
    h264: &Mutex<H264Dump>,
) -> std::io::Result<()> {
    use std::io::Read;
    let mut writer = s.try_clone()?;
    loop {
        let mut t = [0u8; 1];
        s.read_exact(&mut t)?;
        match t[0] {
            0 => {
                let mut hdr = [0u8; 3];
                s.read_exact(&mut hdr)?;
                let n = u16::from_be_bytes([hdr[1], hdr[2]]);
                for _ in 0..n {
                    let mut r = [0u8; 12];
                    s.read_exact(&mut r)?;
                    let x = u16::from_be_bytes([r[0], r[1]]) as usize;
                    let y = u16::from_be_bytes([r[2], r[3]]) as usize;
                    let w = u16::from_be_bytes([r[4], r[5]]) as usize;
                    let h = u16::from_be_bytes([r[6], r[7]]) as usize;
                    match i32::from_be_bytes([r[8], r[9], r[10], r[11]]) {
                        0 => {
                            let mut data = vec![0u8; w * h * 4];
                            s.read_exact(&mut data)?;
                            let mut f = fb.lock().unwrap();
                            let (fw, fh) = (f.0 as usize, f.1 as usize);
                            if x + w > fw || y + h > fh {
                                return Err(std::io::Error::other(format!(
                                    "rect {x},{y} {w}x{h} outside {fw}x{fh}"
                                )));
                            }
                            for row in 0..h {
                                for col in 0..w {
                                    let p = &data[(row * w + col) * 4..][..4];
                                    let i = ((y + row) * fw + x + col) * 3;
                                    f.2[i..i + 3].copy_from_slice(&[p[2], p[1], p[0]]);
                                }
                            }
                        }
                        50 => {
                            let mut hdr = [0u8; 8];
                            s.read_exact(&mut hdr)?;
                            let len = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
                            let flags = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
                            if len > MAX_H264_PAYLOAD {
                                return Err(std::io::Error::other(format!(
                                    "H.264 payload of {len} bytes"
                                )));
                            }
                            let mut data = vec![0u8; len];
                            s.read_exact(&mut data)?;
                            let mut d = h264.lock().unwrap();
                            d.annexb.extend_from_slice(&data);
                            d.rects
                                .push((x as u16, y as u16, w as u16, h as u16, flags, len));
                        }
                        -223 => {
                            let mut f = fb.lock().unwrap();
                            *f = (w as u16, h as u16, vec![0u8; w * h * 3]);
                        }
                        e => return Err(std::io::Error::other(format!("unexpected encoding {e}"))),
                    }
                }
                updates.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (w, h) = {
                    let f = fb.lock().unwrap();
                    (f.0, f.1)
                };
                writer.write_all(&update_request(true, w, h))?;
            }
            1 => {
                let mut m = [0u8; 5];
                s.read_exact(&mut m)?;
                let n = u16::from_be_bytes([m[3], m[4]]) as usize;
                s.read_exact(&mut vec![0u8; n * 6])?;
            }
            2 => {}
            3 => {
                let mut m = [0u8; 7];
                s.read_exact(&mut m)?;
                let n = u32::from_be_bytes([m[3], m[4], m[5], m[6]]) as usize;
                s.read_exact(&mut vec![0u8; n.min(1 << 24)])?;
            }
            t => {
                return Err(std::io::Error::other(format!(
                    "unexpected message type {t}"
                )))
            }
        }
    }
}

/// A client that handshakes, asks for many full updates, and then never reads.
pub fn stalled_client(addr: SocketAddr) -> std::net::TcpStream {
    let (mut s, w, h) = rfb_handshake(addr);
    for _ in 0..1000 {
        s.write_all(&update_request(false, w, h)).unwrap();
    }
    s
}

// ---------------------------------------------------------------------------------------------
// TigerVNC's viewer, X display numbers, window titles and bells

/// An X display number nothing uses now (for a display deskd is asked to move to).
pub fn free_display() -> u16 {
    let pid = std::process::id();
    (0..200u16)
        .map(|i| 1000 + (pid as u16).wrapping_add(i * 13) % 900)
        .find(|n| {
            !std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists()
                && !std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
        })
        .expect("a free X display number")
}

/// TigerVNC's vncviewer on the X server `display` (a bare one: no window manager), connected
/// to `server` with security None and `args`; killed on drop.
pub fn tigervnc_viewer(display: &str, server: SocketAddr, args: &[&str]) -> ChildGuard {
    require_tool("vncviewer", "tigervnc-viewer");
    let child = Command::new("vncviewer")
        .args([
            "-SecurityTypes=None",
            "-Shared",
            "-RemoteResize=0",
            "-DotWhenNoCursor=0",
        ])
        .args(args)
        .arg(format!("{}::{}", server.ip(), server.port()))
        .env("DISPLAY", display)
        .env_remove("XAUTHORITY")
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run vncviewer");
    ChildGuard(child)
}

impl X {
    /// Waits for a mapped top-level window of exactly `w`x`h` (FLTK offsets its windows for
    /// decorations even without a window manager) and returns where it is.
    pub fn wait_window(&self, w: u16, h: u16, timeout: Duration) -> (i16, i16) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(p) = self.find_window(w, h) {
                return p;
            }
            assert!(Instant::now() < deadline, "no {w}x{h} window appeared");
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The titles (`_NET_WM_NAME`, else `WM_NAME`) of the top-level windows.
    pub fn titles(&self) -> Vec<String> {
        use x11rb::protocol::xproto::AtomEnum;
        let net = self
            .conn
            .intern_atom(false, b"_NET_WM_NAME")
            .unwrap()
            .reply()
            .unwrap()
            .atom;
        let tree = self.conn.query_tree(self.root).unwrap().reply().unwrap();
        tree.children
            .iter()
            .filter_map(|&win| {
                [net, AtomEnum::WM_NAME.into()]
                    .into_iter()
                    .find_map(|atom| {
                        let p = self
                            .conn
                            .get_property(false, win, atom, AtomEnum::ANY, 0, 1024)
                            .ok()?
                            .reply()
                            .ok()?;
                        (!p.value.is_empty())
                            .then(|| String::from_utf8_lossy(&p.value).into_owned())
                    })
            })
            .collect()
    }
}

/// Counts XKB bell events on an X server (rung by any client on it, e.g. a viewer).
pub struct BellCounter {
    pub rung: Arc<std::sync::atomic::AtomicUsize>,
}

impl BellCounter {
    pub fn start(display: &str) -> BellCounter {
        use x11rb::protocol::xkb::{self, ConnectionExt as _};
        let (conn, _) = x11rb::connect(Some(display)).expect("connect to Xvfb");
        let ok = conn.xkb_use_extension(1, 0).unwrap().reply().unwrap();
        assert!(ok.supported, "the X server has no XKB");
        conn.xkb_select_events(
            xkb::ID::USE_CORE_KBD.into(),
            xkb::EventType::from(0u16),
            xkb::EventType::BELL_NOTIFY,
            xkb::MapPart::from(0u16),
            xkb::MapPart::from(0u16),
            &xkb::SelectEventsAux::new(),
        )
        .unwrap();
        conn.flush().unwrap();
        let rung = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&rung);
        thread::spawn(move || {
            while let Ok(ev) = conn.wait_for_event() {
                if let Event::XkbBellNotify(_) = ev {
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        BellCounter { rung }
    }

    pub fn count(&self) -> usize {
        self.rung.load(std::sync::atomic::Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------------------------
// A full-screen animation drawn into X at a fixed rate (video-like motion for H.264 tests)

/// Frame `t` of a smooth full-screen animation as RGB: colour waves moving across the screen
/// and a white box with a black border sliding over them. Every pixel changes every frame.
pub fn animation_frame(w: u16, h: u16, t: usize) -> Vec<u8> {
    const PERIOD: usize = 160;
    let wave: Vec<u8> = (0..PERIOD)
        .map(|i| {
            let a = i as f64 / PERIOD as f64 * std::f64::consts::TAU;
            (128.0 + 96.0 * a.sin()).round() as u8
        })
        .collect();
    let (w, h) = (usize::from(w), usize::from(h));
    let bx = 20 + (t * 9) % w.saturating_sub(120).max(1);
    let by = 20 + (t * 5) % h.saturating_sub(100).max(1);
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let inside = (bx..bx + 80).contains(&x) && (by..by + 60).contains(&y);
            let border = inside && (x < bx + 3 || x >= bx + 77 || y < by + 3 || y >= by + 57);
            let px = if border {
                [0, 0, 0]
            } else if inside {
                [255, 255, 255]
            } else {
                [
                    wave[(x + 4 * t) % PERIOD],
                    wave[(y + 3 * t) % PERIOD],
                    wave[(x + y + 6 * t) % PERIOD],
                ]
            };
            out.extend_from_slice(&px);
        }
    }
    out
}

/// Distinct frames of an [`Animation`]; it loops through them.
pub const ANIMATION_FRAMES: usize = 30;

/// [`animation_frame`]s drawn on a display's root window at `hz` until dropped, on a thread
/// with its own X connection.
pub struct Animation {
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// Each frame drawn: when it was complete in X, and its number (below
    /// [`ANIMATION_FRAMES`]).
    pub shown: Arc<Mutex<Vec<(Instant, usize)>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Animation {
    pub fn start(display: &str, hz: u32) -> Animation {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let shown = Arc::new(Mutex::new(Vec::new()));
        let x = X::connect(display);
        let (w, h) = x.size();
        let root = x.root;
        // Made before drawing starts, so each frame is only a put.
        let frames: Vec<Vec<u8>> = (0..ANIMATION_FRAMES)
            .map(|t| bgrx(&animation_frame(w, h, t)))
            .collect();
        let (stop2, shown2) = (Arc::clone(&stop), Arc::clone(&shown));
        // Each frame is drawn into a pixmap and copied to the screen in one request, so a
        // capture never sees half of one frame and half of the next.
        let pixmap = x.conn.generate_id().unwrap();
        x.conn.create_pixmap(24, pixmap, x.root, w, h).unwrap();
        let thread = thread::spawn(move || {
            let period = Duration::from_secs(1) / hz;
            let mut next = Instant::now();
            let mut t = 0;
            let screen = X { root: pixmap, ..x };
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                screen.put_bgrx(0, 0, w, h, &frames[t % ANIMATION_FRAMES]);
                screen
                    .conn
                    .copy_area(pixmap, root, screen.gc, 0, 0, 0, 0, w, h)
                    .unwrap();
                screen.sync();
                shown2
                    .lock()
                    .unwrap()
                    .push((Instant::now(), t % ANIMATION_FRAMES));
                t += 1;
                next += period;
                thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        });
        Animation {
            stop,
            shown,
            thread: Some(thread),
        }
    }

    /// Frames drawn so far.
    pub fn frames(&self) -> usize {
        self.shown.lock().unwrap().len()
    }

    /// The frames shown during the `window` before now, newest first.
    pub fn recent(&self, window: Duration) -> Vec<usize> {
        let now = Instant::now();
        let shown = self.shown.lock().unwrap();
        let mut out: Vec<usize> = shown
            .iter()
            .rev()
            .take_while(|(at, _)| now.duration_since(*at) <= window)
            .map(|(_, t)| *t)
            .collect();
        // The frame on screen at the start of the window was drawn before it.
        if let Some((_, t)) = shown.iter().rev().nth(out.len()) {
            out.push(*t);
        }
        out
    }

    /// Stop drawing; returns once the last frame is in X.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Animation {
    fn drop(&mut self) {
        self.halt();
    }
}
