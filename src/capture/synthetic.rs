//! A scripted [`FrameSource`] for tests and benchmarks: pixels change only when told to.

use std::sync::{Arc, Mutex};

use rfb::{Rect, Region};

use super::{Frame, FrameSource, FrameStore};
use crate::desktop::DesktopError;

/// A frame source driven by the test: [`SyntheticSource::fill`], [`SyntheticSource::put`] and
/// [`SyntheticSource::step`] write into the store like a capture thread would.
pub struct SyntheticSource {
    store: Arc<FrameStore>,
    step: Mutex<u32>,
    /// Largest size `resize` accepts.
    pub max_size: (u16, u16),
}

impl SyntheticSource {
    /// A black screen of the given size.
    pub fn new(width: u16, height: u16) -> SyntheticSource {
        SyntheticSource {
            store: FrameStore::new(width, height),
            step: Mutex::new(0),
            max_size: (8192, 8192),
        }
    }

    /// Fill `rect` with `0x00RRGGBB`; returns the new version.
    pub fn fill(&self, rect: Rect, rgb: u32) -> u64 {
        let bytes = rgb.to_le_bytes();
        self.store.write(&Region::from_rect(rect), |f| {
            let r = rect.clamp_to(f.width, f.height);
            for y in r.y..r.y + r.h {
                let row = usize::from(y) * f.stride;
                for x in r.x..r.x + r.w {
                    let i = row + usize::from(x) * 4;
                    f.data[i..i + 4].copy_from_slice(&bytes);
                }
            }
        })
    }

    /// Write `pixels` (`rect.w * 4` bytes per row, BGRX) at `rect`.
    pub fn put(&self, rect: Rect, pixels: &[u8]) -> u64 {
        self.store.write(&Region::from_rect(rect), |f| {
            let r = rect.clamp_to(f.width, f.height);
            let n = usize::from(r.w) * 4;
            for y in 0..r.h {
                let s = usize::from(y) * usize::from(rect.w) * 4;
                let d = usize::from(r.y + y) * f.stride + usize::from(r.x) * 4;
                if let (Some(src), Some(dst)) = (pixels.get(s..s + n), f.data.get_mut(d..d + n)) {
                    dst.copy_from_slice(src);
                }
            }
        })
    }

    /// One step of a moving-box animation with a gradient background strip: a deterministic
    /// workload for benchmarks. Returns the new version.
    pub fn step(&self) -> u64 {
        let mut s = self.step.lock().unwrap_or_else(|e| e.into_inner());
        *s += 1;
        let (_, f) = self.store.snapshot();
        let (w, h) = (f.width.max(1), f.height.max(1));
        let size = 64u16.min(w).min(h);
        let x = ((*s * 7) % u32::from(w - size + 1)) as u16;
        let y = ((*s * 5) % u32::from(h - size + 1)) as u16;
        let colour = 0x0010_2030u32.wrapping_mul(*s) & 0x00ff_ffff;
        drop(s);
        self.fill(Rect::new(x, y, size, size), colour)
    }
}

impl FrameSource for SyntheticSource {
    fn store(&self) -> &Arc<FrameStore> {
        &self.store
    }

    fn refresh(&self) -> Result<u64, DesktopError> {
        Ok(self.store.version())
    }

    fn resize(&self, width: u16, height: u16) -> Result<(u16, u16), DesktopError> {
        if width == 0 || height == 0 || width > self.max_size.0 || height > self.max_size.1 {
            return Err(DesktopError::Invalid(format!(
                "screen size {width}x{height} not allowed"
            )));
        }
        self.store.replace(Frame::new(width, height));
        Ok((width, height))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_changes_pixels_and_region() {
        let s = SyntheticSource::new(100, 50);
        let v0 = s.store().version();
        s.fill(Rect::new(10, 10, 5, 5), 0x00ff_0000);
        let (_, f, r) = s.store().changes_since(v0);
        assert_eq!(f.pixel(12, 12), 0x00ff_0000);
        assert_eq!(r.area(), 25);
        assert_eq!(s.resize(20, 20).unwrap(), (20, 20));
        assert!(s.resize(0, 20).is_err());
        let v = s.store().version();
        assert!(s.step() > v);
    }
}
