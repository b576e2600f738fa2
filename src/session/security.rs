//! Which RFB security types a connection is offered: the order `--rfb-security` sets (or the
//! default for the configuration), with the plaintext types taken away from clients beyond
//! loopback when TLS is configured, unless explicitly allowed.

use std::fmt;
use std::str::FromStr;

use rfb::handshake::{SecurityType, VeNCryptSubtype};

/// A security type as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RfbSecurity {
    /// No authentication, no encryption.
    None,
    /// VNC authentication, no encryption.
    Vnc,
    /// VeNCrypt: TLS, no authentication.
    X509None,
    /// VeNCrypt: TLS, then VNC authentication.
    X509Vnc,
    /// VeNCrypt: TLS, then a password (whole, not cut to 8 characters).
    X509Plain,
}

impl RfbSecurity {
    /// Runs inside TLS.
    pub fn is_tls(self) -> bool {
        matches!(
            self,
            RfbSecurity::X509None | RfbSecurity::X509Vnc | RfbSecurity::X509Plain
        )
    }

    /// Checks the VNC password.
    pub fn needs_password(self) -> bool {
        matches!(
            self,
            RfbSecurity::Vnc | RfbSecurity::X509Vnc | RfbSecurity::X509Plain
        )
    }

    fn subtype(self) -> Option<VeNCryptSubtype> {
        match self {
            RfbSecurity::X509None => Some(VeNCryptSubtype::X509None),
            RfbSecurity::X509Vnc => Some(VeNCryptSubtype::X509Vnc),
            RfbSecurity::X509Plain => Some(VeNCryptSubtype::X509Plain),
            RfbSecurity::None | RfbSecurity::Vnc => None,
        }
    }

    fn wire(self) -> SecurityType {
        match self {
            RfbSecurity::None => SecurityType::None,
            RfbSecurity::Vnc => SecurityType::VncAuth,
            _ => SecurityType::VeNCrypt,
        }
    }
}

impl fmt::Display for RfbSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RfbSecurity::None => "None",
            RfbSecurity::Vnc => "VncAuth",
            RfbSecurity::X509None => "X509None",
            RfbSecurity::X509Vnc => "X509Vnc",
            RfbSecurity::X509Plain => "X509Plain",
        })
    }
}

impl FromStr for RfbSecurity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "none" => RfbSecurity::None,
            "vnc" | "vncauth" => RfbSecurity::Vnc,
            "x509none" => RfbSecurity::X509None,
            "x509vnc" => RfbSecurity::X509Vnc,
            "x509plain" => RfbSecurity::X509Plain,
            "tlsnone" | "tlsvnc" | "tlsplain" => {
                return Err(format!(
                    "{s}: the TLS* VeNCrypt subtypes need anonymous Diffie-Hellman, which rustls \
                     does not offer; use the X509* ones"
                ))
            }
            _ => {
                return Err(format!(
                    "{s}: not one of none, vnc, x509none, x509vnc, x509plain"
                ))
            }
        })
    }
}

/// The order used without `--rfb-security`: with a password, the types that check it (TLS
/// ones first); without, the ones that do not.
pub fn default_order(tls: bool, password: bool) -> Vec<RfbSecurity> {
    match (tls, password) {
        (true, true) => vec![
            RfbSecurity::X509Vnc,
            RfbSecurity::X509Plain,
            RfbSecurity::Vnc,
        ],
        (true, false) => vec![RfbSecurity::X509None, RfbSecurity::None],
        (false, true) => vec![RfbSecurity::Vnc],
        (false, false) => vec![RfbSecurity::None],
    }
}

/// Check an order given with `--rfb-security` against the configuration.
pub fn validate(order: &[RfbSecurity], tls: bool, password: bool) -> Result<(), String> {
    if order.is_empty() {
        return Err("--rfb-security names no security type".into());
    }
    for s in order {
        if s.is_tls() && !tls {
            return Err(format!(
                "{s} needs a certificate: add --tls-cert/--tls-key or --tls-self-signed"
            ));
        }
        if s.needs_password() && !password {
            return Err(format!("{s} needs a VNC password (--password)"));
        }
        if !s.needs_password() && password {
            return Err(format!(
                "{s} would let clients in without the VNC password that is set"
            ));
        }
    }
    Ok(())
}

/// What the RFB handshake of one connection offers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Offer {
    /// Security types, most preferred first.
    pub security: Vec<SecurityType>,
    /// VeNCrypt subtypes, when `security` holds VeNCrypt.
    pub vencrypt: Vec<VeNCryptSubtype>,
}

/// The offer for `order`; `plaintext_ok` false drops the types without TLS.
pub fn offer(order: &[RfbSecurity], plaintext_ok: bool) -> Offer {
    let mut o = Offer::default();
    for s in order.iter().filter(|s| plaintext_ok || s.is_tls()) {
        if !o.security.contains(&s.wire()) {
            o.security.push(s.wire());
        }
        if let Some(sub) = s.subtype() {
            if !o.vencrypt.contains(&sub) {
                o.vencrypt.push(sub);
            }
        }
    }
    o
}

/// A one-line description of `order` for the startup log, e.g. "X509Vnc, X509Plain (TLS);
/// VncAuth for loopback clients only".
pub fn describe(order: &[RfbSecurity], tls: bool, plaintext_beyond_loopback: bool) -> String {
    let names = |it: &mut dyn Iterator<Item = &RfbSecurity>| {
        it.map(ToString::to_string).collect::<Vec<_>>().join(", ")
    };
    let secure = names(&mut order.iter().filter(|s| s.is_tls()));
    let plain = names(&mut order.iter().filter(|s| !s.is_tls()));
    match (secure.is_empty(), plain.is_empty()) {
        (false, true) => format!("{secure} (TLS)"),
        (true, false) => format!("{plain} (no TLS)"),
        (false, false) if tls && !plaintext_beyond_loopback => {
            format!("{secure} (TLS); {plain} for loopback clients only")
        }
        (false, false) => format!("{secure} (TLS); {plain} (no TLS) for any client"),
        (true, true) => "nothing".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RfbSecurity as S;

    #[test]
    fn parse_and_validate() {
        assert_eq!("X509Vnc".parse::<S>(), Ok(S::X509Vnc));
        assert_eq!(" vncauth".parse::<S>(), Ok(S::Vnc));
        assert!("tlsvnc".parse::<S>().unwrap_err().contains("anonymous"));
        assert!("rsa-aes".parse::<S>().is_err());
        assert!(validate(&[S::X509Vnc, S::Vnc], true, true).is_ok());
        assert!(validate(&[S::X509Vnc], false, true).is_err());
        assert!(validate(&[S::X509None], true, true).is_err());
        assert!(validate(&[S::Vnc], true, false).is_err());
        assert!(validate(&[], true, false).is_err());
        for (tls, pw) in [(true, true), (true, false), (false, true), (false, false)] {
            assert!(validate(&default_order(tls, pw), tls, pw).is_ok());
        }
    }

    #[test]
    fn plaintext_types_leave_when_not_allowed() {
        let order = [S::X509Vnc, S::X509Plain, S::Vnc];
        assert_eq!(
            offer(&order, true),
            Offer {
                security: vec![SecurityType::VeNCrypt, SecurityType::VncAuth],
                vencrypt: vec![VeNCryptSubtype::X509Vnc, VeNCryptSubtype::X509Plain],
            }
        );
        assert_eq!(
            offer(&order, false),
            Offer {
                security: vec![SecurityType::VeNCrypt],
                vencrypt: vec![VeNCryptSubtype::X509Vnc, VeNCryptSubtype::X509Plain],
            }
        );
        // Order is kept: a plaintext type first stays first.
        assert_eq!(
            offer(&[S::None, S::X509None], true).security,
            [SecurityType::None, SecurityType::VeNCrypt]
        );
        assert_eq!(offer(&[S::Vnc], false), Offer::default());
    }

    #[test]
    fn description() {
        assert_eq!(
            describe(&[S::X509Vnc, S::X509Plain, S::Vnc], true, false),
            "X509Vnc, X509Plain (TLS); VncAuth for loopback clients only"
        );
        assert_eq!(describe(&[S::Vnc], false, false), "VncAuth (no TLS)");
        assert_eq!(describe(&[S::X509None], true, false), "X509None (TLS)");
    }
}
