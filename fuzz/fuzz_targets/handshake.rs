//! The server handshake fed arbitrary client bytes: events or a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rfb::handshake::{HandshakeConfig, ServerHandshake, ServerInit};

fuzz_target!(|data: &[u8]| {
    let init = ServerInit::new(64, 48, "fuzz");
    let config = if data.first().is_some_and(|b| b & 1 == 1) {
        HandshakeConfig::vnc_auth(b"secret", [7; 16], init)
    } else {
        HandshakeConfig::no_auth(init)
    };
    let mut hs = ServerHandshake::new(config);
    let mut input = data.get(1..).unwrap_or_default();
    while !input.is_empty() && !hs.is_done() {
        match hs.receive(input) {
            Ok(0) => break,
            Ok(n) => input = &input[n.min(input.len())..],
            Err(_) => return,
        }
        let _ = hs.take_output();
        while hs.poll_event().is_some() {}
    }
});
