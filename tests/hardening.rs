//! Issue 13 regression tests: each reproduces one attack of the security pass against the real
//! server on a real Xvfb and asserts the outcome is now harmless. Waits are bounded by a hang
//! guard, never asserted as timings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod e2e_support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deskd::clipboard::Selection;
use deskd::display::RunningDesktop;
use deskd::server::{Config, Server};
use deskd::session::SessionConfig;
use deskd::transport::http::HttpLimits;
use rfb::messages::clipboard::flags as clip;
use rfb::messages::{ClientMessage, ExtClipboard};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::ConnectionExt as _;

/// Hang guard for waits in these tests (not a performance bound).
const PATIENCE: Duration = Duration::from_secs(30);

async fn guard<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Poll `cond` (bounded by the hang guard).
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    guard(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

struct Fx {
    desk: Option<RunningDesktop>,
    server: Option<Server>,
}

impl Fx {
    async fn start(config: Config) -> Fx {
        let desk = blocking(|| common::xvfb::desktop(320, 200)).await;
        let config = Config {
            listen_http: Some("127.0.0.1:0".parse().unwrap()),
            listen_rfb: Some("127.0.0.1:0".parse().unwrap()),
            display: desk.display(),
            ..config
        };
        let server = Server::start(desk.desktop.clone(), config).await.unwrap();
        Fx {
            desk: Some(desk),
            server: Some(server),
        }
    }

    fn desk(&self) -> &RunningDesktop {
        self.desk.as_ref().unwrap()
    }
    fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }
    fn http(&self) -> SocketAddr {
        self.server().http_addr.unwrap()
    }
    fn rfb(&self) -> SocketAddr {
        self.server().rfb_addr.unwrap()
    }

    async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        if let Some(d) = self.desk.take() {
            blocking(move || drop(d)).await;
        }
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`); the status code and
/// the whole response.
async fn http(addr: SocketAddr, head: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    guard("http response", s.read_to_end(&mut resp))
        .await
        .unwrap();
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let code = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, resp)
}

fn action(addr: SocketAddr, host: &str, extra: &str) -> String {
    let _ = addr;
    format!("POST /api/v0/desktop/action HTTP/1.1\r\nHost: {host}{extra}")
}

/// RFB 3.8 handshake with security None over TCP; the stream after ServerInit.
async fn rfb_client(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut v = [0u8; 12];
    s.read_exact(&mut v).await.unwrap();
    s.write_all(b"RFB 003.008\n").await.unwrap();
    let n = s.read_u8().await.unwrap();
    let mut types = vec![0u8; usize::from(n)];
    s.read_exact(&mut types).await.unwrap();
    assert!(types.contains(&1), "security None offered: {types:?}");
    s.write_all(&[1]).await.unwrap();
    assert_eq!(s.read_u32().await.unwrap(), 0);
    s.write_all(&[1]).await.unwrap();
    let mut init = [0u8; 24];
    s.read_exact(&mut init).await.unwrap();
    let len = u32::from_be_bytes([init[20], init[21], init[22], init[23]]) as usize;
    let mut name = vec![0u8; len];
    s.read_exact(&mut name).await.unwrap();
    s
}

async fn send(s: &mut TcpStream, m: ClientMessage) {
    let mut b = Vec::new();
    m.write(&mut b);
    s.write_all(&b).await.unwrap();
}

/// Item 1: `scroll_amount: i64::MIN` wrapped `abs()` and looped 2^63 times. Now a 400, and
/// the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i64_min_scroll_is_refused() {
    let fx = Fx::start(Config::default()).await;
    let host = fx.http().to_string();
    let body = r#"{"action":"scroll","coordinate":[5,5],"scroll_amount":-9223372036854775808}"#;
    let (code, resp) = http(fx.http(), &action(fx.http(), &host, ""), body).await;
    assert_eq!(code, 400, "{resp}");
    assert!(resp.contains("scroll_amount"), "{resp}");
    let ok = r#"{"action":"scroll","coordinate":[5,5],"scroll_amount":-2}"#;
    assert_eq!(
        http(fx.http(), &action(fx.http(), &host, ""), ok).await.0,
        200
    );
    fx.stop().await;
}

/// Item 2: a page on evil.example that rebinds its name to 127.0.0.1 sends its own Host (and
/// a matching Origin). Every route refuses it; `--allow-host` admits a name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_rebinding_hosts_are_refused() {
    let fx = Fx::start(Config::default()).await;
    let port = fx.http().port();
    let evil = format!("evil.example:{port}");
    let origin = format!("\r\nOrigin: http://{evil}");
    let mv = r#"{"action":"mouse_move","coordinate":[17,9]}"#;
    let ws = "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
    for (head, body) in [
        (action(fx.http(), &evil, &origin), mv),
        (
            format!("GET /api/v0/desktop/screenshot HTTP/1.1\r\nHost: {evil}{origin}"),
            "",
        ),
        (
            format!("GET /websockify HTTP/1.1\r\nHost: {evil}{origin}{ws}"),
            "",
        ),
        (
            format!("GET /api/v0/desktop/vnc HTTP/1.1\r\nHost: {evil}{origin}{ws}"),
            "",
        ),
        (format!("GET / HTTP/1.1\r\nHost: {evil}"), ""),
    ] {
        let (code, resp) = http(fx.http(), &head, body).await;
        assert_eq!(code, 403, "{head}\n{resp}");
    }
    let d = fx.desk().desktop.clone();
    let pos = blocking(move || d.input.pointer_position().unwrap()).await;
    assert_ne!(pos, (17, 9), "a refused request moved the pointer");
    // Loopback names pass.
    let local = format!("localhost:{port}");
    let (code, _) = http(fx.http(), &action(fx.http(), &local, ""), mv).await;
    assert_eq!(code, 200);
    fx.stop().await;

    let fx = Fx::start(Config {
        allowed_hosts: vec!["evil.example".into()],
        ..Config::default()
    })
    .await;
    let evil = format!("evil.example:{}", fx.http().port());
    let (code, _) = http(fx.http(), &action(fx.http(), &evil, ""), mv).await;
    assert_eq!(code, 200, "--allow-host admits the name");
    fx.stop().await;
}

/// Item 3: two clients that never read flood 1x1 non-incremental update requests at
/// scattered places. A bystander keeps getting every change meanwhile, and the attackers'
/// sessions stay alive (they are slow, not broken).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_request_floods_do_not_stall_other_clients() {
    let fx = Fx::start(Config::default()).await;
    let addr = fx.rfb();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut attackers = Vec::new();
    for a in 0..2u32 {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        attackers.push(std::thread::spawn(move || {
            let (mut s, w, h) = e2e_support::rfb_handshake(addr);
            let mut batch = Vec::new();
            let mut i = a;
            // Until the bystander is done, and at least the 80 k requests of the report.
            let mut mine = 0usize;
            while !stop.load(Ordering::Relaxed) || mine < 80_000 {
                batch.clear();
                for _ in 0..1000 {
                    i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    let (x, y) = ((i >> 8) as u16 % w, (i >> 20) as u16 % h);
                    batch.extend_from_slice(&[3, 0]);
                    for v in [x, y, 1, 1] {
                        batch.extend_from_slice(&v.to_be_bytes());
                    }
                }
                if s.write_all(&batch).is_err() {
                    break;
                }
                mine += 1000;
                sent.fetch_add(1000, Ordering::Relaxed);
            }
            s
        }));
    }
    until("the flood to start", || {
        sent.load(Ordering::Relaxed) >= 20_000
    })
    .await;

    let bystander = e2e_support::RawClient::connect(addr);
    common::xvfb::require_tool("xsetroot", "x11-xserver-utils");
    for i in 0..8u32 {
        let rgb = 0x102030 + i * 0x0a0b0c;
        let status = common::xvfb::x_command(fx.desk(), "xsetroot")
            .args(["-solid", &format!("#{rgb:06x}")])
            .status()
            .unwrap();
        assert!(status.success());
        let want = [(rgb >> 16) as u8, (rgb >> 8) as u8, rgb as u8];
        until("the bystander sees the change", || {
            let (_, _, px) = bystander.pixels();
            px[..3] == want && px[px.len() - 3..] == want
        })
        .await;
    }
    let during = sent.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let streams: Vec<_> = attackers.into_iter().map(|t| t.join().unwrap()).collect();
    let total = sent.load(Ordering::Relaxed);
    eprintln!("attackers sent {total} requests, {during} before the bystander was done");
    assert!(total >= 160_000);
    assert_eq!(fx.server().sessions().active(), 3);
    drop(streams);
    drop(bystander);
    fx.stop().await;
}

/// X's keymap: the keycodes down now.
fn keys_down(d: &RunningDesktop) -> Vec<u8> {
    let (conn, _) = d.server().connect().unwrap();
    let keys = conn.query_keymap().unwrap().reply().unwrap().keys;
    (0..=255u8)
        .filter(|k| keys[usize::from(k / 8)] & (1 << (k % 8)) != 0)
        .collect()
}

/// Item 4: Ctrl+Shift down, then a keysym X refuses, then a disconnect; `<` then Shift+`>`
/// released as `<`; a random key flood. After each client leaves, nothing is down in X.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_a_client_held_are_released_when_it_leaves() {
    let fx = Fx::start(Config::default()).await;
    let key = |down: bool, keysym: u32| ClientMessage::KeyEvent { down, keysym };
    let scenarios: Vec<Vec<ClientMessage>> = vec![
        vec![key(true, 0xffe3), key(true, 0xffe1), key(true, 0x2000_0000)],
        vec![
            key(true, 0x3c),
            key(true, 0xffe1),
            key(true, 0x3e),
            key(false, 0xffe1),
            key(false, 0x3c),
        ],
        {
            let mut r: u32 = 7;
            (0..3000)
                .map(|_| {
                    r = r.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    let sym = match (r >> 4) % 8 {
                        0 => [0xffe1, 0xffe3, 0xffe9, 0xffeb][(r as usize >> 8) % 4],
                        1 => 0x2000_0000 + (r >> 9),
                        _ => 0x20 + (r >> 9) % 0x5f,
                    };
                    key((r >> 7) & 1 == 0, sym)
                })
                .collect()
        },
    ];
    for (i, msgs) in scenarios.into_iter().enumerate() {
        let mut c = rfb_client(fx.rfb()).await;
        for m in msgs {
            send(&mut c, m).await;
        }
        // The session handles everything sent before the close, then releases.
        drop(c);
        let sessions = Arc::clone(fx.server().sessions());
        until("the session to end", || sessions.active() == 0).await;
        let d = fx.desk().desktop.clone();
        let mut down = Vec::new();
        guard("keys to be released", async {
            loop {
                let d = d.clone();
                blocking(move || d.input.sync().unwrap()).await;
                down = keys_down(fx.desk());
                if down.is_empty() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(down.is_empty(), "scenario {i}: keycodes {down:?} stuck");
    }
    fx.stop().await;
}

/// Item 5: connection caps per listener, and a header timeout. Idle RFB connections beyond the
/// cap are closed and never starve HTTP; half-sent headers are dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_per_listener_and_headers_time_out() {
    let fx = Fx::start(Config {
        max_rfb_clients: 4,
        http_limits: HttpLimits {
            max_connections: 8,
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
        },
        ..Config::default()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(TcpStream::connect(fx.rfb()).await.unwrap());
    }
    let mut closed = 0;
    for s in &mut idle {
        let mut b = [0u8; 12];
        match guard("greeting or close", s.read(&mut b)).await {
            Ok(0) | Err(_) => closed += 1,
            Ok(_) => {}
        }
    }
    assert_eq!(closed, 36, "all but 4 idle RFB connections closed");
    assert!(fx.server().sessions().active() <= 4);
    // HTTP is unaffected by the RFB cap.
    let host = fx.http().to_string();
    let mv = r#"{"action":"mouse_move","coordinate":[3,3]}"#;
    assert_eq!(
        http(fx.http(), &action(fx.http(), &host, ""), mv).await.0,
        200
    );
    // Half-sent headers: every one is closed by the server; afterwards requests are served.
    let mut half = Vec::new();
    for _ in 0..12 {
        let mut s = TcpStream::connect(fx.http()).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: 127").await.unwrap();
        half.push(s);
    }
    for s in &mut half {
        let mut rest = Vec::new();
        let _ = guard(
            "the server to drop a half-sent request",
            s.read_to_end(&mut rest),
        )
        .await;
    }
    assert_eq!(
        http(fx.http(), &action(fx.http(), &host, ""), mv).await.0,
        200
    );
    // A body trickled after the headers: refused once the body deadline passes, and the
    // connection is closed, so the slot comes back.
    let mut trickle = Vec::new();
    for _ in 0..12 {
        let mut s = TcpStream::connect(fx.http()).await.unwrap();
        let head = action(fx.http(), &host, "\r\nContent-Type: application/json");
        let head = format!("{head}\r\nContent-Length: 100\r\n\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(b"{\"action\":").await.unwrap();
        trickle.push(s);
    }
    for s in &mut trickle {
        let mut rest = Vec::new();
        let _ = guard(
            "the server to give up on a trickled body",
            s.read_to_end(&mut rest),
        )
        .await;
        let text = String::from_utf8_lossy(&rest);
        assert!(text.is_empty() || text.starts_with("HTTP/1.1 4"), "{text}");
    }
    assert_eq!(
        http(fx.http(), &action(fx.http(), &host, ""), mv).await.0,
        200
    );
    drop(idle);
    fx.stop().await;
}

/// Item 5: 8 concurrent screenshots at the largest size peaked at 2.2 GB. Oversized outputs
/// are refused, and at most two render at once, so peak memory stays bounded (a smaller size
/// here keeps the debug-built test short; the bound is the same).
#[test]
fn screenshots_are_bounded_in_size_and_concurrency() {
    let d = e2e_support::Deskd::start(640, 400, &["--no-demo"]);
    let get = |query: &str| -> u16 {
        let mut s = std::net::TcpStream::connect(d.http).unwrap();
        write!(
            s,
            "GET /api/v0/desktop/screenshot?{query} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            d.http
        )
        .unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        String::from_utf8_lossy(&resp[..12.min(resp.len())])
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(get("width=8192&height=4882"), 400, "over the pixel cap");
    let hwm = |pid: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    let before = hwm(d.pid());
    let codes: Vec<u16> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|_| s.spawn(|| get("width=4096&height=2048&format=jpeg")))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(codes.iter().all(|c| *c == 200), "{codes:?}");
    let grown = hwm(d.pid()).saturating_sub(before);
    eprintln!("deskd peak RSS grew {grown} KiB for 6 concurrent 4096x2048 screenshots");
    // One render of 8 M pixels takes about 40 MB: two at a time (measured ~87 MB), not six
    // (~230 MB with no limit).
    assert!(
        grown < 160 * 1024,
        "peak RSS grew {grown} KiB: screenshots are not bounded"
    );
}

/// Item 5: ExtendedClipboard clients asking for a large clipboard get one shared message,
/// compressed once (not once per client or request), off the async threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clipboard_is_compressed_once_for_every_client() {
    let fx = Fx::start(Config::default()).await;
    // 4 MB that does not compress to nothing.
    let mut r: u32 = 1;
    let text: String = (0..4 << 20)
        .map(|_| {
            r = r.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            char::from(b'a' + ((r >> 16) % 26) as u8)
        })
        .collect();
    let d = fx.desk().desktop.clone();
    let t = text.clone();
    blocking(move || d.clipboard.set_text(Selection::Clipboard, &t).unwrap()).await;
    let built = || deskd::metrics::global().clipboard_messages_built.get();
    let before = built();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let mut c = rfb_client(fx.rfb()).await;
        send(
            &mut c,
            ClientMessage::SetEncodings(vec![rfb::encoding::numbers::EXTENDED_CLIPBOARD]),
        )
        .await;
        for _ in 0..3 {
            send(
                &mut c,
                ClientMessage::ExtendedClipboard(ExtClipboard::Request {
                    formats: clip::TEXT,
                }),
            )
            .await;
        }
        clients.push(c);
    }
    // Every client gets three provides, byte-identical.
    let mut first: Option<Vec<u8>> = None;
    for c in &mut clients {
        let mut provides = 0;
        guard("the provides", async {
            while provides < 3 {
                let t = c.read_u8().await.unwrap();
                assert_eq!(t, 3, "only clipboard messages expected");
                let mut h = [0u8; 7];
                c.read_exact(&mut h).await.unwrap();
                let len = i32::from_be_bytes([h[3], h[4], h[5], h[6]]);
                let mut payload = vec![0u8; len.unsigned_abs() as usize];
                c.read_exact(&mut payload).await.unwrap();
                let m = ExtClipboard::parse(&payload, 16 << 20).unwrap();
                if let ExtClipboard::Provide { .. } = m {
                    assert_eq!(m.text().as_deref(), Some(text.as_str()));
                    match &first {
                        Some(f) => assert_eq!(f, &payload),
                        None => first = Some(payload),
                    }
                    provides += 1;
                }
            }
        })
        .await;
    }
    assert_eq!(built() - before, 1, "24 provides, one compression");
    fx.stop().await;
}

/// Item 6: X clients that start an INCR transfer of a large clipboard and never finish it, or
/// go away mid-way, leave nothing held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_vanished_incr_requestors_are_freed() {
    let fx = Fx::start(Config::default()).await;
    let d = fx.desk().desktop.clone();
    let text = "z".repeat(2 << 20);
    blocking(move || d.clipboard.set_text(Selection::Clipboard, &text).unwrap()).await;
    let open = || deskd::metrics::global().clipboard_incr_transfers.get();
    let server = Arc::clone(fx.desk().server());
    // 12 requestors start a transfer and stop; half of them destroy their window.
    let windows = blocking(move || {
        use x11rb::protocol::xproto::*;
        let (conn, screen) = server.connect().unwrap();
        let root = conn.setup().roots[screen].root;
        let atom = |n: &str| {
            conn.intern_atom(false, n.as_bytes())
                .unwrap()
                .reply()
                .unwrap()
                .atom
        };
        let (clipboard, utf8, prop) = (atom("CLIPBOARD"), atom("UTF8_STRING"), atom("HARDEN"));
        let mut ws = Vec::new();
        for _ in 0..12 {
            let w = conn.generate_id().unwrap();
            conn.create_window(
                0,
                w,
                root,
                0,
                0,
                1,
                1,
                0,
                WindowClass::INPUT_OUTPUT,
                0,
                &CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE),
            )
            .unwrap();
            conn.convert_selection(w, clipboard, utf8, prop, x11rb::CURRENT_TIME)
                .unwrap();
            ws.push(w);
        }
        conn.flush().unwrap();
        // Wait for every SelectionNotify; never delete the property (the INCR handshake).
        let mut notified = 0;
        while notified < ws.len() {
            if let x11rb::protocol::Event::SelectionNotify(_) = conn.wait_for_event().unwrap() {
                notified += 1;
            }
        }
        (conn, ws)
    })
    .await;
    until("transfers to open", || open() > 0).await;
    let peak = open();
    assert!(peak <= 8, "{peak} transfers open: not capped");
    let (conn, ws) = windows;
    for w in &ws[..6] {
        conn.destroy_window(*w).unwrap();
    }
    conn.flush().unwrap();
    // Destroyed requestors free theirs at once; the stalled rest time out.
    until("every transfer to be freed", || open() == 0).await;
    drop(conn);
    fx.stop().await;
}

/// Item 7: with an API token, the RFB WebSocket paths need it too: a header (proxies, the
/// Coder case), or for the viewer a same-site cookie set by visiting it with `?token=` once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_token_covers_rfb_over_websocket() {
    let fx = Fx::start(Config {
        api_token: Some("s3cret".into()),
        ..Config::default()
    })
    .await;
    let host = fx.http().to_string();
    let upgrade = |path: &str, extra: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=={extra}"
        )
    };
    for path in ["/websockify", "/api/v0/desktop/vnc"] {
        assert_eq!(
            http(fx.http(), &upgrade(path, ""), "").await.0,
            401,
            "{path}"
        );
        let bad = "\r\nAuthorization: Bearer nope";
        assert_eq!(
            http(fx.http(), &upgrade(path, bad), "").await.0,
            401,
            "{path}"
        );
    }
    // Header (Coder's proxy) and cookie both upgrade and speak RFB.
    for extra in [
        "\r\nAuthorization: Bearer s3cret",
        "\r\nCookie: deskd_token=s3cret",
    ] {
        let mut s = TcpStream::connect(fx.http()).await.unwrap();
        let req = format!("{}\r\n\r\n", upgrade("/api/v0/desktop/vnc", extra));
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        guard("101 and the RFB version", async {
            while !String::from_utf8_lossy(&got).contains("RFB 003.008") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&buf[..n]);
            }
        })
        .await;
        assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 101"));
    }
    // The viewer link with the token sets the cookie and drops the token from the URL.
    let (code, resp) = http(
        fx.http(),
        &format!("GET /?token=s3cret&path=websockify HTTP/1.1\r\nHost: {host}"),
        "",
    )
    .await;
    assert_eq!(code, 303, "{resp}");
    let lower = resp.to_ascii_lowercase();
    assert!(
        lower.contains("\r\nlocation: /?path=websockify\r\n"),
        "{resp}"
    );
    assert!(lower.contains("set-cookie: deskd_token=s3cret;"), "{resp}");
    assert!(
        lower.contains("httponly") && lower.contains("samesite=strict"),
        "{resp}"
    );
    // Secure only over HTTPS (tests/e2e_tls.rs): a browser would drop it on plain HTTP.
    assert!(!lower.contains("; secure"), "{resp}");
    let (code, _) = http(
        fx.http(),
        &format!("GET /?token=guess HTTP/1.1\r\nHost: {host}"),
        "",
    )
    .await;
    assert_eq!(code, 401);
    fx.stop().await;
}

/// Item 8: password guessing is throttled per address: after five failures even the right
/// password is refused, with a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_throttled() {
    let fx = Fx::start(Config {
        session: SessionConfig {
            password: Some("right".into()),
            ..SessionConfig::default()
        },
        ..Config::default()
    })
    .await;
    async fn attempt(addr: SocketAddr, password: &str) -> Result<u32, String> {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut v = [0u8; 12];
        s.read_exact(&mut v).await.unwrap();
        s.write_all(b"RFB 003.008\n").await.unwrap();
        let n = s.read_u8().await.unwrap();
        if n == 0 {
            let len = s.read_u32().await.unwrap() as usize;
            let mut reason = vec![0u8; len];
            s.read_exact(&mut reason).await.unwrap();
            return Err(String::from_utf8_lossy(&reason).into_owned());
        }
        let mut types = vec![0u8; usize::from(n)];
        s.read_exact(&mut types).await.unwrap();
        s.write_all(&[2]).await.unwrap();
        let mut challenge = [0u8; 16];
        s.read_exact(&mut challenge).await.unwrap();
        let r = rfb::auth::encrypt_challenge(password.as_bytes(), &challenge);
        s.write_all(&r).await.unwrap();
        Ok(s.read_u32().await.unwrap())
    }
    assert_eq!(attempt(fx.rfb(), "right").await, Ok(0));
    for _ in 0..5 {
        assert_eq!(attempt(fx.rfb(), "wrong").await, Ok(1));
    }
    let refused = attempt(fx.rfb(), "right").await;
    assert!(
        matches!(&refused, Err(r) if r.contains("Too many authentication failures")),
        "{refused:?}"
    );
    fx.stop().await;
}

/// Item 9: secrets from files; a secret on the command line gets a warning.
#[test]
fn secrets_come_from_files_and_the_command_line_warns() {
    let dir = std::env::temp_dir().join(format!("deskd-harden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "t0ken-from-file\n").unwrap();
    let d = e2e_support::Deskd::start(
        320,
        200,
        &[
            "--no-demo",
            "--password",
            "pw",
            "--api-token-file",
            token_file.to_str().unwrap(),
        ],
    );
    let post = |auth: &str| -> String {
        let mut s = std::net::TcpStream::connect(d.http).unwrap();
        let body = r#"{"action":"cursor_position"}"#;
        write!(
            s,
            "POST /api/v0/desktop/action HTTP/1.1\r\nHost: {}\r\n{auth}Content-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            d.http,
            body.len()
        )
        .unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        r
    };
    assert!(post("").starts_with("HTTP/1.1 401"));
    assert!(post("Authorization: Bearer t0ken-from-file\r\n").starts_with("HTTP/1.1 200"));
    let log = d.log_text();
    assert!(
        log.contains("--password was given on the command line"),
        "{log}"
    );
    assert!(!log.contains("--api-token was given"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 10: with the X server stopped, actions and screenshots answer 503 after a bounded wait
/// instead of hanging; once X runs again, they work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_x_server_gives_503_then_recovers() {
    let fx = Fx::start(Config::default()).await;
    let host = fx.http().to_string();
    let pid = fx.desk().xvfb_pid().unwrap() as i32;
    let mv = r#"{"action":"mouse_move","coordinate":[4,4]}"#;
    assert_eq!(
        http(fx.http(), &action(fx.http(), &host, ""), mv).await.0,
        200
    );
    signal(pid, libc::SIGSTOP);
    let shot = format!("GET /api/v0/desktop/screenshot HTTP/1.1\r\nHost: {host}");
    let act = action(fx.http(), &host, "");
    let results = guard("answers while X is stopped", async {
        tokio::join!(http(fx.http(), &act, mv), http(fx.http(), &shot, ""),)
    })
    .await;
    signal(pid, libc::SIGCONT);
    assert_eq!(results.0 .0, 503, "{}", results.0 .1);
    assert_eq!(results.1 .0, 503, "{}", results.1 .1);
    guard("recovery", async {
        while http(fx.http(), &action(fx.http(), &host, ""), mv).await.0 != 200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    fx.stop().await;
}

fn signal(pid: i32, sig: i32) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Item 11: a WebSocket protocol violation (a reserved opcode) closes with 1002.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_protocol_violations_close_with_1002() {
    let fx = Fx::start(Config::default()).await;
    let mut s = TcpStream::connect(fx.http()).await.unwrap();
    let req = format!(
        "GET /websockify HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        fx.http()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    guard("101", async {
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    // FIN + opcode 0x3 (reserved), masked, empty.
    s.write_all(&[0x83, 0x80, 1, 2, 3, 4]).await.unwrap();
    let mut rest = Vec::new();
    let _ = guard("close", s.read_to_end(&mut rest)).await;
    let all: Vec<u8> = got.into_iter().chain(rest).collect();
    // Find the server's close frame (0x88, len, code).
    let close = all
        .windows(4)
        .find(|w| w[0] == 0x88 && w[1] >= 2)
        .map(|w| u16::from_be_bytes([w[2], w[3]]));
    assert_eq!(close, Some(1002), "{:?}", String::from_utf8_lossy(&all));
    fx.stop().await;
}

/// Item 11: when the managed Xvfb dies and is restarted, RFB clients stay connected (as the
/// README says) and get the new screen's pixels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfb_clients_stay_connected_across_an_xvfb_restart() {
    let fx = Fx::start(Config::default()).await;
    let client = e2e_support::RawClient::connect(fx.rfb());
    until("the first update", || {
        client.updates.load(Ordering::Relaxed) > 0
    })
    .await;
    let pid = fx.desk().xvfb_pid().unwrap() as i32;
    signal(pid, libc::SIGKILL);
    let status = Arc::clone(&fx.desk().desktop.status);
    until("the restart", || {
        let s = status.status();
        s.restarts == 1 && s.state == "running"
    })
    .await;
    common::xvfb::require_tool("xsetroot", "x11-xserver-utils");
    guard("the client sees the new server's pixels", async {
        // Alternate colours: a paint made before capture reattached is never lost for good.
        for i in 0u32.. {
            let rgb = if i % 2 == 0 { 0x123456 } else { 0x654321 };
            let status = common::xvfb::x_command(fx.desk(), "xsetroot")
                .args(["-solid", &format!("#{rgb:06x}")])
                .status()
                .unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (_, _, px) = client.pixels();
            let want = [(rgb >> 16) as u8, (rgb >> 8) as u8, rgb as u8];
            if status.success() && px[..3] == want {
                return;
            }
        }
    })
    .await;
    assert_eq!(
        fx.server().sessions().active(),
        1,
        "the client stayed connected"
    );
    drop(client);
    fx.stop().await;
}
