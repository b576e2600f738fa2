//! Property tests: client messages round-trip, every malformed-input class gets its specific
//! error, and random bytes never panic the parser or the handshake.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

use rfb::handshake::{HandshakeConfig, ServerHandshake, ServerInit};
use rfb::messages::clipboard::flags;
use rfb::messages::{
    parse_client_message, ClientMessage, ClipboardError, ExtClipboard, Limits, ParseError,
    PointerEvent, Screen,
};
use rfb::pixel::PixelFormatError;
use rfb::{PixelFormat, Rect};

fn ext_limits() -> Limits {
    Limits {
        extended_mouse_buttons: true,
        ..Limits::default()
    }
}

fn rect() -> impl Strategy<Value = Rect> {
    (any::<u16>(), any::<u16>(), any::<u16>(), any::<u16>())
        .prop_map(|(x, y, w, h)| Rect::new(x, y, w, h))
}

/// A valid true-colour format: channels of 1..=bpp/3 bits packed without overlap in a random
/// order, random gaps allowed by starting above zero when there is room.
fn pixel_format() -> impl Strategy<Value = PixelFormat> {
    (prop_oneof![Just(8u8), Just(16), Just(32)], any::<bool>())
        .prop_flat_map(|(bpp, be)| {
            let most = (bpp / 3).max(1);
            (
                Just(bpp),
                Just(be),
                1..=most,
                1..=most,
                1..=most,
                Just([0usize, 1, 2]).prop_shuffle(),
            )
        })
        .prop_map(|(bpp, be, rb, gb, bb, order)| {
            let bits = [rb, gb, bb];
            let mut shifts = [0u8; 3];
            let mut at = 0u8;
            for &c in &order {
                shifts[c] = at;
                at += bits[c];
            }
            let max = |b: u8| ((1u32 << b) - 1) as u16;
            PixelFormat {
                bits_per_pixel: bpp,
                depth: at,
                big_endian: be,
                true_colour: true,
                red_max: max(rb),
                green_max: max(gb),
                blue_max: max(bb),
                red_shift: shifts[0],
                green_shift: shifts[1],
                blue_shift: shifts[2],
            }
        })
}

fn ext_clipboard() -> impl Strategy<Value = ExtClipboard> {
    let not_action = any::<u32>().prop_map(|f| f & !flags::ACTION_MASK);
    prop_oneof![
        any::<u32>()
            .prop_flat_map(|f| {
                let f = f | flags::CAPS;
                let n = (f & flags::FORMAT_MASK).count_ones() as usize;
                (Just(f), prop::collection::vec(any::<u32>(), n))
            })
            .prop_map(|(flags, sizes)| ExtClipboard::Caps { flags, sizes }),
        not_action
            .clone()
            .prop_map(|formats| ExtClipboard::Request { formats }),
        not_action
            .clone()
            .prop_map(|formats| ExtClipboard::Peek { formats }),
        not_action.prop_map(|formats| ExtClipboard::Notify { formats }),
        prop::collection::btree_map(0u32..16, prop::collection::vec(any::<u8>(), 0..200), 0..4)
            .prop_map(|m| ExtClipboard::Provide {
                items: m.into_iter().map(|(bit, d)| (1u32 << bit, d)).collect()
            }),
    ]
}

fn screen() -> impl Strategy<Value = Screen> {
    (any::<u32>(), rect(), any::<u32>()).prop_map(|(id, rect, flags)| Screen { id, rect, flags })
}

/// Any client message; pointer events in the form valid with or without the extension.
fn client_message(extended_mouse: bool) -> impl Strategy<Value = ClientMessage> {
    let pointer = (any::<u16>(), any::<u16>(), any::<u8>(), any::<u8>()).prop_map(
        move |(x, y, mask, ext)| {
            ClientMessage::PointerEvent(PointerEvent {
                x,
                y,
                mask,
                extended_mask: (extended_mouse && mask & 0x80 != 0).then_some(ext),
            })
        },
    );
    prop_oneof![
        pixel_format().prop_map(ClientMessage::SetPixelFormat),
        prop::collection::vec(any::<i32>(), 0..64).prop_map(ClientMessage::SetEncodings),
        (any::<bool>(), rect()).prop_map(|(incremental, rect)| {
            ClientMessage::FramebufferUpdateRequest { incremental, rect }
        }),
        (any::<bool>(), any::<u32>())
            .prop_map(|(down, keysym)| ClientMessage::KeyEvent { down, keysym }),
        pointer,
        prop::collection::vec(any::<u8>(), 0..300)
            .prop_map(|b| ClientMessage::CutText(b.into_iter().map(char::from).collect())),
        ext_clipboard().prop_map(ClientMessage::ExtendedClipboard),
        (any::<bool>(), rect())
            .prop_map(|(enable, rect)| ClientMessage::EnableContinuousUpdates { enable, rect }),
        (any::<u32>(), prop::collection::vec(any::<u8>(), 0..=64))
            .prop_map(|(flags, payload)| ClientMessage::Fence { flags, payload }),
        (
            any::<u16>(),
            any::<u16>(),
            prop::collection::vec(screen(), 0..=16)
        )
            .prop_map(|(width, height, screens)| ClientMessage::SetDesktopSize {
                width,
                height,
                screens
            }),
        (any::<bool>(), any::<u32>(), any::<u32>()).prop_map(|(down, keysym, keycode)| {
            ClientMessage::QemuKeyEvent {
                down,
                keysym,
                keycode,
            }
        }),
    ]
}

fn check_roundtrip(m: &ClientMessage, limits: &Limits, trailing: &[u8]) {
    let mut bytes = Vec::new();
    m.write(&mut bytes);
    let len = bytes.len();
    // Every strict prefix is incomplete, never an error.
    for k in 0..len {
        assert_eq!(parse_client_message(&bytes[..k], limits), Ok(None));
    }
    bytes.extend_from_slice(trailing);
    let (parsed, used) = parse_client_message(&bytes, limits).unwrap().unwrap();
    assert_eq!(used, len);
    assert_eq!(&parsed, m);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn client_messages_roundtrip(m in client_message(false), trailing in prop::collection::vec(any::<u8>(), 0..8)) {
        check_roundtrip(&m, &Limits::default(), &trailing);
    }

    #[test]
    fn client_messages_roundtrip_extended_mouse(m in client_message(true), trailing in prop::collection::vec(any::<u8>(), 0..8)) {
        check_roundtrip(&m, &ext_limits(), &trailing);
    }

    #[test]
    fn unknown_message_types_are_named(ty in any::<u8>(), rest in prop::collection::vec(any::<u8>(), 0..32)) {
        prop_assume!(![0u8, 2, 3, 4, 5, 6, 150, 248, 251, 255].contains(&ty));
        let mut b = vec![ty];
        b.extend_from_slice(&rest);
        prop_assert_eq!(parse_client_message(&b, &Limits::default()), Err(ParseError::UnknownMessageType(ty)));
    }

    #[test]
    fn unknown_qemu_submessages_are_named(sub in 1u8..) {
        prop_assert_eq!(
            parse_client_message(&[255, sub], &Limits::default()),
            Err(ParseError::UnknownQemuSubmessage(sub))
        );
    }

    #[test]
    fn oversized_cut_text_is_refused_before_the_payload(len in 1001u32..=i32::MAX as u32, neg in any::<bool>()) {
        let limits = Limits { max_cut_text: 1000, ..Limits::default() };
        let field = if neg { (len as i32).wrapping_neg() as u32 } else { len };
        let mut b = vec![6, 0, 0, 0];
        b.extend_from_slice(&field.to_be_bytes());
        prop_assert_eq!(
            parse_client_message(&b, &limits),
            Err(ParseError::CutTextTooLong { len: len as usize, limit: 1000 })
        );
    }

    #[test]
    fn huge_encoding_counts_are_refused_before_the_list(count in 1025u16..) {
        let mut b = vec![2, 0];
        b.extend_from_slice(&count.to_be_bytes());
        prop_assert_eq!(
            parse_client_message(&b, &Limits::default()),
            Err(ParseError::TooManyEncodings { count: usize::from(count), limit: 1024 })
        );
    }

    #[test]
    fn too_many_screens_are_refused(count in 17u8..) {
        let b = [251, 0, 1, 0, 1, 0, count, 0];
        prop_assert_eq!(
            parse_client_message(&b, &Limits::default()),
            Err(ParseError::TooManyScreens { count: usize::from(count), limit: 16 })
        );
    }

    #[test]
    fn long_fence_payloads_are_refused(len in 65u8..) {
        let b = [248, 0, 0, 0, 0, 0, 0, 0, len];
        prop_assert_eq!(parse_client_message(&b, &Limits::default()), Err(ParseError::FencePayloadTooLong(usize::from(len))));
    }

    /// Random bytes: the parser either needs more, errs, or consumes a positive amount that
    /// fits; it never panics. Checked for both pointer modes.
    #[test]
    fn random_bytes_never_panic_the_parser(b in prop::collection::vec(any::<u8>(), 0..512), ext in any::<bool>()) {
        let limits = Limits { extended_mouse_buttons: ext, max_cut_text: 256, ..Limits::default() };
        let mut rest = &b[..];
        while let Ok(Some((_, n))) = parse_client_message(rest, &limits) {
            prop_assert!(n > 0 && n <= rest.len());
            rest = &rest[n..];
        }
    }

    /// Random bytes after a random-length valid-looking start never panic the handshake and
    /// never make it consume more than it was given.
    #[test]
    fn random_bytes_never_panic_the_handshake(
        version in prop_oneof![Just(&b"RFB 003.008\n"[..]), Just(&b"RFB 003.007\n"[..]), Just(&b"RFB 003.003\n"[..]), Just(&b""[..])],
        auth in any::<bool>(),
        tail in prop::collection::vec(any::<u8>(), 0..64),
        chunk in 1usize..20,
    ) {
        let init = ServerInit::new(8, 8, "p");
        let config = if auth { HandshakeConfig::vnc_auth(b"pw", [3; 16], init) } else { HandshakeConfig::no_auth(init) };
        let mut hs = ServerHandshake::new(config);
        let mut input = version.to_vec();
        input.extend_from_slice(&tail);
        let mut pending = Vec::new();
        for c in input.chunks(chunk) {
            pending.extend_from_slice(c);
            match hs.receive(&pending) {
                Ok(n) => { prop_assert!(n <= pending.len()); pending.drain(..n); }
                Err(_) => break,
            }
            let _ = hs.take_output();
            while hs.poll_event().is_some() {}
        }
    }
}

#[test]
fn set_pixel_format_errors_are_specific() {
    let msg = |pf: PixelFormat| {
        let mut b = Vec::new();
        // Write through the client serializer, which does not validate.
        ClientMessage::SetPixelFormat(pf).write(&mut b);
        parse_client_message(&b, &Limits::default())
    };
    let ok = PixelFormat::NATIVE;
    assert_eq!(
        msg(PixelFormat {
            true_colour: false,
            ..ok
        }),
        Err(ParseError::PixelFormat(PixelFormatError::ColourMap))
    );
    assert_eq!(
        msg(PixelFormat {
            bits_per_pixel: 24,
            ..ok
        }),
        Err(ParseError::PixelFormat(PixelFormatError::BitsPerPixel(24)))
    );
    assert_eq!(
        msg(PixelFormat { depth: 0, ..ok }),
        Err(ParseError::PixelFormat(PixelFormatError::Depth {
            depth: 0,
            bpp: 32
        }))
    );
    // Zero-sized channel.
    assert_eq!(
        msg(PixelFormat { green_max: 0, ..ok }),
        Err(ParseError::PixelFormat(PixelFormatError::Max {
            channel: "green",
            max: 0
        }))
    );
    // A channel shifted out of the pixel.
    assert_eq!(
        msg(PixelFormat {
            red_shift: 30,
            ..ok
        }),
        Err(ParseError::PixelFormat(PixelFormatError::Shift {
            channel: "red",
            max: 255,
            shift: 30,
            bpp: 32
        }))
    );
    // Overlapping channels.
    assert_eq!(
        msg(PixelFormat {
            green_shift: 12,
            ..ok
        }),
        Err(ParseError::ChannelsOverlap {
            red: 0xff_0000,
            green: 0xf_f000,
            blue: 0xff
        })
    );
    // Reversed order (blue high, red low) is legal.
    let rgb = PixelFormat {
        red_shift: 0,
        blue_shift: 16,
        ..ok
    };
    assert!(matches!(
        msg(rgb),
        Ok(Some((ClientMessage::SetPixelFormat(p), 20))) if p == rgb
    ));
}

#[test]
fn clipboard_errors_are_specific() {
    let wrap = |payload: &[u8]| {
        let mut b = vec![6, 0, 0, 0];
        b.extend_from_slice(&(-(payload.len() as i32)).to_be_bytes());
        b.extend_from_slice(payload);
        b
    };
    let l = Limits::default();
    assert_eq!(
        parse_client_message(&wrap(&[0, 0]), &l),
        Err(ParseError::Clipboard(ClipboardError::Truncated))
    );
    assert_eq!(
        parse_client_message(&wrap(&[0, 0, 0, 1]), &l),
        Err(ParseError::Clipboard(ClipboardError::NoAction(1)))
    );
    assert_eq!(
        parse_client_message(&wrap(&[0x06, 0, 0, 1]), &l),
        Err(ParseError::Clipboard(ClipboardError::MultipleActions(
            0x0600_0001
        )))
    );
    // Caps with two formats but one size.
    assert_eq!(
        parse_client_message(&wrap(&[0x01, 0, 0, 3, 0, 0, 0, 1]), &l),
        Err(ParseError::Clipboard(ClipboardError::Truncated))
    );
    assert_eq!(
        parse_client_message(&wrap(&[0x10, 0, 0, 1, 1, 2, 3]), &l),
        Err(ParseError::Clipboard(ClipboardError::Zlib))
    );
    // A zlib bomb: 1 MiB of zeros against a 64 KiB cap.
    let mut big = vec![0u8; 4];
    big[..4].copy_from_slice(&(1u32 << 20).to_be_bytes());
    big.resize(4 + (1 << 20), 0);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut z, &big).unwrap();
    let mut payload = vec![0x10, 0, 0, 1];
    payload.extend_from_slice(&z.finish().unwrap());
    let small = Limits {
        max_clipboard_inflated: 64 << 10,
        ..Limits::default()
    };
    assert_eq!(
        parse_client_message(&wrap(&payload), &small),
        Err(ParseError::Clipboard(ClipboardError::TooLarge {
            limit: 64 << 10
        }))
    );
    // The provide stream announces text but holds nothing.
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut z, &[0, 0, 0, 9, b'x']).unwrap();
    let mut payload = vec![0x10, 0, 0, 1];
    payload.extend_from_slice(&z.finish().unwrap());
    assert_eq!(
        parse_client_message(&wrap(&payload), &l),
        Err(ParseError::Clipboard(ClipboardError::Truncated))
    );
}
