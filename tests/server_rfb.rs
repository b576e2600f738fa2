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
use rfb::messages::ClientMessage;
use rfb::Rect;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

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

    /// RFB 3.8, security None, shared.
    async fn handshake(&mut self) {
        assert_eq!(self.take(12).await, b"RFB 003.008\n");
        self.send(b"RFB 003.008\n").await;
        let n = self.u8().await;
        let types = self.take(usize::from(n)).await;
        assert!(types.contains(&1), "security None offered: {types:?}");
        self.send(&[1]).await;
        assert_eq!(self.u32().await, 0, "SecurityResult OK");
        self.send(&[1]).await;
        self.width = self.u16().await;
        self.height = self.u16().await;
        let _pf = self.take(16).await;
        let len = self.u32().await as usize;
        let _name = self.take(len).await;
        self.fb = vec![0; usize::from(self.width) * usize::from(self.height)];
        self.msg(ClientMessage::SetEncodings(vec![
            enc::RAW,
            enc::DESKTOP_SIZE,
            enc::LAST_RECT,
        ]))
        .await;
    }

    async fn request(&mut self, incremental: bool) {
        let rect = Rect::new(0, 0, self.width, self.height);
        self.msg(ClientMessage::FramebufferUpdateRequest { incremental, rect })
            .await;
    }

    /// Read server messages until one FramebufferUpdate has been applied.
    async fn update(&mut self) {
        loop {
            match self.u8().await {
                0 => break,
                2 => {}
                3 => {
                    self.take(3).await;
                    let len = self.u32().await as usize;
                    self.take(len).await;
                }
                150 => {}
                248 => {
                    self.take(7).await;
                    let len = usize::from(self.u8().await);
                    self.take(len).await;
                }
                t => panic!("unexpected server message type {t}"),
            }
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
                enc::DESKTOP_SIZE => {
                    self.width = w;
                    self.height = h;
                    self.fb = vec![0; usize::from(w) * usize::from(h)];
                }
                enc::LAST_RECT => break,
                e => panic!("unexpected rectangle encoding {e}"),
            }
        }
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

    let mut tcp = Client::tcp(fx.rfb()).await;
    guard("tcp handshake", tcp.handshake()).await;
    tcp.request(false).await;
    guard("tcp update", tcp.update()).await;
    assert!(tcp.matches(&fx.frame()), "TCP client pixels equal the frame");
    assert_eq!(tcp.fb[0], 0x336699);

    // The browser form: `binary` requested and echoed; bytes dribbled one per frame.
    let (mut ws, echoed) = Client::ws(fx.http(), "/websockify", Some("binary")).await;
    assert_eq!(echoed.as_deref(), Some("binary"));
    ws.dribble = true;
    guard("ws handshake", ws.handshake()).await;
    ws.request(false).await;
    guard("ws update", ws.update()).await;
    assert!(ws.matches(&fx.frame()), "WebSocket client pixels equal the frame");

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

    assert!(
        deskd::metrics::global().rfb_protocol_errors.get() >= errors_before + 4,
        "each protocol error is counted"
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
    assert!(
        grown < 64 * 1024,
        "memory grew by {grown} KiB while a client was stalled"
    );
    // The stalled client is still connected (it is slow, not broken).
    assert_eq!(fx.server.as_ref().unwrap().sessions().active(), 2);
    drop(stalled);
    fx.stop().await;
}
