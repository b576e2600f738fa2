//! The tokio side of one session: socket I/O, encode jobs on the shared encode service,
//! desktop calls through the input worker, and the time. The protocol decisions are the engine's.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rfb::handshake::HandshakeError;
use rfb::handshake::{HandshakeConfig, HandshakeEvent, SecurityType, ServerInit};
use rfb::messages::server::desktop_size_status;
use rfb::server::{
    ClipboardOffer, Cursor, EncodedUpdate, Event, ServerConfig, ServerSession, SessionError,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::input::Buttons;
use super::{stopped, Admission, ClientGauge, SessionConfig, SessionContext};
use crate::capture::Frame;
use crate::clipboard::shared::Kind;
use crate::clipboard::Selection;
use crate::desktop::{Desktop, DesktopError};
use crate::input::held::Held;
use crate::metrics;
use crate::transport::tls::MaybeTls;

/// Largest clipboard text offered to ExtendedClipboard clients unsolicited.
const MAX_CLIPBOARD_TEXT: u32 = 10 << 20;

/// Output bytes waiting for a client before the session stops reading from it: a client that
/// keeps asking (fences, clipboard) without reading waits here instead of growing memory.
const MAX_UNSENT: u64 = 16 << 20;

/// Why a connection ended, beyond what the engine reports.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The protocol engine ended the session.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The connection failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The client chose a security type this transport cannot run.
    #[error("security type {0:?} is not available")]
    SecurityUnavailable(SecurityType),
    /// The encode service failed.
    #[error("encoder failed: {0}")]
    EncodeThread(String),
    /// No randomness for the VNC auth challenge.
    #[error("no randomness: {0}")]
    Random(String),
}

fn server_config(
    config: &SessionConfig,
    name: &str,
    admission: &Admission,
    frame: &Frame,
    refuse: Option<String>,
) -> Result<ServerConfig, DriverError> {
    let init = ServerInit::new(frame.width, frame.height, name);
    let full = config.password.as_deref().map(str::as_bytes);
    let view = config.view_only_password.as_deref().map(str::as_bytes);
    let mut handshake = HandshakeConfig::no_auth(init);
    handshake.security.clone_from(&admission.offer.security);
    handshake.vencrypt.clone_from(&admission.offer.vencrypt);
    getrandom::fill(&mut handshake.challenge).map_err(|e| DriverError::Random(e.to_string()))?;
    // With only a view-only password, it is the password, and everyone is view-only.
    handshake.password = full.or(view).unwrap_or_default().to_vec();
    handshake.view_only_password = full.and(view).map(<[u8]>::to_vec);
    handshake.refuse = refuse;
    if handshake.security.is_empty() {
        handshake.refuse =
            Some("This server accepts clients beyond loopback over TLS (VeNCrypt) only".into());
    }
    Ok(ServerConfig {
        handshake,
        view_only: admission.view_only || config.view_only || (full.is_none() && view.is_some()),
        limits: config.limits,
        max_clipboard_text: MAX_CLIPBOARD_TEXT,
        host_encoders: Some(Arc::new(crate::video::DeskdEncoders)),
    })
}

/// Writes what the engine hands out and reports each write back, so the engine knows when
/// bytes left the socket.
fn spawn_writer<W: AsyncWrite + Unpin + Send + 'static>(
    mut wr: W,
) -> (
    mpsc::UnboundedSender<Vec<u8>>,
    mpsc::UnboundedReceiver<usize>,
    JoinHandle<()>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
            if rx.is_empty() && wr.flush().await.is_err() {
                break;
            }
            if done_tx.send(b.len()).is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    (tx, done_rx, task)
}

/// Per-client input state: the button mask it last sent, and what X has down for it (updated
/// on the input thread), so nothing stays held after it leaves.
#[derive(Default)]
struct Input {
    buttons: Buttons,
    held: Arc<Mutex<Held>>,
}

pub(super) async fn run<S>(
    stream: S,
    peer: &str,
    ip: IpAddr,
    ctx: &Arc<SessionContext>,
    admission: &Admission,
) -> Result<(), DriverError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (_, first) = ctx.desktop.frames.store().snapshot();
    let refuse = ctx.throttle_check(peer, ip);
    let config = server_config(&ctx.config, &ctx.desktop_name(), admission, &first, refuse)?;
    drop(first);
    let mut engine = ServerSession::new(config, Instant::now());
    let mut shutdown = ctx.shutdown.clone();
    let mut io = Some(MaybeTls::Plain(stream));
    let greeted = tokio::select! {
        r = greet(&mut io, &mut engine, admission) => r,
        _ = stopped(&mut shutdown) => return Ok(()),
    };
    let io = match (greeted, io) {
        (Ok(()), Some(io)) => io,
        (result, io) => {
            if let Err(DriverError::Session(SessionError::Handshake(HandshakeError::AuthFailed))) =
                &result
            {
                ctx.throttle_record(peer, ip, false);
            }
            // The failure reason, where the protocol has one, still goes out.
            if let (Some(mut io), Some(b)) = (io, engine.poll_transmit()) {
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    let _ = io.write_all(&b).await;
                    let _ = io.flush().await;
                })
                .await;
            }
            let result = result.and(Err(DriverError::Io(std::io::ErrorKind::BrokenPipe.into())));
            super::report(peer, &result);
            return result;
        }
    };
    ctx.throttle_record(peer, ip, true);
    tracing::info!(
        %peer,
        view_only = engine.is_view_only(),
        tls = matches!(io, MaybeTls::Tls(_)),
        "rfb client connected"
    );
    metrics::global().rfb_clients.inc();
    let gauge = ClientGauge;

    let (mut rd, wr) = tokio::io::split(io);
    let (out_tx, mut written, writer_task) = spawn_writer(wr);
    let mut input = Input::default();
    let result = session(
        engine,
        &mut rd,
        &out_tx,
        &mut written,
        peer,
        ctx,
        &mut input,
    )
    .await;
    if result.is_ok() {
        tracing::info!(%peer, "rfb client disconnected");
    }
    super::report(peer, &result);
    drop(gauge);
    release_held(ctx, peer, &mut input).await;
    drop(out_tx);
    // Give the writer a moment to flush what is queued (a last update); a client that stopped
    // reading must not keep the task (and its socket) alive.
    tokio::spawn(async move {
        let mut task = writer_task;
        if tokio::time::timeout(Duration::from_secs(2), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    });
    result
}

/// The greeting, on the whole stream: a VeNCrypt client has it upgraded to TLS midway (the
/// engine asks with [`HandshakeEvent::StartTls`]), so the stream is split only once the
/// handshake is over. Returns when the client is connected; events after that stay queued.
async fn greet<S>(
    io: &mut Option<MaybeTls<S>>,
    engine: &mut ServerSession,
    admission: &Admission,
) -> Result<(), DriverError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut chunk = vec![0u8; 4096];
    loop {
        while let Some(ev) = engine.poll_event() {
            match ev {
                Event::Handshake(HandshakeEvent::StartTls(_)) => {
                    let (Some(tls), Some(mut plain)) = (&admission.tls, io.take()) else {
                        return Err(DriverError::SecurityUnavailable(SecurityType::VeNCrypt));
                    };
                    // The subtype's acknowledgement goes out in the clear.
                    write_out(&mut plain, engine).await?;
                    // Whatever came past the subtype is the start of the TLS handshake.
                    let early = engine.take_handshake_input();
                    match plain.start_tls(&tls.rfb_acceptor(), early).await {
                        Ok(tls) => *io = Some(tls),
                        Err(e) => return Err(engine.tls_failed(e.to_string()).into()),
                    }
                    engine.tls_established()?;
                }
                Event::Connected { .. } => {
                    if let Some(io) = io.as_mut() {
                        write_out(io, engine).await?;
                    }
                    return Ok(());
                }
                _ => {}
            }
        }
        let Some(stream) = io.as_mut() else {
            return Err(DriverError::Io(std::io::ErrorKind::NotConnected.into()));
        };
        write_out(stream, engine).await?;
        let deadline = engine.poll_timeout();
        tokio::select! {
            n = stream.read(&mut chunk) => {
                let n = n?;
                if n == 0 {
                    engine.closed()?;
                    return Err(DriverError::Io(std::io::ErrorKind::UnexpectedEof.into()));
                }
                engine.receive(&chunk[..n], Instant::now())?;
            }
            _ = sleep_until(deadline), if deadline.is_some() => {
                engine.handle_timeout(Instant::now())?;
            }
        }
    }
}

/// Write what the engine has to send, during the greeting (before the writer task exists).
async fn write_out<W: AsyncWrite + Unpin>(
    io: &mut W,
    engine: &mut ServerSession,
) -> Result<(), DriverError> {
    if let Some(b) = engine.poll_transmit() {
        io.write_all(&b).await?;
        io.flush().await?;
        engine.transmitted(b.len(), Instant::now());
    }
    Ok(())
}

fn cursor_of(ctx: &SessionContext) -> (u64, Option<Cursor>) {
    let (serial, image) = ctx.desktop.frames.store().cursor();
    let cursor = image.map(|c| Cursor {
        width: c.width,
        height: c.height,
        hot_x: c.hot_x,
        hot_y: c.hot_y,
        pixels: c.pixels.clone(),
    });
    (serial, cursor)
}

/// The connected session: updates out, input in, until the client leaves.
async fn session<R>(
    mut engine: ServerSession,
    rd: &mut R,
    out: &mpsc::UnboundedSender<Vec<u8>>,
    written: &mut mpsc::UnboundedReceiver<usize>,
    peer: &str,
    ctx: &Arc<SessionContext>,
    input: &mut Input,
) -> Result<(), DriverError>
where
    R: AsyncRead + Unpin,
{
    let store = Arc::clone(ctx.desktop.frames.store());
    let encoder = crate::encode::service().map_err(DriverError::EncodeThread)?;
    let mut shutdown = ctx.shutdown.clone();
    let mut versions = store.subscribe();
    let mut cursors = store.subscribe_cursor();
    let mut bells = store.subscribe_bell();
    let mut clipboard = ctx.desktop.clipboard.subscribe();
    let mut chunk = vec![0u8; 16 * 1024];
    // Version 0 predates the history: the first update sends everything.
    let mut seen = 0u64;
    let mut cursor_serial = None;
    let mut encoding: Option<oneshot::Receiver<EncodedUpdate>> = None;
    let send = |engine: &mut ServerSession| {
        if let Some(b) = engine.poll_transmit() {
            // The writer only stops when the connection is gone; reading notices that too.
            let _ = out.send(b);
        }
    };
    let result = async {
        loop {
            while let Some(ev) = engine.poll_event() {
                // The greeting's events were handled by `greet`.
                if !matches!(ev, Event::Handshake(_) | Event::Connected { .. }) {
                    handle_event(ev, &mut engine, ctx, peer, input).await;
                }
            }
            if engine.is_connected() {
                let (serial, cursor) = cursor_of(ctx);
                if cursor_serial != Some(serial) {
                    cursor_serial = Some(serial);
                    engine.set_cursor(cursor);
                }
                if encoding.is_none() {
                    // The frame is held only while an update is encoded from it: a reference
                    // held longer would make every capture copy the whole frame.
                    let (v, f, changed) = store.changes_since(seen);
                    if v != seen {
                        seen = v;
                        engine.frame_changed(&changed, f.width, f.height);
                        // A display that moved has a new X server, so new frames.
                        engine.set_name(&ctx.desktop_name());
                    }
                    if let Some(job) = engine.poll_update(Instant::now())? {
                        encoding = Some(encoder.submit(job, f, v, Arc::clone(&store)));
                    }
                }
            }
            send(&mut engine);
            let deadline = engine.poll_timeout();
            let reading = engine.unsent() < MAX_UNSENT;
            let connected = engine.is_connected();
            tokio::select! {
                n = rd.read(&mut chunk), if reading => {
                    let n = n?;
                    if n == 0 {
                        engine.closed()?;
                        return Ok(());
                    }
                    engine.receive(&chunk[..n], Instant::now())?;
                }
                Some(n) = written.recv() => engine.transmitted(n, Instant::now()),
                r = finished(&mut encoding), if encoding.is_some() => {
                    encoding = None;
                    let e = r.map_err(|_| DriverError::EncodeThread("encode job failed".into()))?;
                    let bytes = e.len();
                    engine.update_encoded(e, Instant::now())?;
                    let cc = engine.congestion();
                    tracing::trace!(
                        %peer,
                        bytes,
                        in_flight = cc.in_flight(),
                        window = cc.window(),
                        rtt_ms = cc.rtt().map(|r| r.as_secs_f64() * 1e3),
                        base_rtt_ms = cc.base_rtt().map(|r| r.as_secs_f64() * 1e3),
                        bandwidth = cc.bandwidth(),
                        "update"
                    );
                }
                r = versions.changed(), if connected => if r.is_err() { return Ok(()) },
                r = cursors.changed(), if connected => if r.is_err() { return Ok(()) },
                r = bells.changed(), if connected => match r {
                    Ok(()) => engine.bell(),
                    Err(_) => return Ok(()),
                },
                text = clipboard.recv(), if connected => match text {
                    Ok(text) => {
                        let kind = match engine.clipboard_changed() {
                            ClipboardOffer::Nothing => None,
                            ClipboardOffer::Provide => Some(Kind::Provide),
                            ClipboardOffer::CutText => Some(Kind::CutText),
                        };
                        if let Some(kind) = kind {
                            let m = ctx.clip_messages.message(kind, text).await;
                            engine.queue_message(&m);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        clipboard = broadcast::channel(1).1;
                    }
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    engine.handle_timeout(Instant::now())?;
                }
                _ = stopped(&mut shutdown) => return Ok(()),
            }
        }
    }
    .await;
    // A last message (an error's consequence, a fence reply) still goes out.
    send(&mut engine);
    let (hits, misses) = encoder.cache().stats();
    tracing::debug!(%peer, hits, misses, "shared encode pieces so far (all clients)");
    result
}

async fn finished(
    job: &mut Option<oneshot::Receiver<EncodedUpdate>>,
) -> Result<EncodedUpdate, oneshot::error::RecvError> {
    match job {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await;
    }
}

async fn handle_event(
    ev: Event,
    engine: &mut ServerSession,
    ctx: &SessionContext,
    peer: &str,
    input: &mut Input,
) {
    match ev {
        Event::Key { keysym, down }
        | Event::QemuKey {
            scancode: 0,
            keysym,
            down,
        } => {
            // A QEMU key event without a scancode is typed by its keysym.
            queue_input(ctx, peer, input, move |d, held| {
                held.key(d.input.as_ref(), keysym, down)
            })
            .await;
        }
        Event::QemuKey {
            scancode,
            keysym,
            down,
        } => {
            queue_input(ctx, peer, input, move |d, held| {
                held.scancode(d.input.as_ref(), scancode, keysym, down)
            })
            .await;
        }
        Event::Pointer { x, y, buttons } => {
            let changes = input.buttons.update(buttons);
            queue_input(ctx, peer, input, move |d, held| {
                let moved = d.input.pointer_move(x, y);
                // Every transition is tried: one refused button must not leave another stuck.
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
        Event::ClipboardSet(text) => {
            let peer = peer.to_owned();
            ctx.worker
                .run(move |d| {
                    if let Err(e) = d.clipboard.set_text(Selection::Clipboard, &text) {
                        tracing::warn!(%peer, error = %e, "setting the clipboard failed");
                    }
                })
                .await;
        }
        Event::ClipboardWanted { peek } => {
            let text = ctx
                .worker
                .call(|d| d.clipboard.get_text(Selection::Clipboard))
                .await
                .and_then(|r| r.ok())
                .flatten();
            match (peek, text) {
                (true, text) => engine.clipboard_available(text.is_some()),
                (false, Some(text)) => {
                    let m = ctx.clip_messages.message(Kind::Provide, text.into()).await;
                    engine.queue_message(&m);
                }
                (false, None) => {}
            }
        }
        Event::ResizeRequested { width, height } => {
            let r = ctx
                .worker
                .call(move |d| {
                    let r = d.frames.resize(width, height);
                    let _ = d.frames.refresh();
                    r
                })
                .await;
            let status = match r {
                Some(Ok(_)) => desktop_size_status::OK,
                Some(Err(DesktopError::Invalid(e))) => {
                    tracing::info!(%peer, error = %e, "resize refused");
                    desktop_size_status::INVALID_LAYOUT
                }
                Some(Err(e)) => {
                    tracing::warn!(%peer, error = %e, "resize failed");
                    desktop_size_status::OUT_OF_RESOURCES
                }
                None => desktop_size_status::OUT_OF_RESOURCES,
            };
            tracing::debug!(%peer, width, height, status, "SetDesktopSize");
            engine.resize_result(status);
        }
        Event::Handshake(_) | Event::Connected { .. } => {}
    }
}

/// Queue input for the input thread, with this client's held keys and buttons.
async fn queue_input(
    ctx: &SessionContext,
    peer: &str,
    input: &Input,
    job: impl FnOnce(&Desktop, &mut Held) -> Result<(), DesktopError> + Send + 'static,
) {
    let peer = peer.to_owned();
    let held = Arc::clone(&input.held);
    ctx.worker
        .run(move |d| {
            let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = job(d, &mut held) {
                tracing::debug!(%peer, error = %e, "input event failed");
            }
        })
        .await;
}

/// Release whatever this client still holds, so nothing stays stuck after it leaves. What X
/// really has down for it is released, continuing past failures.
async fn release_held(ctx: &SessionContext, peer: &str, input: &mut Input) {
    input.buttons.release_all();
    queue_input(ctx, peer, input, |d, held| {
        held.release_all(d.input.as_ref())
    })
    .await;
}
