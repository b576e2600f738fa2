//! TLS end to end with clients we did not write, against a CA made at run time:
//! - VeNCrypt: TigerVNC's vncviewer with X509None and X509Vnc (exact pixels; an unrelated CA
//!   refused), gtk-vnc's gvnccapture (exact pixels), a plaintext client refused by a TLS-only
//!   listener;
//! - HTTPS: noVNC over wss:// in Chromium trusting the CA (canvas exact, typing arrives),
//!   `curl --cacert` for the API, plain HTTP refused, a certificate reload on SIGHUP with the
//!   browser session kept;
//! - signed viewer links: a view-only link's input, clipboard and resize ignored (X sees
//!   nothing), expired, tampered and revoked links refused.
//!
//! Needs: Xvfb, tigervnc-viewer, gvncviewer, libnss3-tools, curl, node, chromium, `npm ci` in
//! web/, xclip, xdotool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod e2e_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use e2e_support::tls::TestCa;
use e2e_support::{
    bare_xvfb, diff, require_tool, wait_equal, x_output, Browser, ChildGuard, Deskd, Recorder, X,
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("deskd-tls-{}-{name}", std::process::id()))
}

/// deskd with the test CA's certificate, its own state directory, and `extra` flags.
fn deskd_tls(ca: &TestCa, state: &Path, extra: &[&str]) -> Deskd {
    let mut args = vec![
        "--tls-cert",
        ca.cert.to_str().unwrap(),
        "--tls-key",
        ca.key.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Deskd::start(640, 480, &args)
}

/// Start TigerVNC's viewer on `display` for deskd's RFB port; `None` when it exits first.
fn vncviewer(
    display: &str,
    port: u16,
    security: &str,
    ca: &Path,
    password: Option<&str>,
) -> Viewer {
    require_tool("vncviewer", "tigervnc-viewer");
    let home = tmp(&format!("viewer-home-{security}-{port}"));
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new("vncviewer");
    cmd.args([
        "-AutoSelect=0",
        "-PreferredEncoding=ZRLE",
        "-FullColor",
        "-NoJPEG",
        "-ViewOnly",
        "-Shared",
        "-RemoteResize=0",
        "-DotWhenNoCursor=0",
        &format!("-SecurityTypes={security}"),
        "-Log=*:stderr:30",
        &format!("-X509CA={}", ca.display()),
        "-geometry",
        "640x480+0+0",
    ])
    .arg(format!("127.0.0.1::{port}"))
    .env("DISPLAY", display)
    .env_remove("XAUTHORITY")
    // Its own HOME: TigerVNC remembers accepted certificates in ~/.vnc.
    .env("HOME", &home)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(home.join("stderr")).unwrap());
    if let Some(p) = password {
        // X509Plain asks for a username too (deskd does not check it).
        cmd.env("VNC_PASSWORD", p).env("VNC_USERNAME", "viewer");
    }
    Viewer {
        child: Some(ChildGuard(cmd.spawn().expect("run vncviewer"))),
        home,
    }
}

/// A TigerVNC viewer and its private HOME, removed once the viewer is gone.
struct Viewer {
    child: Option<ChildGuard>,
    home: std::path::PathBuf,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        drop(self.child.take());
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// What a viewer started by [`vncviewer`] wrote to stderr.
fn viewer_stderr(security: &str, port: u16) -> String {
    let home = tmp(&format!("viewer-home-{security}-{port}"));
    std::fs::read_to_string(home.join("stderr")).unwrap_or_default()
}

/// The viewer's 640x480 picture on its X server, once its window exists.
fn viewer_window(vx: &X, security: &str, d: &Deskd) -> (i16, i16) {
    let port = d.rfb.port();
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(p) = vx.find_window(640, 480) {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "no TigerVNC viewer window appeared; its log:\n{}\ndeskd log:\n{}",
            viewer_stderr(security, port),
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the test runs as root (`id -u`).
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn png_rgb(path: &Path) -> (u16, u16, Vec<u8>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let rgb = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width as u16, info.height as u16, rgb)
}

#[test]
fn vencrypt_native_viewers_and_refusals() {
    let ca = TestCa::new("native");
    let state = tmp("state-native");
    // No password: X509None only, so this listener speaks nothing but TLS.
    let d = deskd_tls(&ca, &state, &["--rfb-security", "x509none"]);
    let x = X::connect(&d.display);
    let port = d.rfb.port();

    // gtk-vnc (gvnccapture) over VeNCrypt, trusting the CA from ~/.pki/CA/cacert.pem. gtk-vnc
    // takes ~ from the passwd entry, not $HOME: a private mount namespace puts the test's
    // home there, so the user's own is neither read nor touched.
    require_tool("gvnccapture", "gvncviewer");
    require_tool("unshare", "util-linux");
    x.draw_picture(5);
    let home = ca.home();
    let file = tmp("gvnccapture.png");
    let private = if running_as_root() { "--mount" } else { "-Urm" };
    let out = Command::new("unshare")
        .args([private, "--propagation", "private", "--", "sh", "-c"])
        .arg(r#"mount --bind "$1" "$(getent passwd "$(id -u)" | cut -d: -f6)" && exec gvnccapture "$2" "$3""#)
        .arg("sh")
        .arg(&home)
        .arg(format!("127.0.0.1:{}", port - 5900))
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .expect("run gvnccapture");
    assert!(
        out.status.success(),
        "gvnccapture failed: {}{}\ndeskd log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.log_text()
    );
    let (w, h, got) = png_rgb(&file);
    let _ = std::fs::remove_file(&file);
    let (xw, xh, want) = x.root_rgb();
    assert_eq!((w, h), (xw, xh));
    if let Some(e) = diff(w, h, &want, &got) {
        panic!("gvnccapture over VeNCrypt differs from X: {e}");
    }
    assert!(d.log_text().contains("X509None"), "{}", d.log_text());

    // TigerVNC with X509None against the test CA: exact pixels, then an update.
    let (_vxvfb, vdisplay) = bare_xvfb(800, 600, &[]);
    let vx = X::connect(&vdisplay);
    {
        let _viewer = vncviewer(&vdisplay, port, "X509None", &ca.ca, None);
        let (wx, wy) = viewer_window(&vx, "X509None", &d);
        let crop = || (640u16, 480u16, vx.region_rgb(wx, wy, 640, 480));
        wait_equal(&x, "TigerVNC X509None", WAIT, crop);
        x.draw_picture(6);
        wait_equal(&x, "TigerVNC X509None after drawing", WAIT, crop);
    }

    // An unrelated CA: the viewer does not trust the certificate. TigerVNC asks whether to
    // make an exception ("Unknown certificate issuer"); the test declines (Escape) and the
    // viewer reports an authentication failure without ever showing the desktop.
    {
        let connected_before = d.log_text().matches("rfb client connected").count();
        let _viewer = vncviewer(&vdisplay, port, "X509None", &ca.other_ca, None);
        let deadline = Instant::now() + WAIT;
        let dialog = loop {
            let found = x_output(
                &vdisplay,
                "xdotool",
                &["search", "--onlyvisible", "--name", "."],
            );
            if let Some(id) = found.and_then(|o| o.lines().next().map(str::to_owned)) {
                break id;
            }
            assert!(Instant::now() < deadline, "vncviewer showed no window");
            std::thread::sleep(Duration::from_millis(100));
        };
        let title = x_output(&vdisplay, "xdotool", &["getwindowname", &dialog]).unwrap_or_default();
        assert!(
            title.contains("Unknown certificate issuer"),
            "viewer window {title:?}"
        );
        let deadline = Instant::now() + WAIT;
        // FLTK ignores synthetic events: focus the question and answer through XTEST.
        while !viewer_stderr("X509None", port).contains("Authentication failure") {
            assert!(
                Instant::now() < deadline,
                "vncviewer did not give up on an untrusted CA"
            );
            let _ = x_output(&vdisplay, "xdotool", &["windowfocus", &dialog]);
            let _ = x_output(&vdisplay, "xdotool", &["key", "Escape"]);
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            vx.find_window(640, 480).is_none(),
            "the desktop appeared with an untrusted CA"
        );
        assert_eq!(
            d.log_text().matches("rfb client connected").count(),
            connected_before,
            "a client with an untrusted CA got a session"
        );
    }

    // Plaintext RFB to this TLS-only listener: only VeNCrypt is offered, and choosing None or
    // VNC authentication fails with a reason.
    for choice in [1u8, 2] {
        let mut s = TcpStream::connect(d.rfb).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut version = [0u8; 12];
        s.read_exact(&mut version).unwrap();
        s.write_all(b"RFB 003.008\n").unwrap();
        let mut types = [0u8; 2];
        s.read_exact(&mut types).unwrap();
        assert_eq!(types, [1, 19], "offered security types");
        s.write_all(&[choice]).unwrap();
        let mut result = [0u8; 8];
        s.read_exact(&mut result).unwrap();
        assert_eq!(
            &result[..4],
            &[0, 0, 0, 1],
            "SecurityResult for type {choice}"
        );
        let mut reason = String::new();
        s.read_to_string(&mut reason).unwrap();
        assert!(reason.contains("not offered"), "{reason}");
    }
    // And a real plaintext-only client (vncdotool) cannot get in.
    require_tool("vncdo", "vncdotool (pip install -r scripts/deps-pip.txt)");
    let shot = tmp("vncdo.png");
    let out = Command::new("timeout")
        .args(["20", "vncdo", "-s"])
        .arg(format!("127.0.0.1::{port}"))
        .arg("capture")
        .arg(&shot)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !out.status.success() && !shot.exists(),
        "vncdotool got in without TLS"
    );
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn vencrypt_x509vnc_with_password() {
    let ca = TestCa::new("x509vnc");
    let state = tmp("state-x509vnc");
    let d = deskd_tls(
        &ca,
        &state,
        &[
            "--password",
            "s3cret",
            "--rfb-security",
            "x509vnc,x509plain",
        ],
    );
    let x = X::connect(&d.display);
    let (_vxvfb, vdisplay) = bare_xvfb(800, 600, &[]);
    let vx = X::connect(&vdisplay);
    for security in ["X509Vnc", "X509Plain"] {
        x.draw_picture(if security == "X509Vnc" { 7 } else { 8 });
        let _viewer = vncviewer(&vdisplay, d.rfb.port(), security, &ca.ca, Some("s3cret"));
        let (wx, wy) = viewer_window(&vx, security, &d);
        let crop = || (640u16, 480u16, vx.region_rgb(wx, wy, 640, 480));
        wait_equal(&x, &format!("TigerVNC {security}"), WAIT, crop);
    }
    let log = d.log_text();
    assert!(
        log.contains("X509Vnc") && log.contains("X509Plain"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&state);
}

fn curl(args: &[&str]) -> Output {
    require_tool("curl", "curl");
    Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl")
}

/// The HTTP status of a WebSocket upgrade request (`101` when let in).
fn ws_status(ca: &TestCa, url: &str) -> String {
    let out = curl(&[
        "--cacert",
        ca.ca.to_str().unwrap(),
        "--http1.1",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "3",
        "-H",
        "Connection: Upgrade",
        "-H",
        "Upgrade: websocket",
        "-H",
        "Sec-WebSocket-Version: 13",
        "-H",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        url,
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn deskd_link(state: &Path, http: SocketAddr, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_deskd"))
        .args(["link", "--state-dir", state.to_str().unwrap()])
        .args(["--url-base", &format!("https://{http}")])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "deskd link: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn https_wss_novnc_api_links_and_reload() {
    let ca = TestCa::new("https");
    let state = tmp("state-https");
    let d = deskd_tls(
        &ca,
        &state,
        &["--password", "s3cret", "--api-token", "tok3n"],
    );
    let x = X::connect(&d.display);
    x.fill(0, 0, 640, 480, 0x336699);
    let rec = Recorder::start(&d.display, 100, 100, 400, 300);
    let base = format!("https://127.0.0.1:{}", d.http.port());
    let cacert = ca.ca.to_str().unwrap();

    // The API over HTTPS with curl trusting the CA; not without it; not in plain HTTP.
    let out = curl(&[
        "--cacert",
        cacert,
        "-H",
        "Authorization: Bearer tok3n",
        &format!("{base}/api/v0/desktop/status"),
    ]);
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(status.is_object(), "{status}");
    let out = curl(&[&format!("{base}/api/v0/desktop/status")]);
    assert_eq!(
        out.status.code(),
        Some(60),
        "curl without the CA must fail verification"
    );
    let out = curl(&[
        "-i",
        &format!("http://127.0.0.1:{}/api/v0/desktop/status", d.http.port()),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(
        text.contains(&format!(
            "use https://127.0.0.1:{}/api/v0/desktop/status",
            d.http.port()
        )),
        "{text}"
    );

    // The token from the viewer URL becomes a cookie that never travels over plain HTTP.
    let out = curl(&["-i", "--cacert", cacert, &format!("{base}/?token=tok3n")]);
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    let cookie = head
        .lines()
        .find(|l| l.starts_with("set-cookie: deskd_token="))
        .unwrap_or_else(|| panic!("no token cookie: {head}"));
    assert!(cookie.contains("; secure"), "{cookie}");

    // noVNC over wss:// in Chromium trusting the test CA (the API token once in the URL, as
    // a cookie from then on): the password prompt, exact pixels, typing arrives.
    let home = ca.home();
    let mut b = Browser::start_with_home(Some(&home));
    b.call(json!({"cmd": "goto", "url": format!("{base}/?token=tok3n&scale=0&encodings=zrle"), "width": 1024, "height": 768}));
    b.call(json!({"cmd": "wait", "js": "document.getElementById('password-dialog').open"}));
    b.call(json!({"cmd": "fill", "selector": "#password-input", "text": "s3cret"}));
    b.eval("document.getElementById('password-form').requestSubmit()");
    b.call(json!({"cmd": "wait_connected"}));
    assert_eq!(b.eval("window.location.protocol"), json!("https:"));
    wait_equal(&x, "noVNC over wss://", WAIT, || b.pixels());
    b.call(json!({"cmd": "type", "text": "over tls"}));
    rec.wait("typed over wss", WAIT, |r| r.text == "over tls");

    // SIGHUP with a new certificate from another CA: the open session goes on, new
    // connections get the new certificate.
    let other = TestCa::new("https-reload");
    std::fs::copy(&other.cert, &ca.cert).unwrap();
    std::fs::copy(&other.key, &ca.key).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &d.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + WAIT;
    while !d.log_text().contains("TLS certificate reloaded") {
        assert!(
            Instant::now() < deadline,
            "no reload logged:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status_url = format!("{base}/api/v0/desktop/status");
    let auth = "Authorization: Bearer tok3n";
    let new_ca = other.ca.to_str().unwrap();
    assert!(curl(&["--cacert", new_ca, "-H", auth, &status_url])
        .status
        .success());
    let old = curl(&["--cacert", cacert, "-H", auth, &status_url]);
    let why = String::from_utf8_lossy(&old.stderr);
    assert!(
        !old.status.success() && why.contains("certificate"),
        "old CA after the reload: {why}"
    );
    x.draw_picture(9);
    wait_equal(&x, "noVNC session after the reload", WAIT, || b.pixels());
    // Back to the first certificate, for the browser's new connections below.
    ca.issue(&ca.cert, &ca.key, "127.0.0.1");
    Command::new("kill")
        .args(["-HUP", &d.pid().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while !curl(&["--cacert", cacert, "-H", auth, &status_url])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "second reload not effective");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A view-only link from the API (behind the token): connects without the password, and
    // what it sends is ignored even when the page is made to send it.
    let out = curl(&[
        "--cacert",
        cacert,
        "-H",
        auth,
        "-d",
        r#"{"view_only":true,"ttl":"10m"}"#,
        &format!("{base}/api/v0/desktop/link"),
    ]);
    let link: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(link["view_only"], json!(true), "{link}");
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{base}/?link=v1.")), "{url}");
    let out = curl(&[
        "--cacert",
        cacert,
        "-d",
        "{}",
        &format!("{base}/api/v0/desktop/link"),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("API token"),
        "link API without the token"
    );

    let clicks_before = rec.snapshot().clicks.len();
    b.open(&format!("{url}&scale=0&encodings=zrle"), 1024, 768);
    x.draw_picture(10);
    wait_equal(&x, "noVNC with a view-only link", WAIT, || b.pixels());
    assert_eq!(b.eval("window.deskdRfb.viewOnly"), json!(true));
    b.eval("window.deskdRfb.viewOnly = false");
    b.call(json!({"cmd": "click", "x": 150, "y": 170}));
    b.call(json!({"cmd": "type", "text": "nope"}));
    b.eval("window.deskdRfb.clipboardPasteFrom('from a view-only link')");
    // A resize request on the same connection: its refusal arrives after the server has
    // handled everything sent before it.
    b.eval(
        "(() => { const r = window.deskdRfb; r._pendingRemoteResize = true; \
         window.deskdRfb.constructor.messages.setDesktopSize(r._sock, 320, 240, r._screenID, r._screenFlags); })()",
    );
    b.call(json!({"cmd": "wait", "js": "true"}));
    let deadline = Instant::now() + WAIT;
    loop {
        let console = b.call(json!({"cmd": "console"}));
        if console.to_string().contains("administratively prohibited") {
            break;
        }
        assert!(Instant::now() < deadline, "no resize refusal: {console}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(x.size(), (640, 480), "a view-only link resized the screen");
    // A marker through the API, after the view-only input: once it arrives, anything the
    // view-only client sent would have arrived before it.
    let out = curl(&[
        "--cacert",
        cacert,
        "-H",
        auth,
        "-d",
        r#"{"action":"type","text":"Z"}"#,
        &format!("{base}/api/v0/desktop/action"),
    ]);
    assert!(out.status.success());
    rec.wait("marker", WAIT, |r| r.text.ends_with('Z'));
    let r = rec.snapshot();
    assert_eq!(r.text, "over tlsZ", "a view-only link typed into X");
    assert_eq!(
        r.clicks.len(),
        clicks_before,
        "a view-only link clicked in X"
    );
    let clip = x_output(&d.display, "xclip", &["-selection", "clipboard", "-o"]);
    assert_ne!(
        clip.as_deref(),
        Some("from a view-only link"),
        "a view-only link set the clipboard"
    );

    // Links refused: tampered, expired, revoked by a new secret. The WebSocket with the
    // good link is let in (101) without any password or token.
    let ws = |token: &str| ws_status(&ca, &format!("{base}/websockify?link={token}"));
    let good = deskd_link(&state, d.http, &["--ttl", "10m"]);
    let token = good.split("link=").nth(1).unwrap().to_string();
    assert_eq!(ws(&token), "101");
    let mut parts: Vec<&str> = token.split('.').collect();
    let later = (parts[1].parse::<u64>().unwrap() + 3600).to_string();
    parts[1] = &later;
    assert_eq!(ws(&parts.join(".")), "401", "tampered link");
    let short = deskd_link(&state, d.http, &["--ttl", "1s"]);
    let short = short.split("link=").nth(1).unwrap().to_string();
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(ws(&short), "401", "expired link");
    deskd_link(&state, d.http, &["--rotate-secret"]);
    assert_eq!(ws(&token), "401", "link after rotating the secret");
    let log = d.log_text();
    assert!(
        log.contains("link expired") && log.contains("invalid link"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&state);
}
