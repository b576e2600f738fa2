//! Many viewers of one desktop: deskd's CPU with 1, 2 and 8 noVNC-default clients watching a
//! 30 Hz full-screen change at 1280x800, and the capture cost with 0, 1 and 8 clients.
//!
//! `cargo bench --bench viewers` (real Xvfb, the real deskd binary of this profile). Knobs:
//! - `VIEWERS_SECONDS=6` — measuring time per client count;
//! - `VIEWERS_COUNTS=1,2,8` — client counts;
//! - `VIEWERS_DESKD=/path/to/deskd` — another deskd binary (e.g. an older build, for a
//!   before/after comparison);
//! - `VIEWERS_LOSSLESS=1` — clients send no JPEG quality level (lossless Tight, as TigerVNC's
//!   viewer uses on a fast link), so every update is Tight's zlib data.
//!
//! Each client speaks like noVNC with default settings: 32 bpp, the encodings noVNC lists
//! (Tight, TightPNG, ZRLE, Hextile, RRE, Raw), JPEG quality 6, compress level 2, DesktopSize
//! and LastRect. It asks for the next incremental update as soon as one arrived and discards
//! the pixels. Reported per client count: deskd CPU (utime + stime from /proc) as a fraction
//! of one core, the median updates/s a client received, bytes per update, and the capture
//! cost from deskd's `/metrics` (capture time per captured frame and per second). The ratio
//! of CPU with the most clients to CPU with one is the sharing figure (target at most 1.5).

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// deskd as a child process, shared with the latency bench.
#[path = "support/wire.rs"]
mod wire;
use wire::{byte, read_u8, request, skip, skip_tight};
#[path = "support/deskd.rs"]
mod deskd_proc;
#[path = "../tests/common/xvfb.rs"]
#[allow(dead_code)]
mod xvfb;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, CreateGCAux, ImageFormat};

const WIDTH: u16 = 1280;
const HEIGHT: u16 = 800;
const HZ: u64 = 30;

fn main() {
    // Criterion-style arguments (`--bench`) are accepted and ignored.
    let seconds: u64 = env_or("VIEWERS_SECONDS", 6);
    let counts: Vec<usize> = std::env::var("VIEWERS_COUNTS")
        .unwrap_or_else(|_| "1,2,8".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let lossless = std::env::var_os("VIEWERS_LOSSLESS").is_some_and(|v| v != "0");
    let (_xvfb, display) = xvfb::bare_xvfb(WIDTH, HEIGHT, &["-noreset"]);
    let deskd = spawn_deskd(&display);
    let painting = Arc::new(AtomicBool::new(true));
    let painter = {
        let (display, painting) = (display.clone(), Arc::clone(&painting));
        thread::spawn(move || paint(&display, &painting))
    };
    thread::sleep(Duration::from_secs(1));

    let mode = if lossless {
        "lossless Tight"
    } else {
        "Tight + JPEG q6"
    };
    println!(
        "viewers: {WIDTH}x{HEIGHT}, full-screen change at {HZ} Hz, {mode}, {seconds} s per row"
    );
    println!(
        "{:>8} {:>10} {:>12} {:>14} {:>16} {:>14}",
        "clients", "cpu/core", "updates/s", "KB/update", "capture ms/frame", "capture ms/s"
    );
    let mut rows = Vec::new();
    for &n in std::iter::once(&0).chain(counts.iter()) {
        let clients: Vec<Viewer> = (0..n)
            .map(|_| Viewer::connect(deskd.rfb, lossless))
            .collect();
        // Let the first full updates pass.
        thread::sleep(Duration::from_secs(1));
        let m0 = metrics(deskd.http);
        let c0 = cpu_seconds(deskd.pid());
        let u0: Vec<(u64, u64)> = clients.iter().map(Viewer::counts).collect();
        let t0 = Instant::now();
        thread::sleep(Duration::from_secs(seconds));
        let dt = t0.elapsed().as_secs_f64();
        let cpu = (cpu_seconds(deskd.pid()) - c0) / dt;
        let m1 = metrics(deskd.http);
        let mut rates: Vec<f64> = Vec::new();
        let (mut updates, mut bytes) = (0u64, 0u64);
        for (c, (u, b)) in clients.iter().zip(u0) {
            let (u1, b1) = c.counts();
            assert!(!c.failed(), "a client's connection failed");
            rates.push((u1 - u) as f64 / dt);
            updates += u1 - u;
            bytes += b1 - b;
        }
        rates.sort_by(f64::total_cmp);
        let rate = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
        let frames = m1.0 - m0.0;
        let capture = (m1.1 - m0.1) * 1e3;
        let kb = if updates > 0 {
            bytes as f64 / updates as f64 / 1e3
        } else {
            0.0
        };
        println!(
            "{n:>8} {cpu:>10.3} {rate:>12.1} {kb:>14.1} {:>16.3} {:>14.2}",
            capture / frames.max(1.0),
            capture / dt
        );
        rows.push((n, cpu));
        drop(clients);
        thread::sleep(Duration::from_millis(500));
    }
    let one = rows.iter().find(|r| r.0 == 1).map(|r| r.1);
    let most = rows.iter().filter(|r| r.0 > 1).max_by_key(|r| r.0);
    if let (Some(one), Some(&(n, cpu))) = (one, most) {
        println!(
            "cpu with {n} clients / cpu with 1 client: {:.2} (target <= 1.5)",
            cpu / one
        );
    }
    painting.store(false, Ordering::Relaxed);
    painter.join().unwrap();
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Deskd {
    proc: xvfb::ChildGuard,
    rfb: u16,
    http: u16,
}

impl Deskd {
    fn pid(&self) -> u32 {
        self.proc.0.id()
    }
}

/// deskd (or `VIEWERS_DESKD`, another build to compare) on ephemeral ports.
fn spawn_deskd(display: &str) -> Deskd {
    let bin =
        std::env::var_os("VIEWERS_DESKD").unwrap_or_else(|| env!("CARGO_BIN_EXE_deskd").into());
    let d = deskd_proc::spawn(&bin, display, &[]);
    Deskd {
        rfb: d.rfb,
        http: d.http,
        proc: d.proc,
    }
}

/// (frames captured, seconds spent capturing) from deskd's Prometheus metrics.
fn metrics(port: u16) -> (f64, f64) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to deskd's HTTP port");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
    };
    (
        value("deskd_frames_captured_total"),
        value("deskd_capture_seconds_total"),
    )
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    let hz: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0);
    ticks / hz
}

/// A changing full-screen picture, `HZ` times a second, until told to stop. A few pictures
/// are computed up front so painting costs little; consecutive ones differ in every tile.
fn paint(display: &str, painting: &AtomicBool) {
    let (conn, screen) = x11rb::connect(Some(display)).expect("connect to Xvfb");
    let root = conn.setup().roots[screen].root;
    let gc = conn.generate_id().unwrap();
    conn.create_gc(gc, root, &CreateGCAux::new()).unwrap();
    let (w, h) = (usize::from(WIDTH), usize::from(HEIGHT));
    let pictures: Vec<Vec<u8>> = (0..6u32).map(|s| picture(w, h, s)).collect();
    let period = Duration::from_nanos(1_000_000_000 / HZ);
    let mut next = Instant::now();
    let mut i = 0usize;
    while painting.load(Ordering::Relaxed) {
        let buf = &pictures[i % pictures.len()];
        i += 1;
        for y0 in (0..h).step_by(16) {
            let rows = 16.min(h - y0);
            conn.put_image(
                ImageFormat::Z_PIXMAP,
                root,
                gc,
                WIDTH,
                rows as u16,
                0,
                y0 as i16,
                0,
                24,
                &buf[y0 * w * 4..(y0 + rows) * w * 4],
            )
            .unwrap();
        }
        conn.get_input_focus().unwrap().reply().unwrap();
        next += period;
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            thread::sleep(d);
        } else {
            next = Instant::now();
        }
    }
}

/// A photo-like picture (smooth gradients with texture), shifted by `seed`, BGRX.
fn picture(w: usize, h: usize, seed: u32) -> Vec<u8> {
    let mut buf = vec![0u8; w * h * 4];
    for y in 0..h {
        for x in 0..w {
            let (xs, ys) = (x as u32 + seed * 23, y as u32 + seed * 11);
            let mut v = (xs.wrapping_mul(2_654_435_761)) ^ (ys.wrapping_mul(40503));
            v ^= v >> 15;
            let noise = (v & 15) as u8;
            let i = (y * w + x) * 4;
            buf[i] = ((xs * 255 / w as u32) as u8).wrapping_add(noise);
            buf[i + 1] = ((ys * 255 / h as u32) as u8).wrapping_add(noise);
            buf[i + 2] = (((xs + ys) / 5) as u8).wrapping_add(noise);
        }
    }
    buf
}

/// A noVNC-like client that discards what it receives.
struct Viewer {
    socket: TcpStream,
    updates: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
}

impl Viewer {
    fn connect(port: u16, lossless: bool) -> Viewer {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to deskd");
        s.set_nodelay(true).unwrap();
        let mut version = [0u8; 12];
        s.read_exact(&mut version).unwrap();
        s.write_all(b"RFB 003.008\n").unwrap();
        let n = read_u8(&mut s);
        let mut types = vec![0u8; usize::from(n)];
        s.read_exact(&mut types).unwrap();
        assert!(types.contains(&1), "deskd offers no None security");
        s.write_all(&[1]).unwrap();
        let mut result = [0u8; 4];
        s.read_exact(&mut result).unwrap();
        s.write_all(&[1]).unwrap();
        let mut init = [0u8; 24];
        s.read_exact(&mut init).unwrap();
        let (w, h) = (
            u16::from_be_bytes([init[0], init[1]]),
            u16::from_be_bytes([init[2], init[3]]),
        );
        let name_len = u32::from_be_bytes([init[20], init[21], init[22], init[23]]);
        skip(&mut s, u64::from(name_len)).unwrap();
        let mut msg = vec![
            0u8, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0,
        ];
        // noVNC's list with default quality 6 and compression 2 (no fences: request pacing).
        let mut encodings: Vec<i32> = vec![7, -260, 16, 5, 2, 0, -32 + 6, -256 + 2, -223, -224];
        if lossless {
            encodings.retain(|&e| e != -32 + 6 && e != -260);
        }
        msg.extend_from_slice(&[2, 0, 0, encodings.len() as u8]);
        for e in encodings {
            msg.extend_from_slice(&e.to_be_bytes());
        }
        s.write_all(&msg).unwrap();
        request(&mut s, false, w, h).unwrap();
        let updates = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        let (u, b, f) = (
            Arc::clone(&updates),
            Arc::clone(&bytes),
            Arc::clone(&failed),
        );
        let mut rd = s.try_clone().unwrap();
        thread::spawn(move || {
            let (mut w, mut h) = (w, h);
            loop {
                match read_update(&mut rd, &mut w, &mut h) {
                    Ok(Some(n)) => {
                        u.fetch_add(1, Ordering::Relaxed);
                        b.fetch_add(n, Ordering::Relaxed);
                        if request(&mut rd, true, w, h).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        if e.kind() != std::io::ErrorKind::UnexpectedEof
                            && e.kind() != std::io::ErrorKind::ConnectionReset
                        {
                            eprintln!("viewer: {e}");
                            f.store(true, Ordering::Relaxed);
                        }
                        return;
                    }
                }
            }
        });
        Viewer {
            socket: s,
            updates,
            bytes,
            failed,
        }
    }

    fn counts(&self) -> (u64, u64) {
        (
            self.updates.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}

/// Read one server message: the bytes of a FramebufferUpdate, `None` for anything else.
fn read_update(s: &mut impl Read, w: &mut u16, h: &mut u16) -> std::io::Result<Option<u64>> {
    match byte(s)? {
        0 => {
            let mut hdr = [0u8; 3];
            s.read_exact(&mut hdr)?;
            let n = u16::from_be_bytes([hdr[1], hdr[2]]);
            let mut bytes = 4u64;
            let mut i = 0u32;
            while n == 0xffff || i < u32::from(n) {
                i += 1;
                let mut r = [0u8; 12];
                s.read_exact(&mut r)?;
                bytes += 12;
                let rw = u64::from(u16::from_be_bytes([r[4], r[5]]));
                let rh = u64::from(u16::from_be_bytes([r[6], r[7]]));
                match i32::from_be_bytes([r[8], r[9], r[10], r[11]]) {
                    7 | -260 => bytes += skip_tight(s, rw, rh)?,
                    0 => {
                        skip(s, rw * rh * 4)?;
                        bytes += rw * rh * 4;
                    }
                    -223 => (*w, *h) = (rw as u16, rh as u16),
                    -224 => break,
                    e => return Err(std::io::Error::other(format!("unexpected encoding {e}"))),
                }
            }
            Ok(Some(bytes))
        }
        1 => {
            let mut m = [0u8; 5];
            s.read_exact(&mut m)?;
            skip(s, u64::from(u16::from_be_bytes([m[3], m[4]])) * 6)?;
            Ok(None)
        }
        2 => Ok(None),
        3 => {
            let mut m = [0u8; 7];
            s.read_exact(&mut m)?;
            skip(s, u64::from(u32::from_be_bytes([m[3], m[4], m[5], m[6]])))?;
            Ok(None)
        }
        t => Err(std::io::Error::other(format!(
            "unexpected message type {t}"
        ))),
    }
}
