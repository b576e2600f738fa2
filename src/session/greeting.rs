//! The RFB handshake over a byte stream, driving `rfb::handshake`.
//!
//! With a view-only password configured, a VNC-auth response that matches it is accepted too
//! and the session becomes view-only: the response is checked here and replaced by the answer
//! for the full password before the state machine sees it.

use std::time::Duration;

use rfb::auth::{encrypt_challenge, verify_response, CHALLENGE_LEN};
use rfb::handshake::{
    HandshakeConfig, HandshakeError, HandshakeEvent, SecurityType, ServerHandshake, ServerInit,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::connection::SessionError;
use super::SessionConfig;
use crate::capture::Frame;

/// A client must finish the handshake within this time.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Handshake messages are tiny; a client sending more than this without progress is broken.
const MAX_PENDING: usize = 4096;

/// What the handshake settled.
#[derive(Debug)]
pub struct Greeting {
    /// The client may only watch.
    pub view_only: bool,
    /// Bytes the client sent after ClientInit (its first messages).
    pub leftover: Vec<u8>,
}

fn challenge() -> Result<[u8; CHALLENGE_LEN], SessionError> {
    let mut c = [0u8; CHALLENGE_LEN];
    getrandom::fill(&mut c)
        .map_err(|e| SessionError::Io(std::io::Error::other(format!("no randomness: {e}"))))?;
    Ok(c)
}

/// Run the handshake for a framebuffer currently `frame`-sized. With `refuse`, the client is
/// told that reason after the version exchange and the handshake fails.
pub async fn run<R, W>(
    rd: &mut R,
    wr: &mut W,
    config: &SessionConfig,
    frame: &Frame,
    refuse: Option<String>,
) -> Result<Greeting, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match tokio::time::timeout(TIMEOUT, handshake(rd, wr, config, frame, refuse)).await {
        Ok(r) => r,
        Err(_) => Err(SessionError::Handshake(format!(
            "not completed within {} s",
            TIMEOUT.as_secs()
        ))),
    }
}

async fn handshake<R, W>(
    rd: &mut R,
    wr: &mut W,
    config: &SessionConfig,
    frame: &Frame,
    refuse: Option<String>,
) -> Result<Greeting, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let init = ServerInit::new(frame.width, frame.height, &config.name);
    let full = config.password.as_deref().map(str::as_bytes);
    let view = config.view_only_password.as_deref().map(str::as_bytes);
    let challenge = challenge()?;
    let mut hs_config = match (full, view) {
        (None, None) => HandshakeConfig::no_auth(init),
        (Some(p), _) | (None, Some(p)) => HandshakeConfig::vnc_auth(p, challenge, init),
    };
    hs_config.refuse = refuse;
    // With only a view-only password, everyone who authenticates is view-only.
    let mut view_only = config.view_only || (full.is_none() && view.is_some());
    let mut hs = ServerHandshake::new(hs_config);
    let mut buf: Vec<u8> = Vec::with_capacity(64);
    let mut awaiting_response = false;
    loop {
        let out = hs.take_output();
        if !out.is_empty() {
            wr.write_all(&out).await?;
            wr.flush().await?;
        }
        while let Some(ev) = hs.poll_event() {
            match ev {
                HandshakeEvent::SecuritySelected(SecurityType::VncAuth) => awaiting_response = true,
                HandshakeEvent::SecurityDelegated(t) => {
                    return Err(SessionError::Handshake(format!(
                        "security type {t:?} is not available"
                    )));
                }
                HandshakeEvent::Done { .. } => {
                    return Ok(Greeting {
                        view_only,
                        leftover: buf,
                    });
                }
                _ => {}
            }
        }
        if buf.len() > MAX_PENDING {
            return Err(SessionError::Handshake(format!(
                "{} bytes without a complete handshake message",
                buf.len()
            )));
        }
        if rd.read_buf(&mut buf).await? == 0 {
            return Err(SessionError::Handshake(
                "client closed the connection during the handshake".into(),
            ));
        }
        if awaiting_response && buf.len() >= CHALLENGE_LEN {
            awaiting_response = false;
            if let (Some(full), Some(view)) = (full, view) {
                let mut response = [0u8; CHALLENGE_LEN];
                response.copy_from_slice(&buf[..CHALLENGE_LEN]);
                if !verify_response(full, &challenge, &response)
                    && verify_response(view, &challenge, &response)
                {
                    view_only = true;
                    buf[..CHALLENGE_LEN].copy_from_slice(&encrypt_challenge(full, &challenge));
                }
            }
        }
        match hs.receive(&buf) {
            Ok(used) => {
                buf.drain(..used);
            }
            Err(e) => {
                // The failure reason, where the protocol has one, is queued: send it.
                let out = hs.take_output();
                if !out.is_empty() {
                    let _ = wr.write_all(&out).await;
                    let _ = wr.flush().await;
                }
                return Err(match e {
                    HandshakeError::AuthFailed => SessionError::AuthFailed,
                    e => SessionError::Handshake(e.to_string()),
                });
            }
        }
    }
}
