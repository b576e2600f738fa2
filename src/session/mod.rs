//! One RFB client: a thin tokio driver of the sans-IO engine [`rfb::server::ServerSession`].
//!
//! A session runs as one tokio task over any byte stream (TCP or WebSocket, it cannot tell).
//! The driver moves bytes between the socket and the engine, feeds it frame versions, cursor
//! and clipboard changes and the time, encodes the updates it asks for on a blocking thread,
//! and carries out its events (input, clipboard, resize) through the desktop's
//! [`worker::InputWorker`]. Everything about the protocol lives in the engine.

mod driver;
pub mod input;
pub mod worker;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rfb::messages::Limits;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Notify};

use crate::clipboard::shared::SharedMessages;
use crate::desktop::Desktop;
use crate::metrics;
use crate::transport::throttle::AuthThrottle;
pub use driver::DriverError;
use worker::InputWorker;

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
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            name: "deskd".into(),
            password: None,
            view_only_password: None,
            view_only: false,
            limits: Limits::default(),
        }
    }
}

/// What every session of one desktop shares.
pub struct SessionContext {
    /// The desktop.
    pub desktop: Desktop,
    /// Listener settings.
    pub config: SessionConfig,
    pub(crate) worker: InputWorker,
    pub(crate) shutdown: watch::Receiver<bool>,
    active: AtomicUsize,
    idle: Notify,
    throttle: Mutex<AuthThrottle>,
    pub(crate) clip_messages: SharedMessages,
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

    /// Count a handshake's password outcome for `ip`: `true` when the client got in, `false`
    /// for a wrong password.
    fn throttle_record(&self, peer: &str, ip: IpAddr, passed: bool) {
        let mut throttle = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        if passed {
            throttle.succeeded(ip);
        } else if let Some(block) = throttle.failed(ip, Instant::now()) {
            tracing::warn!(
                %peer,
                %ip,
                secs = block.as_secs(),
                "too many rfb authentication failures: address blocked"
            );
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

pub(crate) struct ClientGauge;

impl Drop for ClientGauge {
    fn drop(&mut self) {
        metrics::global().rfb_clients.dec();
    }
}

/// Serve one client over `stream` until it disconnects, misbehaves or the server shuts down.
/// `peer` names the client in logs; password failures are throttled per `ip`.
pub async fn serve<S>(stream: S, peer: String, ip: IpAddr, ctx: Arc<SessionContext>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    ctx.active.fetch_add(1, Ordering::SeqCst);
    let _active = ActiveGuard(&ctx);
    // The outcome is reported inside, before the connection closes.
    let _ = driver::run(stream, &peer, ip, &ctx).await;
}

/// Log how a session ended; count protocol errors.
fn report(peer: &str, result: &Result<(), DriverError>) {
    use rfb::handshake::HandshakeError;
    use rfb::server::SessionError as E;
    match result {
        Ok(()) => {}
        Err(DriverError::Session(E::Handshake(HandshakeError::AuthFailed))) => {
            tracing::warn!(%peer, "rfb authentication failed (wrong password)");
        }
        Err(DriverError::Session(
            e @ (E::Handshake(_)
            | E::HandshakeTimeout
            | E::HandshakeFlood(_)
            | E::ClosedInHandshake),
        )) => {
            tracing::warn!(%peer, reason = %e, "rfb handshake failed");
        }
        Err(DriverError::Session(e)) => {
            metrics::global().rfb_protocol_errors.add(1);
            tracing::warn!(%peer, reason = %e, "rfb client disconnected for a protocol error");
        }
        Err(e) => tracing::info!(%peer, error = %e, "rfb connection lost"),
    }
}
