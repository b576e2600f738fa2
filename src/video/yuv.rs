//! BGRX framebuffer → I420 (YUV 4:2:0 planar), full-range BT.601 (the JPEG/JFIF matrix).
//!
//! Full range keeps every 8-bit level a desktop shows (limited range would crush 0..16 and
//! 235..255); the encoder signals it in the SPS VUI so decoders convert back with the same
//! matrix. Odd sizes are padded to even by repeating the last column and row, since 4:2:0 needs
//! even dimensions.

/// An I420 picture with even dimensions: a full-size Y plane and quarter-size U and V planes,
/// each packed (stride = plane width).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct I420 {
    width: usize,
    height: usize,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

/// `n` rounded up to even.
pub fn even(n: usize) -> usize {
    n + (n & 1)
}

impl I420 {
    /// The padded (even) width.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The padded (even) height.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The Y plane, `width * height` bytes.
    pub fn y(&self) -> &[u8] {
        &self.y
    }

    /// The U (Cb) plane, `width/2 * height/2` bytes.
    pub fn u(&self) -> &[u8] {
        &self.u
    }

    /// The V (Cr) plane.
    pub fn v(&self) -> &[u8] {
        &self.v
    }

    /// Convert `width x height` BGRX pixels (`stride` bytes a row) into this picture, reusing
    /// its buffers. The caller guarantees `data` holds `height` rows of `stride >= width * 4`
    /// bytes (the last row may be exactly `width * 4`); `width` and `height` must be non-zero.
    pub fn fill_from_bgrx(&mut self, data: &[u8], width: usize, height: usize, stride: usize) {
        let (w, h) = (even(width), even(height));
        self.width = w;
        self.height = h;
        self.y.resize(w * h, 0);
        self.u.resize(w / 2 * (h / 2), 0);
        self.v.resize(w / 2 * (h / 2), 0);
        let row = |y: usize| {
            let y = y.min(height - 1);
            &data[y * stride..y * stride + width * 4]
        };
        for cy in 0..h / 2 {
            let (r0, r1) = (row(2 * cy), row(2 * cy + 1));
            let (y0, rest) = self.y[2 * cy * w..].split_at_mut(w);
            let y1 = &mut rest[..w];
            let u = &mut self.u[cy * (w / 2)..(cy + 1) * (w / 2)];
            let v = &mut self.v[cy * (w / 2)..(cy + 1) * (w / 2)];
            convert_row_pair(r0, r1, width, y0, y1, u, v);
        }
    }
}

/// Luma of one pixel (a little-endian BGRX word), 16-bit fixed point. Plain u32 arithmetic
/// on a whole row lets the compiler vectorize it; the sums cannot overflow (at most
/// 65536 * 255 + 32768).
#[inline(always)]
fn luma(p: u32) -> u8 {
    let (b, g, r) = (p & 0xff, (p >> 8) & 0xff, (p >> 16) & 0xff);
    ((19595 * r + 38470 * g + 7471 * b + 32768) >> 16) as u8
}

/// The BGRX words of a row.
#[inline(always)]
fn words(row: &[u8]) -> impl Iterator<Item = u32> + '_ {
    row.chunks_exact(4)
        .map(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]]))
}

/// Two source rows (each `width` pixels) into two luma rows and one chroma row. The last
/// column is repeated when the padded width exceeds `width`. Luma and chroma are separate
/// passes over the rows: simple loops the compiler vectorizes.
fn convert_row_pair(
    r0: &[u8],
    r1: &[u8],
    width: usize,
    y0: &mut [u8],
    y1: &mut [u8],
    u: &mut [u8],
    v: &mut [u8],
) {
    for (src, dst) in [(r0, &mut *y0), (r1, &mut *y1)] {
        for (p, y) in words(src).zip(dst[..width].iter_mut()) {
            *y = luma(p);
        }
    }
    let pairs = width / 2;
    // Blue and red sums of a 2x2 block in one word each (at most 4 * 255 per lane).
    let iter = r0
        .chunks_exact(8)
        .zip(r1.chunks_exact(8))
        .zip(u[..pairs].iter_mut().zip(v[..pairs].iter_mut()));
    for ((a, b), (cu, cv)) in iter {
        let w = |s: &[u8], i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
        let (p0, p1, q0, q1) = (w(a, 0), w(a, 4), w(b, 0), w(b, 4));
        let rb = (p0 & 0x00ff_00ff) + (p1 & 0x00ff_00ff) + (q0 & 0x00ff_00ff) + (q1 & 0x00ff_00ff);
        let g = ((p0 >> 8) & 0xff) + ((p1 >> 8) & 0xff) + ((q0 >> 8) & 0xff) + ((q1 >> 8) & 0xff);
        chroma((rb & 0xffff) as i32, g as i32, (rb >> 16) as i32, cu, cv);
    }
    if width % 2 == 1 {
        // The last, unpaired column: repeat it into the padding column.
        let i = (width - 1) * 4;
        let px = |s: &[u8]| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
        let (p, q) = (px(r0), px(r1));
        y0[width] = y0[width - 1];
        y1[width] = y1[width - 1];
        let sum = |s: u32| 2 * (((p >> s) & 0xff) + ((q >> s) & 0xff)) as i32;
        chroma(sum(0), sum(8), sum(16), &mut u[pairs], &mut v[pairs]);
    }
}

/// Chroma from the sums of four pixels' channels (hence the extra shift by 2).
#[inline(always)]
fn chroma(b: i32, g: i32, r: i32, u: &mut u8, v: &mut u8) {
    const HALF: i32 = 1 << 17;
    let cb = (-11059 * r - 21709 * g + 32768 * b + (128 << 18) + HALF) >> 18;
    let cr = (32768 * r - 27439 * g - 5329 * b + (128 << 18) + HALF) >> 18;
    *u = cb.clamp(0, 255) as u8;
    *v = cr.clamp(0, 255) as u8;
}

/// The inverse of the conversion for one pixel (tests and PSNR checks): full-range BT.601.
pub fn to_rgb(y: u8, u: u8, v: u8) -> (u8, u8, u8) {
    let (y, cb, cr) = (f64::from(y), f64::from(u) - 128.0, f64::from(v) - 128.0);
    let c = |x: f64| x.round().clamp(0.0, 255.0) as u8;
    (
        c(y + 1.402 * cr),
        c(y - 0.344_136 * cb - 0.714_136 * cr),
        c(y + 1.772 * cb),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bgrx(pixels: &[(u8, u8, u8)]) -> Vec<u8> {
        pixels.iter().flat_map(|&(r, g, b)| [b, g, r, 0]).collect()
    }

    #[test]
    fn greys_and_primaries_round_trip() {
        for (r, g, b) in [
            (0, 0, 0),
            (255, 255, 255),
            (128, 128, 128),
            (255, 0, 0),
            (0, 255, 0),
            (0, 0, 255),
            (12, 200, 99),
        ] {
            let data = bgrx(&[(r, g, b); 4]);
            let mut pic = I420::default();
            pic.fill_from_bgrx(&data, 2, 2, 8);
            let (r2, g2, b2) = to_rgb(pic.y()[0], pic.u()[0], pic.v()[0]);
            for (a, b) in [(r, r2), (g, g2), (b, b2)] {
                assert!(a.abs_diff(b) <= 2, "{:?} -> {:?}", (r, g, b), (r2, g2, b2));
            }
        }
        // Full range: black and white reach 0 and 255.
        let mut pic = I420::default();
        pic.fill_from_bgrx(&bgrx(&[(0, 0, 0); 4]), 2, 2, 8);
        assert_eq!((pic.y()[0], pic.u()[0], pic.v()[0]), (0, 128, 128));
        pic.fill_from_bgrx(&bgrx(&[(255, 255, 255); 4]), 2, 2, 8);
        assert_eq!((pic.y()[0], pic.u()[0], pic.v()[0]), (255, 128, 128));
    }

    #[test]
    fn odd_sizes_pad_by_repeating_and_stride_is_honoured() {
        // 3x3 with a stride of 16 bytes (one pixel of row padding, filled with garbage).
        let mut data = Vec::new();
        for y in 0..3u8 {
            for x in 0..3u8 {
                let l = 40 * y + 10 * x;
                data.extend_from_slice(&[l, l, l, 0]);
            }
            data.extend_from_slice(&[255, 0, 255, 0]);
        }
        let mut pic = I420::default();
        pic.fill_from_bgrx(&data, 3, 3, 16);
        assert_eq!((pic.width(), pic.height()), (4, 4));
        assert_eq!(pic.y().len(), 16);
        assert_eq!(pic.u().len(), 4);
        let y = pic.y();
        // Row 0: 0 10 20 20; the padding column repeats column 2 and row 3 repeats row 2.
        assert_eq!(&y[0..4], &[0, 10, 20, 20]);
        assert_eq!(&y[8..12], &[80, 90, 100, 100]);
        assert_eq!(&y[12..16], &y[8..12]);
        // Greys have neutral chroma everywhere, the garbage in the stride padding is not read.
        assert!(pic.u().iter().chain(pic.v()).all(|&c| c == 128));
    }
}
