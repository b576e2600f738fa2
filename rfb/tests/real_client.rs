//! A real client we did not write (vncdotool's `vncdo`) completes the handshake against the
//! example test server and captures the picture; the PNG must equal the synthetic picture
//! pixel for pixel. Covers None and VNC auth, RFB 3.3 / 3.7 / 3.8, a wrong password, and a
//! client-chosen pixel format (SetPixelFormat).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/testserver.rs"]
#[allow(dead_code)]
mod testserver;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rfb::handshake::Version;
use testserver::Options;

/// Kills the child on drop so a failing assertion never leaves a client running.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("rfb-real-client-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn require_vncdo() {
    let ok = Command::new("vncdo")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "vncdo not found: install it with `pip install vncdotool`"
    );
}

/// Run `vncdo capture`; returns whether it succeeded. `timeout` bounds a hung client.
fn capture(port: u16, password: Option<&str>, out: &Path) -> bool {
    let mut cmd = Command::new("timeout");
    cmd.args(["60", "vncdo", "-s", &format!("127.0.0.1::{port}")]);
    if let Some(p) = password {
        cmd.args(["-p", p]);
    }
    cmd.arg("capture").arg(out);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut guard = Guard(cmd.spawn().expect("spawn timeout/vncdo"));
    let status = guard.0.wait().unwrap();
    status.success() && out.exists()
}

fn assert_picture(png_path: &Path, w: u16, h: u16) {
    let decoder = png::Decoder::new(std::fs::File::open(png_path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (u32::from(w), u32::from(h)));
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    for y in 0..u32::from(h) {
        for x in 0..u32::from(w) {
            let at = (y as usize * info.line_size) + x as usize * channels;
            let got = (buf[at], buf[at + 1], buf[at + 2]);
            assert_eq!(got, testserver::pixel(x, y), "pixel ({x}, {y})");
        }
    }
}

fn run_case(tag: &str, opts: Options, client_password: Option<&str>) {
    require_vncdo();
    let (w, h) = (opts.width, opts.height);
    let port = testserver::spawn(opts);
    let dir = TempDir::new(tag);
    let out = dir.0.join("out.png");
    assert!(
        capture(port, client_password, &out),
        "vncdo capture failed ({tag})"
    );
    assert_picture(&out, w, h);
}

#[test]
fn no_auth_rfb_3_8() {
    run_case("none-38", Options::default(), None);
}

#[test]
fn no_auth_rfb_3_7() {
    let opts = Options {
        version: Version::V3_7,
        ..Options::default()
    };
    run_case("none-37", opts, None);
}

#[test]
fn vnc_auth_rfb_3_8() {
    let opts = Options {
        password: Some("s3cret".into()),
        ..Options::default()
    };
    run_case("auth-38", opts, Some("s3cret"));
}

#[test]
fn vnc_auth_rfb_3_3() {
    let opts = Options {
        password: Some("s3cret".into()),
        version: Version::V3_3,
        width: 40,
        height: 33,
        ..Options::default()
    };
    run_case("auth-33", opts, Some("s3cret"));
}

#[test]
fn client_pixel_format_is_honoured() {
    // A big-endian native format is not one vncdotool reads directly: it sends SetPixelFormat
    // (32 bpp, red at shift 0) and the server must convert.
    let opts = Options {
        big_endian: true,
        ..Options::default()
    };
    run_case("setpf", opts, None);
}

#[test]
fn wrong_password_is_refused() {
    require_vncdo();
    for version in [Version::V3_3, Version::V3_8] {
        let port = testserver::spawn(Options {
            password: Some("s3cret".into()),
            version,
            ..Options::default()
        });
        let dir = TempDir::new(&format!("wrong-{version:?}"));
        let out = dir.0.join("out.png");
        assert!(
            !capture(port, Some("not-it"), &out),
            "vncdo succeeded with a wrong password ({version:?})"
        );
        assert!(!out.exists());
    }
}
