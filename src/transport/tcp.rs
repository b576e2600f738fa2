//! RFB over TCP.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::log_limit::{LogLimiter, LOG_INTERVAL};
use super::slots::RfbSlots;
use crate::session::{self, SessionContext};

/// Accept clients on `listener` until `shutdown` turns true; each gets its own session task,
/// while `slots` has room (beyond it a client is closed at once).
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<SessionContext>,
    slots: RfbSlots,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut accept_errors = LogLimiter::new(LOG_INTERVAL);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Some(slot) = slots.admit(&peer.to_string()) else {
                        continue;
                    };
                    // Small messages (input acks, fences) must not wait for Nagle.
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, error = %e, "TCP_NODELAY failed");
                    }
                    let ctx = Arc::clone(&ctx);
                    tokio::spawn(async move {
                        let _slot = slot;
                        session::serve(stream, peer.to_string(), peer.ip(), ctx).await;
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning, and
                    // keep the log readable.
                    if let Some(left_out) = accept_errors.allow(std::time::Instant::now()) {
                        tracing::warn!(error = %e, left_out, "rfb accept failed");
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = session::stopped(&mut shutdown) => return,
        }
    }
}
