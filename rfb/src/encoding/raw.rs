//! Raw encoding (0): pixels in the client's format, row after row.

use super::{numbers, write_rect_header, EncodeError, EncodeParams, Encoded, Encoder, FrameView};
use crate::geom::Rect;
use crate::pixel::{Packing, PixelWriter};

/// The Raw encoder. It keeps the last pixel writer so a format's lookup tables are built once.
#[derive(Debug, Default)]
pub struct RawEncoder {
    writer: Option<PixelWriter>,
}

impl RawEncoder {
    /// A new encoder.
    pub fn new() -> Self {
        Self::default()
    }
}

/// A cached writer for `params.format`, rebuilt when the format changes.
pub(crate) fn cached_writer<'a>(
    slot: &'a mut Option<PixelWriter>,
    params: &EncodeParams,
    packing: Packing,
) -> &'a PixelWriter {
    match slot {
        Some(w) if *w.format() == params.format && w.packing() == packing => {}
        _ => *slot = Some(PixelWriter::new(&params.format, packing)),
    }
    slot.get_or_insert_with(|| PixelWriter::new(&params.format, packing))
}

/// The non-empty parts of `rects` inside the frame. The trait asks callers for clamped rects;
/// clamping again here means a wrong one is trimmed instead of panicking on the frame slice.
pub(crate) fn clamped(frame: &FrameView<'_>, rects: &[Rect]) -> Vec<Rect> {
    rects
        .iter()
        .map(|r| r.clamp_to(frame.width, frame.height))
        .filter(|r| !r.is_empty())
        .collect()
}

/// Append the pixels of `r` in the writer's format, row after row.
pub(crate) fn write_rect_pixels(
    frame: &FrameView<'_>,
    r: &Rect,
    w: &PixelWriter,
    out: &mut Vec<u8>,
) {
    out.reserve(r.area() as usize * w.bytes_per_pixel());
    for y in r.y..r.y.saturating_add(r.h) {
        w.write_row(frame.row(r.x, y, r.w), out);
    }
}

impl Encoder for RawEncoder {
    fn encoding(&self) -> i32 {
        numbers::RAW
    }

    fn encode(
        &mut self,
        frame: &FrameView<'_>,
        rects: &[Rect],
        params: &EncodeParams,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, EncodeError> {
        let w = cached_writer(&mut self.writer, params, Packing::Full);
        let rects = clamped(frame, rects);
        for r in &rects {
            write_rect_header(out, r, numbers::RAW);
            write_rect_pixels(frame, r, w, out);
        }
        Ok(Encoded {
            rects: rects.len(),
            lossy: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixel::PixelFormat;

    #[test]
    fn native_raw_is_header_plus_rows() {
        let data: Vec<u8> = (0..4 * 3 * 2).map(|i| i as u8).collect();
        let frame = FrameView {
            data: &data,
            width: 3,
            height: 2,
            stride: 12,
        };
        let mut out = Vec::new();
        let n = RawEncoder::new().encode(
            &frame,
            &[Rect::new(1, 0, 2, 2)],
            &EncodeParams::default(),
            &mut out,
        );
        assert_eq!(n.map(|e| e.rects), Ok(1));
        assert_eq!(&out[..12], &[0, 1, 0, 0, 0, 2, 0, 2, 0, 0, 0, 0]);
        assert_eq!(&out[12..20], &data[4..12]);
        assert_eq!(&out[20..], &data[16..24]);
        let _ = PixelFormat::NATIVE;
    }

    #[test]
    fn rects_outside_the_frame_are_trimmed_not_panics() {
        let data = vec![0u8; 4 * 3 * 2];
        let frame = FrameView {
            data: &data,
            width: 3,
            height: 2,
            stride: 12,
        };
        let rects = [Rect::new(2, 1, 10, 10), Rect::new(5, 5, 1, 1)];
        let p = EncodeParams::default();
        let mut encoders: Vec<Box<dyn Encoder>> = vec![
            Box::new(RawEncoder::new()),
            Box::new(super::super::zlib::ZlibEncoder::new()),
            Box::new(super::super::zrle::ZrleEncoder::new()),
            Box::new(super::super::hextile::HextileEncoder::new()),
            Box::new(super::super::tight::TightEncoder::new()),
        ];
        for e in &mut encoders {
            let mut out = Vec::new();
            assert_eq!(
                e.encode(&frame, &rects, &p, &mut out).map(|e| e.rects),
                Ok(1)
            );
            assert_eq!(&out[..8], &[0, 2, 0, 1, 0, 1, 0, 1]);
        }
    }
}
