//! Server side of the RFB handshake (RFC 6143 §7.1–7.3): ProtocolVersion, security
//! negotiation, SecurityResult, ClientInit and ServerInit.
//!
//! Sans-IO, in the style of rustls: create a [`ServerHandshake`], send what
//! [`ServerHandshake::take_output`] returns, feed client bytes to [`ServerHandshake::receive`]
//! and read [`HandshakeEvent`]s from [`ServerHandshake::poll_event`] until
//! [`HandshakeEvent::Done`]. Bytes after the ClientInit are not consumed: they are the first
//! client messages.
//!
//! On error the output buffer may still hold a failure message (a reason string where the
//! protocol has one): send it, then close the connection.
//!
//! VeNCrypt (security type 19, version 0.2) is negotiated here too, with the X509 subtypes
//! only: TLSNone/TLSVnc/TLSPlain need anonymous Diffie-Hellman, which rustls does not offer.
//! Once the client picks a subtype the handshake emits [`HandshakeEvent::StartTls`]: the
//! caller sends the pending output in the clear, runs a TLS server handshake on the stream,
//! calls [`ServerHandshake::tls_established`] and from then on moves every byte (in and out,
//! this handshake's included) through TLS. The record layer is not the handshake's business.
//!
//! ```
//! use rfb::handshake::{HandshakeConfig, HandshakeEvent, ServerHandshake, ServerInit};
//! let mut hs = ServerHandshake::new(HandshakeConfig::no_auth(ServerInit::new(640, 480, "desk")));
//! assert_eq!(hs.take_output(), b"RFB 003.008\n");
//! let n = hs.receive(b"RFB 003.008\n\x01\x01").unwrap();
//! assert_eq!(n, 14);
//! assert!(hs.is_done());
//! ```

use std::collections::VecDeque;

use crate::auth::{self, CHALLENGE_LEN};
use crate::messages::server::write_server_init;
use crate::pixel::PixelFormat;

/// A protocol version the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// RFB 3.3: the server picks the security type; no SecurityResult after None.
    V3_3,
    /// RFB 3.7: the client picks the security type.
    V3_7,
    /// RFB 3.8: SecurityResult always sent, with a reason on failure.
    V3_8,
}

impl Version {
    /// The 12-byte ProtocolVersion message for this version.
    pub fn wire(self) -> &'static [u8; 12] {
        match self {
            Version::V3_3 => b"RFB 003.003\n",
            Version::V3_7 => b"RFB 003.007\n",
            Version::V3_8 => b"RFB 003.008\n",
        }
    }
}

/// A security type (RFC 6143 §7.2 and the IANA registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityType {
    /// 1: no authentication.
    None,
    /// 2: VNC DES challenge-response.
    VncAuth,
    /// 19: VeNCrypt: TLS, then the subtypes in [`HandshakeConfig::vencrypt`].
    VeNCrypt,
}

impl SecurityType {
    /// The number on the wire.
    pub fn code(self) -> u8 {
        match self {
            SecurityType::None => 1,
            SecurityType::VncAuth => 2,
            SecurityType::VeNCrypt => 19,
        }
    }
}

/// A VeNCrypt subtype this server can run: TLS with an X.509 certificate, then an
/// authentication inside the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VeNCryptSubtype {
    /// 260: TLS, no authentication.
    X509None,
    /// 261: TLS, then VNC authentication.
    X509Vnc,
    /// 262: TLS, then a username and password in the clear inside the tunnel. The username is
    /// not checked; the password is compared whole (not cut to 8 bytes as VNC auth does).
    X509Plain,
}

impl VeNCryptSubtype {
    /// The number on the wire.
    pub fn code(self) -> u32 {
        match self {
            VeNCryptSubtype::X509None => 260,
            VeNCryptSubtype::X509Vnc => 261,
            VeNCryptSubtype::X509Plain => 262,
        }
    }

    /// The conventional name (as TigerVNC's `SecurityTypes` spells it).
    pub fn name(self) -> &'static str {
        match self {
            VeNCryptSubtype::X509None => "X509None",
            VeNCryptSubtype::X509Vnc => "X509Vnc",
            VeNCryptSubtype::X509Plain => "X509Plain",
        }
    }
}

/// The longest username or password accepted by X509Plain.
pub const MAX_PLAIN_LEN: u32 = 1024;

/// What the server announces in ServerInit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInit {
    /// Framebuffer width.
    pub width: u16,
    /// Framebuffer height.
    pub height: u16,
    /// The server's pixel format.
    pub format: PixelFormat,
    /// Desktop name (UTF-8).
    pub name: String,
}

impl ServerInit {
    /// A ServerInit in the native pixel format.
    pub fn new(width: u16, height: u16, name: &str) -> Self {
        ServerInit {
            width,
            height,
            format: PixelFormat::NATIVE,
            name: name.to_owned(),
        }
    }
}

/// Handshake settings. `Debug` shows the password and challenge as redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct HandshakeConfig {
    /// The version announced (the highest the server accepts). Normally 3.8.
    pub version: Version,
    /// Security types offered, most preferred first. With RFB 3.3 the server picks the first of
    /// None and VncAuth in this list.
    pub security: Vec<SecurityType>,
    /// The password for [`SecurityType::VncAuth`] (only the first 8 bytes count).
    pub password: Vec<u8>,
    /// A second password that also passes VNC authentication (and X509Plain) but marks the
    /// session view-only ([`HandshakeEvent::Done`]'s `view_only`). Checked after `password`.
    pub view_only_password: Option<Vec<u8>>,
    /// VeNCrypt subtypes offered, most preferred first, when `security` holds
    /// [`SecurityType::VeNCrypt`].
    pub vencrypt: Vec<VeNCryptSubtype>,
    /// The VNC auth challenge: must be random per connection (the crate has no RNG).
    pub challenge: [u8; CHALLENGE_LEN],
    /// Sent after ClientInit; see [`ServerHandshake::set_server_init`].
    pub server_init: ServerInit,
    /// When set, refuse the connection after the version exchange with this reason (3.3 and
    /// later all have a way to carry it).
    pub refuse: Option<String>,
}

impl std::fmt::Debug for HandshakeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeConfig")
            .field("version", &self.version)
            .field("security", &self.security)
            .field("password", &"<redacted>")
            .field(
                "view_only_password",
                &self.view_only_password.as_ref().map(|_| "<redacted>"),
            )
            .field("vencrypt", &self.vencrypt)
            .field("challenge", &"<redacted>")
            .field("server_init", &self.server_init)
            .field("refuse", &self.refuse)
            .finish()
    }
}

impl HandshakeConfig {
    /// RFB 3.8 with no authentication.
    pub fn no_auth(server_init: ServerInit) -> Self {
        HandshakeConfig {
            version: Version::V3_8,
            security: vec![SecurityType::None],
            password: Vec::new(),
            view_only_password: None,
            vencrypt: Vec::new(),
            challenge: [0; CHALLENGE_LEN],
            server_init,
            refuse: None,
        }
    }

    /// RFB 3.8 with VNC authentication only.
    pub fn vnc_auth(
        password: &[u8],
        challenge: [u8; CHALLENGE_LEN],
        server_init: ServerInit,
    ) -> Self {
        HandshakeConfig {
            version: Version::V3_8,
            security: vec![SecurityType::VncAuth],
            password: password.to_vec(),
            view_only_password: None,
            vencrypt: Vec::new(),
            challenge,
            server_init,
            refuse: None,
        }
    }
}

/// Something the caller may want to know or act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeEvent {
    /// The client's ProtocolVersion arrived.
    Version {
        /// The version spoken from now on.
        version: Version,
        /// Major number as sent.
        major: u16,
        /// Minor number as sent (e.g. 889 for Apple clients).
        minor: u16,
    },
    /// The security type was chosen.
    SecuritySelected(SecurityType),
    /// The client chose this VeNCrypt subtype and the server accepted: send the pending output
    /// in the clear, run a TLS server handshake, then call
    /// [`ServerHandshake::tls_established`]. No bytes are consumed meanwhile; any already
    /// received belong to the TLS handshake.
    StartTls(VeNCryptSubtype),
    /// ClientInit arrived and ServerInit was written: the session starts.
    Done {
        /// Negotiated version.
        version: Version,
        /// Security type used.
        security: SecurityType,
        /// The client's shared flag.
        shared: bool,
        /// The client authenticated with [`HandshakeConfig::view_only_password`].
        view_only: bool,
        /// The VeNCrypt subtype, when the session runs inside TLS.
        vencrypt: Option<VeNCryptSubtype>,
    },
}

/// Why the handshake failed. Each variant is one failure class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The ProtocolVersion is not of the form `RFB xxx.yyy\n`.
    #[error("bad ProtocolVersion {0:?}")]
    BadVersion(Vec<u8>),
    /// A well-formed version this server does not speak.
    #[error("unsupported RFB version {major}.{minor}")]
    UnsupportedVersion {
        /// Major number sent.
        major: u16,
        /// Minor number sent.
        minor: u16,
    },
    /// No configured security type can be used with the client's version.
    #[error("no security type available for this protocol version")]
    NoSecurityType,
    /// The client chose a security type that was not offered.
    #[error("client chose security type {0}, which was not offered")]
    SecurityTypeNotOffered(u8),
    /// Wrong VNC password.
    #[error("authentication failed")]
    AuthFailed,
    /// The client speaks a VeNCrypt version other than 0.2.
    #[error("unsupported VeNCrypt version {major}.{minor}")]
    UnsupportedVeNCrypt {
        /// Major number sent.
        major: u8,
        /// Minor number sent.
        minor: u8,
    },
    /// The client chose a VeNCrypt subtype that was not offered.
    #[error("client chose VeNCrypt subtype {0}, which was not offered")]
    SubtypeNotOffered(u32),
    /// An X509Plain username or password longer than [`MAX_PLAIN_LEN`].
    #[error("X509Plain credentials too long ({0} bytes)")]
    PlainTooLong(u32),
    /// The TLS handshake failed ([`ServerHandshake::tls_failed`]).
    #[error("TLS failed: {0}")]
    TlsFailed(String),
    /// The server refused the connection ([`HandshakeConfig::refuse`]).
    #[error("connection refused: {0}")]
    Refused(String),
    /// Bytes were fed after the handshake had already failed.
    #[error("the handshake already failed")]
    AlreadyFailed,
    /// A call that does not fit the current state (e.g. TLS reported up when none was
    /// started).
    #[error("call out of order")]
    OutOfOrder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Version,
    SecurityChoice,
    VeNCryptVersion,
    VeNCryptSubtype,
    AwaitTls(VeNCryptSubtype),
    PlainAuth,
    AuthResponse,
    ClientInit,
    Done,
    Failed,
}

/// The server side of one connection's handshake.
#[derive(Debug)]
pub struct ServerHandshake {
    config: HandshakeConfig,
    state: State,
    version: Version,
    security: SecurityType,
    vencrypt: Option<VeNCryptSubtype>,
    view_only: bool,
    out: Vec<u8>,
    events: VecDeque<HandshakeEvent>,
}

const AUTH_FAILED_REASON: &str = "Authentication failed";

impl ServerHandshake {
    /// Start a handshake; the ProtocolVersion is queued for sending at once.
    pub fn new(config: HandshakeConfig) -> Self {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(config.version.wire());
        ServerHandshake {
            version: config.version,
            config,
            state: State::Version,
            security: SecurityType::None,
            vencrypt: None,
            view_only: false,
            out,
            events: VecDeque::new(),
        }
    }

    /// Bytes to send to the client, removed from the buffer.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Bytes waiting to be sent.
    pub fn pending_output(&self) -> &[u8] {
        &self.out
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<HandshakeEvent> {
        self.events.pop_front()
    }

    /// True once ServerInit has been written.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The negotiated version (the announced one until the client's arrives).
    pub fn version(&self) -> Version {
        self.version
    }

    /// Replace the ServerInit to send (e.g. after a resize). Takes effect if ClientInit has not
    /// been processed yet.
    pub fn set_server_init(&mut self, init: ServerInit) {
        self.config.server_init = init;
    }

    /// Feed client bytes. Returns how many were consumed; stops after ClientInit (the rest are
    /// client messages) or while TLS is being started ([`HandshakeEvent::StartTls`]). Partial input is kept track
    /// of by consuming nothing: call again with the same bytes plus more.
    pub fn receive(&mut self, input: &[u8]) -> Result<usize, HandshakeError> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            let n = match self.state {
                State::Failed => return Err(HandshakeError::AlreadyFailed),
                State::Done | State::AwaitTls(_) => return Ok(used),
                State::Version => self.on_version(rest)?,
                State::SecurityChoice => self.on_security_choice(rest)?,
                State::VeNCryptVersion => self.on_vencrypt_version(rest)?,
                State::VeNCryptSubtype => self.on_vencrypt_subtype(rest)?,
                State::PlainAuth => self.on_plain_auth(rest)?,
                State::AuthResponse => self.on_auth_response(rest)?,
                State::ClientInit => self.on_client_init(rest),
            };
            if n == 0 {
                return Ok(used);
            }
            used += n;
        }
    }

    /// The TLS handshake asked for by [`HandshakeEvent::StartTls`] completed: continue with
    /// the subtype's authentication. Output from now on must go through TLS.
    pub fn tls_established(&mut self) -> Result<(), HandshakeError> {
        let State::AwaitTls(subtype) = self.state else {
            return Err(HandshakeError::OutOfOrder);
        };
        match subtype {
            VeNCryptSubtype::X509None => {
                // VeNCrypt always ends with a SecurityResult, whatever the RFB version.
                self.security_result_ok();
                self.state = State::ClientInit;
            }
            VeNCryptSubtype::X509Vnc => {
                self.out.extend_from_slice(&self.config.challenge);
                self.state = State::AuthResponse;
            }
            VeNCryptSubtype::X509Plain => self.state = State::PlainAuth,
        }
        Ok(())
    }

    /// The TLS handshake failed: nothing more can be said to the client (the stream is in an
    /// unknown TLS state), the handshake is over.
    pub fn tls_failed(&mut self, reason: String) -> HandshakeError {
        self.fail(HandshakeError::TlsFailed(reason))
    }

    fn fail(&mut self, e: HandshakeError) -> HandshakeError {
        self.state = State::Failed;
        e
    }

    /// A reason string: u32 length then bytes.
    fn write_reason(&mut self, reason: &str) {
        crate::messages::server::write_string(&mut self.out, reason.as_bytes());
    }

    fn security_result_ok(&mut self) {
        self.out.extend_from_slice(&0u32.to_be_bytes());
    }

    fn security_result_failed(&mut self, reason: &str) {
        self.out.extend_from_slice(&1u32.to_be_bytes());
        if self.version == Version::V3_8 {
            self.write_reason(reason);
        }
    }

    /// The connection-failed form before security: 3.3 sends security type 0, 3.7+ an empty
    /// list; both followed by a reason.
    fn refuse(&mut self, reason: &str) {
        if self.version == Version::V3_3 {
            self.out.extend_from_slice(&0u32.to_be_bytes());
        } else {
            self.out.push(0);
        }
        self.write_reason(reason);
    }

    fn on_version(&mut self, input: &[u8]) -> Result<usize, HandshakeError> {
        const PREFIX: &[u8] = b"RFB ";
        let k = input.len().min(PREFIX.len());
        if input[..k] != PREFIX[..k] {
            return Err(self.fail(HandshakeError::BadVersion(input[..k].to_vec())));
        }
        let Some(msg) = input.get(..12) else {
            return Ok(0);
        };
        let digits = |b: &[u8]| -> Option<u16> {
            b.iter().try_fold(0u16, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + u16::from(c - b'0'))
            })
        };
        let (Some(major), Some(minor), b'.', b'\n') =
            (digits(&msg[4..7]), digits(&msg[8..11]), msg[7], msg[11])
        else {
            return Err(self.fail(HandshakeError::BadVersion(msg.to_vec())));
        };
        let client = match (major, minor) {
            // 3.5 was misreported by some clients and 3.4/3.6 are vendor variants: all 3.3.
            (3, 3..=6) => Version::V3_3,
            (3, 7) => Version::V3_7,
            // Apple sends 3.889; anything newer in the 3.x line speaks at least 3.8.
            (3, 8..) => Version::V3_8,
            _ => return Err(self.fail(HandshakeError::UnsupportedVersion { major, minor })),
        };
        // A client must not ask for more than was announced; speak the lower one if it does.
        self.version = client.min(self.config.version);
        self.events.push_back(HandshakeEvent::Version {
            version: self.version,
            major,
            minor,
        });
        if let Some(reason) = self.config.refuse.clone() {
            self.refuse(&reason);
            return Err(self.fail(HandshakeError::Refused(reason)));
        }
        if self.version == Version::V3_3 {
            // The server picks; 3.3 only knows None and VNC auth.
            let pick = self
                .config
                .security
                .iter()
                .copied()
                .find(|s| matches!(s, SecurityType::None | SecurityType::VncAuth));
            let Some(sec) = pick else {
                self.refuse("No security type available for RFB 3.3");
                return Err(self.fail(HandshakeError::NoSecurityType));
            };
            self.out
                .extend_from_slice(&u32::from(sec.code()).to_be_bytes());
            self.select(sec);
        } else {
            let offered: Vec<u8> = self.offered().map(SecurityType::code).take(255).collect();
            if offered.is_empty() {
                self.refuse("No security type configured");
                return Err(self.fail(HandshakeError::NoSecurityType));
            }
            self.out.push(offered.len() as u8);
            self.out.extend_from_slice(&offered);
            self.state = State::SecurityChoice;
        }
        Ok(12)
    }

    /// The security types offered to a 3.7+ client: VeNCrypt only with a subtype to run.
    fn offered(&self) -> impl Iterator<Item = SecurityType> + '_ {
        let vencrypt = !self.config.vencrypt.is_empty();
        self.config
            .security
            .iter()
            .copied()
            .filter(move |s| *s != SecurityType::VeNCrypt || vencrypt)
    }

    /// Enter the chosen security type's first step.
    fn select(&mut self, sec: SecurityType) {
        self.security = sec;
        self.events.push_back(HandshakeEvent::SecuritySelected(sec));
        match sec {
            SecurityType::None => {
                // 3.3 and 3.7 skip the SecurityResult after None.
                if self.version == Version::V3_8 {
                    self.security_result_ok();
                }
                self.state = State::ClientInit;
            }
            SecurityType::VncAuth => {
                self.out.extend_from_slice(&self.config.challenge);
                self.state = State::AuthResponse;
            }
            SecurityType::VeNCrypt => {
                // VeNCrypt 0.2 is the only version in use.
                self.out.extend_from_slice(&[0, 2]);
                self.state = State::VeNCryptVersion;
            }
        }
    }

    fn on_security_choice(&mut self, input: &[u8]) -> Result<usize, HandshakeError> {
        let Some(&code) = input.first() else {
            return Ok(0);
        };
        let Some(sec) = self.offered().find(|s| s.code() == code) else {
            self.security_result_failed("Security type not offered");
            return Err(self.fail(HandshakeError::SecurityTypeNotOffered(code)));
        };
        self.select(sec);
        Ok(1)
    }

    fn on_vencrypt_version(&mut self, input: &[u8]) -> Result<usize, HandshakeError> {
        let Some(&[major, minor]) = input.first_chunk::<2>() else {
            return Ok(0);
        };
        if (major, minor) != (0, 2) {
            self.out.push(0xff);
            return Err(self.fail(HandshakeError::UnsupportedVeNCrypt { major, minor }));
        }
        let n = self.config.vencrypt.len().min(255);
        self.out.push(0);
        self.out.push(n as u8);
        for s in &self.config.vencrypt[..n] {
            self.out.extend_from_slice(&s.code().to_be_bytes());
        }
        self.state = State::VeNCryptSubtype;
        Ok(2)
    }

    fn on_vencrypt_subtype(&mut self, input: &[u8]) -> Result<usize, HandshakeError> {
        let Some(code) = input.first_chunk::<4>().map(|b| u32::from_be_bytes(*b)) else {
            return Ok(0);
        };
        let Some(subtype) = self
            .config
            .vencrypt
            .iter()
            .copied()
            .find(|s| s.code() == code)
        else {
            // 0: the server declines.
            self.out.push(0);
            return Err(self.fail(HandshakeError::SubtypeNotOffered(code)));
        };
        // 1: the server accepts; the TLS handshake follows.
        self.out.push(1);
        self.vencrypt = Some(subtype);
        self.events.push_back(HandshakeEvent::StartTls(subtype));
        self.state = State::AwaitTls(subtype);
        Ok(4)
    }

    /// X509Plain: u32 username length, u32 password length, username, password.
    fn on_plain_auth(&mut self, input: &[u8]) -> Result<usize, HandshakeError> {
        let Some(head) = input.first_chunk::<8>() else {
            return Ok(0);
        };
        let user_len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let pass_len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        for len in [user_len, pass_len] {
            if len > MAX_PLAIN_LEN {
                self.security_result_failed(AUTH_FAILED_REASON);
                return Err(self.fail(HandshakeError::PlainTooLong(len)));
            }
        }
        // Both at most MAX_PLAIN_LEN: no overflow.
        let total = 8 + user_len as usize + pass_len as usize;
        let Some(msg) = input.get(..total) else {
            return Ok(0);
        };
        let password = &msg[8 + user_len as usize..];
        let full = auth::constant_time_eq(password, &self.config.password);
        let view = !full
            && self
                .config
                .view_only_password
                .as_ref()
                .is_some_and(|p| auth::constant_time_eq(password, p));
        self.authenticated(full, view)?;
        Ok(total)
    }

    /// Finish an authentication step: SecurityResult, then ClientInit or failure.
    fn authenticated(&mut self, full: bool, view: bool) -> Result<(), HandshakeError> {
        if full || view {
            self.view_only = view;
            self.security_result_ok();
            self.state = State::ClientInit;
            Ok(())
        } else {
            self.security_result_failed(AUTH_FAILED_REASON);
            Err(self.fail(HandshakeError::AuthFailed))
        }
    }

    fn on_auth_response(&mut self, input: &[u8]) -> Result<usize, HandshakeError> {
        let Some(response) = input.first_chunk::<CHALLENGE_LEN>() else {
            return Ok(0);
        };
        let challenge = &self.config.challenge;
        let full = auth::verify_response(&self.config.password, challenge, response);
        let view = !full
            && self
                .config
                .view_only_password
                .as_ref()
                .is_some_and(|p| auth::verify_response(p, challenge, response));
        self.authenticated(full, view)?;
        Ok(CHALLENGE_LEN)
    }

    fn on_client_init(&mut self, input: &[u8]) -> usize {
        let Some(&shared) = input.first() else {
            return 0;
        };
        let si = &self.config.server_init;
        write_server_init(&mut self.out, si.width, si.height, &si.format, &si.name);
        self.state = State::Done;
        self.events.push_back(HandshakeEvent::Done {
            version: self.version,
            security: self.security,
            shared: shared != 0,
            view_only: self.view_only,
            vencrypt: self.vencrypt,
        });
        1
    }
}
