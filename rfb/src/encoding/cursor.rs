//! Cursor pseudo-encoding (-239): the cursor image in the client's pixel format plus a 1-bit
//! mask, so the client draws the pointer locally.

use super::{numbers, write_rect_header};
use crate::geom::Rect;
use crate::pixel::{Packing, PixelFormat, PixelWriter};

/// Append a Cursor pseudo-rectangle for a `width` x `height` cursor with hotspot
/// (`hot_x`, `hot_y`). `bgra` is B, G, R, A bytes (straight alpha), `width * 4` per row.
/// A pixel is shown when its alpha is at least 128. Returns false and writes nothing when
/// `bgra` is too short for the size.
pub fn write_cursor(
    out: &mut Vec<u8>,
    format: &PixelFormat,
    width: u16,
    height: u16,
    hot_x: u16,
    hot_y: u16,
    bgra: &[u8],
) -> bool {
    let (w, h) = (usize::from(width), usize::from(height));
    let Some(pixels) = bgra.get(..w * h * 4) else {
        return false;
    };
    // The hotspot must lie in the cursor for some clients; clamp rather than fail.
    let rect = Rect::new(
        hot_x.min(width.saturating_sub(1)),
        hot_y.min(height.saturating_sub(1)),
        width,
        height,
    );
    write_rect_header(out, &rect, numbers::CURSOR);
    let wr = PixelWriter::new(format, Packing::Full);
    for row in pixels.chunks_exact(w.max(1) * 4).take(h) {
        wr.write_row(row, out);
    }
    let row_bytes = w.div_ceil(8);
    for row in pixels.chunks_exact(w.max(1) * 4).take(h) {
        let start = out.len();
        out.resize(start + row_bytes, 0);
        for (x, p) in row.chunks_exact(4).enumerate() {
            if p[3] >= 128 {
                out[start + x / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_by_two_with_mask() {
        // Opaque red, transparent green / half-transparent blue, opaque white.
        let bgra = [
            0, 0, 255, 255, 0, 255, 0, 0, //
            255, 0, 0, 127, 255, 255, 255, 200,
        ];
        let mut out = Vec::new();
        assert!(write_cursor(
            &mut out,
            &PixelFormat::NATIVE,
            2,
            2,
            1,
            0,
            &bgra
        ));
        assert_eq!(
            &out[..12],
            &[0, 1, 0, 0, 0, 2, 0, 2, 0xff, 0xff, 0xff, 0x11]
        );
        // Pixels: native BGRX of each (X taken from the alpha byte position as-is).
        assert_eq!(&out[12..16], &[0, 0, 255, 255]);
        assert_eq!(&out[28..], &[0x80, 0x40]);
        let f16 = PixelFormat {
            bits_per_pixel: 16,
            depth: 16,
            red_max: 31,
            green_max: 63,
            blue_max: 31,
            red_shift: 11,
            green_shift: 5,
            blue_shift: 0,
            ..PixelFormat::NATIVE
        };
        out.clear();
        assert!(write_cursor(&mut out, &f16, 2, 2, 5, 5, &bgra));
        assert_eq!(&out[..4], &[0, 1, 0, 1], "hotspot clamped into the cursor");
        assert_eq!(&out[12..14], &[0x00, 0xf8]);
        assert_eq!(out.len(), 12 + 8 + 2);
        assert!(!write_cursor(&mut out, &f16, 3, 3, 0, 0, &bgra));
    }
}
