//! TLS with rustls (ring provider): the certificate (files reloaded on SIGHUP, or self-signed
//! and kept in the state directory), HTTPS on the HTTP port, and the stream upgrade VeNCrypt
//! asks for in the middle of an RFB handshake.
//!
//! One certificate resolver serves both uses, so a reload reaches new HTTPS connections and
//! new VeNCrypt handshakes alike; connections already up keep the session keys they have.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// PEM files given by the user: a certificate chain and its private key.
    Files {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// Private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// A self-signed certificate generated once and kept in this directory.
    SelfSigned {
        /// Where `cert.pem` and `key.pem` live.
        dir: PathBuf,
        /// Subject alternative names for a new certificate (DNS names or IP addresses).
        names: Vec<String>,
    },
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file holds no usable certificate or key.
    #[error("{0}")]
    Pem(String),
    /// rustls refused the key or the configuration.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// Generating the self-signed certificate failed.
    #[error("generating a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

fn file_error(path: &Path) -> impl FnOnce(io::Error) -> TlsError + '_ {
    move |source| TlsError::File {
        path: path.to_owned(),
        source,
    }
}

/// The certificate in use, swappable while connections are running.
#[derive(Debug)]
struct Resolver(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|k| Arc::clone(&k))
    }
}

/// deskd's TLS: the certificate and the two server configurations built on it.
#[derive(Debug)]
pub struct Tls {
    source: CertSource,
    resolver: Arc<Resolver>,
    /// HTTPS: ALPN `http/1.1` (the HTTP server speaks HTTP/1.1).
    https: Arc<ServerConfig>,
    /// VeNCrypt: no ALPN (RFB clients send none).
    rfb: Arc<ServerConfig>,
    fingerprint: RwLock<String>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    /// Load (or generate) the certificate and build the server configurations.
    pub fn new(source: CertSource) -> Result<Arc<Tls>, TlsError> {
        let (key, fingerprint) = load(&source)?;
        let resolver = Arc::new(Resolver(RwLock::new(key)));
        let config = |alpn: &[&[u8]], tickets: bool| -> Result<Arc<ServerConfig>, TlsError> {
            let mut c = ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            if !tickets {
                c.send_tls13_tickets = 0;
            }
            Ok(Arc::new(c))
        };
        Ok(Arc::new(Tls {
            https: config(&[b"http/1.1"], true)?,
            // No TLS 1.3 session tickets for RFB: TigerVNC 1.12 stalls when a ticket arrives in
            // the same read as the SecurityResult (gnutls returns "try again" for the ticket and
            // TigerVNC then waits on the socket for data gnutls already holds). RFB clients
            // do not resume sessions anyway.
            rfb: config(&[], false)?,
            source,
            resolver,
            fingerprint: RwLock::new(fingerprint),
        }))
    }

    /// Read the certificate files again (SIGHUP). On error the old certificate stays.
    /// Returns the new fingerprint.
    pub fn reload(&self) -> Result<String, TlsError> {
        let (key, fingerprint) = load(&self.source)?;
        if let Ok(mut k) = self.resolver.0.write() {
            *k = key;
        }
        if let Ok(mut f) = self.fingerprint.write() {
            f.clone_from(&fingerprint);
        }
        Ok(fingerprint)
    }

    /// SHA-256 of the certificate in use (DER), as colon-separated hex.
    pub fn fingerprint(&self) -> String {
        self.fingerprint
            .read()
            .map(|f| f.clone())
            .unwrap_or_default()
    }

    /// Where the certificate comes from.
    pub fn source(&self) -> &CertSource {
        &self.source
    }

    /// The acceptor for VeNCrypt's TLS.
    pub fn rfb_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.rfb))
    }

    /// The acceptor for HTTPS.
    pub fn https_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.https))
    }
}

/// The certificate and key of `source`, checked to belong together, and the fingerprint.
fn load(source: &CertSource) -> Result<(Arc<CertifiedKey>, String), TlsError> {
    let (cert_path, key_path) = match source {
        CertSource::Files { cert, key } => (cert.clone(), key.clone()),
        CertSource::SelfSigned { dir, names } => self_signed(dir, names)?,
    };
    let cert_pem = std::fs::read(&cert_path).map_err(file_error(&cert_path))?;
    let key_pem = std::fs::read(&key_path).map_err(file_error(&key_path))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem(format!("{}: {e}", cert_path.display())))?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::Pem(format!(
            "{}: no certificate in the file",
            cert_path.display()
        )));
    };
    let fingerprint = fingerprint(leaf);
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| TlsError::Pem(format!("{}: {e}", key_path.display())))?;
    let signing = provider().key_provider.load_private_key(key)?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        TlsError::Pem(format!(
            "{} does not hold the key of {}: {e}",
            key_path.display(),
            cert_path.display()
        ))
    })?;
    Ok((Arc::new(certified), fingerprint))
}

/// SHA-256 of a DER certificate as `AB:CD:...`, as browsers and `openssl x509 -fingerprint
/// -sha256` show it.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// The self-signed certificate in `dir` (`cert.pem`, `key.pem`), generated for `names` the
/// first time. Kept so that its fingerprint, which users pin, stays the same across starts.
pub fn self_signed(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    crate::state_dir::ensure(dir).map_err(TlsError::Pem)?;
    let generated = rcgen::generate_simple_self_signed(names.to_vec())?;
    crate::state_dir::write_private(&key, generated.key_pair.serialize_pem().as_bytes())
        .map_err(file_error(&key))?;
    std::fs::write(&cert, generated.cert.pem()).map_err(file_error(&cert))?;
    Ok((cert, key))
}

/// Names for a new self-signed certificate: loopback, this host's name, and the listen
/// addresses that are specific (not 0.0.0.0 / ::).
pub fn self_signed_names(listen: &[SocketAddr]) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_string());
        }
    }
    for a in listen {
        if !a.ip().is_unspecified() {
            names.push(a.ip().to_string());
        }
    }
    names.sort();
    names.dedup();
    names
}

// ---------------------------------------------------------------------------------------------
// VeNCrypt: a stream that may turn into TLS in the middle of the RFB handshake.

/// Bytes already read from a stream, served again before the stream's own.
pub struct Prefixed<S> {
    early: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.early.len() {
            let rest = &this.early[this.pos..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.pos += n;
            if this.pos == this.early.len() {
                this.early = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, b)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// An RFB connection's byte stream: as accepted, or inside TLS once VeNCrypt started it.
pub enum MaybeTls<S> {
    /// The stream as accepted.
    Plain(S),
    /// TLS over the stream.
    Tls(Box<TlsStream<Prefixed<S>>>),
}

impl<S: AsyncRead + AsyncWrite + Unpin> MaybeTls<S> {
    /// Run a TLS server handshake on the plain stream; `early` are bytes the RFB handshake
    /// already read past its last message (the start of the client's TLS handshake).
    pub async fn start_tls(self, acceptor: &TlsAcceptor, early: Vec<u8>) -> io::Result<Self> {
        let MaybeTls::Plain(inner) = self else {
            return Err(io::Error::other("TLS is already running"));
        };
        let stream = Prefixed {
            early,
            pos: 0,
            inner,
        };
        let tls = acceptor.accept(stream).await?;
        Ok(MaybeTls::Tls(Box::new(tls)))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, b),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, b),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTPS on the HTTP port.

/// A client must finish its TLS handshake (or send its plain HTTP request) within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The first byte of a TLS record carrying a handshake (the ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

/// An accepted connection on the HTTPS port, as TLS, within [`HANDSHAKE_TIMEOUT`]. A plain
/// HTTP request gets a 400 naming the https:// URL (and `None`), never a redirect: a redirect
/// would let every `http://` bookmark, script and API call keep working while sending its
/// token or link in the clear first, and WebSocket clients do not follow redirects anyway.
/// nginx answers the same way.
pub async fn accept_https(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: &TlsAcceptor,
) -> Option<MaybeTls<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(tcp, peer, acceptor)).await {
        Ok(stream) => stream,
        Err(_) => {
            tracing::debug!(%peer, "https handshake timed out");
            None
        }
    }
}

async fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: &TlsAcceptor,
) -> Option<MaybeTls<TcpStream>> {
    let mut first = [0u8; 1];
    match tcp.peek(&mut first).await {
        Ok(1) => {}
        _ => return None,
    }
    if first[0] != TLS_HANDSHAKE {
        refuse_plain_http(tcp, peer).await;
        return None;
    }
    match MaybeTls::Plain(tcp).start_tls(acceptor, Vec::new()).await {
        Ok(tls) => Some(tls),
        Err(e) => {
            tracing::info!(%peer, error = %e, "TLS handshake failed");
            None
        }
    }
}

/// Answer a plain HTTP request with 400 and the https:// URL to use instead.
async fn refuse_plain_http(mut tcp: TcpStream, peer: SocketAddr) {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // Enough of the request to find its Host header; a request is not waited for beyond it.
    while head.len() < 8192 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    tracing::info!(%peer, "plain HTTP request on the HTTPS port refused");
    let body = plain_http_refusal(&head);
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(response.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

/// The body of the refusal for a plain HTTP request head: names the https:// URL when the
/// request carried a sane Host.
pub fn plain_http_refusal(head: &[u8]) -> String {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .filter(|p| p.starts_with('/') && p.len() <= 2048)
        .unwrap_or("/");
    let host = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("host")
            .then(|| value.trim())
    });
    let sane = |s: &str| {
        !s.is_empty()
            && s.len() <= 255
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
    };
    let path_sane = path.chars().all(|c| c.is_ascii_graphic());
    match host.filter(|h| sane(h)) {
        Some(h) if path_sane => {
            format!("This port speaks HTTPS only: use https://{h}{path} (wss:// for WebSockets).\n")
        }
        Some(h) => {
            format!("This port speaks HTTPS only: use https://{h}/ (wss:// for WebSockets).\n")
        }
        None => "This port speaks HTTPS only: use https:// (wss:// for WebSockets).\n".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_names_the_https_url() {
        assert_eq!(
            plain_http_refusal(b"GET /index.html?x=1 HTTP/1.1\r\nHost: desk.example:6080\r\n\r\n"),
            "This port speaks HTTPS only: use https://desk.example:6080/index.html?x=1 (wss:// for WebSockets).\n"
        );
        // A hostile Host is not echoed.
        assert_eq!(
            plain_http_refusal(b"GET / HTTP/1.1\r\nHost: <script>\r\n\r\n"),
            "This port speaks HTTPS only: use https:// (wss:// for WebSockets).\n"
        );
        assert!(plain_http_refusal(b"\xff\xfe garbage").contains("https://"));
    }

    #[test]
    fn fingerprint_is_colon_hex_sha256() {
        // SHA-256 of the empty string.
        assert_eq!(
            fingerprint(b""),
            "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
        );
    }

    #[test]
    fn self_signed_is_generated_once_and_reloads() {
        let dir = std::env::temp_dir().join(format!("deskd-tls-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let source = CertSource::SelfSigned {
            dir: dir.clone(),
            names: self_signed_names(&[]),
        };
        let tls = Tls::new(source.clone()).unwrap();
        let first = tls.fingerprint();
        assert_eq!(first.len(), 32 * 3 - 1);
        // Kept: a second start and a reload see the same certificate.
        assert_eq!(Tls::new(source).unwrap().fingerprint(), first);
        assert_eq!(tls.reload().unwrap(), first);
        // A key that does not match the certificate is refused, and the old one stays.
        let other = std::env::temp_dir().join(format!("deskd-tls-unit2-{}", std::process::id()));
        let (_, other_key) = self_signed(&other, &["localhost".into()]).unwrap();
        let mixed = Tls::new(CertSource::Files {
            cert: dir.join("cert.pem"),
            key: other_key,
        });
        assert!(matches!(mixed, Err(TlsError::Pem(_))), "{mixed:?}");
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&other);
    }
}
