//! CopyRect encoding (1): the client copies an area it already has. Finding moved areas is
//! the session's job; this only writes the rectangle.

use super::{numbers, write_rect_header};
use crate::geom::Rect;

/// Append a CopyRect rectangle: `dst` gets the pixels currently at (`src_x`, `src_y`).
pub fn write_copy_rect(out: &mut Vec<u8>, dst: &Rect, src_x: u16, src_y: u16) {
    write_rect_header(out, dst, numbers::COPY_RECT);
    out.extend_from_slice(&src_x.to_be_bytes());
    out.extend_from_slice(&src_y.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let mut out = Vec::new();
        write_copy_rect(&mut out, &Rect::new(1, 2, 3, 4), 0x0102, 7);
        assert_eq!(out, [0, 1, 0, 2, 0, 3, 0, 4, 0, 0, 0, 1, 1, 2, 0, 7]);
    }
}
