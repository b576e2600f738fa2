//! Open H.264 (encoding 50) rectangle framing, as the community RFB specification and noVNC's
//! `core/decoders/h264.js` define it.
//!
//! A rectangle (normally covering the framebuffer) is followed by `length: u32`, `flags: u32`
//! and `length` bytes of H.264 Annex B data (start-code delimited NAL units; one or more access
//! units). The client keeps one decoder context per rectangle position and size; the flags
//! drop that context ([`RESET_CONTEXT`]) or every context ([`RESET_ALL_CONTEXTS`]) before the
//! data is decoded, so a stream restarts with an IDR after a resize or when a client joins.
//!
//! The codec payload itself comes from the application's encoder; this module only frames it.

use crate::geom::Rect;

use super::write_rect_header;

/// The encoding number.
pub const ENCODING: i32 = super::numbers::H264;

/// Flag: discard the decoder context of this rectangle before decoding.
pub const RESET_CONTEXT: u32 = 1;

/// Flag: discard every decoder context before decoding.
pub const RESET_ALL_CONTEXTS: u32 = 2;

/// Bytes of the per-rectangle header after the 12-byte rectangle header.
pub const HEADER_LEN: usize = 8;

/// The payload does not fit the 32-bit length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("H.264 payload of {0} bytes exceeds the 32-bit length field")]
pub struct PayloadTooLarge(pub usize);

/// Append one encoding-50 rectangle: the rectangle header, `length`, `flags`, then `annexb`.
/// An empty payload with flags only resets contexts.
pub fn write_rect(
    out: &mut Vec<u8>,
    rect: &Rect,
    flags: u32,
    annexb: &[u8],
) -> Result<(), PayloadTooLarge> {
    let length = u32::try_from(annexb.len()).map_err(|_| PayloadTooLarge(annexb.len()))?;
    out.reserve(12 + HEADER_LEN + annexb.len());
    write_rect_header(out, rect, ENCODING);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(annexb);
    Ok(())
}

/// A parsed encoding-50 rectangle body: flags, Annex B data, and bytes consumed.
pub type Body<'a> = (u32, &'a [u8], usize);

/// The body of an encoding-50 rectangle (after its 12-byte header), parsed from the front of
/// `buf`: `Some((flags, annexb, bytes consumed))`, or `None` until `buf` holds all of it.
/// For clients and tests; `max_len` caps the length a peer may announce.
pub fn parse_body(buf: &[u8], max_len: u32) -> Result<Option<Body<'_>>, PayloadTooLarge> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let flags = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if length > max_len {
        return Err(PayloadTooLarge(length as usize));
    }
    let end = HEADER_LEN + length as usize;
    Ok(buf.get(HEADER_LEN..end).map(|data| (flags, data, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // An SPS, a PPS and an IDR slice start (content irrelevant to the framing).
    const AU: &[u8] = &[
        0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80, 0, 0, 0, 1, 0x65,
        0x88, 0x84,
    ];

    #[test]
    fn golden_key_frame_with_reset_all() {
        let mut out = Vec::new();
        write_rect(
            &mut out,
            &Rect::new(0, 0, 1280, 800),
            RESET_ALL_CONTEXTS,
            AU,
        )
        .unwrap();
        let mut expected = vec![
            0, 0, 0, 0, // x, y
            0x05, 0x00, 0x03, 0x20, // 1280 x 800
            0, 0, 0, 50, // encoding 50
            0, 0, 0, 23, // length
            0, 0, 0, 2, // ResetAllContexts
        ];
        expected.extend_from_slice(AU);
        assert_eq!(out, expected);
    }

    #[test]
    fn golden_reset_only_and_delta() {
        let mut out = Vec::new();
        write_rect(&mut out, &Rect::new(16, 8, 2, 4), RESET_CONTEXT, &[]).unwrap();
        assert_eq!(
            out,
            [0, 16, 0, 8, 0, 2, 0, 4, 0, 0, 0, 50, 0, 0, 0, 0, 0, 0, 0, 1]
        );
        out.clear();
        write_rect(&mut out, &Rect::new(0, 0, 2, 2), 0, &[0, 0, 1, 0x41, 0x9a]).unwrap();
        assert_eq!(&out[12..20], &[0, 0, 0, 5, 0, 0, 0, 0]);
        assert_eq!(&out[20..], &[0, 0, 1, 0x41, 0x9a]);
    }

    #[test]
    fn parse_round_trips_and_waits_for_bytes() {
        let mut out = Vec::new();
        write_rect(&mut out, &Rect::new(0, 0, 64, 64), RESET_CONTEXT, AU).unwrap();
        let body = &out[12..];
        for cut in 0..body.len() {
            assert_eq!(parse_body(&body[..cut], 1 << 20), Ok(None), "cut at {cut}");
        }
        let mut more = body.to_vec();
        more.extend_from_slice(&[9, 9, 9]);
        assert_eq!(
            parse_body(&more, 1 << 20),
            Ok(Some((RESET_CONTEXT, AU, body.len())))
        );
        // A hostile length is refused before anything is allocated or awaited.
        assert_eq!(
            parse_body(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], 1 << 20),
            Err(PayloadTooLarge(0xffff_ffff))
        );
    }
}
