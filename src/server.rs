//! The running server: RFB over TCP, and an HTTP server carrying RFB over WebSocket, the action
//! API and the viewer, all over one [`Desktop`]. Tests start it in-process on port 0.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api;
use crate::desktop::Desktop;
use crate::display::conn::XServer;
use crate::session::{SessionConfig, SessionContext};
use crate::transport::{assets, http, slots, tcp};

/// What to serve and how.
#[derive(Clone)]
pub struct Config {
    /// HTTP listen address (viewer, API, RFB over WebSocket); `None` disables HTTP.
    pub listen_http: Option<SocketAddr>,
    /// RFB over TCP listen address; `None` disables it.
    pub listen_rfb: Option<SocketAddr>,
    /// Allow listening beyond loopback without a password (RFB) or API token (HTTP).
    pub insecure: bool,
    /// Bearer token the HTTP API (`/api/v0/desktop/...`, `/metrics`) requires when set.
    pub api_token: Option<String>,
    /// The X display name reported by the API.
    pub display: String,
    /// RFB session settings (name, passwords, view-only, limits).
    pub session: SessionConfig,
    /// Browser origins allowed to open RFB WebSockets besides the page's own (`*`: any).
    pub allowed_origins: Vec<String>,
    /// The X server deskd started, so the window API follows its restarts and cookie
    /// (`RunningDesktop::server()`); `None` uses `$DISPLAY`/`$XAUTHORITY` semantics.
    pub x_server: Option<Arc<XServer>>,
    /// Where state between runs lives (see [`crate::state_dir`]); created on first use.
    pub state_dir: std::path::PathBuf,
    /// Host names (besides loopback and the listen address) HTTP requests may be addressed to
    /// (`*`: any).
    pub allowed_hosts: Vec<String>,
    /// RFB clients at once, over TCP and WebSocket together.
    pub max_rfb_clients: usize,
    /// HTTP connection limits.
    pub http_limits: http::HttpLimits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen_http: Some(SocketAddr::from(([127, 0, 0, 1], 6080))),
            listen_rfb: Some(SocketAddr::from(([127, 0, 0, 1], 5900))),
            insecure: false,
            api_token: None,
            display: String::new(),
            session: SessionConfig::default(),
            allowed_origins: Vec::new(),
            x_server: None,
            // Tests that keep state set their own; this default stays out of the user's home.
            state_dir: std::env::temp_dir().join(format!("deskd-state-{}", std::process::id())),
            allowed_hosts: Vec::new(),
            max_rfb_clients: 64,
            http_limits: http::HttpLimits::default(),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener would expose the desktop without a password.
    #[error("refusing to listen on {0} without a password: set --password (or --password-file), or pass --insecure")]
    Exposed(SocketAddr),
    /// The HTTP API would be reachable beyond loopback without a token.
    #[error("refusing to serve the action API on {0} without a token: set --api-token, or pass --insecure")]
    ApiExposed(SocketAddr),
    /// Binding a listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Anything else at startup.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A running server. Dropping it without [`Server::shutdown`] leaves its tasks running until
/// the runtime ends.
pub struct Server {
    /// Where HTTP is served (the real port when configured with port 0).
    pub http_addr: Option<SocketAddr>,
    /// Where RFB over TCP is served.
    pub rfb_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    ctx: Arc<SessionContext>,
    tasks: Vec<JoinHandle<()>>,
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

impl Server {
    /// Bind the listeners and start serving `desktop`. Must be called inside a tokio runtime.
    pub async fn start(desktop: Desktop, config: Config) -> Result<Server, ServerError> {
        if let Some(e) = exposure_error(&config) {
            return Err(e);
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        let ctx =
            SessionContext::new(desktop.clone(), config.session.clone(), shutdown_rx.clone())?;
        let mut tasks = Vec::new();
        let slots = slots::RfbSlots::new(config.max_rfb_clients);

        let mut rfb_addr = None;
        if let Some(addr) = config.listen_rfb {
            let listener = bind(addr).await?;
            rfb_addr = Some(listener.local_addr()?);
            tasks.push(tokio::spawn(tcp::serve(
                listener,
                Arc::clone(&ctx),
                slots.clone(),
                shutdown_rx.clone(),
            )));
        }
        let mut http_addr = None;
        if let Some(addr) = config.listen_http {
            let listener = bind(addr).await?;
            http_addr = Some(listener.local_addr()?);
            let app = app(desktop, &config, Arc::clone(&ctx), addr, slots.clone());
            let rx = shutdown_rx.clone();
            let limits = config.http_limits;
            tasks.push(tokio::spawn(async move {
                if let Err(e) = http::serve(listener, app, limits, rx).await {
                    tracing::error!(error = %e, "http server failed");
                }
            }));
        }
        if let Some(a) = rfb_addr {
            tracing::info!("RFB (VNC) on {a}");
        }
        if let Some(a) = http_addr {
            tracing::info!("viewer on http://{a}/ ; RFB over WebSocket on ws://{a}/websockify");
        }
        Ok(Server {
            http_addr,
            rfb_addr,
            shutdown,
            ctx,
            tasks,
        })
    }

    /// The state sessions share (for tests: how many sessions are running).
    pub fn sessions(&self) -> &Arc<SessionContext> {
        &self.ctx
    }

    /// Stop accepting, close every client and wait (up to a few seconds) for sessions to end.
    pub async fn shutdown(self) {
        self.shutdown.send_replace(true);
        let wait = async {
            for t in self.tasks {
                let _ = t.await;
            }
            self.ctx.wait_idle().await;
        };
        if tokio::time::timeout(std::time::Duration::from_secs(5), wait)
            .await
            .is_err()
        {
            tracing::warn!("some clients did not close within 5 s");
        }
    }
}

/// Why `config` would expose the desktop beyond loopback unprotected, if it would: RFB (over
/// TCP or WebSocket) needs a VNC password, the HTTP API a token, unless `insecure`.
pub fn exposure_error(config: &Config) -> Option<ServerError> {
    if config.insecure {
        return None;
    }
    let has_password =
        config.session.password.is_some() || config.session.view_only_password.is_some();
    let exposed = |a: &Option<SocketAddr>| a.filter(|a| !a.ip().is_loopback());
    if let Some(addr) = exposed(&config.listen_rfb).or(exposed(&config.listen_http)) {
        if !has_password {
            return Some(ServerError::Exposed(addr));
        }
    }
    match exposed(&config.listen_http) {
        Some(addr) if config.api_token.is_none() => Some(ServerError::ApiExposed(addr)),
        _ => None,
    }
}

/// The whole HTTP application: RFB over WebSocket, the action API and the viewer, for requests
/// addressed to a known Host.
fn app(
    desktop: Desktop,
    config: &Config,
    ctx: Arc<SessionContext>,
    listen: SocketAddr,
    slots: slots::RfbSlots,
) -> Router {
    let display = config.display.clone();
    let api = match &config.x_server {
        Some(server) => api::router_with_server(desktop, display, Arc::clone(server)),
        None => api::router(desktop, display),
    };
    let api = match &config.api_token {
        Some(token) => http::bearer_token_required(api, token),
        None => api,
    };
    let api = http::same_origin_only(api, config.allowed_origins.clone());
    let viewer = match &config.api_token {
        Some(token) => http::token_cookie_from_query(assets::router(), token),
        None => assets::router(),
    };
    let rfb = http::rfb_router(
        ctx,
        config.allowed_origins.clone(),
        config.api_token.clone(),
        slots,
    );
    let app = rfb.merge(api).merge(viewer);
    http::known_hosts_only(app, listen, config.allowed_hosts.clone())
}
