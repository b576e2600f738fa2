//! Tight bytes against TigerVNC: the deterministic 1920x1080 desktop of benches/data/content.rs
//! is put on an Xvfb, served by x0vncserver (X0tigervnc), and a small RFB client asks it for one
//! full non-incremental update with Tight at CompressLevel 1, 2, 6 and 9 (no QualityLevel, so no
//! JPEG), a fresh connection per level. The same frame is encoded in-process by our
//! TightEncoder (one thread, a fresh encoder per level) at the same levels.
//!
//! `cargo bench --bench tight_vs_tigervnc` prints: level, our bytes, TigerVNC bytes, ratio, and
//! the median of our encode time. Bytes are whole FramebufferUpdate messages (header, rect
//! headers, Tight data), not counting a Cursor pseudo-rect. `TIGHT_BENCH_SAMPLES=9` sets the
//! number of timed encodes per level.
//!
//! Fails with a message naming the package when Xvfb or x0vncserver is missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "data/content.rs"]
mod content;

/// Xvfb and child-process guards shared with the integration tests.
#[path = "../tests/common/xvfb.rs"]
#[allow(dead_code)]
mod xvfb;

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use content::Image;
use rfb::encoding::{tight::TightEncoder, EncodeParams, Encoder, FrameView};
use rfb::Rect;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, CreateGCAux, ImageFormat};

const WIDTH: u16 = 1920;
const HEIGHT: u16 = 1080;
const LEVELS: [u8; 4] = [1, 2, 6, 9];
const TIGHT: i32 = 7;
const CURSOR: i32 = -239;
const COMPRESS_LEVEL_0: i32 = -256;

fn main() {
    require("Xvfb", "xvfb");
    require("X0tigervnc", "tigervnc-scraping-server");
    let samples: usize = std::env::var("TIGHT_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(9)
        .max(1);

    let img = content::desktop(WIDTH, HEIGHT);
    // -noreset: the screen keeps its picture when the drawing client disconnects.
    let (_xvfb, display) = xvfb::bare_xvfb(WIDTH, HEIGHT, &["-noreset"]);
    put_image(&display, &img);
    let port = free_port();
    let _server = spawn_x0vncserver(&display, port);

    println!("Tight, {WIDTH}x{HEIGHT} desktop (benches/data/content.rs), one full update, no JPEG");
    println!("ours: TightEncoder, 1 thread; TigerVNC: x0vncserver on Xvfb, same pixels");
    println!(
        "{:>5} {:>12} {:>14} {:>8} {:>16}",
        "level", "ours bytes", "TigerVNC bytes", "ratio", "ours median ms"
    );
    for level in LEVELS {
        let (ours, times) = ours(&img, level, samples);
        let theirs = tigervnc_bytes(port, level);
        println!(
            "{:>5} {:>12} {:>14} {:>8.3} {:>16.2}",
            level,
            ours,
            theirs,
            ours as f64 / theirs as f64,
            median(times) * 1e3
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Our encoder

/// Bytes of one full update (as a FramebufferUpdate) and the encode times.
fn ours(img: &Image, level: u8, samples: usize) -> (usize, Vec<f64>) {
    let view = FrameView {
        data: &img.data,
        width: img.width,
        height: img.height,
        stride: img.stride(),
    };
    let params = EncodeParams {
        compress_level: Some(level),
        ..EncodeParams::default()
    };
    let all = [Rect::new(0, 0, img.width, img.height)];
    let mut bytes = 0;
    let mut times = Vec::with_capacity(samples);
    let mut out = Vec::new();
    for _ in 0..samples {
        out.clear();
        let mut enc = TightEncoder::new();
        let t = Instant::now();
        enc.encode(&view, &all, &params, &mut out).expect("encode");
        times.push(t.elapsed().as_secs_f64());
        // Message type, padding and rect count come before the rects.
        bytes = 4 + out.len();
    }
    (bytes, times)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

// ---------------------------------------------------------------------------------------------
// Processes and the X screen

/// Kills and reaps the child on drop, so a panicking bench leaves nothing behind.
fn require(bin: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "tight_vs_tigervnc bench: `{bin}` not found in PATH; install the Debian package \
         `{package}` (see scripts/deps-apt.txt)"
    );
}

/// Put the BGRX picture on the root window in bands (each under the core request size limit),
/// then read the screen back to be sure X shows exactly these pixels.
fn put_image(display: &str, img: &Image) {
    let (conn, screen) = x11rb::connect(Some(display)).expect("connect to Xvfb");
    let root = conn.setup().roots[screen].root;
    let gc = conn.generate_id().unwrap();
    conn.create_gc(gc, root, &CreateGCAux::new()).unwrap();
    let (w, h) = (usize::from(img.width), usize::from(img.height));
    let band = 16;
    for y0 in (0..h).step_by(band) {
        let rows = band.min(h - y0);
        conn.put_image(
            ImageFormat::Z_PIXMAP,
            root,
            gc,
            img.width,
            rows as u16,
            0,
            y0 as i16,
            0,
            24,
            &img.data[y0 * w * 4..(y0 + rows) * w * 4],
        )
        .unwrap();
    }
    let back = conn
        .get_image(ImageFormat::Z_PIXMAP, root, 0, 0, img.width, img.height, !0)
        .unwrap()
        .reply()
        .unwrap();
    let same = back
        .data
        .chunks_exact(4)
        .zip(img.data.chunks_exact(4))
        .all(|(a, b)| a[..3] == b[..3]);
    assert!(
        same,
        "the X screen does not show the picture we put (is Xvfb 24-bit BGRX?)"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_x0vncserver(display: &str, port: u16) -> xvfb::ChildGuard {
    // The x0vncserver wrapper script daemonizes; X0tigervnc is the server itself.
    let child = Command::new("X0tigervnc")
        .args(["-display", display, "-rfbport", &port.to_string()])
        .args(["-SecurityTypes", "None", "-interface", "127.0.0.1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn X0tigervnc");
    xvfb::ChildGuard(child)
}

// ---------------------------------------------------------------------------------------------
// A minimal RFB client that counts the bytes of Tight updates

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: usize,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n;
        Ok(n)
    }
}

impl<R: Read> Counting<R> {
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.read_exact(&mut b)
            .expect("server closed the connection");
        b
    }
    fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.array())
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.array())
    }
    fn skip(&mut self, n: usize) {
        let copied = std::io::copy(&mut (&mut *self).take(n as u64), &mut std::io::sink())
            .expect("server closed the connection");
        assert_eq!(copied, n as u64, "server closed the connection");
    }
    /// Tight's compact length: 7 bits per byte, up to 3 bytes.
    fn compact_len(&mut self) -> usize {
        let mut len = 0usize;
        for i in 0..3 {
            let b = self.u8();
            if i == 2 {
                return len | (usize::from(b) << 14);
            }
            len |= usize::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                break;
            }
        }
        len
    }
}

fn connect(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("x0vncserver did not listen on port {port}: {e}"),
        }
    }
}

/// Bytes of the FramebufferUpdate(s) x0vncserver sends for one non-incremental full request
/// with Tight at `level`.
fn tigervnc_bytes(port: u16, level: u8) -> usize {
    let mut s = connect(port);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut r = Counting {
        inner: BufReader::with_capacity(1 << 16, s.try_clone().unwrap()),
        count: 0,
    };
    let version: [u8; 12] = r.array();
    assert!(version.starts_with(b"RFB 003."), "not an RFB server");
    s.write_all(b"RFB 003.008\n").unwrap();
    let n = usize::from(r.u8());
    assert!(n > 0, "x0vncserver refused the connection");
    let mut types = vec![0u8; n];
    r.read_exact(&mut types).unwrap();
    assert!(
        types.contains(&1),
        "x0vncserver does not offer None security"
    );
    s.write_all(&[1]).unwrap();
    assert_eq!(r.u32(), 0, "security result");
    s.write_all(&[1]).unwrap(); // shared
    let (w, h) = (r.u16(), r.u16());
    assert_eq!((w, h), (WIDTH, HEIGHT), "x0vncserver's screen size");
    r.skip(16);
    let name_len = r.u32() as usize;
    r.skip(name_len);

    // 32 bpp, depth 24, little-endian, red at 16: X's layout, Tight's 3-byte TPIXEL.
    let mut msg = vec![
        0u8, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0,
    ];
    // Tight, the level, and Cursor so the pointer is not drawn into the pixels.
    let encodings = [TIGHT, COMPRESS_LEVEL_0 + i32::from(level), CURSOR];
    msg.extend_from_slice(&[2, 0]);
    msg.extend_from_slice(&(encodings.len() as u16).to_be_bytes());
    for e in encodings {
        msg.extend_from_slice(&e.to_be_bytes());
    }
    s.write_all(&msg).unwrap();
    let request = |s: &mut TcpStream, incremental: bool| {
        let mut m = vec![3, u8::from(incremental), 0, 0, 0, 0];
        m.extend_from_slice(&w.to_be_bytes());
        m.extend_from_slice(&h.to_be_bytes());
        s.write_all(&m).unwrap();
    };
    request(&mut s, false);

    let mut area = 0u64;
    // Bytes of the updates carrying pixels, from their message header to their last rect.
    let mut total = 0usize;
    while area < u64::from(w) * u64::from(h) {
        let start = r.count;
        let kind = r.u8();
        assert_eq!(
            kind, 0,
            "expected a FramebufferUpdate, got message type {kind}"
        );
        r.skip(1);
        let rects = r.u16();
        let mut cursor_bytes = 0;
        for _ in 0..rects {
            let rect_start = r.count;
            let (_x, _y, rw, rh) = (r.u16(), r.u16(), r.u16(), r.u16());
            let enc = r.array::<4>();
            match i32::from_be_bytes(enc) {
                TIGHT => {
                    skip_tight_rect(&mut r, usize::from(rw), usize::from(rh));
                    area += u64::from(rw) * u64::from(rh);
                }
                CURSOR => {
                    let (cw, ch) = (usize::from(rw), usize::from(rh));
                    r.skip(cw * ch * 4 + cw.div_ceil(8) * ch);
                    cursor_bytes += r.count - rect_start;
                }
                other => panic!("x0vncserver sent encoding {other}, which we did not ask for"),
            }
        }
        total += r.count - start - cursor_bytes;
        // x0vncserver answers the first request with the cursor alone: ask again for the
        // screen; after a partial update, ask for the rest.
        if area < u64::from(w) * u64::from(h) {
            request(&mut s, area > 0);
        }
    }
    total
}

/// Read past one Tight rectangle (32 bpp depth 24: 3-byte TPIXELs).
fn skip_tight_rect(r: &mut Counting<impl Read>, w: usize, h: usize) {
    const TPIXEL: usize = 3;
    let control = r.u8();
    match control >> 4 {
        8 => r.skip(TPIXEL), // fill
        9 => {
            // JPEG (not expected without a QualityLevel, but it has a plain length).
            let n = r.compact_len();
            r.skip(n);
        }
        c if c & 0x8 == 0 => {
            // Basic compression: optional filter, then data (< 12 bytes are sent as is).
            let filter = if c & 0x4 != 0 { r.u8() } else { 0 };
            let size = match filter {
                0 | 2 => w * h * TPIXEL, // copy, gradient
                1 => {
                    let colours = usize::from(r.u8()) + 1;
                    r.skip(colours * TPIXEL);
                    if colours == 2 {
                        w.div_ceil(8) * h
                    } else {
                        w * h
                    }
                }
                other => panic!("unknown Tight filter {other}"),
            };
            if size < 12 {
                r.skip(size);
            } else {
                let n = r.compact_len();
                r.skip(n);
            }
        }
        _ => panic!("unknown Tight control byte {control:#04x}"),
    }
}
