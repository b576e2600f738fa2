//! The RFB handshake over a byte stream, driving `rfb::handshake`. When the client picks a
//! VeNCrypt subtype the stream is upgraded to TLS in place and the handshake goes on inside it.

use std::time::Duration;

use rfb::auth::CHALLENGE_LEN;
use rfb::handshake::{
    HandshakeConfig, HandshakeError, HandshakeEvent, ServerHandshake, ServerInit, VeNCryptSubtype,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::connection::SessionError;
use super::{Admission, SessionConfig};
use crate::capture::Frame;
use crate::transport::tls::MaybeTls;

/// A client must finish the handshake within this time.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Handshake messages are tiny; a client sending more than this without progress is broken.
const MAX_PENDING: usize = 4096;

/// What the handshake settled.
#[derive(Debug)]
pub struct Greeting {
    /// The client may only watch.
    pub view_only: bool,
    /// The VeNCrypt subtype, when the session runs inside TLS.
    pub tls: Option<VeNCryptSubtype>,
    /// Bytes the client sent after ClientInit (its first messages).
    pub leftover: Vec<u8>,
}

fn challenge() -> Result<[u8; CHALLENGE_LEN], SessionError> {
    let mut c = [0u8; CHALLENGE_LEN];
    getrandom::fill(&mut c)
        .map_err(|e| SessionError::Io(std::io::Error::other(format!("no randomness: {e}"))))?;
    Ok(c)
}

/// Run the handshake for a framebuffer currently `frame`-sized. Returns the stream to go on
/// with: the one given, or TLS over it. With `refuse`, the client is told that reason after
/// the version exchange and the handshake fails.
pub async fn run<S>(
    stream: S,
    config: &SessionConfig,
    admission: &Admission,
    frame: &Frame,
    refuse: Option<String>,
) -> Result<(Greeting, MaybeTls<S>), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hs = handshake(stream, config, admission, frame, refuse);
    match tokio::time::timeout(TIMEOUT, hs).await {
        Ok(r) => r,
        Err(_) => Err(SessionError::Handshake(format!(
            "not completed within {} s",
            TIMEOUT.as_secs()
        ))),
    }
}

async fn handshake<S>(
    stream: S,
    config: &SessionConfig,
    admission: &Admission,
    frame: &Frame,
    refuse: Option<String>,
) -> Result<(Greeting, MaybeTls<S>), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let init = ServerInit::new(frame.width, frame.height, &config.name);
    let full = config.password.as_deref().map(str::as_bytes);
    let view = config.view_only_password.as_deref().map(str::as_bytes);
    let mut hs_config = HandshakeConfig::no_auth(init);
    hs_config.security.clone_from(&admission.offer.security);
    hs_config.vencrypt.clone_from(&admission.offer.vencrypt);
    hs_config.challenge = challenge()?;
    // With only a view-only password, it is the password, and everyone is view-only.
    hs_config.password = full.or(view).unwrap_or_default().to_vec();
    hs_config.view_only_password = full.and(view).map(<[u8]>::to_vec);
    hs_config.refuse = refuse;
    if hs_config.security.is_empty() {
        hs_config.refuse =
            Some("This server accepts clients beyond loopback over TLS (VeNCrypt) only".into());
    }
    let forced_view_only =
        admission.view_only || config.view_only || (full.is_none() && view.is_some());
    let mut hs = ServerHandshake::new(hs_config);
    let mut io = MaybeTls::Plain(stream);
    let mut buf: Vec<u8> = Vec::with_capacity(64);
    loop {
        let out = hs.take_output();
        if !out.is_empty() {
            io.write_all(&out).await?;
            io.flush().await?;
        }
        while let Some(ev) = hs.poll_event() {
            match ev {
                HandshakeEvent::StartTls(_) => {
                    let Some(tls) = &admission.tls else {
                        return Err(SessionError::Handshake("VeNCrypt without TLS".into()));
                    };
                    // Whatever was read past the subtype is the start of the TLS handshake.
                    let early = std::mem::take(&mut buf);
                    io = match io.start_tls(&tls.rfb_acceptor(), early).await {
                        Ok(io) => io,
                        Err(e) => {
                            return Err(SessionError::Handshake(
                                hs.tls_failed(e.to_string()).to_string(),
                            ))
                        }
                    };
                    hs.tls_established()
                        .map_err(|e| SessionError::Handshake(e.to_string()))?;
                }
                HandshakeEvent::Done {
                    view_only,
                    vencrypt,
                    ..
                } => {
                    let greeting = Greeting {
                        view_only: view_only || forced_view_only,
                        tls: vencrypt,
                        leftover: buf,
                    };
                    return Ok((greeting, io));
                }
                _ => {}
            }
        }
        let out = hs.take_output();
        if !out.is_empty() {
            // Output queued by an event (the first message inside TLS): send it first.
            io.write_all(&out).await?;
            io.flush().await?;
        }
        if buf.len() > MAX_PENDING {
            return Err(SessionError::Handshake(format!(
                "{} bytes without a complete handshake message",
                buf.len()
            )));
        }
        if io.read_buf(&mut buf).await? == 0 {
            return Err(SessionError::Handshake(
                "client closed the connection during the handshake".into(),
            ));
        }
        match hs.receive(&buf) {
            Ok(used) => {
                buf.drain(..used);
            }
            Err(e) => {
                // The failure reason, where the protocol has one, is queued: send it.
                let out = hs.take_output();
                if !out.is_empty() {
                    let _ = io.write_all(&out).await;
                    let _ = io.flush().await;
                }
                return Err(match e {
                    HandshakeError::AuthFailed => SessionError::AuthFailed,
                    e => SessionError::Handshake(e.to_string()),
                });
            }
        }
    }
}
