//! The server side of one RFB connection as a sans-IO state machine, in the style of
//! quinn-proto's `Connection`.
//!
//! In: bytes the client sent ([`ServerSession::receive`]), "the frame changed"
//! ([`ServerSession::frame_changed`]), "bytes left the socket"
//! ([`ServerSession::transmitted`]), encoded updates ([`ServerSession::update_encoded`]) and
//! timeouts. Out: bytes to send ([`ServerSession::poll_transmit`]), events for the
//! application ([`ServerSession::poll_event`]), updates to encode
//! ([`ServerSession::poll_update`]) and the next deadline ([`ServerSession::poll_timeout`]).
//! Time is always an argument; nothing here reads a clock, spawns a thread or touches a socket.
//!
//! The session owns the greeting (wrapping [`ServerHandshake`]), what the client supports,
//! acknowledgements, fences, continuous updates, resize replies, the cursor, update
//! scheduling, lossless refresh, congestion control and FramebufferUpdate framing.

pub mod congestion;
pub mod motion;
pub mod refresh;
pub mod schedule;
pub mod settings;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::encoding::shared::{self, Piece, PieceKey};
use crate::encoding::{
    new_encoder, numbers as n, registry, EncodeError, EncodeParams, Encoder, FrameView,
};
use crate::handshake::{HandshakeConfig, HandshakeError, HandshakeEvent, ServerHandshake};
use crate::messages::clipboard::flags as clip;
use crate::messages::server::{
    desktop_size_reason, desktop_size_status, patch_rect_count, write_bell,
    write_desktop_name_rect, write_desktop_size_rect, write_end_of_continuous_updates,
    write_extended_desktop_size_rect, write_framebuffer_update_header, write_last_rect,
    write_pseudo_rect, write_server_ext_clipboard, write_server_fence, RECT_COUNT_UNTIL_LAST_RECT,
};
use crate::messages::{
    ClientMessage, ClientMessageReader, ExtClipboard, Limits, ParseError, Screen,
};
use crate::{Rect, Region};
use congestion::Congestion;
use motion::Motion;
use refresh::LossyAreas;
use schedule::{Plan, Scheduler};
use settings::ClientSettings;

/// Fence flag bits (community RFB spec, Fence).
pub mod fence {
    /// BlockBefore.
    pub const BLOCK_BEFORE: u32 = 1;
    /// BlockAfter.
    pub const BLOCK_AFTER: u32 = 1 << 1;
    /// SyncNext.
    pub const SYNC_NEXT: u32 = 1 << 2;
    /// Request.
    pub const REQUEST: u32 = 1 << 31;
    /// The flags this server honours.
    pub const SUPPORTED: u32 = BLOCK_BEFORE | BLOCK_AFTER | SYNC_NEXT;
}

/// A client must finish the handshake within this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Handshake messages are tiny; a client sending more than this without progress is broken.
const MAX_HANDSHAKE_PENDING: usize = 4096;

/// The fence announcing Fence support carries no payload; its answer counts as this ping.
const ANNOUNCE_SEQ: u32 = 0;

/// Bytes of our own fence payloads: a tag and a sequence number.
const PING_TAG: &[u8; 4] = b"dskd";

/// Most rectangles in one FramebufferUpdate without LastRect (the count is 16 bits and
/// 0xFFFF means "until LastRect").
const MAX_RECTS: usize = RECT_COUNT_UNTIL_LAST_RECT as usize - 1;

/// JPEG quality levels given up at most under congestion.
const MAX_QUALITY_PENALTY: u8 = 9;

/// An update that takes longer than this to cross the link delays the next input echo
/// noticeably: lower the JPEG quality.
const SLOW_UPDATE: Duration = Duration::from_millis(100);

/// Why a session ended. Each variant is one class of failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The handshake failed (bad password, unsupported version...).
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The handshake took too long.
    #[error("handshake not completed within {} s", HANDSHAKE_TIMEOUT.as_secs())]
    HandshakeTimeout,
    /// Too many handshake bytes without progress.
    #[error("{0} bytes without a complete handshake message")]
    HandshakeFlood(usize),
    /// The client closed the connection during the handshake.
    #[error("client closed the connection during the handshake")]
    ClosedInHandshake,
    /// A malformed client message.
    #[error("protocol error: {0}")]
    Parse(#[from] ParseError),
    /// The connection closed in the middle of a message.
    #[error("connection closed inside a message ({0} bytes pending)")]
    ClosedInMessage(usize),
    /// A rectangle from the client lies outside the framebuffer it knows.
    #[error("{what} {}x{}+{}+{} lies outside the {width}x{height} framebuffer", rect.w, rect.h, rect.x, rect.y)]
    RectOutside {
        /// Which message.
        what: &'static str,
        /// The rectangle.
        rect: Rect,
        /// Largest width the client was told.
        width: u16,
        /// Largest height the client was told.
        height: u16,
    },
    /// An encoder failed; its client's decoder state cannot be trusted any more.
    #[error("encoder failed: {0}")]
    Encode(#[from] EncodeError),
    /// One encoder call produced more rectangles than a FramebufferUpdate can count, for a
    /// client without LastRect.
    #[error("{0} rectangles in one update for a client without LastRect")]
    TooManyRects(usize),
    /// No encoder exists for the chosen encoding (cannot happen with the registry's list).
    #[error("no encoder for encoding {0}")]
    NoEncoder(i32),
}

/// Settings of a server session.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The greeting: version, security, ServerInit.
    pub handshake: HandshakeConfig,
    /// Every client is view-only: input, clipboard and resize requests are ignored.
    pub view_only: bool,
    /// Caps on client message sizes.
    pub limits: Limits,
    /// Largest clipboard text announced in ExtendedClipboard caps.
    pub max_clipboard_text: u32,
    /// Encoders the application supplies (H.264): `None` sends only the engine's own.
    pub host_encoders: Option<Arc<dyn HostEncoders>>,
}

/// Encoders the application builds for the engine (the registry's `Factory::Host` entries),
/// e.g. H.264 from a codec library the sans-IO crate does not link.
pub trait HostEncoders: Send + Sync + std::fmt::Debug {
    /// A fresh encoder for `encoding` for a `width` x `height` framebuffer, or `None` when the
    /// host has none (or none for that size).
    fn encoder(&self, encoding: i32, width: u16, height: u16) -> Option<Box<dyn Encoder>>;
}

/// A cursor image for the Cursor pseudo-encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Hotspot x.
    pub hot_x: u16,
    /// Hotspot y.
    pub hot_y: u16,
    /// BGRA bytes (straight alpha), `width * 4` per row.
    pub pixels: Vec<u8>,
}

/// Something the application acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A handshake step, for drivers that add a transport step (e.g. TLS after
    /// [`HandshakeEvent::StartTls`]).
    Handshake(HandshakeEvent),
    /// The handshake is done: framebuffer updates may flow.
    Connected {
        /// The client may only watch.
        view_only: bool,
    },
    /// Press or release the key for `keysym`.
    Key {
        /// X keysym.
        keysym: u32,
        /// Pressed.
        down: bool,
    },
    /// A QEMU extended key event.
    QemuKey {
        /// XT scancode (0 when unknown).
        scancode: u32,
        /// X keysym (0 when unknown).
        keysym: u32,
        /// Pressed.
        down: bool,
    },
    /// Pointer position and button mask (bit n = button n+1).
    Pointer {
        /// x.
        x: u16,
        /// y.
        y: u16,
        /// Buttons held.
        buttons: u16,
    },
    /// The client set the clipboard.
    ClipboardSet(String),
    /// The client wants the clipboard text (`peek`: only whether there is any). Answer with
    /// an ExtendedClipboard Provide through [`ServerSession::queue_message`], or with
    /// [`ServerSession::clipboard_available`] for a peek.
    ClipboardWanted {
        /// Only the availability is asked.
        peek: bool,
    },
    /// The client asks for a new framebuffer size. Answer with
    /// [`ServerSession::resize_result`].
    ResizeRequested {
        /// Width.
        width: u16,
        /// Height.
        height: u16,
    },
}

/// How to tell a client about new clipboard text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipboardOffer {
    /// Nothing more to do (not connected yet, or a Notify was queued).
    Nothing,
    /// Queue an ExtendedClipboard Provide with the text.
    Provide,
    /// Queue a ServerCutText with the text.
    CutText,
}

/// A framebuffer update to encode, with the encoder to use. Encode it with
/// [`UpdateJob::encode`] on the pixels of the latest [`ServerSession::frame_changed`] and hand
/// the result to [`ServerSession::update_encoded`].
///
/// To share work between clients, encode its [`UpdateJob::pieces`] with
/// [`shared::encode_piece`] (once per [`UpdateJob::piece_key`], in parallel, cached) and pass
/// them to [`UpdateJob::encode_pieces`].
pub struct UpdateJob {
    encoder: Box<dyn Encoder>,
    rects: Vec<Rect>,
    params: EncodeParams,
    pseudo: Vec<u8>,
    pseudo_rects: usize,
    last_rect: bool,
    lossless: bool,
}

impl std::fmt::Debug for UpdateJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateJob")
            .field("encoding", &self.encoder.encoding())
            .field("rects", &self.rects)
            .field("params", &self.params)
            .field("pseudo_rects", &self.pseudo_rects)
            .field("lossless", &self.lossless)
            .finish()
    }
}

/// The result of [`UpdateJob::encode`].
pub struct EncodedUpdate {
    encoder: Box<dyn Encoder>,
    result: Result<(Vec<u8>, Vec<Rect>), SessionError>,
    area: Region,
    lossless: bool,
}

impl EncodedUpdate {
    /// Bytes of the update (0 on failure).
    pub fn len(&self) -> usize {
        self.result.as_ref().map(|(b, _)| b.len()).unwrap_or(0)
    }

    /// True when nothing was produced.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl UpdateJob {
    /// The pixels this update covers.
    pub fn rects(&self) -> &[Rect] {
        &self.rects
    }

    /// True for a lossless refresh of areas sent lossily before.
    pub fn is_lossless_refresh(&self) -> bool {
        self.lossless
    }

    /// The encoder settings (JPEG quality lowered under congestion, none for a refresh).
    pub fn params(&self) -> &EncodeParams {
        &self.params
    }

    /// The encoding.
    pub fn encoding(&self) -> i32 {
        self.encoder.encoding()
    }

    /// The update cut along the sharing grid, when its encoding has stateless output
    /// (otherwise empty: the client's own encoder sends everything).
    pub fn pieces(&self) -> Vec<Rect> {
        if shared::shares(self.encoding()) {
            shared::pieces(&self.rects)
        } else {
            Vec::new()
        }
    }

    /// The key of `piece` (one of [`UpdateJob::pieces`]) whose pixels `content` names.
    pub fn piece_key(&self, piece: Rect, content: u64) -> PieceKey {
        PieceKey::new(self.encoding(), piece, content, &self.params)
    }

    /// Encode into complete FramebufferUpdate messages. Pure CPU work; run it wherever
    /// blocking is fine.
    ///
    /// Without LastRect an update holds at most 65534 rectangles: when the encoder's output
    /// would exceed that, the update is split into several messages at rectangle boundaries
    /// (never thrown away: the encoder's zlib streams have already advanced).
    pub fn encode(self, frame: &FrameView<'_>) -> EncodedUpdate {
        self.encode_pieces(frame, &[])
    }

    /// Like [`UpdateJob::encode`], with `shared[i]` the bytes of the `i`th of
    /// [`UpdateJob::pieces`] where another encode produced them (`None`: this client's
    /// encoder sends that piece). `shared` is ignored unless it has one entry per piece.
    pub fn encode_pieces(
        mut self,
        frame: &FrameView<'_>,
        shared: &[Option<&Piece>],
    ) -> EncodedUpdate {
        let mut area = Region::new();
        for r in &self.rects {
            area.add_rect(*r);
        }
        let pieces = if shared.is_empty() {
            Vec::new()
        } else {
            self.pieces()
        };
        let result = if pieces.len() == shared.len() && !pieces.is_empty() {
            self.run(frame, &pieces, shared)
        } else {
            let rects = std::mem::take(&mut self.rects);
            self.run(frame, &rects, &[])
        };
        EncodedUpdate {
            encoder: self.encoder,
            result,
            area,
            lossless: self.lossless,
        }
    }

    fn run(
        &mut self,
        frame: &FrameView<'_>,
        rects: &[Rect],
        shared: &[Option<&Piece>],
    ) -> Result<(Vec<u8>, Vec<Rect>), SessionError> {
        let mut out = Vec::with_capacity(self.pseudo.len() + 64);
        let mut header_at = 0;
        write_framebuffer_update_header(&mut out, 0);
        out.extend_from_slice(&self.pseudo);
        let mut count = self.pseudo_rects;
        let mut lossy = Vec::new();
        if self.last_rect && shared.is_empty() {
            // One call: the encoder merges across the whole region.
            let e = self.encoder.encode(frame, rects, &self.params, &mut out)?;
            lossy = e.lossy;
            count += e.rects;
        } else {
            // Piece by piece, so a message can be closed between rectangles.
            for (i, r) in rects.iter().enumerate() {
                let at = out.len();
                let n = match shared.get(i).copied().flatten() {
                    Some(p) => {
                        out.extend_from_slice(&p.bytes);
                        lossy.extend_from_slice(&p.lossy);
                        p.rects
                    }
                    None => {
                        let e = self.encoder.encode(
                            frame,
                            std::slice::from_ref(r),
                            &self.params,
                            &mut out,
                        )?;
                        lossy.extend(e.lossy);
                        e.rects
                    }
                };
                if !self.last_rect {
                    if n > MAX_RECTS {
                        return Err(SessionError::TooManyRects(n));
                    }
                    if count + n > MAX_RECTS {
                        patch_rect_count(&mut out, header_at, count as u16);
                        let mut header = Vec::with_capacity(4);
                        write_framebuffer_update_header(&mut header, 0);
                        out.splice(at..at, header);
                        header_at = at;
                        count = 0;
                    }
                }
                count += n;
            }
        }
        if self.last_rect && count > MAX_RECTS {
            patch_rect_count(&mut out, 0, RECT_COUNT_UNTIL_LAST_RECT);
            write_last_rect(&mut out);
            return Ok((out, lossy));
        }
        patch_rect_count(&mut out, header_at, count as u16);
        Ok((out, lossy))
    }
}

/// One client connection, from the first byte of the greeting to the end.
pub struct ServerSession {
    config: ServerConfig,
    started: Instant,
    handshake: Option<ServerHandshake>,
    hs_buf: Vec<u8>,
    reader: ClientMessageReader,
    view_only: bool,
    out: Vec<u8>,
    events: VecDeque<Event>,
    settings: ClientSettings,
    sched: Scheduler,
    frame_size: (u16, u16),
    /// The largest size this client was ever told about: requests beyond it are errors,
    /// requests within it but beyond the current size are late and clipped.
    max_size: (u16, u16),
    /// One encoder per encoding used so far: a client keeps one zlib stream per encoding, so
    /// switching back must continue the same stream. The one in use is absent while its
    /// update is being encoded.
    encoders: HashMap<i32, Box<dyn Encoder>>,
    encoding_out: bool,
    cursor: Option<Cursor>,
    cursor_due: bool,
    name: String,
    name_due: bool,
    ack_qemu: bool,
    ack_mouse: bool,
    ext_size_due: bool,
    resize_reply: Option<u16>,
    fence_announced: bool,
    /// The client answered a fence: it really supports them, so fences pace updates. A client
    /// that lists Fence but never answers stays on request pacing instead of stalling.
    fence_answered: bool,
    cu_announced: bool,
    clipboard_announced: bool,
    sync_fence: Option<(u32, Vec<u8>)>,
    client_clip_caps: Option<u32>,
    cc: Congestion,
    lossy: LossyAreas,
    /// The last time [`ServerSession::handle_timeout`] ran.
    timers_handled: Option<Instant>,
    /// An update waits for pacing until then.
    pace_wait: Option<Instant>,
    quality_penalty: u8,
    /// The last update took long on the link: fresh changes go out ahead of moving areas.
    slow_link: bool,
    /// Whether the screen moves enough for H.264 (clients that offered it).
    motion: Motion,
    /// The client's H.264 decoders must restart (a non-incremental request).
    video_reset_due: bool,
}

impl ServerSession {
    /// A new connection at `now`. The server speaks first: see [`ServerSession::poll_transmit`].
    pub fn new(config: ServerConfig, now: Instant) -> ServerSession {
        let init = &config.handshake.server_init;
        let size = (init.width, init.height);
        let name = init.name.clone();
        let mut hs = ServerHandshake::new(config.handshake.clone());
        let mut out = Vec::new();
        out.extend_from_slice(&hs.take_output());
        let mut cc = Congestion::new();
        cc.queued(out.len());
        ServerSession {
            reader: ClientMessageReader::new(config.limits),
            view_only: config.view_only,
            started: now,
            handshake: Some(hs),
            hs_buf: Vec::new(),
            out,
            events: VecDeque::new(),
            settings: ClientSettings::default(),
            sched: Scheduler::new(size.0, size.1),
            frame_size: size,
            max_size: size,
            encoders: HashMap::new(),
            encoding_out: false,
            cursor: None,
            cursor_due: false,
            name,
            name_due: false,
            ack_qemu: false,
            ack_mouse: false,
            ext_size_due: false,
            resize_reply: None,
            fence_announced: false,
            fence_answered: false,
            cu_announced: false,
            clipboard_announced: false,
            sync_fence: None,
            client_clip_caps: None,
            cc,
            lossy: LossyAreas::new(),
            timers_handled: None,
            pace_wait: None,
            quality_penalty: 0,
            slow_link: false,
            motion: Motion::new(),
            video_reset_due: false,
            config,
        }
    }

    /// The handshake in progress, for a driver that runs a delegated security step (e.g. TLS
    /// after [`HandshakeEvent::StartTls`]) and reports its result.
    pub fn handshake_mut(&mut self) -> Option<&mut ServerHandshake> {
        self.handshake.as_mut()
    }

    /// Bytes received past the point where the handshake asked for TLS
    /// ([`HandshakeEvent::StartTls`]): the start of the client's TLS handshake, which the
    /// driver's TLS layer must read first.
    pub fn take_handshake_input(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.hs_buf)
    }

    /// The TLS handshake asked for by [`HandshakeEvent::StartTls`] completed: the greeting
    /// goes on inside it (its next output is for the TLS layer).
    pub fn tls_established(&mut self) -> Result<(), SessionError> {
        match self.handshake.as_mut() {
            Some(hs) => {
                hs.tls_established()?;
                self.drive_handshake()
            }
            None => Ok(()),
        }
    }

    /// The TLS handshake failed: the session ends with the returned error.
    pub fn tls_failed(&mut self, reason: String) -> SessionError {
        match self.handshake.as_mut() {
            Some(hs) => SessionError::Handshake(hs.tls_failed(reason)),
            None => SessionError::Handshake(HandshakeError::TlsFailed(reason)),
        }
    }

    /// The handshake is over and updates flow.
    pub fn is_connected(&self) -> bool {
        self.handshake.is_none()
    }

    /// The client may only watch.
    pub fn is_view_only(&self) -> bool {
        self.view_only
    }

    /// The settings the client negotiated.
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// Congestion state (RTT, bandwidth, window).
    pub fn congestion(&self) -> &Congestion {
        &self.cc
    }

    fn queue(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
        self.cc.queued(bytes.len());
    }

    /// Bytes to write to the client, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.out.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.out))
        }
    }

    /// Bytes handed out by [`ServerSession::poll_transmit`] and not yet reported written. A
    /// driver stops reading from a client whose backlog grows (it is not reading either).
    pub fn unsent(&self) -> u64 {
        self.cc.unsent()
    }

    /// `n` bytes handed out by [`ServerSession::poll_transmit`] left the socket at `now`.
    pub fn transmitted(&mut self, n: usize, now: Instant) {
        self.cc.transmitted(n, now);
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`ServerSession::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.handshake.is_some() {
            return Some(self.started + HANDSHAKE_TIMEOUT);
        }
        // A refresh becomes possible at its due time; one already due waits for room on the
        // link or a request, which arrive as other inputs, so no busy timer for it.
        let refresh = self.lossy.next_due_after(self.timers_handled);
        match (refresh, self.pace_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed. Fails when the handshake took too long.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        if self.handshake.is_some() && now >= self.started + HANDSHAKE_TIMEOUT {
            return Err(SessionError::HandshakeTimeout);
        }
        self.timers_handled = Some(now);
        if self.pace_wait.is_some_and(|t| t <= now) {
            self.pace_wait = None;
        }
        Ok(())
    }

    /// The client closed its side. Fails when that cut a message in half.
    pub fn closed(&mut self) -> Result<(), SessionError> {
        if self.handshake.is_some() {
            return Err(SessionError::ClosedInHandshake);
        }
        match self.reader.buffered() {
            0 => Ok(()),
            n => Err(SessionError::ClosedInMessage(n)),
        }
    }

    /// Bytes from the client. On error the connection must close after sending what
    /// [`ServerSession::poll_transmit`] still has (a handshake failure reason).
    pub fn receive(&mut self, bytes: &[u8], now: Instant) -> Result<(), SessionError> {
        if self.handshake.is_some() {
            self.hs_buf.extend_from_slice(bytes);
            self.drive_handshake()?;
            if self.handshake.is_some() {
                return Ok(());
            }
            let rest = std::mem::take(&mut self.hs_buf);
            self.reader.feed(&rest);
        } else {
            self.reader.feed(bytes);
        }
        while let Some(msg) = self.reader.next_message()? {
            let sync = self.sync_fence.take();
            self.handle(msg, now)?;
            if let Some((flags, payload)) = sync {
                let mut b = Vec::new();
                write_server_fence(&mut b, flags, &payload);
                self.queue(&b);
            }
        }
        Ok(())
    }

    fn drive_handshake(&mut self) -> Result<(), SessionError> {
        let Some(hs) = self.handshake.as_mut() else {
            return Ok(());
        };
        let result = hs.receive(&self.hs_buf);
        let output = hs.take_output();
        let mut done = None;
        while let Some(ev) = hs.poll_event() {
            if let HandshakeEvent::Done { view_only, .. } = &ev {
                done = Some(*view_only);
            }
            self.events.push_back(Event::Handshake(ev));
        }
        self.queue(&output);
        let used = result?;
        self.hs_buf.drain(..used);
        if let Some(vo) = done {
            self.handshake = None;
            self.view_only |= vo;
            self.events.push_back(Event::Connected {
                view_only: self.view_only,
            });
        } else if self.hs_buf.len() > MAX_HANDSHAKE_PENDING {
            return Err(SessionError::HandshakeFlood(self.hs_buf.len()));
        }
        Ok(())
    }

    /// The frame the driver encodes from changed to `width` x `height`, with `region`
    /// changed since the previous call.
    pub fn frame_changed(&mut self, region: &Region, width: u16, height: u16) {
        self.frame_size = (width, height);
        self.sched.damage(region);
        self.lossy.remove(region);
    }

    /// The cursor image changed (`None`: there is none).
    pub fn set_cursor(&mut self, cursor: Option<Cursor>) {
        self.cursor = cursor;
        self.cursor_due = self.cursor.is_some();
    }

    /// The desktop name changed: clients that support DesktopName are told.
    pub fn set_name(&mut self, name: &str) {
        if self.name != name {
            self.name = name.to_owned();
            self.name_due = self.settings.caps.desktop_name;
        }
    }

    /// Ring the client's bell.
    pub fn bell(&mut self) {
        if self.is_connected() {
            let mut b = Vec::new();
            write_bell(&mut b);
            self.queue(&b);
        }
    }

    /// The X clipboard changed: which message tells this client (view-only clients too: they
    /// may copy from the desktop, just not into it). A Notify is queued here; text messages are
    /// built by the application (once for all clients) and queued with
    /// [`ServerSession::queue_message`].
    pub fn clipboard_changed(&mut self) -> ClipboardOffer {
        if !self.is_connected() {
            return ClipboardOffer::Nothing;
        }
        if !self.settings.caps.extended_clipboard {
            return ClipboardOffer::CutText;
        }
        let caps = self.client_clip_caps.unwrap_or(0);
        if caps & clip::NOTIFY != 0 || caps & clip::PROVIDE == 0 {
            let mut b = Vec::new();
            write_server_ext_clipboard(
                &mut b,
                &ExtClipboard::Notify {
                    formats: clip::TEXT,
                },
            );
            self.queue(&b);
            ClipboardOffer::Nothing
        } else {
            ClipboardOffer::Provide
        }
    }

    /// The answer to [`Event::ClipboardWanted`] with `peek`: whether there is text.
    pub fn clipboard_available(&mut self, available: bool) {
        let formats = if available { clip::TEXT } else { 0 };
        let mut b = Vec::new();
        write_server_ext_clipboard(&mut b, &ExtClipboard::Notify { formats });
        self.queue(&b);
    }

    /// Send complete server messages the application built (clipboard messages shared by all
    /// clients).
    pub fn queue_message(&mut self, bytes: &[u8]) {
        if self.is_connected() {
            self.queue(bytes);
        }
    }

    /// The answer to [`Event::ResizeRequested`] (a `desktop_size_status` code).
    pub fn resize_result(&mut self, status: u16) {
        if self.settings.caps.extended_desktop_size {
            self.resize_reply = Some(status);
        }
    }

    /// Use `encoder` whenever its encoding is chosen, instead of the registry's (an encoder
    /// the application builds, e.g. H.264, or one with other settings). Its stream state
    /// must be fresh: the client has not seen this encoding's streams yet.
    pub fn use_encoder(&mut self, encoder: Box<dyn Encoder>) {
        self.encoders.entry(encoder.encoding()).or_insert(encoder);
    }

    /// Fences measure the link: the client announced them and answers them.
    fn fenced(&self) -> bool {
        self.settings.caps.fence && self.fence_answered
    }

    fn cursor_pending(&self) -> bool {
        self.cursor_due && self.settings.caps.cursor
    }

    /// The next update to encode, if one is due and the link has room. One at a time: the
    /// next comes after [`ServerSession::update_encoded`].
    pub fn poll_update(&mut self, now: Instant) -> Result<Option<UpdateJob>, SessionError> {
        if !self.is_connected() || self.encoding_out || !self.sched.can_send() {
            return Ok(None);
        }
        // Nothing queued in user space: a slow client gets the newest pixels later, not a
        // backlog of stale ones.
        if self.cc.unsent() > 0 {
            return Ok(None);
        }
        if self.fenced() && !self.cc.may_send(now) {
            self.pace_wait = self.cc.ready_at().filter(|t| *t > now);
            return Ok(None);
        }
        let extras = self.cursor_pending()
            || self.ack_qemu
            || self.ack_mouse
            || self.ext_size_due
            || self.resize_reply.is_some()
            || self.name_due;
        // Lossy areas come from JPEG (with a quality level) or H.264 (any client offering 50).
        let due = self.lossy.due(now);
        let (fw, fh) = self.frame_size;
        let Some(plan) = self.sched.next(fw, fh, extras, &due, self.slow_link) else {
            return Ok(None);
        };
        let caps = self.settings.caps.clone();
        let mut pseudo = Vec::new();
        let mut count = 0usize;
        let (cw, ch) = self.sched.client_size();
        if caps.extended_desktop_size
            && (plan.resize.is_some() || self.ext_size_due || self.resize_reply.is_some())
        {
            let (reason, status) = match self.resize_reply.take() {
                Some(status) => (desktop_size_reason::THIS_CLIENT, status),
                None => (desktop_size_reason::SERVER, desktop_size_status::OK),
            };
            let screen = Screen {
                id: 0,
                rect: Rect::new(0, 0, cw, ch),
                flags: 0,
            };
            write_extended_desktop_size_rect(&mut pseudo, reason, status, cw, ch, &[screen]);
            count += 1;
        } else if plan.resize.is_some() {
            write_desktop_size_rect(&mut pseudo, cw, ch);
            count += 1;
        }
        self.ext_size_due = false;
        self.resize_reply = None;
        if plan.resize.is_some() {
            self.max_size = (self.max_size.0.max(cw), self.max_size.1.max(ch));
            self.lossy.clear();
            // A new size needs a new video stream: a fresh encoder starts with a reset.
            self.encoders
                .retain(|e, _| !registry::entry(*e).is_some_and(|e| e.caps.reset_on_resize));
        }
        if self.cursor_pending() {
            self.cursor_due = false;
            if let Some(c) = &self.cursor {
                if c.width > 0
                    && c.height > 0
                    && crate::encoding::cursor::write_cursor(
                        &mut pseudo,
                        &self.settings.format,
                        c.width,
                        c.height,
                        c.hot_x,
                        c.hot_y,
                        &c.pixels,
                    )
                {
                    count += 1;
                }
            }
        }
        if std::mem::take(&mut self.ack_qemu) {
            write_pseudo_rect(&mut pseudo, n::QEMU_EXTENDED_KEY_EVENT);
            count += 1;
        }
        if std::mem::take(&mut self.ack_mouse) {
            write_pseudo_rect(&mut pseudo, n::EXTENDED_MOUSE_BUTTONS);
            count += 1;
        }
        if std::mem::take(&mut self.name_due) {
            write_desktop_name_rect(&mut pseudo, &self.name);
            count += 1;
        }
        if let Some(video) = self.video_encoder(&plan, now) {
            // One picture of the whole framebuffer.
            self.encoding_out = true;
            return Ok(Some(UpdateJob {
                encoder: video,
                rects: vec![Rect::new(0, 0, fw, fh)],
                params: self.settings.params(),
                pseudo,
                pseudo_rects: count,
                last_rect: caps.last_rect,
                lossless: false,
            }));
        }
        let mut encoding = self.settings.encoding;
        if plan.lossless && encoding == n::TIGHT && caps.supports(n::TIGHT_PNG) {
            // A browser decodes PNG natively, far faster than Tight's zlib data in script:
            // a full-screen refresh lands hundreds of milliseconds sooner in noVNC.
            encoding = n::TIGHT_PNG;
        }
        let encoder = match self.encoders.remove(&encoding) {
            Some(e) => e,
            None => new_encoder(encoding).ok_or(SessionError::NoEncoder(encoding))?,
        };
        let mut params = self.settings.params();
        if plan.lossless {
            params.quality_level = None;
        } else if let Some(q) = params.quality_level {
            params.quality_level = Some(q.saturating_sub(self.quality_penalty));
        }
        self.encoding_out = true;
        Ok(Some(UpdateJob {
            encoder,
            rects: plan.region.rects().to_vec(),
            params,
            pseudo,
            pseudo_rects: count,
            last_rect: caps.last_rect,
            lossless: plan.lossless,
        }))
    }

    /// The video encoder when `plan` goes out as video (see [`motion`]): the registry's
    /// motion-only encoding (H.264) the client offered and the host supplies, reset when its
    /// stream (re)starts: ResetAllContexts and an IDR when the client joins (a fresh encoder),
    /// after a resize (a new one), on a non-incremental request and whenever video starts
    /// again. `None`: the client's general encoding.
    fn video_encoder(&mut self, plan: &Plan, now: Instant) -> Option<Box<dyn Encoder>> {
        let (fw, fh) = self.frame_size;
        let host = self.config.host_encoders.as_ref()?;
        if plan.lossless || plan.resize.is_some() || self.sched.client_size() != (fw, fh) {
            // Still (a lossless refresh) or a new framebuffer: video ends.
            self.motion.still();
            return None;
        }
        let entry = registry::ENTRIES
            .iter()
            .find(|e| e.caps.motion_only && self.settings.caps.supports(e.number))?;
        let screen = u64::from(fw) * u64::from(fh);
        let decision = self.motion.update(plan.region.area(), screen, now);
        if !decision.video {
            return None;
        }
        let Some(mut encoder) = self
            .encoders
            .remove(&entry.number)
            .or_else(|| host.encoder(entry.number, fw, fh))
        else {
            // None for this size: stay with the general encoding.
            self.motion.still();
            return None;
        };
        let requested = std::mem::take(&mut self.video_reset_due);
        if decision.start || (requested && entry.caps.key_frame_on_request) {
            encoder.reset();
        }
        Some(encoder)
    }

    /// An update from [`ServerSession::poll_update`] was encoded at `now`.
    pub fn update_encoded(
        &mut self,
        update: EncodedUpdate,
        now: Instant,
    ) -> Result<(), SessionError> {
        let EncodedUpdate {
            encoder,
            result,
            area,
            lossless,
        } = update;
        self.encoding_out = false;
        self.encoders.insert(encoder.encoding(), encoder);
        let (bytes, lossy) = result?;
        self.sched.sent();
        // What was sent losslessly no longer needs a refresh; what went out as JPEG does.
        self.lossy.remove(&area);
        let mut lossy_region = Region::new();
        for r in lossy {
            lossy_region.add_rect(r);
        }
        self.lossy.sent_lossy(lossy_region, now);
        if self.fenced() && !lossless {
            // Under congestion the next moving areas go out at a lower JPEG quality (input
            // echo rides with them); the lossless refresh restores them once still.
            let took = self
                .cc
                .bandwidth()
                .map(|bw| Duration::from_secs_f64(bytes.len() as f64 / bw));
            let slow = took.is_some_and(|t| t > SLOW_UPDATE);
            self.slow_link = took.is_some_and(|t| t > SLOW_UPDATE / 4);
            if slow || self.cc.congested() {
                self.quality_penalty = (self.quality_penalty + 2).min(MAX_QUALITY_PENALTY);
            } else if took.is_none_or(|t| t < SLOW_UPDATE / 3) {
                self.quality_penalty = self.quality_penalty.saturating_sub(1);
            }
        }
        self.queue(&bytes);
        // Ping even before the first answer: bytes sent meanwhile must be acknowledged too.
        if self.settings.caps.fence {
            let seq = self.cc.next_ping();
            let mut payload = PING_TAG.to_vec();
            payload.extend_from_slice(&seq.to_be_bytes());
            let mut b = Vec::new();
            write_server_fence(&mut b, fence::REQUEST | fence::BLOCK_BEFORE, &payload);
            self.queue(&b);
            self.cc.ping_queued(seq, now);
        }
        Ok(())
    }

    fn check_rect(&self, what: &'static str, r: &Rect) -> Result<(), SessionError> {
        let (mw, mh) = self.max_size;
        if r.right() > u32::from(mw) || r.bottom() > u32::from(mh) {
            return Err(SessionError::RectOutside {
                what,
                rect: *r,
                width: mw,
                height: mh,
            });
        }
        Ok(())
    }

    fn input(&mut self, ev: Event) {
        if !self.view_only {
            self.events.push_back(ev);
        }
    }

    fn handle(&mut self, msg: ClientMessage, now: Instant) -> Result<(), SessionError> {
        match msg {
            ClientMessage::SetPixelFormat(pf) => {
                // Already validated by the parser (colour-map formats are refused there).
                self.settings.set_format(pf);
                // The cursor image is sent in the client's format: send it again.
                self.cursor_due = self.cursor.is_some();
            }
            ClientMessage::SetEncodings(list) => self.set_encodings(&list, now),
            ClientMessage::FramebufferUpdateRequest { incremental, rect } => {
                self.check_rect("update request", &rect)?;
                self.sched.request(incremental, rect);
                self.video_reset_due |= !incremental;
            }
            ClientMessage::KeyEvent { down, keysym } => self.input(Event::Key { keysym, down }),
            ClientMessage::QemuKeyEvent {
                down,
                keysym,
                keycode,
            } => self.input(Event::QemuKey {
                scancode: keycode,
                keysym,
                down,
            }),
            ClientMessage::PointerEvent(p) => self.input(Event::Pointer {
                x: p.x,
                y: p.y,
                buttons: p.buttons(),
            }),
            ClientMessage::CutText(text) => self.input(Event::ClipboardSet(text)),
            ClientMessage::ExtendedClipboard(m) => self.ext_clipboard(m),
            ClientMessage::EnableContinuousUpdates { enable, rect } => {
                if enable {
                    self.check_rect("continuous updates area", &rect)?;
                    self.sched.enable_continuous(rect);
                } else {
                    self.sched.disable_continuous();
                    let mut b = Vec::new();
                    write_end_of_continuous_updates(&mut b);
                    self.queue(&b);
                }
            }
            ClientMessage::Fence { flags, payload } => {
                if flags & fence::REQUEST != 0 {
                    // Messages are handled one at a time in order, so BlockBefore and
                    // BlockAfter hold trivially; SyncNext waits for the next message.
                    let reply = flags & fence::SUPPORTED;
                    if reply & fence::SYNC_NEXT != 0 {
                        self.sync_fence = Some((reply, payload));
                    } else {
                        let mut b = Vec::new();
                        write_server_fence(&mut b, reply, &payload);
                        self.queue(&b);
                    }
                } else {
                    self.fence_answered = true;
                    if let Some(seq) = ping_seq(&payload) {
                        self.cc.pong(seq, now);
                    }
                }
            }
            ClientMessage::SetDesktopSize { width, height, .. } => {
                if self.view_only {
                    self.resize_result(desktop_size_status::PROHIBITED);
                } else if width == 0 || height == 0 {
                    self.resize_result(desktop_size_status::INVALID_LAYOUT);
                } else {
                    self.events
                        .push_back(Event::ResizeRequested { width, height });
                }
            }
        }
        Ok(())
    }

    fn ext_clipboard(&mut self, m: ExtClipboard) {
        match m {
            ExtClipboard::Caps { flags, .. } => self.client_clip_caps = Some(flags),
            ExtClipboard::Request { formats } => {
                if formats & clip::TEXT != 0 && !self.view_only {
                    self.events
                        .push_back(Event::ClipboardWanted { peek: false });
                }
            }
            ExtClipboard::Peek { .. } => {
                if self.view_only {
                    self.clipboard_available(false);
                } else {
                    self.events.push_back(Event::ClipboardWanted { peek: true });
                }
            }
            ExtClipboard::Notify { formats } => {
                if formats & clip::TEXT != 0 && !self.view_only {
                    let mut b = Vec::new();
                    write_server_ext_clipboard(
                        &mut b,
                        &ExtClipboard::Request {
                            formats: clip::TEXT,
                        },
                    );
                    self.queue(&b);
                }
            }
            m @ ExtClipboard::Provide { .. } => {
                if let Some(text) = m.text() {
                    self.input(Event::ClipboardSet(text));
                }
            }
        }
    }

    fn set_encodings(&mut self, list: &[i32], now: Instant) {
        self.settings.set_encodings(list);
        let caps = self.settings.caps.clone();
        self.sched
            .set_resize_supported(self.settings.resize_supported());
        // The cursor has to be sent again if the client (re-)enabled it.
        self.cursor_due = self.cursor.is_some();
        self.ack_qemu = caps.qemu_key_event;
        self.ack_mouse = caps.extended_mouse_buttons;
        // The client switches to the extended PointerEvent form only after our ack, which is
        // on its way, so the parser may expect it from now on.
        self.reader.limits.extended_mouse_buttons = caps.extended_mouse_buttons;
        // A client learns SetDesktopSize is available from an ExtendedDesktopSize rect.
        self.ext_size_due = caps.extended_desktop_size;
        if caps.fence && !self.fence_announced {
            // Its answer shows the client answers fences, and acknowledges everything before.
            self.fence_announced = true;
            let mut b = Vec::new();
            write_server_fence(&mut b, fence::REQUEST, &[]);
            self.queue(&b);
            self.cc.ping_queued(ANNOUNCE_SEQ, now);
        }
        let mut b = Vec::new();
        if caps.continuous_updates && !self.cu_announced {
            // EndOfContinuousUpdates tells the client the server supports them.
            self.cu_announced = true;
            write_end_of_continuous_updates(&mut b);
        }
        if caps.extended_clipboard && !self.clipboard_announced {
            self.clipboard_announced = true;
            write_server_ext_clipboard(
                &mut b,
                &ExtClipboard::server_caps(self.config.max_clipboard_text),
            );
        }
        self.queue(&b);
    }
}

/// The sequence number in the answer to one of our fences (the empty announcement fence is
/// [`ANNOUNCE_SEQ`]).
fn ping_seq(payload: &[u8]) -> Option<u32> {
    if payload.is_empty() {
        return Some(ANNOUNCE_SEQ);
    }
    let rest = payload.strip_prefix(PING_TAG.as_slice())?;
    let b: [u8; 4] = rest.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

#[cfg(test)]
mod tests;
