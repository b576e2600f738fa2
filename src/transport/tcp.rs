//! RFB over TCP.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::session::{self, SessionContext};

/// Accept clients on `listener` until `shutdown` turns true; each gets its own session task.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<SessionContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Small messages (input acks, fences) must not wait for Nagle.
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, error = %e, "TCP_NODELAY failed");
                    }
                    let admission = ctx.config.tcp_admission(peer);
                    tokio::spawn(session::serve(stream, peer.to_string(), Arc::clone(&ctx), admission));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "rfb accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = session::stopped(&mut shutdown) => return,
        }
    }
}
