//! The server handshake fed arbitrary client bytes: events or a typed error, never a panic.
//! The first byte picks the configuration (VNC auth, VeNCrypt); TLS is taken as established
//! at once when asked for, so the authentications inside it are fuzzed too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rfb::handshake::{
    HandshakeConfig, HandshakeEvent, SecurityType, ServerHandshake, ServerInit, VeNCryptSubtype,
};

fuzz_target!(|data: &[u8]| {
    let init = ServerInit::new(64, 48, "fuzz");
    let pick = data.first().copied().unwrap_or(0);
    let mut config = if pick & 1 == 1 {
        HandshakeConfig::vnc_auth(b"secret", [7; 16], init)
    } else {
        HandshakeConfig::no_auth(init)
    };
    if pick & 2 == 2 {
        config.security.insert(0, SecurityType::VeNCrypt);
        config.vencrypt = vec![
            VeNCryptSubtype::X509Vnc,
            VeNCryptSubtype::X509Plain,
            VeNCryptSubtype::X509None,
        ];
    }
    let mut hs = ServerHandshake::new(config);
    let mut input = data.get(1..).unwrap_or_default();
    while !hs.is_done() {
        let n = match hs.receive(input) {
            Ok(n) => n,
            Err(_) => return,
        };
        input = &input[n.min(input.len())..];
        let _ = hs.take_output();
        let mut tls = false;
        while let Some(ev) = hs.poll_event() {
            tls |= matches!(ev, HandshakeEvent::StartTls(_));
        }
        if tls {
            let _ = hs.tls_established();
        } else if n == 0 {
            return;
        }
    }
});
