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
use crate::links::LinkSecret;
use crate::record::{RecordLimits, Recorder, StartOptions};
use crate::session::{security, SessionConfig, SessionContext};
use crate::transport::tls::Tls;
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
    /// Where state between runs lives (see [`crate::state_dir`]); created on first use. Holds
    /// the viewer-link secret.
    pub state_dir: std::path::PathBuf,
    /// TLS: HTTPS and WSS on the HTTP port, VeNCrypt on RFB over TCP.
    pub tls: Option<Arc<Tls>>,
    /// Host names (besides loopback and the listen address) HTTP requests may be addressed to
    /// (`*`: any).
    pub allowed_hosts: Vec<String>,
    /// RFB clients at once, over TCP and WebSocket together.
    pub max_rfb_clients: usize,
    /// HTTP connection limits.
    pub http_limits: http::HttpLimits,
    /// Start recording the screen (to `<state_dir>/recordings`) as the server starts.
    pub record_on_start: bool,
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
            tls: None,
            allowed_hosts: Vec::new(),
            max_rfb_clients: 64,
            http_limits: http::HttpLimits::default(),
            record_on_start: false,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener would expose the desktop without a password.
    #[error("refusing to listen on {0} without a password: set --password (or --password-file), or pass --insecure")]
    Exposed(SocketAddr),
    /// A listener would be reachable beyond loopback without TLS.
    #[error("refusing to listen on {0} without TLS: set --tls-cert and --tls-key, or --tls-self-signed, or pass --insecure")]
    NoTls(SocketAddr),
    /// The RFB security order does not fit the configuration.
    #[error("--rfb-security: {0}")]
    Security(String),
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
    /// Screen recordings (files under `<state_dir>/recordings`, created when first needed).
    pub recorder: Recorder,
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
        check(&config)?;
        let mut session = config.session.clone();
        session.tls.clone_from(&config.tls);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let ctx = SessionContext::new(desktop.clone(), session, shutdown_rx.clone())?;
        let mut tasks = Vec::new();
        let slots = slots::RfbSlots::new(config.max_rfb_clients);
        let recorder = Recorder::new(
            Arc::clone(&desktop.frames),
            config.state_dir.join("recordings"),
            RecordLimits::default(),
        );
        if config.record_on_start {
            match recorder.start(StartOptions::default()) {
                Ok(info) => tracing::info!(id = %info.id, "recording the screen"),
                Err(e) => tracing::warn!("cannot record: {e}"),
            }
        }

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
            let app = app(
                desktop,
                &config,
                Arc::clone(&ctx),
                addr,
                slots.clone(),
                recorder.clone(),
            );
            let rx = shutdown_rx.clone();
            let limits = config.http_limits;
            let tls = config.tls.as_ref().map(|t| t.https_acceptor());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = http::serve(listener, app, limits, tls, rx).await {
                    tracing::error!(error = %e, "http server failed");
                }
            }));
        }
        for line in exposure(&config, &ctx.config, rfb_addr, http_addr) {
            tracing::info!("{line}");
        }
        Ok(Server {
            http_addr,
            rfb_addr,
            recorder,
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
        let recorder = self.recorder.clone();
        // Write the running recording's last fragment, if one is running.
        let _ = tokio::task::spawn_blocking(move || recorder.stop()).await;
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

/// Whether `config` can be served: nothing exposed unprotected ([`exposure_error`]) and an
/// RFB security order that fits the certificate and passwords.
pub fn check(config: &Config) -> Result<(), ServerError> {
    if let Some(e) = exposure_error(config) {
        return Err(e);
    }
    if let Some(order) = &config.session.rfb_security {
        let s = &config.session;
        let password = s.password.is_some() || s.view_only_password.is_some();
        security::validate(order, config.tls.is_some(), password).map_err(ServerError::Security)?;
    }
    Ok(())
}

/// Why `config` would expose the desktop beyond loopback unprotected, if it would: every
/// listener beyond loopback needs TLS, RFB (over TCP or WebSocket) a VNC password and the HTTP
/// API a token, unless `insecure`.
pub fn exposure_error(config: &Config) -> Option<ServerError> {
    if config.insecure {
        return None;
    }
    let has_password =
        config.session.password.is_some() || config.session.view_only_password.is_some();
    let exposed = |a: &Option<SocketAddr>| a.filter(|a| !a.ip().is_loopback());
    let any = exposed(&config.listen_rfb).or(exposed(&config.listen_http));
    match (any, exposed(&config.listen_http)) {
        (Some(addr), _) if !has_password => Some(ServerError::Exposed(addr)),
        (_, Some(addr)) if config.api_token.is_none() => Some(ServerError::ApiExposed(addr)),
        (Some(addr), _) if config.tls.is_none() => Some(ServerError::NoTls(addr)),
        _ => None,
    }
}

/// What is exposed where and how it is protected, one line per listener, for the startup log.
/// The addresses come first after "on " so scripts (and the tests) can read them.
pub fn exposure(
    config: &Config,
    session: &SessionConfig,
    rfb: Option<SocketAddr>,
    http: Option<SocketAddr>,
) -> Vec<String> {
    let reach = |a: SocketAddr| {
        if a.ip().is_loopback() {
            "loopback only"
        } else {
            "reachable beyond loopback"
        }
    };
    let password = session.password.is_some() || session.view_only_password.is_some();
    let mut lines = Vec::new();
    if let Some(a) = rfb {
        let order = security::describe(
            &session.rfb_order(),
            session.tls.is_some(),
            session.plaintext_beyond_loopback,
        );
        lines.push(format!("RFB (VNC) on {a} ({}): {order}", reach(a)));
    }
    if let Some(a) = http {
        let (scheme, ws) = match config.tls {
            Some(_) => ("https", "wss"),
            None => ("http", "ws"),
        };
        let api = if config.api_token.is_some() {
            "API token required"
        } else {
            "API open"
        };
        let rfb_ws = if password {
            "VNC password"
        } else {
            "no password"
        };
        lines.push(format!(
            "viewer on {scheme}://{a}/ ; RFB over WebSocket on {ws}://{a}/websockify ({}; {}; {api}; RFB: {rfb_ws} or a signed viewer link)",
            reach(a),
            if config.tls.is_some() { "TLS" } else { "no TLS" },
        ));
    }
    if let Some(tls) = &config.tls {
        lines.push(format!("TLS certificate SHA-256 {}", tls.fingerprint()));
    }
    lines
}

/// The whole HTTP application: RFB over WebSocket, the action API and the viewer, for requests
/// addressed to a known Host.
fn app(
    desktop: Desktop,
    config: &Config,
    ctx: Arc<SessionContext>,
    listen: SocketAddr,
    slots: slots::RfbSlots,
    recorder: Recorder,
) -> Router {
    let display = config.display.clone();
    let api = api::router_with(desktop, display, config.x_server.clone(), Some(recorder));
    let links = LinkSecret::new(&config.state_dir);
    let api = api.merge(api::link::router(links.clone(), config.tls.is_some()));
    let api = match &config.api_token {
        Some(token) => http::bearer_token_required(api, token),
        None => api,
    };
    let api = http::same_origin_only(api, config.allowed_origins.clone());
    let viewer = match &config.api_token {
        Some(token) => http::token_cookie_from_query(assets::router(), token, config.tls.is_some()),
        None => assets::router(),
    };
    let rfb = http::rfb_router(
        ctx,
        config.allowed_origins.clone(),
        config.api_token.clone(),
        slots,
        links,
    );
    let app = rfb.merge(api).merge(viewer);
    http::known_hosts_only(app, listen, config.allowed_hosts.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_loopback_needs_tls_and_credentials() {
        let tls = Tls::new(crate::transport::tls::CertSource::SelfSigned {
            dir: std::env::temp_dir().join(format!("deskd-exposure-{}", std::process::id())),
            names: vec!["localhost".into()],
        })
        .unwrap();
        let mut c = Config {
            listen_rfb: Some("0.0.0.0:5900".parse().unwrap()),
            listen_http: None,
            ..Config::default()
        };
        assert!(matches!(exposure_error(&c), Some(ServerError::Exposed(_))));
        c.session.password = Some("pw".into());
        assert!(matches!(exposure_error(&c), Some(ServerError::NoTls(_))));
        c.tls = Some(Arc::clone(&tls));
        assert!(exposure_error(&c).is_none());
        c.listen_http = Some("0.0.0.0:6080".parse().unwrap());
        assert!(matches!(
            exposure_error(&c),
            Some(ServerError::ApiExposed(_))
        ));
        c.api_token = Some("t".into());
        assert!(exposure_error(&c).is_none());
        c.tls = None;
        assert!(matches!(exposure_error(&c), Some(ServerError::NoTls(_))));
        c.insecure = true;
        assert!(exposure_error(&c).is_none());
        let _ = std::fs::remove_dir_all(
            std::env::temp_dir().join(format!("deskd-exposure-{}", std::process::id())),
        );
    }
}
