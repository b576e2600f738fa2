//! The HTTP server: RFB over WebSocket at `/websockify` and `/api/v0/desktop/vnc`, plus
//! whatever other routes (action API, viewer) the caller merges in.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::tls::HttpsListener;
use super::websocket;
use crate::links::{self, LinkSecret};
use crate::session::{self, SessionContext};

/// The WebSocket paths that carry RFB.
pub const RFB_PATHS: [&str; 2] = ["/websockify", "/api/v0/desktop/vnc"];

#[derive(Clone)]
struct WsState {
    ctx: Arc<SessionContext>,
    allowed_origins: Arc<[String]>,
    links: LinkSecret,
}

/// Routes serving RFB over WebSocket. Browsers may connect only from the page's own origin
/// (the viewer deskd serves) or one in `allowed_origins` (`*` allows any): otherwise any web
/// page the user visits could drive the desktop through a loopback WebSocket. Clients that
/// send no Origin (native tools, proxies such as coderd) are not browsers and are let in.
/// A WebSocket opened with a signed viewer link (`?link=`, checked against `links`) is let in
/// by the link alone (no VNC password), view-only if the link says so; a bad, expired or
/// revoked link gets 401.
pub fn rfb_router(
    ctx: Arc<SessionContext>,
    allowed_origins: Vec<String>,
    links: LinkSecret,
) -> Router {
    let state = WsState {
        ctx,
        allowed_origins: allowed_origins.into(),
        links,
    };
    let mut r = Router::new();
    for path in RFB_PATHS {
        r = r.route(path, get(upgrade));
    }
    r.with_state(state)
}

/// Refuse HTTP requests from browser pages of other origins (403), by the same rule as the
/// RFB WebSocket. The action API reads raw bodies, so without this any page the user visits
/// could POST a `text/plain` action to loopback (no CORS preflight for that) and drive the
/// desktop. Requests without an Origin (agents, curl, proxies) pass.
pub fn same_origin_only(router: Router, allowed_origins: Vec<String>) -> Router {
    let allowed: Arc<[String]> = allowed_origins.into();
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let allowed = Arc::clone(&allowed);
            async move {
                let headers = req.headers();
                let header = |name| {
                    headers
                        .get(name)
                        .and_then(|v: &HeaderValue| v.to_str().ok())
                };
                if origin_allowed(header(ORIGIN), header(HOST), &allowed) {
                    next.run(req).await
                } else {
                    tracing::warn!(origin = header(ORIGIN), "cross-origin API request refused");
                    (
                        StatusCode::FORBIDDEN,
                        axum::Json(serde_json::json!({
                            "message": "Cross-origin request refused.",
                            "detail": "start deskd with --allow-origin to permit this page",
                        })),
                    )
                        .into_response()
                }
            }
        },
    ))
}

/// Require `Authorization: Bearer <token>` (401 otherwise). Compared in constant time.
pub fn bearer_token_required(router: Router, token: &str) -> Router {
    let expected: Arc<[u8]> = format!("Bearer {token}").into_bytes().into();
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let expected = Arc::clone(&expected);
            async move {
                let given = req
                    .headers()
                    .get(axum::http::header::AUTHORIZATION)
                    .map(|v| v.as_bytes())
                    .unwrap_or_default();
                let same = given.len() == expected.len()
                    && given
                        .iter()
                        .zip(expected.iter())
                        .fold(0u8, |d, (a, b)| d | (a ^ b))
                        == 0;
                if same {
                    next.run(req).await
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
                        axum::Json(serde_json::json!({
                            "message": "Missing or wrong API token.",
                            "detail": "send Authorization: Bearer <token> (deskd --api-token)",
                        })),
                    )
                        .into_response()
                }
            }
        },
    ))
}

/// Whether a WebSocket request with this Origin and Host header may connect.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    if allowed
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((authority, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

async fn upgrade(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    State(state): State<WsState>,
) -> Response {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let origin = header(ORIGIN);
    if !origin_allowed(origin, header(HOST), &state.allowed_origins) {
        tracing::warn!(%peer, origin, "cross-origin WebSocket refused");
        return (
            StatusCode::FORBIDDEN,
            "cross-origin WebSocket refused: start deskd with --allow-origin to permit this page",
        )
            .into_response();
    }
    let grant = match links::from_query(query.as_deref()).map(|t| state.links.check(t)) {
        None => None,
        Some(Ok(grant)) => Some(grant),
        Some(Err(e)) => {
            tracing::warn!(%peer, reason = %e, "viewer link refused");
            return (StatusCode::UNAUTHORIZED, format!("{e}\n")).into_response();
        }
    };
    let admission = state.ctx.config.websocket_admission(grant);
    let ctx = state.ctx;
    // Echo `binary` only when the client asked for it: browsers reject an unrequested
    // subprotocol. Frames are not compressed (axum never negotiates permessage-deflate).
    ws.protocols(["binary"])
        .max_message_size(websocket::MAX_MESSAGE)
        .max_frame_size(websocket::MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let peer = format!("ws:{peer}");
            let stream = websocket::into_stream(socket, peer.clone());
            session::serve(stream, peer, ctx, admission).await;
        })
}

/// Serve `app` on `listener` until `shutdown` turns true; HTTPS only when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let stop = async move { session::stopped(&mut shutdown).await };
    match tls {
        Some(acceptor) => {
            // Sets TCP_NODELAY itself; the tap only lends axum the peer address.
            let listener = HttpsListener::new(listener, acceptor)?.tap_io(|_| {});
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        }
        None => {
            // RFB over WebSocket carries small latency-bound messages: no Nagle delay.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::origin_allowed;

    #[test]
    fn only_same_origin_or_allowed_browsers_connect() {
        let none: Vec<String> = vec![];
        assert!(origin_allowed(None, Some("127.0.0.1:6080"), &none));
        assert!(origin_allowed(
            Some("http://127.0.0.1:6080"),
            Some("127.0.0.1:6080"),
            &none
        ));
        assert!(!origin_allowed(
            Some("https://evil.example"),
            Some("127.0.0.1:6080"),
            &none
        ));
        assert!(!origin_allowed(Some("null"), Some("127.0.0.1:6080"), &none));
        let some = vec!["https://coder.example/".to_string()];
        assert!(origin_allowed(
            Some("https://coder.example"),
            Some("127.0.0.1:6080"),
            &some
        ));
        assert!(origin_allowed(
            Some("https://any.example"),
            None,
            &["*".to_string()]
        ));
    }
}
