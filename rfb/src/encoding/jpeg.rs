//! JPEG compression for Tight (libjpeg-turbo via the turbojpeg crate), straight from the BGRX
//! framebuffer without copying.

use super::FrameView;
use crate::geom::Rect;
use turbojpeg::{Compressor, Image, PixelFormat as TjFormat, Subsamp};

/// JPEG quality and chroma subsampling for Tight's QualityLevel 0..=9, as TigerVNC maps them
/// (values from the VirtualGL project's measurements).
pub fn quality_for_level(level: u8) -> (i32, Subsamp) {
    match level {
        0 => (15, Subsamp::Sub2x2),
        1 => (29, Subsamp::Sub2x2),
        2 => (41, Subsamp::Sub2x2),
        3 => (42, Subsamp::Sub2x1),
        4 => (62, Subsamp::Sub2x1),
        5 => (77, Subsamp::Sub2x1),
        6 => (79, Subsamp::None),
        7 => (86, Subsamp::None),
        8 => (92, Subsamp::None),
        _ => (100, Subsamp::None),
    }
}

/// A reusable JPEG compressor.
pub(crate) struct Jpeg {
    c: Compressor,
}

impl std::fmt::Debug for Jpeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Jpeg")
    }
}

impl Jpeg {
    /// None when libjpeg-turbo cannot make a compressor (then Tight sends no JPEG).
    pub(crate) fn new() -> Option<Jpeg> {
        Compressor::new().ok().map(|c| Jpeg { c })
    }

    /// The JPEG of `r` at QualityLevel `level`, or None if libjpeg-turbo fails.
    pub(crate) fn compress(
        &mut self,
        frame: &FrameView<'_>,
        r: &Rect,
        level: u8,
    ) -> Option<Vec<u8>> {
        let start = usize::from(r.y) * frame.stride + usize::from(r.x) * 4;
        let end = (usize::from(r.y) + usize::from(r.h)).checked_sub(1)? * frame.stride
            + (usize::from(r.x) + usize::from(r.w)) * 4;
        let pixels = frame.data.get(start..end)?;
        let (quality, subsamp) = quality_for_level(level);
        self.c.set_quality(quality);
        self.c.set_subsamp(subsamp);
        self.c
            .compress_to_vec(Image {
                pixels,
                width: usize::from(r.w),
                pitch: frame.stride,
                height: usize::from(r.h),
                format: TjFormat::BGRX,
            })
            .ok()
    }
}
