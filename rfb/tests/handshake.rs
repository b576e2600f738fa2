//! Server handshake: exact bytes per RFC 6143 §7.1–7.3 for each version and security type,
//! byte-at-a-time feeding, and every failure class.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rfb::auth::encrypt_challenge;
use rfb::handshake::{
    HandshakeConfig, HandshakeError, HandshakeEvent, SecurityType, ServerHandshake, ServerInit,
    VeNCryptSubtype, Version,
};

const CHALLENGE: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

fn init() -> ServerInit {
    ServerInit::new(2, 1, "x")
}

/// ServerInit for 2x1 native "x".
const SERVER_INIT: [u8; 25] = [
    0, 2, 0, 1, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0, 0, 0, 0, 1, b'x',
];

fn events(hs: &mut ServerHandshake) -> Vec<HandshakeEvent> {
    std::iter::from_fn(|| hs.poll_event()).collect()
}

/// Feed `input` one byte at a time (the worst chunking), re-offering unconsumed bytes.
fn feed_bytewise(hs: &mut ServerHandshake, input: &[u8]) -> Result<usize, HandshakeError> {
    let mut pending = Vec::new();
    let mut total = 0;
    for &b in input {
        pending.push(b);
        let n = hs.receive(&pending)?;
        pending.drain(..n);
        total += n;
    }
    Ok(total)
}

#[test]
fn v38_none() {
    let mut hs = ServerHandshake::new(HandshakeConfig::no_auth(init()));
    assert_eq!(hs.take_output(), b"RFB 003.008\n");
    assert_eq!(hs.receive(b"RFB 003.008\n").unwrap(), 12);
    assert_eq!(hs.take_output(), [1, 1]); // one type: None
    assert_eq!(hs.receive(&[1]).unwrap(), 1);
    assert_eq!(hs.take_output(), [0, 0, 0, 0]); // SecurityResult OK
                                                // ClientInit plus the start of the first client message: only ClientInit is consumed.
    assert_eq!(hs.receive(&[0, 3, 0]).unwrap(), 1);
    assert_eq!(hs.take_output(), SERVER_INIT);
    assert!(hs.is_done());
    assert_eq!(
        events(&mut hs),
        [
            HandshakeEvent::Version {
                version: Version::V3_8,
                major: 3,
                minor: 8
            },
            HandshakeEvent::SecuritySelected(SecurityType::None),
            HandshakeEvent::Done {
                version: Version::V3_8,
                security: SecurityType::None,
                shared: false,
                view_only: false,
                vencrypt: None
            },
        ]
    );
    // After Done nothing more is consumed.
    assert_eq!(hs.receive(&[3, 0]).unwrap(), 0);
}

#[test]
fn v37_none_has_no_security_result() {
    let mut hs = ServerHandshake::new(HandshakeConfig::no_auth(init()));
    hs.take_output();
    let mut input = b"RFB 003.007\n".to_vec();
    input.extend_from_slice(&[1, 1]);
    assert_eq!(feed_bytewise(&mut hs, &input).unwrap(), 14);
    let mut expected = vec![1, 1];
    expected.extend_from_slice(&SERVER_INIT);
    assert_eq!(hs.take_output(), expected);
    assert!(hs.is_done());
    assert_eq!(hs.version(), Version::V3_7);
}

#[test]
fn v33_none_server_chooses() {
    let mut hs = ServerHandshake::new(HandshakeConfig::no_auth(init()));
    hs.take_output();
    assert_eq!(hs.receive(b"RFB 003.003\n").unwrap(), 12);
    assert_eq!(hs.take_output(), [0, 0, 0, 1]); // u32 security type None
    assert_eq!(hs.receive(&[1]).unwrap(), 1);
    assert_eq!(hs.take_output(), SERVER_INIT);
    assert_eq!(
        events(&mut hs).last(),
        Some(&HandshakeEvent::Done {
            version: Version::V3_3,
            security: SecurityType::None,
            shared: true,
            view_only: false,
            vencrypt: None
        })
    );
}

fn auth_config() -> HandshakeConfig {
    HandshakeConfig::vnc_auth(b"pw", CHALLENGE, init())
}

#[test]
fn v38_vnc_auth_success() {
    let mut hs = ServerHandshake::new(auth_config());
    hs.take_output();
    hs.receive(b"RFB 003.008\n").unwrap();
    assert_eq!(hs.take_output(), [1, 2]);
    hs.receive(&[2]).unwrap();
    assert_eq!(hs.take_output(), CHALLENGE);
    let resp = encrypt_challenge(b"pw", &CHALLENGE);
    assert_eq!(feed_bytewise(&mut hs, &resp).unwrap(), 16);
    assert_eq!(hs.take_output(), [0, 0, 0, 0]);
    hs.receive(&[1]).unwrap();
    assert_eq!(hs.take_output(), SERVER_INIT);
    assert!(hs.is_done());
}

#[test]
fn v38_vnc_auth_failure_sends_reason() {
    let mut hs = ServerHandshake::new(auth_config());
    hs.take_output();
    hs.receive(b"RFB 003.008\n\x02").unwrap();
    hs.take_output();
    let resp = encrypt_challenge(b"wrong", &CHALLENGE);
    assert_eq!(hs.receive(&resp), Err(HandshakeError::AuthFailed));
    let mut expected = vec![0, 0, 0, 1, 0, 0, 0, 21];
    expected.extend_from_slice(b"Authentication failed");
    assert_eq!(hs.take_output(), expected);
    assert_eq!(hs.receive(&[1]), Err(HandshakeError::AlreadyFailed));
}

#[test]
fn v37_and_v33_vnc_auth_failure_has_no_reason() {
    for (version, security_bytes) in [
        (&b"RFB 003.007\n"[..], &[1u8, 2][..]),
        (&b"RFB 003.003\n"[..], &[0u8, 0, 0, 2][..]),
    ] {
        let mut hs = ServerHandshake::new(auth_config());
        hs.take_output();
        hs.receive(version).unwrap();
        let out = hs.take_output();
        assert_eq!(&out[..security_bytes.len()], security_bytes);
        if version == b"RFB 003.007\n" {
            assert_eq!(out.len(), 2);
            hs.receive(&[2]).unwrap();
            assert_eq!(hs.take_output(), CHALLENGE);
        } else {
            // 3.3: the challenge follows the server-chosen type at once.
            assert_eq!(&out[4..], CHALLENGE);
        }
        assert_eq!(hs.receive(&[0; 16]), Err(HandshakeError::AuthFailed));
        assert_eq!(hs.take_output(), [0, 0, 0, 1]);
    }
}

#[test]
fn v33_vnc_auth_success() {
    let mut hs = ServerHandshake::new(auth_config());
    hs.take_output();
    let mut input = b"RFB 003.003\n".to_vec();
    input.extend_from_slice(&encrypt_challenge(b"pw", &CHALLENGE));
    input.push(0);
    assert_eq!(hs.receive(&input).unwrap(), input.len());
    let mut expected = vec![0, 0, 0, 2];
    expected.extend_from_slice(&CHALLENGE);
    expected.extend_from_slice(&[0, 0, 0, 0]);
    expected.extend_from_slice(&SERVER_INIT);
    assert_eq!(hs.take_output(), expected);
}

#[test]
fn nonstandard_versions_map() {
    for (wire, version) in [
        (&b"RFB 003.889\n"[..], Version::V3_8),
        (b"RFB 003.005\n", Version::V3_3),
        (b"RFB 003.006\n", Version::V3_3),
        (b"RFB 003.004\n", Version::V3_3),
        (b"RFB 003.007\n", Version::V3_7),
        (b"RFB 003.010\n", Version::V3_8),
    ] {
        let mut hs = ServerHandshake::new(HandshakeConfig::no_auth(init()));
        assert_eq!(hs.receive(wire).unwrap(), 12);
        assert_eq!(hs.version(), version, "{wire:?}");
    }
}

#[test]
fn announced_version_caps_the_client() {
    let mut config = HandshakeConfig::no_auth(init());
    config.version = Version::V3_3;
    let mut hs = ServerHandshake::new(config);
    assert_eq!(hs.take_output(), b"RFB 003.003\n");
    hs.receive(b"RFB 003.008\n").unwrap();
    assert_eq!(hs.version(), Version::V3_3);
    assert_eq!(hs.take_output(), [0, 0, 0, 1]);
}

#[test]
fn bad_versions() {
    let garbage = |b: &[u8]| {
        let mut hs = ServerHandshake::new(HandshakeConfig::no_auth(init()));
        hs.receive(b)
    };
    // Wrong prefix fails as soon as it is visible.
    assert_eq!(
        garbage(b"GET"),
        Err(HandshakeError::BadVersion(b"GET".to_vec()))
    );
    assert_eq!(
        garbage(b"RFB 003.00x\n"),
        Err(HandshakeError::BadVersion(b"RFB 003.00x\n".to_vec()))
    );
    assert_eq!(
        garbage(b"RFB 003-008\n"),
        Err(HandshakeError::BadVersion(b"RFB 003-008\n".to_vec()))
    );
    assert_eq!(
        garbage(b"RFB 003.008\r"),
        Err(HandshakeError::BadVersion(b"RFB 003.008\r".to_vec()))
    );
    assert_eq!(
        garbage(b"RFB 004.001\n"),
        Err(HandshakeError::UnsupportedVersion { major: 4, minor: 1 })
    );
    assert_eq!(
        garbage(b"RFB 003.002\n"),
        Err(HandshakeError::UnsupportedVersion { major: 3, minor: 2 })
    );
    // A valid prefix that is still short is "need more".
    assert_eq!(garbage(b"RFB 003.0"), Ok(0));
}

#[test]
fn bad_security_type() {
    let mut hs = ServerHandshake::new(auth_config());
    hs.take_output();
    hs.receive(b"RFB 003.008\n").unwrap();
    hs.take_output();
    assert_eq!(
        hs.receive(&[1]),
        Err(HandshakeError::SecurityTypeNotOffered(1))
    );
    let mut expected = vec![0, 0, 0, 1, 0, 0, 0, 25];
    expected.extend_from_slice(b"Security type not offered");
    assert_eq!(hs.take_output(), expected);

    let mut hs = ServerHandshake::new(auth_config());
    hs.receive(b"RFB 003.007\n").unwrap();
    assert_eq!(
        hs.receive(&[0]),
        Err(HandshakeError::SecurityTypeNotOffered(0))
    );
}

#[test]
fn refused_connection_carries_reason_in_every_version() {
    for (wire, prefix) in [
        (&b"RFB 003.003\n"[..], &[0u8, 0, 0, 0][..]),
        (b"RFB 003.007\n", &[0u8][..]),
        (b"RFB 003.008\n", &[0u8][..]),
    ] {
        let mut config = HandshakeConfig::no_auth(init());
        config.refuse = Some("busy".into());
        let mut hs = ServerHandshake::new(config);
        hs.take_output();
        assert_eq!(
            hs.receive(wire),
            Err(HandshakeError::Refused("busy".into()))
        );
        let mut expected = prefix.to_vec();
        expected.extend_from_slice(&[0, 0, 0, 4, b'b', b'u', b's', b'y']);
        assert_eq!(hs.take_output(), expected);
    }
}

#[test]
fn no_usable_security_type() {
    // Only VeNCrypt offered: a 3.3 client cannot use it.
    let mut config = HandshakeConfig::no_auth(init());
    config.security = vec![SecurityType::VeNCrypt];
    let mut hs = ServerHandshake::new(config.clone());
    hs.take_output();
    assert_eq!(
        hs.receive(b"RFB 003.003\n"),
        Err(HandshakeError::NoSecurityType)
    );
    assert_eq!(&hs.take_output()[..4], &[0, 0, 0, 0]);
    config.security.clear();
    let mut hs = ServerHandshake::new(config);
    hs.take_output();
    assert_eq!(
        hs.receive(b"RFB 003.008\n"),
        Err(HandshakeError::NoSecurityType)
    );
    assert_eq!(hs.take_output()[0], 0);
}

/// A VeNCrypt config: the given subtypes, password "pw", view-only password "look".
fn vencrypt_config(subtypes: &[VeNCryptSubtype]) -> HandshakeConfig {
    let mut config = auth_config();
    config.security = vec![SecurityType::VeNCrypt, SecurityType::VncAuth];
    config.vencrypt = subtypes.to_vec();
    config.view_only_password = Some(b"look".to_vec());
    config
}

/// Run a VeNCrypt handshake up to StartTls for `subtype`, checking the bytes on the way.
fn start_tls(config: HandshakeConfig, subtype: VeNCryptSubtype) -> ServerHandshake {
    let codes: Vec<u32> = config.vencrypt.iter().map(|s| s.code()).collect();
    let mut hs = ServerHandshake::new(config);
    hs.take_output();
    feed_bytewise(&mut hs, b"RFB 003.008\n").unwrap();
    assert_eq!(hs.take_output(), [2, 19, 2]);
    // Security type, then VeNCrypt 0.2: the server's version, OK, then the subtypes.
    assert_eq!(feed_bytewise(&mut hs, &[19]).unwrap(), 1);
    assert_eq!(hs.take_output(), [0, 2]);
    assert_eq!(feed_bytewise(&mut hs, &[0, 2]).unwrap(), 2);
    let mut list = vec![0, codes.len() as u8];
    for c in &codes {
        list.extend_from_slice(&c.to_be_bytes());
    }
    assert_eq!(hs.take_output(), list);
    // The subtype plus the start of a TLS ClientHello: only the subtype is consumed.
    let mut input = subtype.code().to_be_bytes().to_vec();
    input.extend_from_slice(&[0x16, 3, 1]);
    assert_eq!(hs.receive(&input).unwrap(), 4);
    assert_eq!(hs.take_output(), [1]);
    assert_eq!(
        events(&mut hs)[1..],
        [
            HandshakeEvent::SecuritySelected(SecurityType::VeNCrypt),
            HandshakeEvent::StartTls(subtype)
        ]
    );
    assert_eq!(hs.receive(&[0x16, 3, 1]).unwrap(), 0);
    hs
}

fn done_event(hs: &mut ServerHandshake) -> HandshakeEvent {
    events(hs).pop().unwrap()
}

fn vencrypt_done(view_only: bool, subtype: VeNCryptSubtype) -> HandshakeEvent {
    HandshakeEvent::Done {
        version: Version::V3_8,
        security: SecurityType::VeNCrypt,
        shared: true,
        view_only,
        vencrypt: Some(subtype),
    }
}

#[test]
fn vencrypt_x509none() {
    let config = vencrypt_config(&[VeNCryptSubtype::X509None]);
    let mut hs = start_tls(config, VeNCryptSubtype::X509None);
    assert_eq!(hs.tls_established(), Ok(()));
    // Inside TLS: SecurityResult OK, then ClientInit/ServerInit as usual.
    assert_eq!(hs.take_output(), [0, 0, 0, 0]);
    assert_eq!(hs.receive(&[1, 9]).unwrap(), 1);
    assert_eq!(hs.take_output(), SERVER_INIT);
    assert_eq!(
        done_event(&mut hs),
        vencrypt_done(false, VeNCryptSubtype::X509None)
    );
    assert_eq!(hs.tls_established(), Err(HandshakeError::OutOfOrder));
}

#[test]
fn vencrypt_x509vnc_full_and_view_only() {
    let subtypes = [VeNCryptSubtype::X509Vnc, VeNCryptSubtype::X509None];
    for (pw, view_only) in [(&b"pw"[..], false), (b"look", true)] {
        let mut hs = start_tls(vencrypt_config(&subtypes), VeNCryptSubtype::X509Vnc);
        hs.tls_established().unwrap();
        assert_eq!(hs.take_output(), CHALLENGE);
        feed_bytewise(&mut hs, &encrypt_challenge(pw, &CHALLENGE)).unwrap();
        assert_eq!(hs.take_output(), [0, 0, 0, 0]);
        hs.receive(&[1]).unwrap();
        assert_eq!(
            done_event(&mut hs),
            vencrypt_done(view_only, VeNCryptSubtype::X509Vnc)
        );
    }
    let mut hs = start_tls(vencrypt_config(&subtypes), VeNCryptSubtype::X509Vnc);
    hs.tls_established().unwrap();
    hs.take_output();
    assert_eq!(
        hs.receive(&encrypt_challenge(b"nope", &CHALLENGE)),
        Err(HandshakeError::AuthFailed)
    );
    assert_eq!(&hs.take_output()[..4], &[0, 0, 0, 1]);
}

fn plain(user: &[u8], pass: &[u8]) -> Vec<u8> {
    let mut b = (user.len() as u32).to_be_bytes().to_vec();
    b.extend_from_slice(&(pass.len() as u32).to_be_bytes());
    b.extend_from_slice(user);
    b.extend_from_slice(pass);
    b
}

#[test]
fn vencrypt_x509plain() {
    let subtypes = [VeNCryptSubtype::X509Plain];
    let mut config = vencrypt_config(&subtypes);
    // Plain compares the whole password, unlike VNC auth's first 8 bytes.
    config.password = b"a-longer-password".to_vec();
    for (pw, view_only) in [(&b"a-longer-password"[..], false), (b"look", true)] {
        let mut hs = start_tls(config.clone(), VeNCryptSubtype::X509Plain);
        hs.tls_established().unwrap();
        assert_eq!(hs.take_output(), []);
        let msg = plain(b"anyone", pw);
        assert_eq!(feed_bytewise(&mut hs, &msg).unwrap(), msg.len());
        assert_eq!(hs.take_output(), [0, 0, 0, 0]);
        hs.receive(&[0]).unwrap();
        let HandshakeEvent::Done {
            view_only: v,
            shared,
            ..
        } = done_event(&mut hs)
        else {
            panic!("not done");
        };
        assert_eq!((v, shared), (view_only, false));
    }
    for wrong in [&b"a-longer-passwor"[..], b"a-longer-password!", b""] {
        let mut hs = start_tls(config.clone(), VeNCryptSubtype::X509Plain);
        hs.tls_established().unwrap();
        assert_eq!(
            hs.receive(&plain(b"u", wrong)),
            Err(HandshakeError::AuthFailed)
        );
    }
    // A length beyond the cap fails before anything is buffered.
    let mut hs = start_tls(config, VeNCryptSubtype::X509Plain);
    hs.tls_established().unwrap();
    assert_eq!(
        hs.receive(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]),
        Err(HandshakeError::PlainTooLong(u32::MAX))
    );
}

#[test]
fn vencrypt_refusals() {
    let config = vencrypt_config(&[VeNCryptSubtype::X509Vnc]);
    // A VeNCrypt version other than 0.2.
    let mut hs = ServerHandshake::new(config.clone());
    hs.receive(b"RFB 003.008\n\x13").unwrap();
    hs.take_output();
    assert_eq!(
        hs.receive(&[0, 1]),
        Err(HandshakeError::UnsupportedVeNCrypt { major: 0, minor: 1 })
    );
    assert_eq!(hs.take_output(), [0xff]);
    // A subtype not offered (TLSVnc, 258): declined with 0.
    let mut hs = ServerHandshake::new(config.clone());
    hs.receive(b"RFB 003.008\n\x13\x00\x02").unwrap();
    hs.take_output();
    assert_eq!(
        hs.receive(&258u32.to_be_bytes()),
        Err(HandshakeError::SubtypeNotOffered(258))
    );
    assert_eq!(hs.take_output(), [0]);
    // A failed TLS handshake ends it.
    let mut hs = start_tls(config.clone(), VeNCryptSubtype::X509Vnc);
    assert_eq!(
        hs.tls_failed("unknown CA".into()),
        HandshakeError::TlsFailed("unknown CA".into())
    );
    assert_eq!(hs.receive(&[1]), Err(HandshakeError::AlreadyFailed));
    // VeNCrypt without subtypes is not offered at all.
    let mut config = config;
    config.vencrypt.clear();
    let mut hs = ServerHandshake::new(config);
    hs.take_output();
    hs.receive(b"RFB 003.008\n").unwrap();
    assert_eq!(hs.take_output(), [1, 2]);
    assert_eq!(
        hs.receive(&[19]),
        Err(HandshakeError::SecurityTypeNotOffered(19))
    );
}

#[test]
fn server_init_can_change_before_client_init() {
    let mut hs = ServerHandshake::new(HandshakeConfig::no_auth(init()));
    hs.receive(b"RFB 003.008\n\x01").unwrap();
    hs.take_output();
    hs.set_server_init(ServerInit::new(3, 4, ""));
    hs.receive(&[1]).unwrap();
    let out = hs.take_output();
    assert_eq!(&out[..4], &[0, 3, 0, 4]);
    assert_eq!(&out[20..], &[0, 0, 0, 0]);
}

#[test]
fn view_only_password() {
    let mut config = auth_config();
    config.view_only_password = Some(b"look".to_vec());
    for (pw, view_only) in [(&b"pw"[..], false), (b"look", true)] {
        let mut hs = ServerHandshake::new(config.clone());
        hs.receive(b"RFB 003.008\n\x02").unwrap();
        hs.receive(&encrypt_challenge(pw, &CHALLENGE)).unwrap();
        hs.receive(&[1]).unwrap();
        assert_eq!(
            events(&mut hs).last(),
            Some(&HandshakeEvent::Done {
                version: Version::V3_8,
                security: SecurityType::VncAuth,
                shared: true,
                view_only,
                vencrypt: None
            })
        );
    }
    let mut hs = ServerHandshake::new(config);
    hs.receive(b"RFB 003.008\n\x02").unwrap();
    assert_eq!(
        hs.receive(&encrypt_challenge(b"nope", &CHALLENGE)),
        Err(HandshakeError::AuthFailed)
    );
}
