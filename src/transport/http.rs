//! The HTTP server: RFB over WebSocket at `/websockify` and `/api/v0/desktop/vnc`, plus
//! whatever other routes (action API, viewer) the caller merges in.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::websocket;
use crate::session::{self, SessionContext};

/// The WebSocket paths that carry RFB.
pub const RFB_PATHS: [&str; 2] = ["/websockify", "/api/v0/desktop/vnc"];

/// Routes serving RFB over WebSocket.
pub fn rfb_router(ctx: Arc<SessionContext>) -> Router {
    let mut r = Router::new();
    for path in RFB_PATHS {
        r = r.route(path, get(upgrade));
    }
    r.with_state(ctx)
}

async fn upgrade(
    ws: WebSocketUpgrade,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    State(ctx): State<Arc<SessionContext>>,
) -> Response {
    // Echo `binary` only when the client asked for it: browsers reject an unrequested
    // subprotocol. Frames are not compressed (axum never negotiates permessage-deflate).
    ws.protocols(["binary"])
        .max_message_size(websocket::MAX_MESSAGE)
        .max_frame_size(websocket::MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let peer = format!("ws:{peer}");
            let stream = websocket::into_stream(socket, peer.clone());
            session::serve(stream, peer, ctx).await;
        })
}

/// Serve `app` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { session::stopped(&mut shutdown).await })
    .await
}
