//! The HTTP server: RFB over WebSocket at `/websockify` and `/api/v0/desktop/vnc`, plus
//! whatever other routes (action API, viewer) the caller merges in; the checks every request
//! goes through (Host, Origin, API token); and the accept loop with its connection cap and
//! header timeout.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, LOCATION, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt as _;

use super::body_deadline::DeadlineBody;
use super::log_limit::{LogLimiter, LOG_INTERVAL};
use super::slots::RfbSlots;
use super::tls;
use super::websocket;
use crate::links::{self, LinkSecret};
use crate::session::{self, SessionContext};

/// The WebSocket paths that carry RFB.
pub const RFB_PATHS: [&str; 2] = ["/websockify", "/api/v0/desktop/vnc"];

/// The cookie the viewer carries the API token in.
pub const TOKEN_COOKIE: &str = "deskd_token";

/// The query parameter that hands the viewer the API token once (it becomes the cookie).
pub const TOKEN_PARAM: &str = "token";

#[derive(Clone)]
struct WsState {
    ctx: Arc<SessionContext>,
    allowed_origins: Arc<[String]>,
    token: Option<Arc<str>>,
    slots: RfbSlots,
    links: LinkSecret,
}

/// Routes serving RFB over WebSocket. Browsers may connect only from the page's own origin
/// (the viewer deskd serves) or one in `allowed_origins` (`*` allows any): otherwise any web
/// page the user visits could drive the desktop through a loopback WebSocket. Clients that
/// send no Origin (native tools, proxies such as coderd) are not browsers and are let in.
/// With `token`, a client must present it ([`token_presented`]), or instead a signed viewer
/// link (`?link=`, checked against `links`), which lets it in without the token or the VNC
/// password, view-only if the link says so; a bad, expired or revoked link gets 401.
pub fn rfb_router(
    ctx: Arc<SessionContext>,
    allowed_origins: Vec<String>,
    token: Option<String>,
    slots: RfbSlots,
    links: LinkSecret,
) -> Router {
    let state = WsState {
        ctx,
        allowed_origins: allowed_origins.into(),
        token: token.map(Into::into),
        slots,
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

/// Require the API token in `Authorization: Bearer <token>` (401 otherwise).
pub fn bearer_token_required(router: Router, token: &str) -> Router {
    let expected: Arc<str> = token.into();
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let expected = Arc::clone(&expected);
            async move {
                if token_presented(req.headers(), None, &expected) {
                    next.run(req).await
                } else {
                    crate::api::error::unauthorized(req.uri().path())
                }
            }
        },
    ))
}

fn unauthorized() -> Response {
    crate::api::error::unauthorized("")
}

/// Whether a request carries the API token `expected`: in `Authorization: Bearer`, or (when
/// `uri` is given: the WebSocket paths, which browsers cannot add headers to) in the
/// [`TOKEN_COOKIE`] cookie or the [`TOKEN_PARAM`] query parameter. Compared in constant time.
/// Every token check goes through here.
pub fn token_presented(headers: &HeaderMap, uri: Option<&Uri>, expected: &str) -> bool {
    let expected = expected.as_bytes();
    let bearer = headers
        .get_all(AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.strip_prefix("Bearer "));
    if bearer.into_iter().any(|t| same(t.as_bytes(), expected)) {
        return true;
    }
    let Some(uri) = uri else {
        return false;
    };
    let cookies = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('='));
    let query = query_values(uri, TOKEN_PARAM);
    cookies
        .chain(query.iter().map(String::as_str))
        .any(|t| same(t.as_bytes(), expected))
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The values of query parameter `name`, percent-decoded.
fn query_values(uri: &Uri, name: &str) -> Vec<String> {
    let Some(q) = uri.query() else {
        return Vec::new();
    };
    q.split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then(|| percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The viewer visited with `?token=...`: a right token becomes a same-site, HTTP-only cookie
/// (which the viewer's WebSocket then carries) and the browser is sent to the same URL without
/// the token, so it stays out of the address bar and history. A wrong one gets 401. Over
/// HTTPS (`secure`) the cookie is marked Secure, so it never travels in the clear.
pub fn token_cookie_from_query(router: Router, token: &str, secure: bool) -> Router {
    let expected: Arc<str> = token.into();
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let expected = Arc::clone(&expected);
            async move {
                let given = query_values(req.uri(), TOKEN_PARAM);
                if given.is_empty() {
                    return next.run(req).await;
                }
                if !given
                    .iter()
                    .all(|t| same(t.as_bytes(), expected.as_bytes()))
                {
                    return unauthorized();
                }
                let rest: Vec<&str> = req
                    .uri()
                    .query()
                    .unwrap_or("")
                    .split('&')
                    .filter(|kv| kv.split('=').next() != Some(TOKEN_PARAM) && !kv.is_empty())
                    .collect();
                let mut to = req.uri().path().to_string();
                if !rest.is_empty() {
                    to.push('?');
                    to.push_str(&rest.join("&"));
                }
                let secure = if secure { "; Secure" } else { "" };
                let cookie =
                    format!("{TOKEN_COOKIE}={expected}; Path=/; HttpOnly; SameSite=Strict{secure}");
                let headers = [
                    (LOCATION, HeaderValue::from_str(&to).ok()),
                    (SET_COOKIE, HeaderValue::from_str(&cookie).ok()),
                ];
                let mut resp = StatusCode::SEE_OTHER.into_response();
                for (name, value) in headers {
                    if let Some(v) = value {
                        resp.headers_mut().insert(name, v);
                    }
                }
                resp
            }
        },
    ))
}

/// Whether a request with this `Host` header may reach deskd, which listens on `listen`:
/// loopback names and addresses, the listen address (any address when listening on all of
/// them: an address is never a rebound name), and the names in `allowed` (`*`: any). Anything
/// else is what DNS rebinding looks like: a page on another site that made its own name
/// resolve to this machine. A request without Host (HTTP/1.0) is not from a browser.
pub fn host_allowed(host: Option<&str>, listen: &SocketAddr, allowed: &[String]) -> bool {
    let Some(host) = host else {
        return true;
    };
    let name = host_name(host);
    if allowed
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('.').eq_ignore_ascii_case(&name))
    {
        return true;
    }
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback() || ip == listen.ip() || listen.ip().is_unspecified(),
        Err(_) => false,
    }
}

/// The name or address in a Host header, without port, brackets or trailing dot, lowercase.
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        match host.rsplit_once(':') {
            Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => host,
        }
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Refuse (403) requests whose Host is not one deskd answers to ([`host_allowed`]).
pub fn known_hosts_only(router: Router, listen: SocketAddr, allowed: Vec<String>) -> Router {
    let allowed: Arc<[String]> = allowed.into();
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let allowed = Arc::clone(&allowed);
            async move {
                let host = req.headers().get(HOST).and_then(|v| v.to_str().ok());
                if host_allowed(host, &listen, &allowed) {
                    return next.run(req).await;
                }
                tracing::warn!(host, "request for an unknown Host refused (DNS rebinding?)");
                (
                    StatusCode::FORBIDDEN,
                    axum::Json(serde_json::json!({
                        "message": "Host not allowed.",
                        "detail": "start deskd with --allow-host NAME to serve this name",
                    })),
                )
                    .into_response()
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
    uri: Uri,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    State(state): State<WsState>,
) -> Response {
    // A signed viewer link stands in for the token (and the VNC password).
    let grant = match links::from_query(uri.query()).map(|t| state.links.check(t)) {
        None => None,
        Some(Ok(grant)) => Some(grant),
        Some(Err(e)) => {
            tracing::warn!(%peer, reason = %e, "viewer link refused");
            return (StatusCode::UNAUTHORIZED, format!("{e}\n")).into_response();
        }
    };
    if let (Some(token), None) = (&state.token, grant) {
        if !token_presented(&headers, Some(&uri), token) {
            tracing::warn!(%peer, "rfb WebSocket without the API token refused");
            return unauthorized();
        }
    }
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
    let Some(slot) = state.slots.admit(&format!("ws:{peer}")) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many RFB clients").into_response();
    };
    let admission = state.ctx.config.websocket_admission(grant);
    let ctx = state.ctx;
    // Echo `binary` only when the client asked for it: browsers reject an unrequested
    // subprotocol. Frames are not compressed (axum never negotiates permessage-deflate).
    ws.protocols(["binary"])
        .max_message_size(websocket::MAX_MESSAGE)
        .max_frame_size(websocket::MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            let ip = peer.ip();
            let peer = format!("ws:{peer}");
            let stream = websocket::into_stream(socket, peer.clone());
            session::serve(stream, peer, ip, ctx, admission).await;
        })
}

/// Connection limits of the HTTP listener.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Connections served at once; more wait in the kernel's backlog (so a flood of them
    /// never takes every file descriptor). WebSockets leave this count once upgraded (the
    /// RFB client cap covers them).
    pub max_connections: usize,
    /// How long a connection may take to send a request's headers, and stay idle between
    /// requests.
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive, in all.
    pub body_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// Serve `app` on `listener` until `shutdown` turns true; only HTTPS when `tls` is given
/// ([`tls::accept_https`]).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut accept_errors = LogLimiter::new(LOG_INTERVAL);
    // Dropped by each connection task when it ends: shutdown waits for them.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        let slot = tokio::select! {
            s = Arc::clone(&slots).acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = session::stopped(&mut shutdown) => break,
        };
        let (tcp, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    if let Some(left_out) = accept_errors.allow(Instant::now()) {
                        tracing::warn!(error = %e, left_out, "http accept failed");
                    }
                    // Out of file descriptors and the like: wait instead of spinning.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = session::stopped(&mut shutdown) => break,
        };
        // RFB over WebSocket carries small latency-bound messages: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let mut req =
                    req.map(|b| axum::body::Body::new(DeadlineBody::new(b, limits.body_timeout)));
                req.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(req)
            });
        let mut shutdown = shutdown.clone();
        let done = done_tx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _done = done;
            let tcp = match &tls {
                None => tls::MaybeTls::Plain(tcp),
                Some(acceptor) => match tls::accept_https(tcp, peer, acceptor).await {
                    Some(stream) => stream,
                    None => return,
                },
            };
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "http connection ended");
                    }
                }
                _ = session::stopped(&mut shutdown) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(done_tx);
    // Every connection task holds a sender; recv() returns None once all are gone.
    let _ = done_rx.recv().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_the_listen_address_and_allowed_hosts() {
        let lo: SocketAddr = "127.0.0.1:6080".parse().unwrap();
        let none: Vec<String> = vec![];
        for ok in [
            "127.0.0.1:6080",
            "localhost:6080",
            "LOCALHOST.",
            "app.localhost:1",
            "[::1]:6080",
            "127.0.0.2",
        ] {
            assert!(host_allowed(Some(ok), &lo, &none), "{ok}");
        }
        for bad in [
            "evil.example:6080",
            "evil.example",
            "10.0.0.5:6080",
            "[::2]:1",
            "",
        ] {
            assert!(!host_allowed(Some(bad), &lo, &none), "{bad}");
        }
        assert!(host_allowed(None, &lo, &none));
        let named = vec!["desk.example".to_string()];
        assert!(host_allowed(Some("Desk.Example:443"), &lo, &named));
        assert!(host_allowed(Some("x.example"), &lo, &["*".to_string()]));
        let lan: SocketAddr = "10.0.0.5:6080".parse().unwrap();
        assert!(host_allowed(Some("10.0.0.5:6080"), &lan, &none));
        assert!(!host_allowed(Some("10.0.0.6:6080"), &lan, &none));
        let any: SocketAddr = "0.0.0.0:6080".parse().unwrap();
        assert!(host_allowed(Some("192.168.1.9:6080"), &any, &none));
        assert!(!host_allowed(Some("evil.example:6080"), &any, &none));
    }

    #[test]
    fn token_in_header_cookie_or_query() {
        let mut h = HeaderMap::new();
        let ws: Uri = "/websockify".parse().unwrap();
        assert!(!token_presented(&h, Some(&ws), "s3cret"));
        h.insert(AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(token_presented(&h, None, "s3cret"));
        assert!(!token_presented(&h, None, "s3cre"));
        let mut h = HeaderMap::new();
        h.insert(COOKIE, "a=b; deskd_token=s3cret".parse().unwrap());
        assert!(token_presented(&h, Some(&ws), "s3cret"));
        assert!(
            !token_presented(&h, None, "s3cret"),
            "no cookies on the API"
        );
        let q: Uri = "/websockify?x=1&token=s3%63ret".parse().unwrap();
        assert!(token_presented(&HeaderMap::new(), Some(&q), "s3cret"));
    }

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
