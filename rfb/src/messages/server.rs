//! Server-to-client messages (RFC 6143 §7.6 and the community extensions), serialized by
//! appending to a `Vec<u8>`.
//!
//! A FramebufferUpdate is a 4-byte header followed by rectangles; encoders append the pixel
//! rectangles and the functions here append header and pseudo-encoding rectangles.

use super::client::{write_ext_clipboard, Screen, MAX_FENCE_PAYLOAD};
use super::clipboard::ExtClipboard;
use super::{string_to_latin1, write_pixel_format};
use crate::encoding::{numbers, write_rect_header};
use crate::geom::Rect;
use crate::pixel::PixelFormat;

/// Message type numbers sent by servers.
pub mod types {
    /// FramebufferUpdate.
    pub const FRAMEBUFFER_UPDATE: u8 = 0;
    /// Bell.
    pub const BELL: u8 = 2;
    /// ServerCutText.
    pub const SERVER_CUT_TEXT: u8 = 3;
    /// EndOfContinuousUpdates.
    pub const END_OF_CONTINUOUS_UPDATES: u8 = 150;
    /// ServerFence.
    pub const SERVER_FENCE: u8 = 248;
}

/// Rectangle count meaning "until a LastRect rectangle" (LastRect pseudo-encoding).
pub const RECT_COUNT_UNTIL_LAST_RECT: u16 = 0xFFFF;

/// ExtendedDesktopSize reason codes (the rectangle's x field).
pub mod desktop_size_reason {
    /// Changed by the server, or answer to a non-incremental update request.
    pub const SERVER: u16 = 0;
    /// Answer to this client's SetDesktopSize.
    pub const THIS_CLIENT: u16 = 1;
    /// Another client's SetDesktopSize succeeded.
    pub const OTHER_CLIENT: u16 = 2;
}

/// ExtendedDesktopSize status codes (the rectangle's y field).
pub mod desktop_size_status {
    /// No error.
    pub const OK: u16 = 0;
    /// Resize is administratively prohibited.
    pub const PROHIBITED: u16 = 1;
    /// Out of resources.
    pub const OUT_OF_RESOURCES: u16 = 2;
    /// Invalid screen layout.
    pub const INVALID_LAYOUT: u16 = 3;
    /// Request forwarded (may complete later).
    pub const FORWARDED: u16 = 4;
}

/// Why a server message could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Cursor pixel or mask data does not match the cursor size.
    #[error("cursor data is {got} bytes, expected {expected}")]
    CursorDataLength {
        /// Bytes given.
        got: usize,
        /// Bytes the size and pixel format require.
        expected: usize,
    },
}

/// Append the ServerInit message: size, native pixel format and desktop name (UTF-8).
pub fn write_server_init(out: &mut Vec<u8>, width: u16, height: u16, pf: &PixelFormat, name: &str) {
    out.extend_from_slice(&width.to_be_bytes());
    out.extend_from_slice(&height.to_be_bytes());
    write_pixel_format(out, pf);
    write_string(out, name.as_bytes());
}

/// Append a u32 length and the bytes.
pub(crate) fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len().min(u32::MAX as usize);
    out.extend_from_slice(&(n as u32).to_be_bytes());
    out.extend_from_slice(&s[..n]);
}

/// Append a FramebufferUpdate header announcing `rects` rectangles
/// ([`RECT_COUNT_UNTIL_LAST_RECT`] when ending with [`write_last_rect`]).
pub fn write_framebuffer_update_header(out: &mut Vec<u8>, rects: u16) {
    out.extend_from_slice(&[types::FRAMEBUFFER_UPDATE, 0]);
    out.extend_from_slice(&rects.to_be_bytes());
}

/// Overwrite the rectangle count of a FramebufferUpdate header written at `header_at`, for
/// callers that learn the count after encoding. Does nothing if `header_at` is out of range.
pub fn patch_rect_count(out: &mut [u8], header_at: usize, rects: u16) {
    if let Some(field) = out.get_mut(header_at + 2..header_at + 4) {
        field.copy_from_slice(&rects.to_be_bytes());
    }
}

/// Append a Bell.
pub fn write_bell(out: &mut Vec<u8>) {
    out.push(types::BELL);
}

/// Append a ServerCutText with Latin-1 text (characters outside Latin-1 become `?`).
pub fn write_server_cut_text(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&[types::SERVER_CUT_TEXT, 0, 0, 0]);
    write_string(out, &string_to_latin1(text));
}

/// Append a ServerCutText carrying an extended clipboard message (negative length).
pub fn write_server_ext_clipboard(out: &mut Vec<u8>, msg: &ExtClipboard) {
    write_ext_clipboard(out, types::SERVER_CUT_TEXT, msg);
}

/// Append an EndOfContinuousUpdates.
pub fn write_end_of_continuous_updates(out: &mut Vec<u8>) {
    out.push(types::END_OF_CONTINUOUS_UPDATES);
}

/// Append a ServerFence. Payloads longer than 64 bytes are truncated to 64.
pub fn write_server_fence(out: &mut Vec<u8>, flags: u32, payload: &[u8]) {
    write_fence(out, types::SERVER_FENCE, flags, payload);
}

pub(crate) fn write_fence(out: &mut Vec<u8>, ty: u8, flags: u32, payload: &[u8]) {
    let payload = &payload[..payload.len().min(MAX_FENCE_PAYLOAD)];
    out.extend_from_slice(&[ty, 0, 0, 0]);
    out.extend_from_slice(&flags.to_be_bytes());
    out.push(payload.len() as u8);
    out.extend_from_slice(payload);
}

/// Append an empty pseudo-rectangle with `encoding` (all fields zero): the acknowledgement
/// ExtendedMouseButtons and QEMU extended key events expect.
pub fn write_pseudo_rect(out: &mut Vec<u8>, encoding: i32) {
    write_rect_header(out, &Rect::default(), encoding);
}

/// Append a DesktopSize pseudo-rectangle announcing a new framebuffer size.
pub fn write_desktop_size_rect(out: &mut Vec<u8>, width: u16, height: u16) {
    write_rect_header(out, &Rect::new(0, 0, width, height), numbers::DESKTOP_SIZE);
}

/// Append an ExtendedDesktopSize pseudo-rectangle. `reason` goes in x
/// ([`desktop_size_reason`]), `status` in y ([`desktop_size_status`]). At most 255 screens are
/// written.
pub fn write_extended_desktop_size_rect(
    out: &mut Vec<u8>,
    reason: u16,
    status: u16,
    width: u16,
    height: u16,
    screens: &[Screen],
) {
    write_rect_header(
        out,
        &Rect::new(reason, status, width, height),
        numbers::EXTENDED_DESKTOP_SIZE,
    );
    let n = screens.len().min(255);
    out.extend_from_slice(&[n as u8, 0, 0, 0]);
    for s in &screens[..n] {
        s.write(out);
    }
}

/// Bytes of a cursor bitmask for a `width` x `height` cursor (rows padded to whole bytes).
pub fn cursor_mask_len(width: u16, height: u16) -> usize {
    usize::from(width).div_ceil(8) * usize::from(height)
}

/// Append a Cursor pseudo-rectangle. `pixels` are `width * height` pixels already in the
/// client's format; `mask` has one bit per pixel, rows padded to bytes, MSB = leftmost, 1 =
/// opaque. The hotspot goes in x and y.
#[allow(clippy::too_many_arguments)]
pub fn write_cursor_rect(
    out: &mut Vec<u8>,
    hotspot_x: u16,
    hotspot_y: u16,
    width: u16,
    height: u16,
    client_format: &PixelFormat,
    pixels: &[u8],
    mask: &[u8],
) -> Result<(), WriteError> {
    let expected = usize::from(width) * usize::from(height) * client_format.bytes_per_pixel();
    if pixels.len() != expected {
        return Err(WriteError::CursorDataLength {
            got: pixels.len(),
            expected,
        });
    }
    let expected = cursor_mask_len(width, height);
    if mask.len() != expected {
        return Err(WriteError::CursorDataLength {
            got: mask.len(),
            expected,
        });
    }
    write_rect_header(
        out,
        &Rect::new(hotspot_x, hotspot_y, width, height),
        numbers::CURSOR,
    );
    out.extend_from_slice(pixels);
    out.extend_from_slice(mask);
    Ok(())
}

/// Append a LastRect pseudo-rectangle (ends an update whose count was 0xFFFF).
pub fn write_last_rect(out: &mut Vec<u8>) {
    write_pseudo_rect(out, numbers::LAST_RECT);
}

/// Append a DesktopName pseudo-rectangle with the new name (UTF-8).
pub fn write_desktop_name_rect(out: &mut Vec<u8>, name: &str) {
    write_pseudo_rect(out, numbers::DESKTOP_NAME);
    write_string(out, name.as_bytes());
}
