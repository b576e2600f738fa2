//! Signed, expiring viewer links: `https://host:port/?link=TOKEN`.
//!
//! A token is `v1.<expiry unix seconds>.<rw|ro>.<HMAC-SHA256 of the part before it,
//! base64url>`. The secret is 32 random bytes in the state directory (`link-secret`), read
//! at every check, so rotating it (`deskd link --rotate-secret`) revokes every link at once,
//! running servers included. Signatures are compared in constant time (`ring::hmac::verify`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;

/// The query parameter carrying the token, on the viewer page and the RFB WebSocket.
pub const QUERY: &str = "link";

/// The longest lifetime a link may have.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The file holding the secret, in the state directory.
const SECRET_FILE: &str = "link-secret";
const SECRET_LEN: usize = 32;
const VERSION: &str = "v1";
/// HMAC-SHA256 output length.
const TAG_LEN: usize = 32;

/// What a link grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Unix time (seconds) after which the link no longer works.
    pub expires: u64,
    /// The viewer may only watch: no input, clipboard or resize.
    pub view_only: bool,
}

/// Why a link was refused. The messages are safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a token of this form.
    #[error("malformed link token")]
    Malformed,
    /// Signed with another secret, or altered.
    #[error("invalid link (altered, or revoked by a new secret)")]
    BadSignature,
    /// Past its expiry.
    #[error("link expired")]
    Expired,
    /// No secret: no link was ever issued here (or the state directory is unreadable).
    #[error("no link secret on this server")]
    NoSecret,
}

fn key(secret: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret)
}

/// The token for `grant`, signed with `secret`.
pub fn sign(secret: &[u8], grant: Grant) -> String {
    let mode = if grant.view_only { "ro" } else { "rw" };
    let payload = format!("{VERSION}.{}.{mode}", grant.expires);
    let tag = hmac::sign(&key(secret), payload.as_bytes());
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Check `token` against `secret` at unix time `now`.
pub fn verify(secret: &[u8], token: &str, now: u64) -> Result<Grant, LinkError> {
    if token.len() > 256 {
        return Err(LinkError::Malformed);
    }
    let (payload, tag) = token.rsplit_once('.').ok_or(LinkError::Malformed)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .ok()
        .filter(|t| t.len() == TAG_LEN)
        .ok_or(LinkError::Malformed)?;
    // The signature first: nothing of an unsigned payload is trusted, not even its expiry.
    hmac::verify(&key(secret), payload.as_bytes(), &tag).map_err(|_| LinkError::BadSignature)?;
    let mut parts = payload.split('.');
    let (Some(VERSION), Some(expires), Some(mode), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(LinkError::Malformed);
    };
    let expires: u64 = expires.parse().map_err(|_| LinkError::Malformed)?;
    let view_only = match mode {
        "ro" => true,
        "rw" => false,
        _ => return Err(LinkError::Malformed),
    };
    if now >= expires {
        return Err(LinkError::Expired);
    }
    Ok(Grant { expires, view_only })
}

/// Unix time now, in seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A duration such as `90s`, `15m`, `1h`, `7d` (or plain seconds), at most [`MAX_TTL`].
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 15m, 1h or 7d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{s:?}: unit must be s, m, h or d")),
    };
    let secs = n.saturating_mul(scale);
    if secs == 0 || secs > MAX_TTL.as_secs() {
        return Err(format!("{s:?}: a link lives between 1 s and 30 days"));
    }
    Ok(Duration::from_secs(secs))
}

/// The link secret kept in the state directory.
#[derive(Debug, Clone)]
pub struct LinkSecret {
    path: PathBuf,
}

impl LinkSecret {
    /// The secret file in `state_dir`.
    pub fn new(state_dir: &Path) -> LinkSecret {
        LinkSecret {
            path: state_dir.join(SECRET_FILE),
        }
    }

    /// The current secret, if one was made.
    pub fn read(&self) -> Option<Vec<u8>> {
        std::fs::read(&self.path)
            .ok()
            .filter(|s| s.len() == SECRET_LEN)
    }

    /// The current secret, made now if there is none.
    pub fn get_or_create(&self) -> std::io::Result<Vec<u8>> {
        match self.read() {
            Some(s) => Ok(s),
            None => self.rotate(),
        }
    }

    /// Replace the secret with a new random one: every link issued so far stops working.
    pub fn rotate(&self) -> std::io::Result<Vec<u8>> {
        let mut secret = vec![0u8; SECRET_LEN];
        getrandom::fill(&mut secret)
            .map_err(|e| std::io::Error::other(format!("no randomness: {e}")))?;
        if let Some(dir) = self.path.parent() {
            crate::state_dir::ensure(dir).map_err(std::io::Error::other)?;
        }
        crate::state_dir::write_private(&self.path, &secret)?;
        Ok(secret)
    }

    /// Sign a link valid for `ttl` from now.
    pub fn issue(&self, ttl: Duration, view_only: bool) -> std::io::Result<(String, Grant)> {
        let secret = self.get_or_create()?;
        let grant = Grant {
            expires: now().saturating_add(ttl.as_secs()),
            view_only,
        };
        Ok((sign(&secret, grant), grant))
    }

    /// Check a token now against the secret on disk.
    pub fn check(&self, token: &str) -> Result<Grant, LinkError> {
        let secret = self.read().ok_or(LinkError::NoSecret)?;
        verify(&secret, token, now())
    }
}

/// The viewer URL for `token` on `base` (`https://host:port`).
pub fn viewer_url(base: &str, token: &str) -> String {
    format!("{}/?{QUERY}={token}", base.trim_end_matches('/'))
}

/// The token in a query string (`a=1&link=...`), if any.
pub fn from_query(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix(QUERY)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn signed_links_verify_until_they_expire() {
        for view_only in [false, true] {
            let grant = Grant {
                expires: 1000,
                view_only,
            };
            let token = sign(SECRET, grant);
            assert_eq!(verify(SECRET, &token, 999), Ok(grant));
            assert_eq!(verify(SECRET, &token, 1000), Err(LinkError::Expired));
        }
    }

    #[test]
    fn tampered_or_foreign_links_are_refused() {
        let token = sign(
            SECRET,
            Grant {
                expires: 1000,
                view_only: true,
            },
        );
        // Extend the expiry, or make it read-write: the signature no longer matches.
        for forged in [
            token.replacen("1000", "9000", 1),
            token.replacen(".ro.", ".rw.", 1),
        ] {
            assert_eq!(verify(SECRET, &forged, 0), Err(LinkError::BadSignature));
        }
        // Another (rotated) secret.
        assert_eq!(
            verify(b"another secret of 32 bytes......", &token, 0),
            Err(LinkError::BadSignature)
        );
        // A flipped signature character.
        let mut bytes = token.clone().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert_eq!(verify(SECRET, &flipped, 0), Err(LinkError::BadSignature));
        for junk in ["", ".", "v1.1.ro", "v1.1.ro.!!!", &"a".repeat(300)] {
            assert_eq!(verify(SECRET, junk, 0), Err(LinkError::Malformed), "{junk}");
        }
        // Well signed but not of our form.
        let odd = "v2.1000.ro";
        let tag = hmac::sign(&key(SECRET), odd.as_bytes());
        let odd = format!("{odd}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert_eq!(verify(SECRET, &odd, 0), Err(LinkError::Malformed));
    }

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("30d"), Ok(MAX_TTL));
        for bad in ["", "0", "31d", "1w", "h", "-1h", "99999999999999999999d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_and_url() {
        assert_eq!(from_query(Some("a=1&link=v1.x.ro.y")), Some("v1.x.ro.y"));
        assert_eq!(from_query(Some("linked=1")), None);
        assert_eq!(from_query(None), None);
        assert_eq!(viewer_url("https://h:1/", "t"), "https://h:1/?link=t");
    }

    #[test]
    fn rotating_the_secret_revokes() {
        let dir = std::env::temp_dir().join(format!("deskd-links-unit-{}", std::process::id()));
        let secret = LinkSecret::new(&dir);
        assert_eq!(secret.check("v1.1.ro.x"), Err(LinkError::NoSecret));
        let (token, grant) = secret.issue(Duration::from_secs(60), true).unwrap();
        assert_eq!(secret.check(&token), Ok(grant));
        secret.rotate().unwrap();
        assert_eq!(secret.check(&token), Err(LinkError::BadSignature));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
