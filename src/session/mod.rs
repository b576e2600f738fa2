//! One RFB client: handshake, then a loop that turns client messages into input and settings
//! and damage into framebuffer updates.
//!
//! A session runs as one tokio task over any byte stream (TCP or WebSocket, it cannot tell).
//! Writing happens in a companion task ([`connection::Writer`]) that encodes on a blocking
//! thread; blocking desktop calls go through the desktop's [`worker::InputWorker`].

mod clipboard;
pub mod connection;
mod greeting;
pub mod input;
pub mod security;
pub mod state;
pub mod update;
pub mod worker;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rfb::encoding::numbers as n;
use rfb::messages::server::{
    desktop_size_reason, desktop_size_status, write_desktop_size_rect,
    write_end_of_continuous_updates, write_extended_desktop_size_rect, write_pseudo_rect,
    write_server_ext_clipboard, write_server_fence,
};
use rfb::messages::{ClientMessage, ExtClipboard, Limits, Screen};
use rfb::{Encoder, Rect};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, mpsc, watch, Notify};

use crate::capture::Frame;
use crate::clipboard::shared::SharedMessages;
use crate::desktop::Desktop;
use crate::input::held::Held;
use crate::links::Grant;
use crate::metrics;
use crate::transport::throttle::AuthThrottle;
use crate::transport::tls::Tls;
use connection::{MessageReader, Outgoing, SessionError, UpdateJob, Writer};
use input::Buttons;
use security::{Offer, RfbSecurity};
use state::ClientSettings;
use update::Scheduler;
use worker::InputWorker;

/// Fence flag bits (community RFB spec, Fence).
mod fence {
    pub const BLOCK_BEFORE: u32 = 1;
    pub const BLOCK_AFTER: u32 = 1 << 1;
    pub const SYNC_NEXT: u32 = 1 << 2;
    pub const REQUEST: u32 = 1 << 31;
    pub const SUPPORTED: u32 = BLOCK_BEFORE | BLOCK_AFTER | SYNC_NEXT;
}

/// How the RFB listeners authenticate and what clients may do.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The desktop name sent in ServerInit.
    pub name: String,
    /// VNC password giving full access. With no password at all, security type None is used.
    pub password: Option<String>,
    /// VNC password giving view-only access.
    pub view_only_password: Option<String>,
    /// Every client is view-only: input, clipboard and resize requests are ignored.
    pub view_only: bool,
    /// Caps on client message sizes.
    pub limits: Limits,
    /// TLS for VeNCrypt on RFB over TCP.
    pub tls: Option<Arc<Tls>>,
    /// Security types offered over TCP, most preferred first (`--rfb-security`); `None`: the
    /// default for the configuration ([`security::default_order`]).
    pub rfb_security: Option<Vec<RfbSecurity>>,
    /// Offer the plaintext types (None, VNC auth) to clients beyond loopback even with TLS.
    pub plaintext_beyond_loopback: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            name: "deskd".into(),
            password: None,
            view_only_password: None,
            view_only: false,
            limits: Limits::default(),
            tls: None,
            rfb_security: None,
            plaintext_beyond_loopback: false,
        }
    }
}

impl SessionConfig {
    fn has_password(&self) -> bool {
        self.password.is_some() || self.view_only_password.is_some()
    }

    /// The security types RFB over TCP offers, most preferred first.
    pub fn rfb_order(&self) -> Vec<RfbSecurity> {
        self.rfb_security
            .clone()
            .unwrap_or_else(|| security::default_order(self.tls.is_some(), self.has_password()))
    }

    /// How a client of RFB over TCP from `peer` is let in: VeNCrypt when TLS is configured,
    /// the plaintext types only from loopback unless allowed beyond it.
    pub fn tcp_admission(&self, peer: SocketAddr) -> Admission {
        let plaintext_ok =
            self.tls.is_none() || self.plaintext_beyond_loopback || peer.ip().is_loopback();
        Admission {
            offer: security::offer(&self.rfb_order(), plaintext_ok),
            tls: self.tls.clone(),
            view_only: false,
        }
    }

    /// How a client of RFB over WebSocket is let in: the VNC password if one is set, or the
    /// viewer link it came with (which also says whether it may only watch). The WebSocket
    /// itself runs over HTTPS when TLS is configured.
    pub fn websocket_admission(&self, link: Option<Grant>) -> Admission {
        let order = match link {
            Some(_) => RfbSecurity::None,
            None if self.has_password() => RfbSecurity::Vnc,
            None => RfbSecurity::None,
        };
        Admission {
            offer: security::offer(&[order], true),
            tls: None,
            view_only: link.is_some_and(|g| g.view_only),
        }
    }
}

/// How one connection is let in, decided by its listener.
#[derive(Clone, Default)]
pub struct Admission {
    /// The security types its handshake offers; none at all refuses it.
    pub offer: Offer,
    /// TLS for VeNCrypt.
    pub tls: Option<Arc<Tls>>,
    /// The client may only watch, whatever it authenticates with.
    pub view_only: bool,
}

/// What every session of one desktop shares.
pub struct SessionContext {
    /// The desktop.
    pub desktop: Desktop,
    /// Listener settings.
    pub config: SessionConfig,
    worker: InputWorker,
    shutdown: watch::Receiver<bool>,
    active: AtomicUsize,
    idle: Notify,
    throttle: Mutex<AuthThrottle>,
    clip_messages: SharedMessages,
}

impl SessionContext {
    /// Shared state for sessions of `desktop`; sessions end when `shutdown` turns true.
    pub fn new(
        desktop: Desktop,
        config: SessionConfig,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<Arc<SessionContext>> {
        let worker = InputWorker::start(desktop.clone())?;
        Ok(Arc::new(SessionContext {
            desktop,
            config,
            worker,
            shutdown,
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            throttle: Mutex::new(AuthThrottle::new()),
            clip_messages: SharedMessages::new(),
        }))
    }

    /// The refusal reason for a client from `ip` while it is throttled for password failures.
    fn throttle_check(&self, peer: &str, ip: IpAddr) -> Option<String> {
        let throttle = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        let left = throttle.check(ip, Instant::now()).err()?;
        let secs = left.as_secs().max(1);
        tracing::warn!(%peer, secs, "rfb client refused: too many authentication failures");
        Some(format!(
            "Too many authentication failures: try again in {secs} s"
        ))
    }

    /// Count a handshake's password outcome for `ip`.
    fn throttle_record<T>(&self, peer: &str, ip: IpAddr, r: &Result<T, SessionError>) {
        let mut throttle = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        match r {
            Err(SessionError::AuthFailed) => {
                if let Some(block) = throttle.failed(ip, Instant::now()) {
                    tracing::warn!(
                        %peer,
                        %ip,
                        secs = block.as_secs(),
                        "too many rfb authentication failures: address blocked"
                    );
                }
            }
            Ok(_) => throttle.succeeded(ip),
            Err(_) => {}
        }
    }

    /// Sessions running now (including ones still in the handshake).
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Wait until no session is running.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.active() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Resolves once `shutdown` turns true (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

struct ActiveGuard<'a>(&'a SessionContext);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

struct ClientGauge;

impl Drop for ClientGauge {
    fn drop(&mut self) {
        metrics::global().rfb_clients.dec();
    }
}

/// Serve one client over `stream` until it disconnects, misbehaves or the server shuts down.
/// `peer` names the client in logs; password failures are throttled per `ip`.
pub async fn serve<S>(
    stream: S,
    peer: String,
    ip: IpAddr,
    ctx: Arc<SessionContext>,
    admission: Admission,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    ctx.active.fetch_add(1, Ordering::SeqCst);
    let _active = ActiveGuard(&ctx);
    // Errors after the handshake are reported inside `run`, before the connection closes.
    let result = run(stream, &peer, ip, &ctx, &admission).await;
    report(&peer, &result);
}

/// Log how a session ended; count protocol errors.
fn report(peer: &str, result: &Result<(), SessionError>) {
    match result {
        Ok(()) => {}
        Err(SessionError::Protocol(reason)) => {
            metrics::global().rfb_protocol_errors.add(1);
            tracing::warn!(%peer, %reason, "rfb client disconnected for a protocol error");
        }
        Err(SessionError::Handshake(reason)) => {
            tracing::warn!(%peer, %reason, "rfb handshake failed");
        }
        Err(SessionError::AuthFailed) => {
            tracing::warn!(%peer, "rfb authentication failed (wrong password)");
        }
        Err(SessionError::Io(e)) => tracing::info!(%peer, error = %e, "rfb connection lost"),
    }
}

async fn run<S>(
    stream: S,
    peer: &str,
    ip: IpAddr,
    ctx: &Arc<SessionContext>,
    admission: &Admission,
) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut shutdown = ctx.shutdown.clone();
    let store = Arc::clone(ctx.desktop.frames.store());
    let (_, frame) = store.snapshot();
    let refuse = ctx.throttle_check(peer, ip);
    let (greeting, stream) = tokio::select! {
        g = greeting::run(stream, &ctx.config, admission, &frame, refuse) => {
            ctx.throttle_record(peer, ip, &g);
            g?
        }
        _ = stopped(&mut shutdown) => return Ok(()),
    };
    let (rd, wr) = tokio::io::split(stream);
    tracing::info!(%peer, view_only = greeting.view_only, tls = ?greeting.tls, "rfb client connected");
    metrics::global().rfb_clients.inc();
    let _gauge = ClientGauge;

    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let (writer, writer_task) = Writer::spawn(wr, done_tx);
    let mut reader = MessageReader::new(rd, &greeting.leftover, ctx.config.limits);
    let mut versions = store.subscribe();
    let mut cursors = store.subscribe_cursor();
    let mut clipboard = ctx.desktop.clipboard.subscribe();

    let mut s = Session::new(ctx, peer, greeting.view_only, &frame);
    let result: Result<(), SessionError> = async {
        loop {
            s.pump_update(&writer).await?;
            tokio::select! {
                msg = reader.next() => match msg? {
                    Some(m) => s.handle(m, &writer, reader.limits_mut()).await?,
                    None => return Ok(()),
                },
                enc = done_rx.recv() => match enc {
                    Some(enc) => s.update_written(enc),
                    None => return Ok(()),
                },
                r = versions.changed() => if r.is_err() { return Ok(()) },
                r = cursors.changed() => if r.is_err() { return Ok(()) },
                text = clipboard.recv() => match text {
                    Ok(text) => s.clipboard_changed(text, &writer).await?,
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        clipboard = broadcast::channel(1).1;
                    }
                },
                _ = stopped(&mut shutdown) => return Ok(()),
            }
        }
    }
    .await;

    match &result {
        Ok(()) => tracing::info!(%peer, "rfb client disconnected"),
        Err(_) => report(peer, &result),
    }
    s.release_held().await;
    drop(writer);
    // Give the writer a moment to flush what is queued; a client that stopped reading must
    // not keep the task (and its socket) alive.
    tokio::spawn(async move {
        let mut task = writer_task;
        if tokio::time::timeout(Duration::from_secs(2), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    });
    // Already reported above, before the connection closed.
    Ok(())
}

struct Session {
    ctx: Arc<SessionContext>,
    peer: String,
    view_only: bool,
    settings: ClientSettings,
    sched: Scheduler,
    /// Frame version this session has accounted damage up to.
    seen: u64,
    /// One encoder per encoding used so far, kept for the whole connection: a client keeps
    /// one zlib stream per encoding, so switching back must continue the same stream. The one
    /// in use is absent while its update is being encoded and written.
    encoders: HashMap<i32, Box<dyn Encoder>>,
    /// The largest size this client was ever told about: requests beyond it are errors,
    /// requests within it but beyond the current size are late and clipped.
    max_size: (u16, u16),
    buttons: Buttons,
    /// What this client has down on the X side (updated on the input thread).
    held: Arc<Mutex<Held>>,
    cursor_sent: Option<u64>,
    ack_qemu: bool,
    ack_mouse: bool,
    /// Send an ExtendedDesktopSize rect (SetEncodings announced it, or a SetDesktopSize reply).
    ext_size_due: bool,
    /// Status for the pending SetDesktopSize reply.
    resize_reply: Option<u16>,
    fence_announced: bool,
    cu_announced: bool,
    clipboard_announced: bool,
    /// A SyncNext fence to answer after the next message.
    sync_fence: Option<(u32, Vec<u8>)>,
    /// The client's ExtendedClipboard capability flags, once it sent them.
    client_clip_caps: Option<u32>,
}

impl Session {
    fn new(ctx: &Arc<SessionContext>, peer: &str, view_only: bool, frame: &Frame) -> Session {
        let settings = ClientSettings::default();
        Session {
            ctx: Arc::clone(ctx),
            peer: peer.to_owned(),
            view_only,
            settings,
            sched: Scheduler::new(frame.width, frame.height),
            // Version 0 predates the history: the first update of any kind sends everything.
            seen: 0,
            encoders: HashMap::new(),
            max_size: (frame.width, frame.height),
            buttons: Buttons::default(),
            held: Arc::default(),
            cursor_sent: None,
            ack_qemu: false,
            ack_mouse: false,
            ext_size_due: false,
            resize_reply: None,
            fence_announced: false,
            cu_announced: false,
            clipboard_announced: false,
            sync_fence: None,
            client_clip_caps: None,
        }
    }

    fn update_written(&mut self, encoder: Box<dyn Encoder>) {
        self.sched.sent();
        self.encoders.insert(encoder.encoding(), encoder);
    }

    fn cursor_due(&self) -> Option<u64> {
        if !self.settings.caps.cursor {
            return None;
        }
        let (serial, image) = self.ctx.desktop.frames.store().cursor();
        (image.is_some() && self.cursor_sent != Some(serial)).then_some(serial)
    }

    /// Send the next framebuffer update if the client may receive one and has something due.
    async fn pump_update(&mut self, writer: &Writer) -> Result<(), SessionError> {
        if !self.sched.can_send() {
            return Ok(());
        }
        let store = Arc::clone(self.ctx.desktop.frames.store());
        let (version, frame, changed) = store.changes_since(self.seen);
        self.seen = version;
        self.sched.damage(&changed);
        let cursor_serial = self.cursor_due();
        let extras = cursor_serial.is_some()
            || self.ack_qemu
            || self.ack_mouse
            || self.ext_size_due
            || self.resize_reply.is_some();
        let Some(plan) = self.sched.next(frame.width, frame.height, extras) else {
            return Ok(());
        };
        let mut pseudo = Vec::new();
        let mut count: u16 = 0;
        let pf = self.settings.caps.clone();
        let (cw, ch) = self.sched.client_size();
        if pf.extended_desktop_size
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
        }
        if let Some(serial) = cursor_serial {
            if self.write_cursor(&mut pseudo) {
                count += 1;
            }
            self.cursor_sent = Some(serial);
        }
        if std::mem::take(&mut self.ack_qemu) {
            write_pseudo_rect(&mut pseudo, n::QEMU_EXTENDED_KEY_EVENT);
            count += 1;
        }
        if std::mem::take(&mut self.ack_mouse) {
            write_pseudo_rect(&mut pseudo, n::EXTENDED_MOUSE_BUTTONS);
            count += 1;
        }
        let encoding = self.settings.encoding;
        let Some(encoder) = self
            .encoders
            .remove(&encoding)
            .or_else(|| state::new_encoder(encoding))
        else {
            return Err(SessionError::Protocol(format!(
                "no encoder for encoding {encoding}"
            )));
        };
        let job = UpdateJob {
            frame,
            region: plan.region,
            params: self.settings.params(),
            encoder,
            pseudo,
            pseudo_rects: count,
            last_rect: pf.last_rect,
        };
        writer.send(Outgoing::Update(job)).await
    }

    /// Append a Cursor rect for the current cursor image. False when there is none.
    fn write_cursor(&self, out: &mut Vec<u8>) -> bool {
        let (_, Some(c)) = self.ctx.desktop.frames.store().cursor() else {
            return false;
        };
        if c.width == 0 || c.height == 0 {
            return false;
        }
        rfb::encoding::cursor::write_cursor(
            out,
            &self.settings.format,
            c.width,
            c.height,
            c.hot_x,
            c.hot_y,
            &c.pixels,
        )
    }

    /// Check a rectangle from the client against the largest framebuffer it knew.
    fn check_rect(&self, what: &str, r: &Rect) -> Result<(), SessionError> {
        let (mw, mh) = self.max_size;
        if r.right() > u32::from(mw) || r.bottom() > u32::from(mh) {
            return Err(SessionError::Protocol(format!(
                "{what} {}x{}+{}+{} lies outside the {mw}x{mh} framebuffer",
                r.w, r.h, r.x, r.y
            )));
        }
        Ok(())
    }

    async fn handle(
        &mut self,
        msg: ClientMessage,
        writer: &Writer,
        limits: &mut Limits,
    ) -> Result<(), SessionError> {
        let sync = self.sync_fence.take();
        self.handle_message(msg, writer, limits).await?;
        if let Some((flags, payload)) = sync {
            let mut b = Vec::new();
            write_server_fence(&mut b, flags, &payload);
            writer.bytes(b).await?;
        }
        Ok(())
    }

    async fn handle_message(
        &mut self,
        msg: ClientMessage,
        writer: &Writer,
        limits: &mut Limits,
    ) -> Result<(), SessionError> {
        match msg {
            ClientMessage::SetPixelFormat(pf) => {
                // Already validated by the parser (colour-map formats are refused there).
                self.settings.set_format(pf);
                // The cursor image is sent in the client's format: send it again.
                self.cursor_sent = None;
            }
            ClientMessage::SetEncodings(list) => self.set_encodings(&list, writer, limits).await?,
            ClientMessage::FramebufferUpdateRequest { incremental, rect } => {
                self.check_rect("update request", &rect)?;
                self.sched.request(incremental, rect);
            }
            ClientMessage::KeyEvent { down, keysym } => {
                if self.view_only {
                    return Ok(());
                }
                self.input(move |d, held| held.key(d.input.as_ref(), keysym, down))
                    .await;
            }
            ClientMessage::QemuKeyEvent {
                down,
                keysym,
                keycode,
            } => {
                if self.view_only {
                    return Ok(());
                }
                if keycode == 0 {
                    // No scancode known: fall back to the keysym.
                    self.input(move |d, held| held.key(d.input.as_ref(), keysym, down))
                        .await;
                } else {
                    self.input(move |d, held| held.scancode(d.input.as_ref(), keycode, down))
                        .await;
                }
            }
            ClientMessage::PointerEvent(p) => {
                if self.view_only {
                    return Ok(());
                }
                let changes = self.buttons.update(p.buttons());
                let (x, y) = (p.x, p.y);
                self.input(move |d, held| {
                    let moved = d.input.pointer_move(x, y);
                    // Every transition is tried: one refused button must not leave another
                    // stuck.
                    let mut first = moved.err();
                    for (button, down) in changes {
                        if let Err(e) = held.button(d.input.as_ref(), button, down) {
                            first.get_or_insert(e);
                        }
                    }
                    first.map_or(Ok(()), Err)
                })
                .await;
            }
            ClientMessage::CutText(text) => {
                if !self.view_only {
                    self.set_clipboard(text).await;
                }
            }
            ClientMessage::ExtendedClipboard(m) => self.ext_clipboard(m, writer).await?,
            ClientMessage::EnableContinuousUpdates { enable, rect } => {
                if enable {
                    self.check_rect("continuous updates area", &rect)?;
                    self.sched.enable_continuous(rect);
                } else {
                    self.sched.disable_continuous();
                    let mut b = Vec::new();
                    write_end_of_continuous_updates(&mut b);
                    writer.bytes(b).await?;
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
                        writer.bytes(b).await?;
                    }
                }
                // A response to our own fence needs nothing.
            }
            ClientMessage::SetDesktopSize { width, height, .. } => {
                let status = if self.view_only {
                    desktop_size_status::PROHIBITED
                } else if width == 0 || height == 0 {
                    desktop_size_status::INVALID_LAYOUT
                } else {
                    let r = self
                        .ctx
                        .worker
                        .call(move |d| {
                            let r = d.frames.resize(width, height);
                            let _ = d.frames.refresh();
                            r
                        })
                        .await;
                    match r {
                        Some(Ok(_)) => desktop_size_status::OK,
                        Some(Err(crate::DesktopError::Invalid(e))) => {
                            tracing::info!(peer = %self.peer, error = %e, "resize refused");
                            desktop_size_status::INVALID_LAYOUT
                        }
                        Some(Err(e)) => {
                            tracing::warn!(peer = %self.peer, error = %e, "resize failed");
                            desktop_size_status::OUT_OF_RESOURCES
                        }
                        None => desktop_size_status::OUT_OF_RESOURCES,
                    }
                };
                tracing::debug!(peer = %self.peer, width, height, status, "SetDesktopSize");
                if self.settings.caps.extended_desktop_size {
                    self.resize_reply = Some(status);
                }
            }
        }
        Ok(())
    }

    async fn set_encodings(
        &mut self,
        list: &[i32],
        writer: &Writer,
        limits: &mut Limits,
    ) -> Result<(), SessionError> {
        self.settings.set_encodings(list);
        let pf = self.settings.caps.clone();
        self.sched
            .set_resize_supported(self.settings.resize_supported());
        // The cursor has to be sent again if the client re-enabled it.
        if !pf.cursor {
            self.cursor_sent = None;
        }
        self.ack_qemu = pf.qemu_key_event;
        self.ack_mouse = pf.extended_mouse_buttons;
        // The client switches to the extended PointerEvent form only after our ack, which is
        // on its way, so the parser may expect it from now on.
        limits.extended_mouse_buttons = pf.extended_mouse_buttons;
        // A client learns SetDesktopSize is available from an ExtendedDesktopSize rect.
        self.ext_size_due = pf.extended_desktop_size;
        let mut b = Vec::new();
        if pf.fence && !self.fence_announced {
            self.fence_announced = true;
            write_server_fence(&mut b, fence::REQUEST, &[]);
        }
        if pf.continuous_updates && !self.cu_announced {
            // EndOfContinuousUpdates tells the client the server supports them.
            self.cu_announced = true;
            write_end_of_continuous_updates(&mut b);
        }
        if pf.extended_clipboard && !self.clipboard_announced {
            self.clipboard_announced = true;
            write_server_ext_clipboard(&mut b, &ExtClipboard::server_caps(clipboard::MAX_TEXT));
        }
        if !b.is_empty() {
            writer.bytes(b).await?;
        }
        Ok(())
    }

    /// Queue input for the input thread, with this client's held keys and buttons.
    async fn input(
        &mut self,
        job: impl FnOnce(&Desktop, &mut Held) -> Result<(), crate::DesktopError> + Send + 'static,
    ) {
        let peer = self.peer.clone();
        let held = Arc::clone(&self.held);
        self.ctx
            .worker
            .run(move |d| {
                let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = job(d, &mut held) {
                    tracing::debug!(%peer, error = %e, "input event failed");
                }
            })
            .await;
    }

    /// Release whatever this client still holds, so nothing stays stuck after it leaves.
    /// What X really has down for this client is released, continuing past failures.
    async fn release_held(&mut self) {
        self.buttons.release_all();
        self.input(|d, held| held.release_all(d.input.as_ref()))
            .await;
    }
}
