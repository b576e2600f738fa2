//! The running server against a real Xvfb: RFB clients over TCP and WebSocket get the frame's
//! pixels, bad clients are cut off without hurting others, and a client that stops reading
//! neither delays others nor makes memory grow.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use deskd::capture::Frame;
use deskd::display::RunningDesktop;
use deskd::server::{Config, Server};
use deskd::session::SessionConfig;
use futures_util::{SinkExt, StreamExt};
use rfb::encoding::numbers as enc;
use rfb::messages::clipboard::flags as clip;
use rfb::messages::{ClientMessage, ExtClipboard, PointerEvent, Screen};
use rfb::Rect;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Tests that make (or may make) protocol errors hold this, so the one counting them sees
/// only its own.
static PROTOCOL_ERRORS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Hang guard for waits in these tests (not a performance bound).
const PATIENCE: Duration = Duration::from_secs(30);

async fn guard<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

struct Fixture {
    desk: Option<RunningDesktop>,
    server: Option<Server>,
}

impl Fixture {
    async fn start(width: u16, height: u16, session: SessionConfig) -> Fixture {
        let desk = tokio::task::spawn_blocking(move || common::xvfb::desktop(width, height))
            .await
            .unwrap();
        let config = Config {
            listen_http: Some("127.0.0.1:0".parse().unwrap()),
            listen_rfb: Some("127.0.0.1:0".parse().unwrap()),
            display: desk.display(),
            session,
            ..Config::default()
        };
        let server = Server::start(desk.desktop.clone(), config).await.unwrap();
        Fixture {
            desk: Some(desk),
            server: Some(server),
        }
    }

    fn desk(&self) -> &RunningDesktop {
        self.desk.as_ref().unwrap()
    }

    fn rfb(&self) -> SocketAddr {
        self.server.as_ref().unwrap().rfb_addr.unwrap()
    }

    fn http(&self) -> SocketAddr {
        self.server.as_ref().unwrap().http_addr.unwrap()
    }

    /// Paint the root window one colour and wait until capture has it.
    async fn paint(&self, rgb: u32) {
        common::xvfb::require_tool("xsetroot", "x11-xserver-utils");
        let status = common::xvfb::x_command(self.desk(), "xsetroot")
            .args(["-solid", &format!("#{rgb:06x}")])
            .status()
            .unwrap();
        assert!(status.success(), "xsetroot failed");
        let frames = Arc::clone(&self.desk().desktop.frames);
        guard("capture to show the colour", async {
            loop {
                let f = Arc::clone(&frames);
                tokio::task::spawn_blocking(move || f.refresh())
                    .await
                    .unwrap()
                    .unwrap();
                let (_, frame) = frames.store().snapshot();
                if frame.pixel(0, 0) == rgb && frame.pixel(frame.width - 1, frame.height - 1) == rgb
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    fn frame(&self) -> Arc<Frame> {
        self.desk().desktop.frames.store().snapshot().1
    }

    async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        if let Some(d) = self.desk.take() {
            tokio::task::spawn_blocking(move || drop(d)).await.unwrap();
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

enum Io {
    Tcp(TcpStream),
    Ws(Box<Ws>),
}

/// A small RFB client: Raw encoding only, native pixel format.
struct Client {
    io: Io,
    buf: Vec<u8>,
    width: u16,
    height: u16,
    fb: Vec<u32>,
    /// Send every outgoing message one byte per WebSocket frame.
    dribble: bool,
    /// Server messages and pseudo-rectangles seen, other than pixels.
    events: Vec<Msg>,
}

/// What a server message was.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Msg {
    Update,
    Bell,
    CutText(Vec<u8>),
    ExtClipboard(Vec<u8>),
    EndOfContinuousUpdates,
    Fence(u32, Vec<u8>),
    ExtendedDesktopSize {
        reason: u16,
        status: u16,
        width: u16,
        height: u16,
    },
    Cursor {
        width: u16,
        height: u16,
    },
    Ack(i32),
}

impl Client {
    async fn tcp(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).await.unwrap();
        Client::new(Io::Tcp(s))
    }

    async fn ws(addr: SocketAddr, path: &str, protocol: Option<&str>) -> (Client, Option<String>) {
        let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
        if let Some(p) = protocol {
            req.headers_mut()
                .insert("Sec-WebSocket-Protocol", p.parse().unwrap());
        }
        let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        let echoed = resp
            .headers()
            .get("Sec-WebSocket-Protocol")
            .map(|v| v.to_str().unwrap().to_owned());
        (Client::new(Io::Ws(Box::new(ws))), echoed)
    }

    fn new(io: Io) -> Client {
        Client {
            io,
            buf: Vec::new(),
            width: 0,
            height: 0,
            fb: Vec::new(),
            dribble: false,
            events: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        match &mut self.io {
            Io::Tcp(s) => s.write_all(bytes).await.unwrap(),
            Io::Ws(ws) => {
                if self.dribble {
                    for b in bytes {
                        ws.send(Message::binary(vec![*b])).await.unwrap();
                    }
                } else {
                    ws.send(Message::binary(bytes.to_vec())).await.unwrap();
                }
            }
        }
    }

    async fn msg(&mut self, m: ClientMessage) {
        let mut b = Vec::new();
        m.write(&mut b);
        self.send(&b).await;
    }

    /// More bytes from the server; `false` when the connection is closed.
    async fn fill(&mut self) -> bool {
        match &mut self.io {
            Io::Tcp(s) => {
                let mut chunk = vec![0u8; 64 * 1024];
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => false,
                    Ok(n) => {
                        self.buf.extend_from_slice(&chunk[..n]);
                        true
                    }
                }
            }
            Io::Ws(ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) => {
                        self.buf.extend_from_slice(&b);
                        return true;
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return false,
                    Some(Ok(_)) => {}
                }
            },
        }
    }

    async fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().await, "connection closed while reading");
        }
        self.buf.drain(..n).collect()
    }

    async fn u8(&mut self) -> u8 {
        self.take(1).await[0]
    }
    async fn u16(&mut self) -> u16 {
        let b = self.take(2).await;
        u16::from_be_bytes([b[0], b[1]])
    }
    async fn u32(&mut self) -> u32 {
        let b = self.take(4).await;
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// RFB 3.8, security None, shared; Raw, DesktopSize and LastRect.
    async fn handshake(&mut self) {
        assert_eq!(self.take(12).await, b"RFB 003.008\n");
        self.send(b"RFB 003.008\n").await;
        let n = self.u8().await;
        let types = self.take(usize::from(n)).await;
        assert!(types.contains(&1), "security None offered: {types:?}");
        self.send(&[1]).await;
        assert_eq!(self.u32().await, 0, "SecurityResult OK");
        self.init().await;
        self.msg(ClientMessage::SetEncodings(vec![
            enc::RAW,
            enc::DESKTOP_SIZE,
            enc::LAST_RECT,
        ]))
        .await;
    }

    /// RFB 3.8 with VNC authentication; returns the SecurityResult (0 = OK). On success the
    /// init exchange follows.
    async fn handshake_vnc_auth(&mut self, password: &str) -> u32 {
        assert_eq!(self.take(12).await, b"RFB 003.008\n");
        self.send(b"RFB 003.008\n").await;
        let n = self.u8().await;
        let types = self.take(usize::from(n)).await;
        assert_eq!(types, vec![2], "only VNC authentication offered");
        self.send(&[2]).await;
        let challenge: [u8; 16] = self.take(16).await.try_into().unwrap();
        let response = rfb::auth::encrypt_challenge(password.as_bytes(), &challenge);
        self.send(&response).await;
        let result = self.u32().await;
        if result == 0 {
            self.init().await;
        }
        result
    }

    /// ClientInit (shared) and ServerInit.
    async fn init(&mut self) {
        self.send(&[1]).await;
        self.width = self.u16().await;
        self.height = self.u16().await;
        let _pf = self.take(16).await;
        let len = self.u32().await as usize;
        let _name = self.take(len).await;
        self.fb = vec![0; usize::from(self.width) * usize::from(self.height)];
    }

    async fn request(&mut self, incremental: bool) {
        let rect = Rect::new(0, 0, self.width, self.height);
        self.msg(ClientMessage::FramebufferUpdateRequest { incremental, rect })
            .await;
    }

    /// Read server messages until one FramebufferUpdate has been applied; others are recorded.
    async fn update(&mut self) {
        loop {
            if let Msg::Update = self.message().await {
                return;
            }
        }
    }

    /// Read and apply one server message.
    async fn message(&mut self) -> Msg {
        match self.u8().await {
            0 => {}
            2 => return Msg::Bell,
            3 => {
                self.take(3).await;
                let len = self.u32().await as i32;
                let data = self.take(len.unsigned_abs() as usize).await;
                let m = if len < 0 {
                    Msg::ExtClipboard(data)
                } else {
                    Msg::CutText(data)
                };
                self.events.push(m.clone());
                return m;
            }
            150 => {
                self.events.push(Msg::EndOfContinuousUpdates);
                return Msg::EndOfContinuousUpdates;
            }
            248 => {
                self.take(3).await;
                let flags = self.u32().await;
                let len = usize::from(self.u8().await);
                let payload = self.take(len).await;
                let m = Msg::Fence(flags, payload);
                self.events.push(m.clone());
                return m;
            }
            t => panic!("unexpected server message type {t}"),
        }
        self.take(1).await;
        let count = self.u16().await;
        let mut i = 0;
        while count == 0xFFFF || i < count {
            i += 1;
            let (x, y, w, h) = (
                self.u16().await,
                self.u16().await,
                self.u16().await,
                self.u16().await,
            );
            let encoding = self.u32().await as i32;
            match encoding {
                enc::RAW => {
                    let data = self.take(usize::from(w) * usize::from(h) * 4).await;
                    for row in 0..usize::from(h) {
                        for col in 0..usize::from(w) {
                            let p = &data[(row * usize::from(w) + col) * 4..][..4];
                            let px = u32::from_le_bytes([p[0], p[1], p[2], 0]);
                            let at = (usize::from(y) + row) * usize::from(self.width)
                                + usize::from(x)
                                + col;
                            self.fb[at] = px;
                        }
                    }
                }
                enc::DESKTOP_SIZE => self.resize(w, h),
                enc::EXTENDED_DESKTOP_SIZE => {
                    let n = usize::from(self.u8().await);
                    self.take(3 + 16 * n).await;
                    // x is the reason, y the status.
                    self.events.push(Msg::ExtendedDesktopSize {
                        reason: x,
                        status: y,
                        width: w,
                        height: h,
                    });
                    if y == 0 {
                        self.resize(w, h);
                    }
                }
                enc::CURSOR => {
                    let len = usize::from(w) * usize::from(h) * 4
                        + usize::from(w).div_ceil(8) * usize::from(h);
                    self.take(len).await;
                    self.events.push(Msg::Cursor {
                        width: w,
                        height: h,
                    });
                }
                enc::QEMU_EXTENDED_KEY_EVENT | enc::EXTENDED_MOUSE_BUTTONS => {
                    self.events.push(Msg::Ack(encoding));
                }
                enc::LAST_RECT => break,
                e => panic!("unexpected rectangle encoding {e}"),
            }
        }
        Msg::Update
    }

    fn resize(&mut self, w: u16, h: u16) {
        if (w, h) == (self.width, self.height) {
            return;
        }
        self.width = w;
        self.height = h;
        self.fb = vec![0; usize::from(w) * usize::from(h)];
    }

    /// True when the decoded framebuffer equals `frame`.
    fn matches(&self, frame: &Frame) -> bool {
        if (self.width, self.height) != (frame.width, frame.height) {
            return false;
        }
        (0..frame.height).all(|y| {
            (0..frame.width).all(|x| {
                self.fb[usize::from(y) * usize::from(self.width) + usize::from(x)]
                    == frame.pixel(x, y)
            })
        })
    }

    /// Wait for the server to close the connection (reading and discarding).
    async fn closed(&mut self) {
        while self.fill().await {
            self.buf.clear();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_websocket_clients_get_the_frame() {
    let fx = Fixture::start(320, 200, SessionConfig::default()).await;
    fx.paint(0x336699).await;

    // Beyond loopback only with a password or --insecure.
    let exposed = Config {
        listen_http: None,
        listen_rfb: Some("0.0.0.0:0".parse().unwrap()),
        ..Config::default()
    };
    let refused = Server::start(fx.desk().desktop.clone(), exposed.clone()).await;
    assert!(matches!(
        refused,
        Err(deskd::server::ServerError::Exposed(_))
    ));
    let insecure = Config {
        insecure: true,
        ..exposed
    };
    let open = Server::start(fx.desk().desktop.clone(), insecure)
        .await
        .unwrap();
    assert!(!open.rfb_addr.unwrap().ip().is_loopback());
    open.shutdown().await;

    let mut tcp = Client::tcp(fx.rfb()).await;
    guard("tcp handshake", tcp.handshake()).await;
    tcp.request(false).await;
    guard("tcp update", tcp.update()).await;
    assert!(
        tcp.matches(&fx.frame()),
        "TCP client pixels equal the frame"
    );
    assert_eq!(tcp.fb[0], 0x336699);

    // The browser form: `binary` requested and echoed; bytes dribbled one per frame.
    let (mut ws, echoed) = Client::ws(fx.http(), "/websockify", Some("binary")).await;
    assert_eq!(echoed.as_deref(), Some("binary"));
    ws.dribble = true;
    guard("ws handshake", ws.handshake()).await;
    ws.request(false).await;
    guard("ws update", ws.update()).await;
    assert!(
        ws.matches(&fx.frame()),
        "WebSocket client pixels equal the frame"
    );

    // The proxy form: no subprotocol requested, none echoed.
    let (mut plain, echoed) = Client::ws(fx.http(), "/api/v0/desktop/vnc", None).await;
    assert_eq!(echoed, None);
    guard("ws handshake", plain.handshake()).await;
    plain.request(false).await;
    guard("ws update", plain.update()).await;
    assert!(plain.matches(&fx.frame()));

    // A change reaches an incremental request.
    fx.paint(0xcc3300).await;
    tcp.request(true).await;
    guard("tcp incremental update", async {
        while !tcp.matches(&fx.frame()) {
            tcp.update().await;
            tcp.request(true).await;
        }
    })
    .await;
    assert_eq!(tcp.fb[0], 0xcc3300);

    // A page from another origin may not drive the desktop; the viewer's own origin may.
    let mut req = format!("ws://{}/websockify", fx.http())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 403)
        }
        other => panic!("cross-origin WebSocket accepted: {:?}", other.map(|_| ())),
    }
    let mut req = format!("ws://{}/websockify", fx.http())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Origin", format!("http://{}", fx.http()).parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());

    // A text frame is refused with a close.
    let (ws2, _) = Client::ws(fx.http(), "/websockify", None).await;
    let Io::Ws(mut ws2) = ws2.io else {
        unreachable!()
    };
    ws2.send(Message::text("hello")).await.unwrap();
    let close = guard("text refused", async {
        loop {
            match ws2.next().await {
                Some(Ok(Message::Close(c))) => return c,
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await;
    let close = close.expect("close frame with a reason");
    assert_eq!(u16::from(close.code), 1003);
    assert!(close.reason.contains("text"), "{}", close.reason);

    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_disconnects_only_that_client() {
    let _serial = PROTOCOL_ERRORS.lock().await;
    let fx = Fixture::start(320, 200, SessionConfig::default()).await;
    fx.paint(0x102030).await;
    let errors_before = deskd::metrics::global().rfb_protocol_errors.get();

    let mut good = Client::tcp(fx.rfb()).await;
    guard("handshake", good.handshake()).await;
    good.request(false).await;
    guard("first update", good.update()).await;

    // Unknown message type.
    let mut bad = Client::tcp(fx.rfb()).await;
    guard("handshake", bad.handshake()).await;
    bad.send(&[77, 0, 0, 0]).await;
    guard("unknown type disconnects", bad.closed()).await;

    // Oversized cut text: refused from the length field alone.
    let mut bad = Client::tcp(fx.rfb()).await;
    guard("handshake", bad.handshake()).await;
    let mut m = vec![6, 0, 0, 0];
    m.extend_from_slice(&(200u32 << 20).to_be_bytes());
    bad.send(&m).await;
    guard("oversized cut text disconnects", bad.closed()).await;

    // Colour-map pixel format, over WebSocket.
    let (mut bad, _) = Client::ws(fx.http(), "/websockify", None).await;
    guard("handshake", bad.handshake()).await;
    let mut m = vec![0, 0, 0, 0, 8, 8, 0, 0];
    m.extend_from_slice(&[0; 12]);
    bad.send(&m).await;
    guard("colour map disconnects", bad.closed()).await;

    // An update request outside the screen.
    let mut bad = Client::tcp(fx.rfb()).await;
    guard("handshake", bad.handshake()).await;
    bad.msg(ClientMessage::FramebufferUpdateRequest {
        incremental: false,
        rect: Rect::new(300, 0, 100, 10),
    })
    .await;
    guard("rect outside disconnects", bad.closed()).await;

    // Exactly once each (other tests making protocol errors wait for PROTOCOL_ERRORS).
    assert_eq!(
        deskd::metrics::global().rfb_protocol_errors.get(),
        errors_before + 4,
        "each protocol error is counted once"
    );

    // The good client carries on.
    fx.paint(0x405060).await;
    good.request(true).await;
    guard("good client still updated", async {
        while !good.matches(&fx.frame()) {
            good.update().await;
            good.request(true).await;
        }
    })
    .await;
    assert_eq!(good.fb[0], 0x405060);
    fx.stop().await;
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_client_does_not_delay_others_and_memory_stays_bounded() {
    let fx = Fixture::start(1024, 768, SessionConfig::default()).await;
    fx.paint(0x000000).await;

    // The stalled client asks for full updates over and over and never reads a byte.
    let mut stalled = Client::tcp(fx.rfb()).await;
    guard("handshake", stalled.handshake()).await;
    let mut reqs = Vec::new();
    for _ in 0..200 {
        ClientMessage::FramebufferUpdateRequest {
            incremental: false,
            rect: Rect::new(0, 0, 1024, 768),
        }
        .write(&mut reqs);
    }
    stalled.send(&reqs).await;

    let mut live = Client::tcp(fx.rfb()).await;
    guard("handshake", live.handshake()).await;
    live.request(false).await;
    guard("first update", live.update()).await;
    let rss_start = rss_kib();

    // 3 MB of raw pixels per full frame; 30 colours are ~100 MB if anything queued them.
    for i in 0..30u32 {
        let rgb = 0x010101 * (i * 8 + 7);
        fx.paint(rgb).await;
        stalled.send(&reqs[..10]).await;
        live.request(true).await;
        guard("live client sees each colour", async {
            while !live.matches(&fx.frame()) {
                live.update().await;
                live.request(true).await;
            }
        })
        .await;
        assert_eq!(live.fb[0], rgb);
    }
    let grown = rss_kib().saturating_sub(rss_start);
    eprintln!("rss start {rss_start} KiB, grown {grown} KiB");
    assert!(
        grown < 64 * 1024,
        "memory grew by {grown} KiB while a client was stalled"
    );
    // The stalled client is still connected (it is slow, not broken).
    assert_eq!(fx.server.as_ref().unwrap().sessions().active(), 2);
    // Now it reads. The session never queued updates for it: what it gets before the answer
    // to a fence sent now is what the socket buffers held plus the one update in flight, not
    // one update per request it made.
    stalled
        .msg(ClientMessage::Fence {
            flags: 1 << 31,
            payload: b"end".to_vec(),
        })
        .await;
    let mut updates = 0;
    guard("stalled client drains", async {
        loop {
            match stalled.message().await {
                Msg::Update => updates += 1,
                Msg::Fence(_, p) if p == b"end" => return,
                _ => {}
            }
        }
    })
    .await;
    // The kernel may buffer up to its socket maxima; beyond that, only the update in flight
    // and one more with everything merged.
    let max_buffer = |path: &str| -> usize {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.split_whitespace().last().and_then(|v| v.parse().ok()))
            .unwrap_or(8 << 20)
    };
    let frame_bytes = 1024 * 768 * 4;
    let bound = (max_buffer("/proc/sys/net/ipv4/tcp_rmem")
        + max_buffer("/proc/sys/net/ipv4/tcp_wmem"))
        / frame_bytes
        + 3;
    eprintln!("stalled client: {updates} updates before the fence answer (bound {bound})");
    assert!(
        updates <= bound,
        "{updates} full-frame updates were queued for a stalled client (bound {bound})"
    );
    drop(stalled);
    fx.stop().await;
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_view_only_input_and_clipboard() {
    let fx = Fixture::start(
        320,
        200,
        SessionConfig {
            password: Some("secret".into()),
            view_only_password: Some("look".into()),
            ..SessionConfig::default()
        },
    )
    .await;
    let desktop = fx.desk().desktop.clone();

    let mut wrong = Client::tcp(fx.rfb()).await;
    assert_ne!(guard("auth", wrong.handshake_vnc_auth("wrong")).await, 0);
    guard("refused client closed", wrong.closed()).await;

    let mut full = Client::tcp(fx.rfb()).await;
    assert_eq!(guard("auth", full.handshake_vnc_auth("secret")).await, 0);
    full.msg(ClientMessage::SetEncodings(vec![enc::RAW])).await;
    let mut view = Client::tcp(fx.rfb()).await;
    assert_eq!(guard("auth", view.handshake_vnc_auth("look")).await, 0);
    view.msg(ClientMessage::SetEncodings(vec![enc::RAW])).await;

    // The full client moves the pointer.
    let pointer = |x, y| {
        ClientMessage::PointerEvent(PointerEvent {
            x,
            y,
            mask: 0,
            extended_mask: None,
        })
    };
    full.msg(pointer(50, 60)).await;
    let d = desktop.clone();
    guard("pointer moved", async {
        loop {
            let d = d.clone();
            if blocking(move || d.input.pointer_position().unwrap()).await == (50, 60) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    // The view-only client's pointer and clipboard are ignored. Its update round trip proves
    // the session handled both messages before the full client's clipboard text is sent.
    view.msg(pointer(200, 150)).await;
    view.msg(ClientMessage::CutText("from-view".into())).await;
    view.request(false).await;
    guard("view-only update", view.update()).await;
    full.msg(ClientMessage::CutText("from-full".into())).await;
    let d = desktop.clone();
    guard("client text reaches the X clipboard", async {
        loop {
            let d = d.clone();
            let text = blocking(move || {
                d.clipboard
                    .get_text(deskd::clipboard::Selection::Clipboard)
                    .unwrap()
            })
            .await;
            assert_ne!(text.as_deref(), Some("from-view"), "view-only text applied");
            if text.as_deref() == Some("from-full") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let d = desktop.clone();
    assert_eq!(
        blocking(move || d.input.pointer_position().unwrap()).await,
        (50, 60),
        "view-only pointer event ignored"
    );

    // An X application copies: both clients get the text.
    common::xvfb::require_tool("xclip", "xclip");
    let mut xclip = common::xvfb::x_command(fx.desk(), "xclip")
        .args(["-selection", "clipboard"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = xclip.stdin.take().unwrap();
        stdin.write_all("from-x ü".as_bytes()).unwrap();
    }
    let _ = xclip.wait();
    for c in [&mut full, &mut view] {
        guard("X clipboard reaches the client", async {
            while !c.events.contains(&Msg::CutText(
                "from-x \u{fc}".chars().map(|ch| ch as u8).collect(),
            )) {
                c.message().await;
            }
        })
        .await;
    }
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_continuous_updates_and_fences() {
    let fx = Fixture::start(640, 480, SessionConfig::default()).await;
    fx.paint(0x224466).await;

    let mut a = Client::tcp(fx.rfb()).await;
    guard("handshake", a.handshake()).await;
    a.msg(ClientMessage::SetEncodings(vec![
        enc::RAW,
        enc::EXTENDED_DESKTOP_SIZE,
        enc::DESKTOP_SIZE,
        enc::LAST_RECT,
        enc::CONTINUOUS_UPDATES,
        enc::FENCE,
        enc::QEMU_EXTENDED_KEY_EVENT,
        enc::CURSOR,
    ]))
    .await;
    let mut b = Client::tcp(fx.rfb()).await;
    guard("handshake", b.handshake()).await;

    a.request(false).await;
    guard("first update", a.update()).await;
    assert!(a.matches(&fx.frame()));
    // Announcing ExtendedDesktopSize gets a rect saying so; QEMU key events get their ack;
    // ContinuousUpdates and Fence support are announced.
    assert!(a.events.iter().any(|e| matches!(
        e,
        Msg::ExtendedDesktopSize {
            reason: 0,
            status: 0,
            width: 640,
            height: 480
        }
    )));
    assert!(a.events.contains(&Msg::Ack(enc::QEMU_EXTENDED_KEY_EVENT)));
    assert!(a.events.contains(&Msg::EndOfContinuousUpdates));
    assert!(a.events.contains(&Msg::Fence(1 << 31, vec![])));
    // Capture has the X cursor from the start; a client that asked gets it.
    assert!(
        a.events
            .iter()
            .any(|e| matches!(e, Msg::Cursor { width, height } if *width > 0 && *height > 0)),
        "cursor sent: {:?}",
        a.events
    );
    b.request(false).await;
    guard("first update", b.update()).await;

    // SetDesktopSize: the requester gets its status, everyone gets the new size and pixels.
    a.events.clear();
    a.msg(ClientMessage::SetDesktopSize {
        width: 400,
        height: 300,
        screens: vec![Screen {
            id: 0,
            rect: Rect::new(0, 0, 400, 300),
            flags: 0,
        }],
    })
    .await;
    a.request(true).await;
    guard("resize reply and new size", async {
        loop {
            a.update().await;
            if a.width == 400 && a.matches(&fx.frame()) {
                return;
            }
            a.request(true).await;
        }
    })
    .await;
    assert!(a.events.iter().any(|e| matches!(
        e,
        Msg::ExtendedDesktopSize {
            reason: 1,
            status: 0,
            ..
        }
    )));
    b.request(true).await;
    guard("other client resized", async {
        loop {
            b.update().await;
            if b.width == 400 && b.height == 300 && b.matches(&fx.frame()) {
                return;
            }
            b.request(true).await;
        }
    })
    .await;

    // Continuous updates: changes arrive without requests.
    a.msg(ClientMessage::EnableContinuousUpdates {
        enable: true,
        rect: Rect::new(0, 0, 400, 300),
    })
    .await;
    fx.paint(0x884422).await;
    guard("continuous update", async {
        while !a.matches(&fx.frame()) {
            a.update().await;
        }
    })
    .await;
    assert_eq!(a.fb[0], 0x884422);
    a.events.clear();
    a.msg(ClientMessage::EnableContinuousUpdates {
        enable: false,
        rect: Rect::new(0, 0, 400, 300),
    })
    .await;
    guard("end of continuous updates", async {
        while !a.events.contains(&Msg::EndOfContinuousUpdates) {
            a.message().await;
        }
    })
    .await;

    // A fence request is answered with the supported flags and the same payload; SyncNext
    // waits for the next message.
    let flags = (1 << 31) | 1 | (1 << 2) | (1 << 3);
    a.msg(ClientMessage::Fence {
        flags,
        payload: b"abc".to_vec(),
    })
    .await;
    a.request(false).await;
    guard("fence response", async {
        while !a
            .events
            .contains(&Msg::Fence(1 | (1 << 2), b"abc".to_vec()))
        {
            a.message().await;
        }
    })
    .await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_clipboard_carries_utf8_both_ways() {
    let fx = Fixture::start(320, 200, SessionConfig::default()).await;
    let desktop = fx.desk().desktop.clone();
    let mut c = Client::tcp(fx.rfb()).await;
    guard("handshake", c.handshake()).await;
    c.msg(ClientMessage::SetEncodings(vec![
        enc::RAW,
        enc::EXTENDED_CLIPBOARD,
    ]))
    .await;
    c.request(false).await;
    guard("update", c.update()).await;
    let caps = c.events.iter().find_map(|e| match e {
        Msg::ExtClipboard(p) => Some(ExtClipboard::parse(p, 1 << 20).unwrap()),
        _ => None,
    });
    let Some(ExtClipboard::Caps { flags, .. }) = caps else {
        panic!("no clipboard caps: {:?}", c.events)
    };
    assert_ne!(flags & clip::TEXT, 0);

    // Client to X: UTF-8 survives.
    c.msg(ClientMessage::ExtendedClipboard(
        ExtClipboard::provide_text("héllo\nwörld"),
    ))
    .await;
    x_clipboard_becomes(&desktop, "client text reaches X", "héllo\nwörld").await;

    // X to client: notify, request, provide.
    common::xvfb::require_tool("xclip", "xclip");
    let mut xclip = common::xvfb::x_command(fx.desk(), "xclip")
        .args(["-selection", "clipboard"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = xclip.stdin.take().unwrap();
        stdin.write_all("ünïcode ✓".as_bytes()).unwrap();
    }
    let _ = xclip.wait();
    c.events.clear();
    let text = guard("X text reaches the client", async {
        loop {
            if let Msg::ExtClipboard(p) = c.message().await {
                match ExtClipboard::parse(&p, 1 << 20).unwrap() {
                    ExtClipboard::Notify { formats } if formats & clip::TEXT != 0 => {
                        c.msg(ClientMessage::ExtendedClipboard(ExtClipboard::Request {
                            formats: clip::TEXT,
                        }))
                        .await;
                    }
                    m @ ExtClipboard::Provide { .. } => return m.text(),
                    _ => {}
                }
            }
        }
    })
    .await;
    assert_eq!(text.as_deref(), Some("ünïcode ✓"));
    fx.stop().await;
}

/// Deterministic pseudo-random numbers (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn u16(&mut self) -> u16 {
        self.next() as u16
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random client message: real message types with random fields, sometimes raw garbage.
fn random_message(rng: &mut Rng, out: &mut Vec<u8>) {
    let rect = |rng: &mut Rng| {
        // Mostly inside a 320x200 screen, sometimes anywhere.
        if rng.below(4) == 0 {
            Rect::new(rng.u16(), rng.u16(), rng.u16(), rng.u16())
        } else {
            Rect::new(
                rng.below(320) as u16,
                rng.below(200) as u16,
                rng.below(64) as u16,
                rng.below(64) as u16,
            )
        }
    };
    let m = match rng.below(10) {
        0 => {
            let n = rng.below(24) as usize;
            out.extend((0..n).map(|_| rng.next() as u8));
            return;
        }
        1 => ClientMessage::SetEncodings(
            (0..rng.below(12))
                .map(|_| match rng.below(3) {
                    0 => rng.next() as i32,
                    1 => [7, 16, 6, 5, 0, -260][rng.below(6) as usize],
                    _ => -(rng.below(400) as i32),
                })
                .collect(),
        ),
        2 => ClientMessage::FramebufferUpdateRequest {
            incremental: rng.below(2) == 0,
            rect: rect(rng),
        },
        3 => ClientMessage::PointerEvent(PointerEvent {
            x: rng.u16(),
            y: rng.u16(),
            mask: rng.next() as u8 & 0x7f,
            extended_mask: None,
        }),
        4 => ClientMessage::CutText(
            (0..rng.below(40))
                .map(|_| rng.below(256) as u8 as char)
                .collect(),
        ),
        5 => ClientMessage::EnableContinuousUpdates {
            enable: rng.below(2) == 0,
            rect: rect(rng),
        },
        6 => ClientMessage::Fence {
            flags: rng.next() as u32,
            payload: (0..rng.below(65)).map(|_| rng.next() as u8).collect(),
        },
        7 => ClientMessage::SetDesktopSize {
            width: rng.below(2000) as u16,
            height: rng.below(2000) as u16,
            screens: vec![],
        },
        8 => {
            let mut b = vec![0u8, 0, 0, 0];
            b.extend((0..16).map(|_| rng.next() as u8));
            out.extend_from_slice(&b);
            return;
        }
        _ => ClientMessage::KeyEvent {
            down: false,
            keysym: 0xff00 | rng.below(256) as u32,
        },
    };
    m.write(out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_input_never_panics_and_others_carry_on() {
    let _serial = PROTOCOL_ERRORS.lock().await;
    static PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        default_hook(info);
    }));

    let fx = Fixture::start(320, 200, SessionConfig::default()).await;
    fx.paint(0x204080).await;
    let mut good = Client::tcp(fx.rfb()).await;
    guard("handshake", good.handshake()).await;
    good.request(false).await;
    guard("first update", good.update()).await;

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..40 {
        let mut c = Client::tcp(fx.rfb()).await;
        guard("handshake", c.handshake()).await;
        let mut bytes = Vec::new();
        for _ in 0..30 {
            random_message(&mut rng, &mut bytes);
        }
        c.send(&bytes).await;
        // Hang up: whether the server already cut it off or not, it must cope.
        drop(c);
    }

    fx.paint(0x804020).await;
    good.request(true).await;
    guard("good client still updated", async {
        while !good.matches(&fx.frame()) {
            good.update().await;
            good.request(true).await;
        }
    })
    .await;
    guard("sessions end", async {
        while fx.server.as_ref().unwrap().sessions().active() > 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(
        PANICS.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a task panicked"
    );
    fx.stop().await;
}

/// Kills the child on drop (a failed assertion must not leave deskd running).
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn alive(pid: i32) -> bool {
    // A zombie waiting for its parent counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_starts_xvfb_serves_and_cleans_up_on_sigterm() {
    use std::io::{BufRead, BufReader};
    common::xvfb::require_tool("Xvfb", "xvfb");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_deskd"))
        .args([
            "--listen-http",
            "127.0.0.1:0",
            "--listen-rfb",
            "127.0.0.1:0",
        ])
        .args(["--geometry", "320x200", "--log-level", "info"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let proc = Proc(child);
    // Keep draining stderr so logging never blocks deskd.
    let log = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let line = blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await;
    // deskd: listening http=A rfb=B display=:N
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
            .to_owned()
    };
    let rfb: SocketAddr = field("rfb=").parse().unwrap();
    let http: SocketAddr = field("http=").parse().unwrap();
    let display = field("display=");

    // The Xvfb deskd started is its child.
    let pid = proc.0.id() as i32;
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let kids: Vec<i32> = children
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let comm = |p: &i32| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
    assert!(
        kids.iter().any(|p| comm(p).trim() == "Xvfb"),
        "an Xvfb child, found {children:?}"
    );

    let mut c = Client::tcp(rfb).await;
    guard("handshake", c.handshake()).await;
    assert_eq!(
        (c.width, c.height),
        (320, 200),
        "geometry flag honoured on {display}"
    );
    c.request(false).await;
    guard("update", c.update()).await;
    let (mut w, _) = Client::ws(http, "/websockify", Some("binary")).await;
    guard("ws handshake", w.handshake()).await;

    // SIGTERM: clients are closed, deskd exits 0 and its Xvfb is gone.
    let rc = send_signal(pid, "TERM");
    assert_eq!(rc, 0);
    guard("tcp client closed", c.closed()).await;
    guard("ws client closed", w.closed()).await;
    let mut proc = proc;
    let status = blocking(move || proc.0.wait().unwrap()).await;
    let log = log.join().unwrap().join("\n");
    assert!(
        status.success(),
        "deskd exit status {status:?}; log:\n{log}"
    );
    assert!(log.contains("SIGTERM: shutting down"), "{log}");
    // Xvfb and the window manager, if one was started, are gone with it.
    guard("children gone", async {
        while kids.iter().any(|p| alive(*p)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// kill(1), since the workspace forbids unsafe code (libc::kill).
fn send_signal(pid: i32, sig: &str) -> i32 {
    std::process::Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .map(|s| if s.success() { 0 } else { 1 })
        .unwrap_or(1)
}

/// noVNC 1.x sends clipboard text as a notify, then (asked) a provide whose zlib stream is
/// flushed with Z_FULL_FLUSH but never finished. It must reach X like any other provide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn novnc_style_flushed_clipboard_provide_reaches_x() {
    let _serial = PROTOCOL_ERRORS.lock().await;
    let fx = Fixture::start(320, 200, SessionConfig::default()).await;
    let desktop = fx.desk().desktop.clone();
    let mut c = Client::tcp(fx.rfb()).await;
    guard("handshake", c.handshake()).await;
    c.msg(ClientMessage::SetEncodings(vec![
        enc::RAW,
        enc::EXTENDED_CLIPBOARD,
    ]))
    .await;
    // noVNC's form: notify first, then a provide whose zlib stream is flushed, not finished.
    c.msg(ClientMessage::ExtendedClipboard(ExtClipboard::Notify {
        formats: clip::TEXT,
    }))
    .await;
    guard("server requests the text", async {
        loop {
            if let Msg::ExtClipboard(p) = c.message().await {
                if let ExtClipboard::Request { formats } = ExtClipboard::parse(&p, 1 << 20).unwrap()
                {
                    assert_ne!(formats & clip::TEXT, 0);
                    return;
                }
            }
        }
    })
    .await;
    let text = "from noVNC ✓\0";
    let mut plain = (text.len() as u32).to_be_bytes().to_vec();
    plain.extend_from_slice(text.as_bytes());
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut z, &plain).unwrap();
    std::io::Write::flush(&mut z).unwrap();
    let mut payload = (clip::PROVIDE | clip::TEXT).to_be_bytes().to_vec();
    payload.extend_from_slice(z.get_ref());
    let mut m = vec![6, 0, 0, 0];
    m.extend_from_slice(&(-(payload.len() as i32)).to_be_bytes());
    m.extend_from_slice(&payload);
    c.send(&m).await;
    x_clipboard_becomes(&desktop, "flushed provide reaches X", "from noVNC ✓").await;

    fx.stop().await;
}

/// POST over a raw TCP connection (HTTP/1.1, Connection: close); returns the status code.
async fn post_action(addr: SocketAddr, origin: Option<&str>, body: &str) -> u16 {
    post_action_with(addr, origin.map(|o| format!("Origin: {o}\r\n")), body).await
}

/// As [`post_action`], with one extra header line (ending in CRLF).
async fn post_action_with(addr: SocketAddr, header: Option<String>, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let origin = header.unwrap_or_default();
    let req = format!(
        "POST /api/v0/desktop/action HTTP/1.1\r\nHost: {addr}\r\n{origin}\
         Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    resp.split(' ').nth(1).unwrap().parse().unwrap()
}

/// A page of another origin may not drive the desktop through the action API (a `text/plain`
/// POST needs no CORS preflight); agents (no Origin) and the viewer's own origin may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_actions_are_refused() {
    let fx = Fixture::start(320, 200, SessionConfig::default()).await;
    let http = fx.http();
    let d = fx.desk().desktop.clone();
    let pos = || {
        let d = d.clone();
        blocking(move || d.input.pointer_position().unwrap())
    };
    let before = pos().await;
    let mv = |x: u16| format!(r#"{{"action":"mouse_move","coordinate":[{x},7]}}"#);

    assert_eq!(
        post_action(http, Some("https://evil.example"), &mv(11)).await,
        403
    );
    assert_eq!(pos().await, before, "refused action moved the pointer");

    assert_eq!(post_action(http, None, &mv(12)).await, 200);
    assert_eq!(pos().await, (12, 7));
    let own = format!("http://{http}");
    assert_eq!(post_action(http, Some(&own), &mv(13)).await, 200);
    assert_eq!(pos().await, (13, 7));
    fx.stop().await;
}

/// With --api-token the API answers 401 without the token and acts with it; beyond loopback
/// the HTTP listener is refused without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_token_is_required_when_set() {
    let fx = Fixture::start(320, 200, SessionConfig::default()).await;
    let d = fx.desk().desktop.clone();
    let with_token = Server::start(
        d.clone(),
        Config {
            listen_http: Some("127.0.0.1:0".parse().unwrap()),
            listen_rfb: None,
            api_token: Some("s3cret".into()),
            ..Config::default()
        },
    )
    .await
    .unwrap();
    let http = with_token.http_addr.unwrap();
    let mv = r#"{"action":"mouse_move","coordinate":[21,9]}"#;
    assert_eq!(post_action_with(http, None, mv).await, 401);
    let wrong = Some("Authorization: Bearer s3crex\r\n".to_string());
    assert_eq!(post_action_with(http, wrong, mv).await, 401);
    assert_ne!(
        blocking(move || d.input.pointer_position().unwrap()).await,
        (21, 9)
    );
    let right = Some("Authorization: Bearer s3cret\r\n".to_string());
    assert_eq!(post_action_with(http, right, mv).await, 200);
    let d = fx.desk().desktop.clone();
    assert_eq!(
        blocking(move || d.input.pointer_position().unwrap()).await,
        (21, 9)
    );
    with_token.shutdown().await;

    let exposed = Config {
        listen_http: Some("0.0.0.0:0".parse().unwrap()),
        listen_rfb: None,
        session: SessionConfig {
            password: Some("pw".into()),
            ..SessionConfig::default()
        },
        ..Config::default()
    };
    let refused = Server::start(fx.desk().desktop.clone(), exposed).await;
    assert!(matches!(
        refused,
        Err(deskd::server::ServerError::ApiExposed(_))
    ));
    fx.stop().await;
}

/// Wait (bounded by [`guard`]) until X's CLIPBOARD holds `expected`.
async fn x_clipboard_becomes(desktop: &deskd::Desktop, what: &str, expected: &str) {
    guard(what, async {
        loop {
            let d = desktop.clone();
            let text = blocking(move || {
                d.clipboard
                    .get_text(deskd::clipboard::Selection::Clipboard)
                    .unwrap()
            })
            .await;
            if text.as_deref() == Some(expected) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}
