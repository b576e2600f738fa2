//! ZRLE encoding (16): 64x64 tiles, each sent as the cheapest of solid, packed palette (2-16
//! colours), plain RLE, palette RLE (up to 127 colours) or raw CPIXELs; the tile data of a
//! rectangle is compressed with one zlib stream kept for the connection and prefixed by its
//! length (u32).

use super::palette::{read_pixels, Palette};
use super::raw::cached_writer;
use super::zstream::ZStream;
use super::{numbers, write_rect_header, EncodeError, EncodeParams, Encoded, Encoder, FrameView};
use crate::geom::Rect;
use crate::pixel::{Packing, PixelWriter};

const TILE: u16 = 64;

/// The ZRLE encoder for one client.
#[derive(Debug, Default)]
pub struct ZrleEncoder {
    stream: Option<ZStream>,
    writer: Option<PixelWriter>,
    tiles: TileCoder,
    scratch: Vec<u8>,
}

impl ZrleEncoder {
    /// A new encoder; the stream starts with the first rectangle.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Reusable buffers for encoding tiles (uncompressed ZRLE tile data).
#[derive(Debug, Default, Clone)]
pub(crate) struct TileCoder {
    px: Vec<u32>,
    palette: Palette,
}

/// Bytes an RLE run length of `n` (>= 1) takes.
#[inline]
fn run_len_bytes(n: usize) -> usize {
    (n - 1) / 255 + 1
}

fn put_run_len(n: usize, out: &mut Vec<u8>) {
    let mut l = n - 1;
    while l >= 255 {
        out.push(255);
        l -= 255;
    }
    out.push(l as u8);
}

impl TileCoder {
    /// Append the uncompressed ZRLE data of all tiles of `r`.
    pub(crate) fn encode_rect(
        &mut self,
        frame: &FrameView<'_>,
        r: &Rect,
        w: &PixelWriter,
        out: &mut Vec<u8>,
    ) {
        for t in r.tiles(TILE, TILE) {
            self.encode_tile(frame, &t, w, out);
        }
    }

    fn encode_tile(&mut self, frame: &FrameView<'_>, t: &Rect, w: &PixelWriter, out: &mut Vec<u8>) {
        read_pixels(frame, t, &mut self.px);
        let px = &self.px;
        let cp = w.bytes_per_pixel();
        let pal = &mut self.palette;
        pal.clear();

        // One pass: runs (across rows, as ZRLE's RLE modes read them) and colours.
        let (mut runs, mut len_bytes, mut singles) = (0usize, 0usize, 0usize);
        let mut few = true;
        let mut i = 0;
        while i < px.len() {
            let c = px[i];
            let mut j = i + 1;
            while j < px.len() && px[j] == c {
                j += 1;
            }
            let n = j - i;
            runs += 1;
            len_bytes += run_len_bytes(n);
            singles += usize::from(n == 1);
            if few && !pal.add(c, n as u32, 127) {
                few = false;
            }
            i = j;
        }
        let colours = pal.len();
        if few && colours == 1 {
            out.push(1);
            w.write_pixel(px[0], out);
            return;
        }
        let (tw, th) = (usize::from(t.w), usize::from(t.h));
        let raw = tw * th * cp;
        let plain_rle = runs * cp + len_bytes;
        let pal_rle = if few {
            colours * cp + runs + (len_bytes - singles)
        } else {
            usize::MAX
        };
        let bits = match colours {
            0..=2 => 1,
            3..=4 => 2,
            _ => 4,
        };
        let packed = if few && colours <= 16 {
            colours * cp + th * (tw * bits).div_ceil(8)
        } else {
            usize::MAX
        };
        let best = raw.min(plain_rle).min(pal_rle).min(packed);
        if best == packed {
            out.push(colours as u8);
            w.write_pixels(pal.colours(), out);
            for row in px.chunks_exact(tw) {
                let (mut acc, mut nbits) = (0u8, 0usize);
                let mut last = (u32::MAX, 0u8);
                for &c in row {
                    if c != last.0 {
                        last = (c, pal.index_of(c));
                    }
                    acc = (acc << bits) | last.1;
                    nbits += bits;
                    if nbits == 8 {
                        out.push(acc);
                        acc = 0;
                        nbits = 0;
                    }
                }
                if nbits > 0 {
                    out.push(acc << (8 - nbits));
                }
            }
        } else if best == pal_rle {
            out.push(128 | colours as u8);
            w.write_pixels(pal.colours(), out);
            let mut i = 0;
            while i < px.len() {
                let c = px[i];
                let mut j = i + 1;
                while j < px.len() && px[j] == c {
                    j += 1;
                }
                let idx = pal.index_of(c);
                if j - i == 1 {
                    out.push(idx);
                } else {
                    out.push(128 | idx);
                    put_run_len(j - i, out);
                }
                i = j;
            }
        } else if best == plain_rle {
            out.push(128);
            let mut i = 0;
            while i < px.len() {
                let c = px[i];
                let mut j = i + 1;
                while j < px.len() && px[j] == c {
                    j += 1;
                }
                w.write_pixel(c, out);
                put_run_len(j - i, out);
                i = j;
            }
        } else {
            out.push(0);
            w.write_pixels(px, out);
        }
    }
}

impl Encoder for ZrleEncoder {
    fn encoding(&self) -> i32 {
        numbers::ZRLE
    }

    fn encode(
        &mut self,
        frame: &FrameView<'_>,
        rects: &[Rect],
        params: &EncodeParams,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, EncodeError> {
        let start = out.len();
        let stream = ZStream::for_connection(&mut self.stream, params);
        let w = cached_writer(&mut self.writer, params, Packing::Zrle);
        let rects = super::raw::clamped(frame, rects);
        for r in &rects {
            self.scratch.clear();
            self.tiles.encode_rect(frame, r, w, &mut self.scratch);
            write_rect_header(out, r, numbers::ZRLE);
            let len_at = out.len();
            out.extend_from_slice(&[0; 4]);
            if let Err(e) = stream.compress(&self.scratch, out) {
                out.truncate(start);
                return Err(e);
            }
            let len = (out.len() - len_at - 4) as u32;
            out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
        }
        Ok(Encoded {
            rects: rects.len(),
            lossy: Vec::new(),
        })
    }
}
