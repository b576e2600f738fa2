//! A stable-toolchain fuzz smoke test: the cargo-fuzz targets (`fuzz/`) need nightly, so this
//! runs the same attack classes for a bounded number of seeded random cases inside
//! `cargo test`: random and mutated client bytes in random chunking through the message parser,
//! random bytes through the handshake, random ExtendedClipboard payloads under the server's
//! inflate cap, and update-request floods into a capped region. Nothing may panic, and every
//! bound must hold.
#![allow(clippy::unwrap_used)]

use rfb::handshake::{HandshakeConfig, ServerHandshake, ServerInit};
use rfb::messages::clipboard::ExtClipboard;
use rfb::messages::{ClientMessage, ClientMessageReader, Limits};
use rfb::{Rect, Region};

/// Cases per attack class: enough to reach the parsers' branches, small enough for CI.
const CASES: u64 = 3000;

/// xorshift64*: deterministic, so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Up to `max` random bytes.
    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// One plausible client message, sometimes with extreme values.
fn message(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let extreme = |rng: &mut Rng| match rng.below(4) {
        0 => u16::MAX,
        1 => 0,
        _ => rng.next() as u16,
    };
    match rng.below(7) {
        0 => ClientMessage::FramebufferUpdateRequest {
            incremental: rng.below(2) == 0,
            rect: Rect::new(extreme(rng), extreme(rng), extreme(rng), extreme(rng)),
        }
        .write(&mut out),
        1 => ClientMessage::KeyEvent {
            down: rng.below(2) == 0,
            keysym: rng.next() as u32,
        }
        .write(&mut out),
        2 => ClientMessage::SetEncodings((0..rng.below(40)).map(|_| rng.next() as i32).collect())
            .write(&mut out),
        3 => ClientMessage::Fence {
            flags: rng.next() as u32,
            payload: rng.bytes(64),
        }
        .write(&mut out),
        4 => ClientMessage::CutText("x".repeat(rng.below(300) as usize)).write(&mut out),
        5 => {
            // A header claiming a huge length (cut text, negative = extended clipboard).
            out.extend_from_slice(&[6, 0, 0, 0]);
            out.extend_from_slice(&(rng.next() as u32).to_be_bytes());
            out.extend(rng.bytes(32));
        }
        _ => out.extend(rng.bytes(24)),
    }
    out
}

/// Feed `data` in random chunks; the parser answers messages or a typed error.
fn parse_all(rng: &mut Rng, data: &[u8], limits: Limits) {
    let mut reader = ClientMessageReader::new(limits);
    let mut rest = data;
    while !rest.is_empty() {
        let n = (1 + rng.below(64) as usize).min(rest.len());
        reader.feed(&rest[..n]);
        rest = &rest[n..];
        loop {
            match reader.next_message() {
                Ok(Some(ClientMessage::CutText(t))) => assert!(t.len() <= limits.max_cut_text),
                Ok(Some(ClientMessage::SetEncodings(e))) => {
                    assert!(e.len() <= limits.max_encodings)
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        // Never more buffered than one message may be long, plus one chunk.
        assert!(reader.buffered() <= limits.max_cut_text + 64 + 16);
    }
}

#[test]
fn client_messages_random_and_mutated() {
    for case in 0..CASES {
        let mut rng = Rng::new(case);
        let limits = Limits {
            max_cut_text: 4096,
            extended_mouse_buttons: case % 2 == 0,
            ..Limits::default()
        };
        let mut data: Vec<u8> = Vec::new();
        for _ in 0..rng.below(20) {
            data.extend(message(&mut rng));
        }
        // Mutate a few bytes of the valid stream.
        for _ in 0..rng.below(4) {
            if !data.is_empty() {
                let i = rng.below(data.len() as u64) as usize;
                data[i] = rng.next() as u8;
            }
        }
        parse_all(&mut rng, &data, limits);
        let noise = rng.bytes(512);
        parse_all(&mut rng, &noise, limits);
    }
}

#[test]
fn handshake_random_bytes() {
    for case in 0..CASES {
        let mut rng = Rng::new(case ^ 0xABCD);
        let init = ServerInit::new(64, 48, "fuzz");
        let config = if case % 2 == 0 {
            HandshakeConfig::vnc_auth(b"secret", [7; 16], init)
        } else {
            HandshakeConfig::no_auth(init)
        };
        let mut hs = ServerHandshake::new(config);
        // Often start with a valid version so the later states are reached.
        let mut data = if rng.below(2) == 0 {
            b"RFB 003.008\n".to_vec()
        } else {
            Vec::new()
        };
        data.extend(rng.bytes(64));
        let mut input = &data[..];
        while !input.is_empty() && !hs.is_done() {
            match hs.receive(input) {
                Ok(0) => break,
                Ok(n) => input = &input[n.min(input.len())..],
                Err(_) => break,
            }
            let _ = hs.take_output();
            while hs.poll_event().is_some() {}
        }
    }
}

#[test]
fn ext_clipboard_payloads_stay_under_the_inflate_cap() {
    let cap = Limits::default().max_clipboard_inflated;
    assert_eq!(
        cap,
        Limits::default().max_cut_text,
        "inflate cap equals the clipboard cap"
    );
    for case in 0..CASES {
        let mut rng = Rng::new(case ^ 0x5EED);
        let mut payload = (rng.next() as u32 | 0x1000_0000).to_be_bytes().to_vec();
        if rng.below(2) == 0 {
            // A real zlib stream of a random size (sometimes beyond a small cap).
            let text = "a".repeat(rng.below(5000) as usize);
            let m = ExtClipboard::provide_text(&text);
            let mut b = Vec::new();
            rfb::messages::server::write_server_ext_clipboard(&mut b, &m);
            payload = b[8..].to_vec();
        } else {
            payload.extend(rng.bytes(256));
        }
        let small = 1 + rng.below(4096) as usize;
        for cap in [small, cap] {
            if let Ok(ExtClipboard::Provide { items }) = ExtClipboard::parse(&payload, cap) {
                assert!(items.iter().all(|(_, d)| d.len() <= cap));
            }
        }
    }
}

#[test]
fn update_request_floods_stay_bounded() {
    const CAP: usize = 256;
    for case in 0..50 {
        let mut rng = Rng::new(case ^ 0xF100D);
        let mut forced = Region::new();
        for _ in 0..4000 {
            let r = Rect::new(
                rng.below(2000) as u16,
                rng.below(2000) as u16,
                1 + rng.below(3) as u16,
                1 + rng.below(3) as u16,
            );
            forced.union_capped(&Region::from_rect(r), CAP);
            assert!(forced.rects().len() <= CAP);
            assert!(forced.contains(r.x, r.y));
        }
    }
}
