//! BGRX framebuffer → I420 (YUV 4:2:0 planar), full-range BT.601 (the JPEG/JFIF matrix).
//!
//! Full range keeps every 8-bit level a desktop shows (limited range would crush 0..16 and
//! 235..255); the encoder signals it in the SPS VUI so decoders convert back with the same
//! matrix. Odd sizes are padded to even by repeating the last column and row, since 4:2:0 needs
//! even dimensions.
//!
//! At 1920x1080 this runs before every H.264 frame, so the work is in SIMD lanes (`wide`,
//! SSE2 on x86_64): a scalar version took about a fifth of the encoder's time per frame.

use wide::{i16x8, i32x4, i32x8, u32x4, u8x16};

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

// Fixed-point coefficients: luma per pixel in 1/32768ths (they sum to 32768, so white stays
// 255); chroma per 2x2 block sum in 1/8192ths, i.e. per average in 1/32768ths (each row sums
// to 0, so greys stay neutral). All fit i16, so SSE2's pmaddwd (`i16x8::dot`) applies them.
const Y_B: i16 = 3735;
const Y_G: i16 = 19235;
const Y_R: i16 = 9798;
const U_B: i16 = 4096;
const U_G: i16 = -2714;
const U_R: i16 = -1382;
const V_B: i16 = -666;
const V_G: i16 = -3430;
const V_R: i16 = 4096;
const SHIFT: i32 = 15;
const ROUND: i32 = 1 << (SHIFT - 1);
const OFFSET: i32 = 128 << SHIFT;

/// Pixels per vector step: four `u32x4` loads a row.
const STEP: usize = 16;
/// Blue and red (or green and padding) of each BGRX word as two 16-bit lanes.
const LANES: u32 = 0x00ff_00ff;

fn luma(b: i32, g: i32, r: i32) -> u8 {
    ((i32::from(Y_B) * b + i32::from(Y_G) * g + i32::from(Y_R) * r + ROUND) >> SHIFT) as u8
}

/// Chroma from the sums of a 2x2 block's channels.
fn chroma(b: i32, g: i32, r: i32) -> (u8, u8) {
    let c = |kb: i16, kg: i16, kr: i16| {
        let v = i32::from(kb) * b + i32::from(kg) * g + i32::from(kr) * r;
        ((v + OFFSET + ROUND) >> SHIFT).clamp(0, 255) as u8
    };
    (c(U_B, U_G, U_R), c(V_B, V_G, V_R))
}

/// Channel `c` (0 blue, 1 green, 2 red) of pixel `x` of a BGRX row.
fn ch(row: &[u8], x: usize, c: usize) -> i32 {
    i32::from(row[4 * x + c])
}

/// Two source rows (each `width` pixels) into two luma rows and one chroma row: 16 pixels a
/// step in SIMD lanes, the rest one by one with the same arithmetic. The last column is
/// repeated when the padded width exceeds `width`.
fn convert_row_pair(
    r0: &[u8],
    r1: &[u8],
    width: usize,
    y0: &mut [u8],
    y1: &mut [u8],
    u: &mut [u8],
    v: &mut [u8],
) {
    let simd = width / STEP * STEP;
    for i in 0..simd / STEP {
        let (px, cx) = (i * STEP, i * STEP / 2);
        let load = |row: &[u8], k: usize| -> u32x4 {
            let at = (px + 4 * k) * 4;
            bytemuck::pod_read_unaligned(&row[at..at + 16])
        };
        let a = [load(r0, 0), load(r0, 1), load(r0, 2), load(r0, 3)];
        let b = [load(r1, 0), load(r1, 1), load(r1, 2), load(r1, 3)];
        y0[px..px + STEP].copy_from_slice(&luma16(&a)[..]);
        y1[px..px + STEP].copy_from_slice(&luma16(&b)[..]);
        let (cu, cv) = chroma16(&a, &b);
        u[cx..cx + STEP / 2].copy_from_slice(&cu);
        v[cx..cx + STEP / 2].copy_from_slice(&cv);
    }
    for x in simd..width {
        y0[x] = luma(ch(r0, x, 0), ch(r0, x, 1), ch(r0, x, 2));
        y1[x] = luma(ch(r1, x, 0), ch(r1, x, 1), ch(r1, x, 2));
    }
    for cx in simd / 2..width.div_ceil(2) {
        // An odd width's last column stands in for the padding column too.
        let x1 = (2 * cx + 1).min(width - 1);
        let s = |c: usize| ch(r0, 2 * cx, c) + ch(r0, x1, c) + ch(r1, 2 * cx, c) + ch(r1, x1, c);
        (u[cx], v[cx]) = chroma(s(0), s(1), s(2));
    }
    if width % 2 == 1 {
        y0[width] = y0[width - 1];
        y1[width] = y1[width - 1];
    }
}

/// `[k1, k2]` repeated over eight 16-bit lanes (one pair per BGRX word).
fn pairs(k1: i16, k2: i16) -> i16x8 {
    i16x8::from([k1, k2, k1, k2, k1, k2, k1, k2])
}

/// Luma of 16 pixels (four vectors of BGRX words).
fn luma16(px: &[u32x4; 4]) -> [u8; 16] {
    let (br, g) = (pairs(Y_B, Y_R), pairs(Y_G, 0));
    let y = px.map(|p| {
        let lo: i16x8 = bytemuck::cast(p & LANES);
        let hi: i16x8 = bytemuck::cast((p >> 8) & LANES);
        (lo.dot(br) + hi.dot(g) + ROUND) >> SHIFT
    });
    narrow(y)
}

/// Chroma of the eight 2x2 blocks of 16 pixels in two rows.
fn chroma16(a: &[u32x4; 4], b: &[u32x4; 4]) -> ([u8; 8], [u8; 8]) {
    let (ub_r, u_g) = (pairs(U_B, U_R), pairs(U_G, 0));
    let (vb_r, v_g) = (pairs(V_B, V_R), pairs(V_G, 0));
    let mut cu = [i32x4::ZERO; 4];
    let mut cv = [i32x4::ZERO; 4];
    for half in 0..2 {
        // Even and odd pixels of eight, so each lane holds one block's column pair.
        let split = |p: &[u32x4; 4]| {
            let (l, h) = (p[2 * half], p[2 * half + 1]);
            let (lo, hi) = (l.unpack_lo(h), l.unpack_hi(h));
            (lo.unpack_lo(hi), lo.unpack_hi(hi))
        };
        let ((ae, ao), (be, bo)) = (split(a), split(b));
        // Sums of four channel values (at most 1020) stay within their 16-bit lanes.
        let br: i16x8 = bytemuck::cast((ae & LANES) + (ao & LANES) + (be & LANES) + (bo & LANES));
        let g: i16x8 = bytemuck::cast(
            ((ae >> 8) & LANES) + ((ao >> 8) & LANES) + ((be >> 8) & LANES) + ((bo >> 8) & LANES),
        );
        let round = i32x4::splat(OFFSET + ROUND);
        cu[half] = (br.dot(ub_r) + g.dot(u_g) + round) >> SHIFT;
        cv[half] = (br.dot(vb_r) + g.dot(v_g) + round) >> SHIFT;
    }
    let (u, v) = (narrow(cu), narrow(cv));
    let first = |x: [u8; 16]| {
        let mut o = [0u8; 8];
        o.copy_from_slice(&x[..8]);
        o
    };
    (first(u), first(v))
}

/// Sixteen 32-bit lanes to bytes, saturating to 0..=255.
fn narrow(v: [i32x4; 4]) -> [u8; 16] {
    let w = |a: i32x4, b: i32x4| {
        i16x8::from_i32x8_saturate(bytemuck::cast::<[i32x4; 2], i32x8>([a, b]))
    };
    u8x16::narrow_i16x8(w(v[0], v[1]), w(v[2], v[3])).to_array()
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

    /// The SIMD steps agree exactly with the pixel-by-pixel arithmetic, whatever the width
    /// (steps, tails and odd columns) and content.
    #[test]
    fn simd_lanes_match_the_scalar_arithmetic() {
        let mut seed = 7u32;
        for (width, height) in [(16, 2), (33, 3), (47, 5), (64, 4), (129, 7), (1, 1)] {
            let stride = width * 4 + 8;
            let data: Vec<u8> = (0..stride * height)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (seed >> 16) as u8
                })
                .collect();
            let mut pic = I420::default();
            pic.fill_from_bgrx(&data, width, height, stride);
            let (w, h) = (even(width), even(height));
            let px = |x: usize, y: usize, c: usize| {
                let (x, y) = (x.min(width - 1), y.min(height - 1));
                i32::from(data[y * stride + 4 * x + c])
            };
            for y in 0..h {
                for x in 0..w {
                    let want = luma(px(x, y, 0), px(x, y, 1), px(x, y, 2));
                    assert_eq!(pic.y()[y * w + x], want, "luma {x},{y} of {width}x{height}");
                }
            }
            for cy in 0..h / 2 {
                for cx in 0..w / 2 {
                    let s = |c| {
                        px(2 * cx, 2 * cy, c)
                            + px(2 * cx + 1, 2 * cy, c)
                            + px(2 * cx, 2 * cy + 1, c)
                            + px(2 * cx + 1, 2 * cy + 1, c)
                    };
                    let want = chroma(s(0), s(1), s(2));
                    let i = cy * (w / 2) + cx;
                    assert_eq!((pic.u()[i], pic.v()[i]), want, "chroma {cx},{cy}");
                }
            }
        }
    }
}
