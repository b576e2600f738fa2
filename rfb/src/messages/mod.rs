//! Client messages (incremental parse) and server messages (serialize).
//!
//! - [`client`]: every client-to-server message: [`parse_client_message`] and
//!   [`ClientMessage::write`] (the latter for tests and client-side tools).
//! - [`server`]: serializers for server-to-client messages and pseudo-encoding rectangles.
//! - [`clipboard`]: the ExtendedClipboard payload shared by both directions.
//! - [`reader`]: [`ClientMessageReader`], a buffer for arbitrarily chunked input.
//! - [`caps`]: [`ClientCaps`], what a SetEncodings list announces.
//!
//! All multi-byte integers are big-endian (RFC 6143 §7).

pub mod caps;
pub mod client;
pub mod clipboard;
pub mod reader;
pub mod server;

pub use caps::ClientCaps;
pub use reader::ClientMessageReader;

pub use client::{parse_client_message, ClientMessage, Limits, ParseError, PointerEvent, Screen};
pub use clipboard::{ClipboardError, ExtClipboard};

use crate::pixel::PixelFormat;

/// Append a 16-byte PIXEL_FORMAT (RFC 6143 §7.4) to `out`.
pub fn write_pixel_format(out: &mut Vec<u8>, pf: &PixelFormat) {
    out.extend_from_slice(&[
        pf.bits_per_pixel,
        pf.depth,
        u8::from(pf.big_endian),
        u8::from(pf.true_colour),
    ]);
    out.extend_from_slice(&pf.red_max.to_be_bytes());
    out.extend_from_slice(&pf.green_max.to_be_bytes());
    out.extend_from_slice(&pf.blue_max.to_be_bytes());
    out.extend_from_slice(&[pf.red_shift, pf.green_shift, pf.blue_shift, 0, 0, 0]);
}

/// Read a 16-byte PIXEL_FORMAT. Any non-zero flag byte means true. Not validated.
pub fn read_pixel_format(b: &[u8; 16]) -> PixelFormat {
    PixelFormat {
        bits_per_pixel: b[0],
        depth: b[1],
        big_endian: b[2] != 0,
        true_colour: b[3] != 0,
        red_max: u16::from_be_bytes([b[4], b[5]]),
        green_max: u16::from_be_bytes([b[6], b[7]]),
        blue_max: u16::from_be_bytes([b[8], b[9]]),
        red_shift: b[10],
        green_shift: b[11],
        blue_shift: b[12],
    }
}

/// Latin-1 bytes to a string (lossless: every byte is the code point of the same value).
pub fn latin1_to_string(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// A string to Latin-1 bytes; characters outside Latin-1 become `?`.
pub fn string_to_latin1(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}
