//! Conversion of native BGRX rows into a client's pixel format.
//!
//! Encoders analyse pixels in the native form (`u32` `0x00RRGGBB`) and convert only what they
//! write. A [`PixelWriter`] is built once per pixel format (it holds small lookup tables) and
//! writes pixels either in full (`bits_per_pixel / 8` bytes, the client's byte order) or packed
//! the way ZRLE (CPIXEL) or Tight (TPIXEL) shorten 32-bit pixels to 3 bytes.

use super::PixelFormat;

/// How a pixel is laid out on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Packing {
    /// A full PIXEL: `bits_per_pixel / 8` bytes in the client's byte order.
    Full,
    /// ZRLE's CPIXEL: 3 bytes when the format is 32 bpp and all channels fit in the least or
    /// most significant 3 bytes; a full pixel otherwise. RFC 6143 also asks for depth <= 24,
    /// but TigerVNC (encoder and decoder) and libvncclient decide by the channels alone: for a
    /// depth-32 format x0vncserver sends 3-byte CPIXELs and libvncclient reads 3 bytes.
    Zrle,
    /// Tight's TPIXEL: R, G, B bytes when the format is 32 bpp depth 24 with 8-bit channels; a
    /// full pixel otherwise.
    Tight,
}

/// The native pixel at `i` of a BGRX byte row.
#[inline(always)]
pub fn native_at(row: &[u8], i: usize) -> u32 {
    let b = &row[i * 4..i * 4 + 4];
    u32::from_le_bytes([b[0], b[1], b[2], 0])
}

/// The colour channels (r, g, b) of a native pixel.
#[inline(always)]
pub fn rgb(p: u32) -> (u8, u8, u8) {
    ((p >> 16) as u8, (p >> 8) as u8, p as u8)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `bpp` bytes of the pixel value in the client's byte order.
    Full { bpp: usize, big_endian: bool },
    /// 3 bytes taken from the 4-byte wire form starting at `offset` (0 or 1).
    Three { big_endian: bool, offset: usize },
    /// R, G, B.
    Rgb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fast {
    /// Wire bytes equal native bytes: copy.
    Native,
    /// 32 bpp with 8-bit channels on byte boundaries: a byte shuffle.
    Bytes32,
    /// 16 bpp 5-6-5 little-endian (R at 11, G at 5, B at 0).
    Rgb565Le,
    /// Anything else: lookup tables.
    Generic,
}

/// Writes native pixels in one client pixel format.
#[derive(Clone)]
pub struct PixelWriter {
    format: PixelFormat,
    packing: Packing,
    layout: Layout,
    fast: Fast,
    lut_r: Box<[u32; 256]>,
    lut_g: Box<[u32; 256]>,
    lut_b: Box<[u32; 256]>,
}

impl std::fmt::Debug for PixelWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PixelWriter")
            .field("format", &self.format)
            .field("packing", &self.packing)
            .field("layout", &self.layout)
            .field("fast", &self.fast)
            .finish()
    }
}

fn channel_bits(max: u16) -> u32 {
    16 - max.leading_zeros()
}

/// Scale an 8-bit channel to `max` (2^n - 1): truncation for n <= 8 (a shift, which the fast
/// paths rely on), bit replication upwards. TigerVNC 1.12 rounds to nearest instead, so a 5- or
/// 6-bit channel can differ from x0vncserver's by one step (measured: 0xa0 -> 20 here, 19 there).
fn scale(c: u8, max: u16) -> u32 {
    let bits = channel_bits(max);
    if bits <= 8 {
        u32::from(c) >> (8 - bits)
    } else {
        (u32::from(c) * u32::from(max) + 127) / 255
    }
}

/// True when the format's channels all sit in the bits `lo..lo+24`.
fn fits_in_3_bytes(pf: &PixelFormat, lo: u32) -> bool {
    [
        (pf.red_max, pf.red_shift),
        (pf.green_max, pf.green_shift),
        (pf.blue_max, pf.blue_shift),
    ]
    .iter()
    .all(|&(max, shift)| {
        let s = u32::from(shift);
        s >= lo && s + channel_bits(max) <= lo + 24
    })
}

/// True when the format is 32 bpp with 8-bit channels at distinct byte-aligned shifts.
fn is_888(pf: &PixelFormat) -> bool {
    let shifts = [pf.red_shift, pf.green_shift, pf.blue_shift];
    pf.bits_per_pixel == 32
        && pf.red_max == 255
        && pf.green_max == 255
        && pf.blue_max == 255
        && shifts.iter().all(|s| s % 8 == 0 && *s <= 24)
        && shifts[0] != shifts[1]
        && shifts[1] != shifts[2]
        && shifts[0] != shifts[2]
}

impl PixelWriter {
    /// A writer for `format` (which should have passed [`PixelFormat::validate`]; an invalid one
    /// gives wrong colours, never a panic).
    pub fn new(format: &PixelFormat, packing: Packing) -> Self {
        let pf = *format;
        let bpp = match pf.bits_per_pixel {
            8 => 1,
            16 => 2,
            _ => 4,
        };
        let layout = match packing {
            Packing::Tight if bpp == 4 && pf.depth == 24 && is_888(&pf) => Layout::Rgb,
            Packing::Zrle if bpp == 4 && fits_in_3_bytes(&pf, 0) => Layout::Three {
                big_endian: pf.big_endian,
                offset: usize::from(pf.big_endian),
            },
            Packing::Zrle if bpp == 4 && fits_in_3_bytes(&pf, 8) => Layout::Three {
                big_endian: pf.big_endian,
                offset: usize::from(!pf.big_endian),
            },
            _ => Layout::Full {
                bpp,
                big_endian: pf.big_endian,
            },
        };
        let fast = if is_888(&pf) {
            if !pf.big_endian && pf.red_shift == 16 && pf.green_shift == 8 && pf.blue_shift == 0 {
                Fast::Native
            } else {
                Fast::Bytes32
            }
        } else if bpp == 2
            && !pf.big_endian
            && (pf.red_max, pf.green_max, pf.blue_max) == (31, 63, 31)
            && (pf.red_shift, pf.green_shift, pf.blue_shift) == (11, 5, 0)
        {
            Fast::Rgb565Le
        } else {
            Fast::Generic
        };
        let lut = |max: u16, shift: u8| {
            let mut t = Box::new([0u32; 256]);
            for (c, v) in t.iter_mut().enumerate() {
                *v = scale(c as u8, max)
                    .checked_shl(u32::from(shift))
                    .unwrap_or(0);
            }
            t
        };
        PixelWriter {
            format: pf,
            packing,
            layout,
            fast,
            lut_r: lut(pf.red_max, pf.red_shift),
            lut_g: lut(pf.green_max, pf.green_shift),
            lut_b: lut(pf.blue_max, pf.blue_shift),
        }
    }

    /// The client format this writer produces.
    pub fn format(&self) -> &PixelFormat {
        &self.format
    }

    /// The packing this writer was built for.
    pub fn packing(&self) -> Packing {
        self.packing
    }

    /// Bytes written per pixel.
    pub fn bytes_per_pixel(&self) -> usize {
        match self.layout {
            Layout::Full { bpp, .. } => bpp,
            Layout::Three { .. } | Layout::Rgb => 3,
        }
    }

    /// The client's pixel value for a native pixel.
    #[inline(always)]
    pub fn pixel_value(&self, p: u32) -> u32 {
        match self.fast {
            Fast::Native => p & 0x00ff_ffff,
            Fast::Bytes32 => {
                let (r, g, b) = rgb(p);
                (u32::from(r) << self.format.red_shift)
                    | (u32::from(g) << self.format.green_shift)
                    | (u32::from(b) << self.format.blue_shift)
            }
            Fast::Rgb565Le => ((p >> 8) & 0xf800) | ((p >> 5) & 0x07e0) | ((p >> 3) & 0x001f),
            Fast::Generic => {
                let (r, g, b) = rgb(p);
                self.lut_r[usize::from(r)] | self.lut_g[usize::from(g)] | self.lut_b[usize::from(b)]
            }
        }
    }

    /// Write one native pixel into `dst` (exactly [`Self::bytes_per_pixel`] bytes).
    #[inline(always)]
    fn put(&self, p: u32, dst: &mut [u8]) {
        match self.layout {
            Layout::Rgb => {
                let (r, g, b) = rgb(p);
                dst[0] = r;
                dst[1] = g;
                dst[2] = b;
            }
            Layout::Full { bpp, big_endian } => {
                let v = self.pixel_value(p);
                match (bpp, big_endian) {
                    (4, false) => dst.copy_from_slice(&v.to_le_bytes()),
                    (4, true) => dst.copy_from_slice(&v.to_be_bytes()),
                    (2, false) => dst.copy_from_slice(&(v as u16).to_le_bytes()),
                    (2, true) => dst.copy_from_slice(&(v as u16).to_be_bytes()),
                    _ => dst[0] = v as u8,
                }
            }
            Layout::Three { big_endian, offset } => {
                let v = self.pixel_value(p);
                let b = if big_endian {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                };
                dst.copy_from_slice(&b[offset..offset + 3]);
            }
        }
    }

    /// Append one native pixel.
    #[inline]
    pub fn write_pixel(&self, p: u32, out: &mut Vec<u8>) {
        let mut buf = [0u8; 4];
        let n = self.bytes_per_pixel();
        self.put(p, &mut buf[..n]);
        out.extend_from_slice(&buf[..n]);
    }

    /// Append a row of native BGRX bytes (`src.len()` a multiple of 4).
    pub fn write_row(&self, src: &[u8], out: &mut Vec<u8>) {
        let n = src.len() / 4;
        let bpp = self.bytes_per_pixel();
        let start = out.len();
        if self.fast == Fast::Native && matches!(self.layout, Layout::Full { .. }) {
            out.extend_from_slice(&src[..n * 4]);
            return;
        }
        out.resize(start + n * bpp, 0);
        let dst = &mut out[start..];
        match (self.fast, self.layout) {
            (Fast::Rgb565Le, Layout::Full { .. }) => {
                for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(2)) {
                    let v = (u16::from(s[2] & 0xf8) << 8)
                        | (u16::from(s[1] & 0xfc) << 3)
                        | u16::from(s[0] >> 3);
                    d.copy_from_slice(&v.to_le_bytes());
                }
            }
            (Fast::Native, Layout::Three { .. }) if self.layout.three_is_bgr() => {
                for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(3)) {
                    d.copy_from_slice(&s[..3]);
                }
            }
            (_, Layout::Rgb) => {
                for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(3)) {
                    d[0] = s[2];
                    d[1] = s[1];
                    d[2] = s[0];
                }
            }
            _ => {
                for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(bpp)) {
                    self.put(u32::from_le_bytes([s[0], s[1], s[2], 0]), d);
                }
            }
        }
    }

    /// Append native pixel values.
    pub fn write_pixels(&self, src: &[u32], out: &mut Vec<u8>) {
        let bpp = self.bytes_per_pixel();
        let start = out.len();
        out.resize(start + src.len() * bpp, 0);
        for (&p, d) in src.iter().zip(out[start..].chunks_exact_mut(bpp)) {
            self.put(p, d);
        }
    }
}

impl Layout {
    /// True for the native format's CPIXEL, whose bytes are the native B, G, R.
    fn three_is_bgr(&self) -> bool {
        matches!(
            self,
            Layout::Three {
                big_endian: false,
                offset: 0
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: [u8; 12] = [
        0x10, 0x20, 0x30, 0, 0xff, 0xff, 0xff, 0, 0x01, 0x80, 0xfe, 0,
    ];

    #[test]
    fn native_is_a_copy_without_padding_changes() {
        let w = PixelWriter::new(&PixelFormat::NATIVE, Packing::Full);
        let row = [1, 2, 3, 0xff, 4, 5, 6, 0x55];
        let mut out = Vec::new();
        w.write_row(&row, &mut out);
        assert_eq!(out, row);
    }

    #[test]
    fn bgr0_big_endian_and_other_shifts() {
        // 32 bpp big-endian R at 0, G at 8, B at 16: value 0x00BBGGRR written big-endian.
        let f = PixelFormat::true_colour(32, 24, true, (255, 255, 255), (0, 8, 16));
        let w = PixelWriter::new(&f, Packing::Full);
        let mut out = Vec::new();
        w.write_row(&ROW[..4], &mut out);
        assert_eq!(out, [0x00, 0x10, 0x20, 0x30]);
    }

    #[test]
    fn rgb565_fast_path_matches_generic() {
        let le = PixelFormat::true_colour(16, 16, false, (31, 63, 31), (11, 5, 0));
        let be = PixelFormat::true_colour(16, 16, true, (31, 63, 31), (11, 5, 0));
        let (wl, wb) = (
            PixelWriter::new(&le, Packing::Full),
            PixelWriter::new(&be, Packing::Full),
        );
        let (mut a, mut b) = (Vec::new(), Vec::new());
        wl.write_row(&ROW, &mut a);
        wb.write_row(&ROW, &mut b);
        // R=0x30>>3=6, G=0x20>>2=8, B=0x10>>3=2 -> 6<<11 | 8<<5 | 2 = 0x3102
        assert_eq!(&a[..2], &[0x02, 0x31]);
        assert_eq!(&b[..2], &[0x31, 0x02]);
        assert_eq!(&a[2..4], &[0xff, 0xff]);
        for i in 0..3 {
            assert_eq!([a[i * 2], a[i * 2 + 1]], [b[i * 2 + 1], b[i * 2]]);
        }
    }

    #[test]
    fn bgr233() {
        // 8 bpp: R 3 bits at 0, G 3 bits at 3, B 2 bits at 6 (the classic bgr233).
        let f = PixelFormat::true_colour(8, 8, false, (7, 7, 3), (0, 3, 6));
        let w = PixelWriter::new(&f, Packing::Full);
        let mut out = Vec::new();
        w.write_row(&ROW, &mut out);
        assert_eq!(out, [1 | (1 << 3), 0xff, 7 | (4 << 3)]);
    }

    #[test]
    fn zrle_cpixel_layouts() {
        let mut out = Vec::new();
        PixelWriter::new(&PixelFormat::NATIVE, Packing::Zrle).write_row(&ROW[..4], &mut out);
        assert_eq!(out, [0x10, 0x20, 0x30]);
        // Big-endian native shifts: value 0x00302010 big-endian is 00 30 20 10 -> low 3 bytes.
        let be = PixelFormat::true_colour(32, 24, true, (255, 255, 255), (16, 8, 0));
        out.clear();
        PixelWriter::new(&be, Packing::Zrle).write_row(&ROW[..4], &mut out);
        assert_eq!(out, [0x30, 0x20, 0x10]);
        // Channels in the top 3 bytes, little-endian: value 0x30201000 -> bytes 1..4.
        let hi = PixelFormat::true_colour(32, 24, false, (255, 255, 255), (24, 16, 8));
        out.clear();
        PixelWriter::new(&hi, Packing::Zrle).write_row(&ROW[..4], &mut out);
        assert_eq!(out, [0x10, 0x20, 0x30]);
        // Depth is not part of the decision (as in TigerVNC and libvncclient); 10-bit channels
        // filling all 4 bytes are never packed.
        let d32 = PixelFormat::true_colour(32, 32, false, (255, 255, 255), (16, 8, 0));
        out.clear();
        PixelWriter::new(&d32, Packing::Zrle).write_row(&ROW[..4], &mut out);
        assert_eq!(out, [0x10, 0x20, 0x30]);
        let ten = PixelFormat::true_colour(32, 30, false, (1023, 1023, 1023), (20, 10, 0));
        assert_eq!(PixelWriter::new(&ten, Packing::Zrle).bytes_per_pixel(), 4);
    }

    #[test]
    fn tight_tpixel_is_rgb() {
        let mut out = Vec::new();
        PixelWriter::new(&PixelFormat::NATIVE, Packing::Tight).write_row(&ROW[..8], &mut out);
        assert_eq!(out, [0x30, 0x20, 0x10, 0xff, 0xff, 0xff]);
        let f16 = PixelFormat::true_colour(16, 16, false, (31, 63, 31), (11, 5, 0));
        assert_eq!(PixelWriter::new(&f16, Packing::Tight).bytes_per_pixel(), 2);
    }

    #[test]
    fn write_pixel_agrees_with_write_row() {
        let formats = [
            PixelFormat::NATIVE,
            PixelFormat::true_colour(32, 24, true, (255, 255, 255), (0, 8, 16)),
            PixelFormat::true_colour(16, 16, false, (31, 63, 31), (11, 5, 0)),
            PixelFormat::true_colour(16, 15, true, (31, 31, 31), (10, 5, 0)),
            PixelFormat::true_colour(8, 8, false, (7, 7, 3), (5, 2, 0)),
            PixelFormat::true_colour(32, 30, false, (1023, 1023, 1023), (20, 10, 0)),
        ];
        for f in formats {
            for packing in [Packing::Full, Packing::Zrle, Packing::Tight] {
                let w = PixelWriter::new(&f, packing);
                let (mut a, mut b) = (Vec::new(), Vec::new());
                w.write_row(&ROW, &mut a);
                for i in 0..3 {
                    w.write_pixel(native_at(&ROW, i), &mut b);
                }
                assert_eq!(a, b, "{f:?} {packing:?}");
                assert_eq!(a.len(), 3 * w.bytes_per_pixel());
            }
        }
    }

    #[test]
    fn ten_bit_channels_scale_to_full_range() {
        let f = PixelFormat::true_colour(32, 30, false, (1023, 1023, 1023), (20, 10, 0));
        let w = PixelWriter::new(&f, Packing::Full);
        assert_eq!(w.pixel_value(0x00ff_ffff), 0x3fff_ffff);
        assert_eq!(w.pixel_value(0), 0);
    }
}
