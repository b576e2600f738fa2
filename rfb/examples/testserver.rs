//! A minimal blocking RFB server built on the `rfb` crate, for interoperability tests with
//! real clients. It serves a fixed synthetic picture ([`pixel`]) with Raw updates.
//!
//! ```text
//! cargo run -p rfb --example testserver -- [--password PASS] [--version 3.3|3.7|3.8]
//!     [--size WxH] [--big-endian]
//! ```
//! It listens on 127.0.0.1 on a free port and prints `PORT <n>` on stdout. `--big-endian`
//! announces a big-endian native format, which makes clients such as vncdotool send
//! SetPixelFormat (so the conversion path is exercised).
//!
//! `rfb/tests/real_client.rs` includes this file as a module and calls [`spawn`] in-process
//! (a nested `cargo build` would wait on the build lock held by `cargo test`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{SystemTime, UNIX_EPOCH};

use rfb::encoding::raw::RawEncoder;
use rfb::handshake::{HandshakeConfig, SecurityType, ServerHandshake, ServerInit, Version};
use rfb::messages::server::{patch_rect_count, write_framebuffer_update_header};
use rfb::messages::{parse_client_message, ClientMessage, Limits};
use rfb::{EncodeParams, Encoder, FrameView, PixelFormat, Rect};

/// The synthetic picture: colour (r, g, b) of pixel (x, y). Tests compute the same function.
pub fn pixel(x: u32, y: u32) -> (u8, u8, u8) {
    (
        ((x * 5) ^ y) as u8,
        (y * 7 + x) as u8,
        ((x + y) * 3 + 17) as u8,
    )
}

/// Server settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// VNC password; no authentication when None.
    pub password: Option<String>,
    /// Highest version announced.
    pub version: Version,
    /// Framebuffer width.
    pub width: u16,
    /// Framebuffer height.
    pub height: u16,
    /// Announce a big-endian native pixel format.
    pub big_endian: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            password: None,
            version: Version::V3_8,
            width: 97,
            height: 61,
            big_endian: false,
        }
    }
}

fn parse_args() -> Options {
    let mut o = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--password" => o.password = args.next(),
            "--version" => {
                o.version = match args.next().as_deref() {
                    Some("3.3") => Version::V3_3,
                    Some("3.7") => Version::V3_7,
                    _ => Version::V3_8,
                }
            }
            "--size" => {
                let s = args.next().unwrap_or_default();
                let (w, h) = s.split_once('x').expect("--size WxH");
                o.width = w.parse().expect("width");
                o.height = h.parse().expect("height");
            }
            "--big-endian" => o.big_endian = true,
            other => panic!("unknown argument {other}"),
        }
    }
    o
}

/// A random-enough challenge without an RNG crate: std's per-process random hash keys mixed
/// with the clock and a counter.
fn challenge(counter: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(counter);
        h.write_usize(i);
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

fn main() {
    let port = spawn(parse_args());
    println!("PORT {port}");
    std::io::stdout().flush().ok();
    loop {
        std::thread::park();
    }
}

/// Start serving on 127.0.0.1 (free port) on a background thread; returns the port.
pub fn spawn(opts: Options) -> u16 {
    let (w, h) = (opts.width, opts.height);
    let mut frame = Vec::with_capacity(usize::from(w) * usize::from(h) * 4);
    for y in 0..u32::from(h) {
        for x in 0..u32::from(w) {
            let (r, g, b) = pixel(x, y);
            frame.extend_from_slice(&[b, g, r, 0]);
        }
    }
    let frame: &'static [u8] = Box::leak(frame.into_boxed_slice());

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(stream) = conn else { continue };
            let opts = opts.clone();
            std::thread::spawn(move || {
                if let Err(e) = serve(stream, &opts, frame, n as u64) {
                    eprintln!("client {n}: {e}");
                }
            });
        }
    });
    port
}

fn serve(mut s: TcpStream, o: &Options, data: &[u8], n: u64) -> Result<(), String> {
    let mut format = PixelFormat::NATIVE;
    format.big_endian = o.big_endian;
    let init = ServerInit {
        width: o.width,
        height: o.height,
        format,
        name: "rfb testserver".into(),
    };
    let mut config = match &o.password {
        Some(p) => HandshakeConfig::vnc_auth(p.as_bytes(), challenge(n), init),
        None => HandshakeConfig::no_auth(init),
    };
    config.version = o.version;
    if o.password.is_none() {
        config.security = vec![SecurityType::None];
    }
    let mut hs = ServerHandshake::new(config);
    let mut buf = Vec::new();
    let mut tmp = [0u8; 65536];
    s.write_all(&hs.take_output()).map_err(|e| e.to_string())?;
    while !hs.is_done() {
        let got = s.read(&mut tmp).map_err(|e| e.to_string())?;
        if got == 0 {
            return Err("closed during handshake".into());
        }
        buf.extend_from_slice(&tmp[..got]);
        let res = hs.receive(&buf);
        // Send whatever is queued, including a failure reason, before acting on errors.
        s.write_all(&hs.take_output()).map_err(|e| e.to_string())?;
        let used = res.map_err(|e| format!("handshake: {e}"))?;
        buf.drain(..used);
    }
    while let Some(ev) = hs.poll_event() {
        eprintln!("client {n}: {ev:?}");
    }

    let view = FrameView {
        data,
        width: o.width,
        height: o.height,
        stride: usize::from(o.width) * 4,
    };
    let mut params = EncodeParams {
        format,
        ..EncodeParams::default()
    };
    let mut raw = RawEncoder::new();
    let limits = Limits::default();
    let mut out = Vec::new();
    loop {
        while let Some((msg, used)) =
            parse_client_message(&buf, &limits).map_err(|e| format!("client message: {e}"))?
        {
            buf.drain(..used);
            match msg {
                ClientMessage::SetPixelFormat(pf) => {
                    eprintln!("client {n}: SetPixelFormat {pf:?}");
                    params.format = pf;
                }
                // The picture never changes, so incremental requests never get an answer.
                ClientMessage::FramebufferUpdateRequest {
                    incremental: false,
                    rect,
                } => {
                    let r = rect.clamp_to(o.width, o.height);
                    let rects: Vec<Rect> = if r.is_empty() { vec![] } else { vec![r] };
                    let at = out.len();
                    write_framebuffer_update_header(&mut out, 0);
                    let count = raw
                        .encode(&view, &rects, &params, &mut out)
                        .map_err(|e| e.to_string())?
                        .rects;
                    patch_rect_count(&mut out, at, count as u16);
                }
                _ => {}
            }
        }
        if !out.is_empty() {
            s.write_all(&out).map_err(|e| e.to_string())?;
            out.clear();
        }
        let got = s.read(&mut tmp).map_err(|e| e.to_string())?;
        if got == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..got]);
    }
}
