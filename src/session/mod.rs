//! One RFB client: a thin tokio driver of the sans-IO engine [`rfb::server::ServerSession`].
//!
//! A session runs as one tokio task over any byte stream (TCP or WebSocket, it cannot tell).
//! The driver moves bytes between the socket and the engine, feeds it frame versions, cursor
//! and clipboard changes and the time, encodes the updates it asks for on a blocking thread,
//! and carries out its events (input, clipboard, resize) through the desktop's
//! [`worker::InputWorker`]. Everything about the protocol lives in the engine.

mod driver;
pub mod input;
pub mod security;
pub mod worker;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rfb::messages::Limits;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Notify};

use crate::clipboard::shared::SharedMessages;
use crate::desktop::Desktop;
use crate::links::Grant;
use crate::metrics;
use crate::transport::throttle::AuthThrottle;
use crate::transport::tls::Tls;
pub use driver::DriverError;
use security::{Offer, RfbSecurity};
use worker::InputWorker;

/// How the RFB listeners authenticate and what clients may do.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The desktop name sent in ServerInit. Empty: `deskd :N` after the display shown, which
    /// follows the display when it moves (clients that support DesktopName are told).
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

    /// The desktop name clients see now.
    pub fn desktop_name(&self) -> String {
        if self.config.name.is_empty() {
            format!("deskd {}", self.desktop.status.status().display)
        } else {
            self.config.name.clone()
        }
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
    // The outcome is reported inside, before the connection closes.
    let _ = driver::run(stream, &peer, ip, &ctx, &admission).await;
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
