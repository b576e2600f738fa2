//! The deskd command: start (or attach to) an X display and serve it over RFB (TCP and
//! WebSocket), with the viewer and the action API on the HTTP port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use deskd::display::{self, DisplayOptions};
use deskd::links::LinkSecret;
use deskd::server::{Config, Server};
use deskd::session::security::RfbSecurity;
use deskd::session::SessionConfig;
use deskd::transport::tls::{self, CertSource, Tls};

/// An X11 desktop over VNC (TCP and WebSocket) with a web viewer and a JSON action API.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Attach to this running X display (e.g. ":0") instead of starting Xvfb.
    #[arg(long, env = "DESKD_DISPLAY")]
    display: Option<String>,

    /// Screen size of the Xvfb deskd starts, WIDTHxHEIGHT.
    #[arg(long, env = "DESKD_GEOMETRY", default_value = "1280x800", value_parser = parse_geometry)]
    geometry: (u16, u16),

    /// Colour depth of the Xvfb deskd starts (24 or 32).
    #[arg(long, env = "DESKD_DEPTH", default_value_t = 24, value_parser = parse_depth)]
    depth: u8,

    /// HTTP address for the viewer, the action API and RFB over WebSocket, or "off".
    #[arg(long, env = "DESKD_LISTEN_HTTP", default_value = "127.0.0.1:6080", value_parser = parse_listen, global = true)]
    listen_http: Listen,

    /// RFB (VNC) over TCP address, or "off".
    #[arg(long, env = "DESKD_LISTEN_RFB", default_value = "127.0.0.1:5900", value_parser = parse_listen)]
    listen_rfb: Listen,

    /// VNC password (VNC authentication uses only the first 8 characters). Prefer
    /// DESKD_PASSWORD or --password-file: a command line is readable by every local user.
    #[arg(
        long,
        env = "DESKD_PASSWORD",
        hide_env_values = true,
        conflicts_with = "password_file"
    )]
    password: Option<String>,

    /// Read the VNC password from the first line of this file.
    #[arg(long, env = "DESKD_PASSWORD_FILE")]
    password_file: Option<PathBuf>,

    /// A second VNC password that gives view-only access (prefer DESKD_VIEW_ONLY_PASSWORD).
    #[arg(long, env = "DESKD_VIEW_ONLY_PASSWORD", hide_env_values = true)]
    view_only_password: Option<String>,

    /// Every RFB client is view-only: input, clipboard and resize requests are ignored.
    #[arg(long, env = "DESKD_VIEW_ONLY")]
    view_only: bool,

    /// Do not open the demo desktop (background and a terminal) on a display deskd starts.
    #[arg(long, env = "DESKD_NO_DEMO")]
    no_demo: bool,

    /// Bearer token required by the HTTP API and the RFB WebSocket paths (`Authorization:
    /// Bearer <token>`; the viewer takes it once as `/?token=...`); needed to serve HTTP beyond
    /// loopback (unless --insecure). Prefer DESKD_API_TOKEN or --api-token-file: a command
    /// line is readable by every local user.
    #[arg(
        long,
        env = "DESKD_API_TOKEN",
        hide_env_values = true,
        conflicts_with = "api_token_file"
    )]
    api_token: Option<String>,

    /// Read the API token from the first line of this file.
    #[arg(long, env = "DESKD_API_TOKEN_FILE")]
    api_token_file: Option<PathBuf>,

    /// Allow listening on a non-loopback address without a password or API token.
    #[arg(long, env = "DESKD_INSECURE")]
    insecure: bool,

    /// Browser origins (e.g. https://coder.example) allowed to open RFB WebSockets and call the
    /// HTTP API besides deskd's own viewer page; comma-separated, or "*" for any.
    #[arg(long, env = "DESKD_ALLOW_ORIGIN", value_delimiter = ',')]
    allow_origin: Vec<String>,

    /// Host names HTTP requests may be addressed to besides loopback names and the listen
    /// address (requests for other names are refused, which stops DNS rebinding);
    /// comma-separated, or "*" for any.
    #[arg(long, env = "DESKD_ALLOW_HOST", value_delimiter = ',')]
    allow_host: Vec<String>,

    /// Most RFB clients at once (TCP and WebSocket together); more are closed at once.
    #[arg(long, env = "DESKD_MAX_RFB_CLIENTS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_rfb_clients: u32,

    /// Most HTTP connections at once; more wait until one closes.
    #[arg(long, env = "DESKD_MAX_HTTP_CONNECTIONS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_http_connections: u32,

    /// Desktop name shown by viewers (default: "deskd <display>", following the display when
    /// `/v1/desktop/start` moves it).
    #[arg(long, env = "DESKD_NAME")]
    name: Option<String>,

    /// Most screen captures per second.
    #[arg(long, env = "DESKD_FRAME_RATE", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=240))]
    frame_rate: u32,

    /// Directory for state kept between runs (TLS material, link secret, recordings); default
    /// `$XDG_STATE_HOME/deskd`, else `~/.local/state/deskd`. Created owner-only.
    #[arg(long, env = "DESKD_STATE_DIR", global = true)]
    state_dir: Option<PathBuf>,

    /// Record the screen from startup until exit, to MP4 files under `<state dir>/recordings`.
    #[arg(long, env = "DESKD_RECORD")]
    record: bool,

    /// Log filter (error, warn, info, debug, trace, or a tracing EnvFilter directive).
    #[arg(long, env = "DESKD_LOG_LEVEL", default_value = "info")]
    log_level: String,

    // TLS and viewer links.
    /// TLS certificate chain (PEM) for HTTPS/WSS on the HTTP port and VeNCrypt on RFB;
    /// re-read on SIGHUP without dropping sessions.
    #[arg(long, env = "DESKD_TLS_CERT", requires = "tls_key", global = true)]
    tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "DESKD_TLS_KEY", requires = "tls_cert", global = true)]
    tls_key: Option<PathBuf>,

    /// Use a self-signed certificate, generated once and kept in the state directory; its
    /// SHA-256 fingerprint is printed at start.
    #[arg(
        long,
        env = "DESKD_TLS_SELF_SIGNED",
        conflicts_with = "tls_cert",
        global = true
    )]
    tls_self_signed: bool,

    /// RFB security types offered over TCP, most preferred first: x509vnc, x509plain,
    /// x509none (VeNCrypt, need TLS), vnc, none. Default: with TLS the X509 ones first.
    #[arg(long, env = "DESKD_RFB_SECURITY", value_delimiter = ',')]
    rfb_security: Vec<RfbSecurity>,

    /// With TLS, still offer the plaintext types (vnc, none) to RFB clients beyond loopback.
    #[arg(long, env = "DESKD_RFB_ALLOW_PLAINTEXT")]
    rfb_allow_plaintext: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print a signed, expiring viewer URL (signed with the secret in the state directory; a
    /// running deskd with the same state directory accepts it).
    Link {
        /// The link gives view-only access: no input, clipboard or resize.
        #[arg(long)]
        view_only: bool,
        /// How long the link works: e.g. 90s, 15m, 1h, 7d (at most 30d).
        #[arg(long, default_value = "1h", value_parser = deskd::links::parse_ttl)]
        ttl: std::time::Duration,
        /// The start of the URL, e.g. https://desk.example:6080 (default: from --listen-http
        /// and whether TLS is configured).
        #[arg(long)]
        url_base: Option<String>,
        /// Make a new link secret first: every link issued before stops working.
        #[arg(long)]
        rotate_secret: bool,
    },
}

/// A listen address, or `None` for "off".
type Listen = Option<SocketAddr>;

fn parse_geometry(s: &str) -> Result<(u16, u16), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{s:?} is not WIDTHxHEIGHT"))?;
    let w: u16 = w
        .trim()
        .parse()
        .map_err(|_| format!("bad width in {s:?}"))?;
    let h: u16 = h
        .trim()
        .parse()
        .map_err(|_| format!("bad height in {s:?}"))?;
    if !(16..=8192).contains(&w) || !(16..=8192).contains(&h) {
        return Err(format!("{s:?}: width and height must be 16..=8192"));
    }
    Ok((w, h))
}

fn parse_depth(s: &str) -> Result<u8, String> {
    match s.trim() {
        "24" => Ok(24),
        "32" => Ok(32),
        _ => Err(format!("{s:?}: the depth must be 24 or 32")),
    }
}

fn parse_listen(s: &str) -> Result<Listen, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") || s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    if let Ok(port) = s.trim_start_matches(':').parse::<u16>() {
        return Ok(Some(SocketAddr::from(([127, 0, 0, 1], port))));
    }
    s.parse()
        .map(Some)
        .map_err(|_| format!("{s:?} is not HOST:PORT, a port, or \"off\""))
}

/// The first line of a secret file (`what` names it in errors).
fn read_secret(what: &str, path: &PathBuf) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {what} file {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        return Err(format!("{what} file {} is empty", path.display()));
    }
    Ok(line.to_owned())
}

/// The secret options given on the command line itself (world-readable in /proc/PID/cmdline),
/// as opposed to the environment or a file.
fn secrets_on_command_line(m: &clap::ArgMatches) -> Vec<&'static str> {
    ["password", "view_only_password", "api_token"]
        .into_iter()
        .filter(|id| m.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        .collect()
}

fn main() -> ExitCode {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    for id in secrets_on_command_line(&matches) {
        let flag = format!("--{}", id.replace('_', "-"));
        tracing::warn!(
            "{flag} was given on the command line, which every local user can read in \
             /proc/PID/cmdline: use its DESKD_* environment variable or a file instead"
        );
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Not through tracing: the message must show whatever the log level.
            eprintln!("deskd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let state_dir = deskd::state_dir::resolve(cli.state_dir.as_deref())?;
    if let Some(Command::Link {
        view_only,
        ttl,
        url_base,
        rotate_secret,
    }) = &cli.command
    {
        let base = match url_base {
            Some(b) => b.clone(),
            None => default_url_base(&cli)?,
        };
        return link(&state_dir, &base, *ttl, *view_only, *rotate_secret);
    }
    let tls = match (&cli.tls_cert, &cli.tls_key, cli.tls_self_signed) {
        (Some(cert), Some(key), _) => Some(CertSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (_, _, true) => {
            let listen: Vec<SocketAddr> = [cli.listen_http, cli.listen_rfb]
                .into_iter()
                .flatten()
                .collect();
            Some(CertSource::SelfSigned {
                dir: state_dir.join("tls"),
                names: tls::self_signed_names(&listen),
            })
        }
        _ => None,
    };
    let tls = tls
        .map(Tls::new)
        .transpose()
        .map_err(|e| format!("TLS: {e}"))?;
    if let Some(CertSource::SelfSigned { dir, .. }) = tls.as_deref().map(Tls::source) {
        tracing::info!(dir = %dir.display(), "self-signed TLS certificate");
    }

    let password = match (&cli.password, &cli.password_file) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(f)) => Some(read_secret("password", f)?),
        (None, None) => None,
    };
    for p in [&password, &cli.view_only_password].into_iter().flatten() {
        if p.len() > 8 {
            tracing::warn!("VNC authentication uses only the first 8 characters of a password");
        }
    }

    let mut opts = DisplayOptions {
        attach: cli.display.clone(),
        width: cli.geometry.0,
        height: cli.geometry.1,
        depth: cli.depth,
        ..DisplayOptions::default()
    };
    opts.max_width = opts.max_width.max(opts.width);
    opts.max_height = opts.max_height.max(opts.height);
    opts.capture.max_fps = cli.frame_rate;

    let mut config = Config {
        listen_http: cli.listen_http,
        listen_rfb: cli.listen_rfb,
        insecure: cli.insecure,
        api_token: match (cli.api_token, &cli.api_token_file) {
            (Some(t), _) => Some(t),
            (None, Some(f)) => Some(read_secret("API token", f)?),
            (None, None) => None,
        },
        display: String::new(),
        session: SessionConfig {
            name: cli.name.unwrap_or_default(),
            password,
            view_only_password: cli.view_only_password,
            view_only: cli.view_only,
            ..SessionConfig::default()
        },
        allowed_origins: cli.allow_origin,
        x_server: None,
        state_dir: state_dir.clone(),
        tls: tls.clone(),
        allowed_hosts: cli.allow_host,
        max_rfb_clients: cli.max_rfb_clients as usize,
        http_limits: deskd::transport::http::HttpLimits {
            max_connections: cli.max_http_connections as usize,
            ..Default::default()
        },
        record_on_start: cli.record,
    };
    config.session.rfb_security = (!cli.rfb_security.is_empty()).then_some(cli.rfb_security);
    config.session.plaintext_beyond_loopback = cli.rfb_allow_plaintext;
    // Refuse an exposed listener or an unusable security order before starting anything.
    deskd::server::check(&config).map_err(|e| e.to_string())?;

    // Blocking: spawns Xvfb and the window manager, connects capture, input and clipboard.
    let mut running = display::start(opts).map_err(|e| format!("display: {e}"))?;
    let display_name = running.display();
    tracing::info!(
        display = %display_name,
        pid = ?running.xvfb_pid(),
        xauthority = ?running.xauthority(),
        "X display ready"
    );
    let demo = (cli.display.is_none() && !cli.no_demo)
        .then(|| display::demo::Demo::start(&running.client_env()));

    config.display = display_name.clone();
    config.x_server = Some(std::sync::Arc::clone(running.server()));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("deskd-rt")
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let result = runtime.block_on(async {
        let server = Server::start(running.desktop.clone(), config)
            .await
            .map_err(|e| e.to_string())?;
        // One line on stdout for scripts: where everything is.
        let show = |a: Option<std::net::SocketAddr>| a.map_or("off".to_string(), |a| a.to_string());
        // With TLS, the certificate's fingerprint too, to compare with what a browser shows.
        let fingerprint = tls
            .as_ref()
            .map(|t| format!(" tls-sha256={}", t.fingerprint()))
            .unwrap_or_default();
        println!(
            "deskd: listening http={} rfb={} display={display_name}{fingerprint}",
            show(server.http_addr),
            show(server.rfb_addr)
        );
        let signal = wait_for_signal(tls.as_deref()).await;
        tracing::info!("{signal}: shutting down");
        running.stopping();
        server.shutdown().await;
        Ok::<(), String>(())
    });
    // Stop capture and kill the demo clients, Xvfb and the window manager before exiting.
    drop(demo);
    running.shutdown();
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

/// Wait for SIGINT or SIGTERM; on SIGHUP re-read the TLS certificate and go on waiting.
async fn wait_for_signal(tls: Option<&Tls>) -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        // Without signal handlers, fall back to Ctrl-C only.
        let _ = tokio::signal::ctrl_c().await;
        return "interrupt";
    };
    loop {
        tokio::select! {
            _ = int.recv() => return "SIGINT",
            _ = term.recv() => return "SIGTERM",
            _ = hup.recv() => match tls.map(Tls::reload) {
                Some(Ok(fingerprint)) => {
                    tracing::info!("SIGHUP: TLS certificate reloaded, SHA-256 {fingerprint}");
                }
                Some(Err(e)) => {
                    tracing::error!("SIGHUP: TLS certificate not reloaded, keeping the old one: {e}");
                }
                None => tracing::info!("SIGHUP: no TLS certificate to reload"),
            },
        }
    }
}

/// `deskd link`: print a signed viewer URL.
fn link(
    state_dir: &std::path::Path,
    base: &str,
    ttl: std::time::Duration,
    view_only: bool,
    rotate: bool,
) -> Result<(), String> {
    let secret = LinkSecret::new(state_dir);
    if rotate {
        secret
            .rotate()
            .map_err(|e| format!("cannot write the link secret: {e}"))?;
        eprintln!("deskd: new link secret; links issued before no longer work");
    }
    let (token, _) = secret
        .issue(ttl, view_only)
        .map_err(|e| format!("cannot read or create the link secret: {e}"))?;
    println!("{}", deskd::links::viewer_url(base, &token));
    Ok(())
}

/// Where the viewer is reached, from --listen-http and whether TLS is configured.
fn default_url_base(cli: &Cli) -> Result<String, String> {
    let Some(addr) = cli.listen_http else {
        return Err("HTTP is off (--listen-http off): give --url-base".into());
    };
    let scheme = if cli.tls_cert.is_some() || cli.tls_self_signed {
        "https"
    } else {
        "http"
    };
    if addr.ip().is_unspecified() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        return Ok(format!("{scheme}://{host}:{}", addr.port()));
    }
    Ok(format!("{scheme}://{addr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_and_listen_parse() {
        assert_eq!(parse_geometry("1280x800"), Ok((1280, 800)));
        assert!(parse_geometry("1280").is_err());
        assert!(parse_geometry("0x10").is_err());
        assert_eq!(parse_listen("off"), Ok(None));
        assert_eq!(
            parse_listen("0.0.0.0:5901"),
            Ok(Some(SocketAddr::from(([0, 0, 0, 0], 5901))))
        );
        assert_eq!(
            parse_listen("5902"),
            Ok(Some(SocketAddr::from(([127, 0, 0, 1], 5902))))
        );
        assert!(parse_listen("nonsense").is_err());
        assert_eq!(parse_depth("32"), Ok(32));
        assert!(parse_depth("16").is_err());
    }

    #[test]
    fn cli_defaults() {
        let cli = Cli::try_parse_from(["deskd"]).unwrap();
        assert_eq!(cli.geometry, (1280, 800));
        assert_eq!(
            cli.listen_rfb,
            Some(SocketAddr::from(([127, 0, 0, 1], 5900)))
        );
        assert_eq!(
            cli.listen_http,
            Some(SocketAddr::from(([127, 0, 0, 1], 6080)))
        );
        assert!(!cli.view_only && !cli.insecure);
    }

    #[test]
    fn secrets_from_the_command_line_are_named() {
        let m = <Cli as clap::CommandFactory>::command()
            .try_get_matches_from(["deskd", "--password", "pw", "--api-token", "t"])
            .unwrap();
        assert_eq!(secrets_on_command_line(&m), vec!["password", "api_token"]);
        let m = <Cli as clap::CommandFactory>::command()
            .try_get_matches_from(["deskd", "--api-token-file", "/nonexistent"])
            .unwrap();
        assert!(secrets_on_command_line(&m).is_empty());
    }
}
