//! Hextile encoding (5): 16x16 tiles, each raw or a background with foreground or coloured
//! subrectangles, whichever is smaller; background and foreground carry over between tiles.

use super::palette::{read_pixels, Palette};
use super::raw::cached_writer;
use super::{numbers, write_rect_header, EncodeError, EncodeParams, Encoded, Encoder, FrameView};
use crate::geom::Rect;
use crate::pixel::{Packing, PixelWriter};

const TILE: u16 = 16;
const RAW: u8 = 1;
const BACKGROUND: u8 = 2;
const FOREGROUND: u8 = 4;
const ANY_SUBRECTS: u8 = 8;
const SUBRECTS_COLOURED: u8 = 16;

/// The Hextile encoder for one client.
#[derive(Debug, Default)]
pub struct HextileEncoder {
    writer: Option<PixelWriter>,
    px: Vec<u32>,
    palette: Palette,
    subrects: Vec<(u32, u8, u8, u8, u8)>,
}

impl HextileEncoder {
    /// A new encoder.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Greedy cover of the pixels that are not `bg` with single-colour rectangles: each starts at
/// the first uncovered pixel, grows right, then down while whole rows match.
fn find_subrects(px: &[u32], w: usize, h: usize, bg: u32, out: &mut Vec<(u32, u8, u8, u8, u8)>) {
    out.clear();
    let mut covered = [false; 256];
    for y in 0..h {
        let mut x = 0;
        while x < w {
            let c = px[y * w + x];
            if c == bg || covered[y * w + x] {
                x += 1;
                continue;
            }
            let mut x1 = x + 1;
            while x1 < w && px[y * w + x1] == c && !covered[y * w + x1] {
                x1 += 1;
            }
            let mut y1 = y + 1;
            while y1 < h && (x..x1).all(|i| px[y1 * w + i] == c && !covered[y1 * w + i]) {
                y1 += 1;
            }
            for yy in y..y1 {
                covered[yy * w + x..yy * w + x1].fill(true);
            }
            out.push((c, x as u8, y as u8, (x1 - x) as u8, (y1 - y) as u8));
            x = x1;
        }
    }
}

impl Encoder for HextileEncoder {
    fn encoding(&self) -> i32 {
        numbers::HEXTILE
    }

    fn encode(
        &mut self,
        frame: &FrameView<'_>,
        rects: &[Rect],
        params: &EncodeParams,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, EncodeError> {
        let wr = cached_writer(&mut self.writer, params, Packing::Full);
        let bpp = wr.bytes_per_pixel();
        let rects = super::raw::clamped(frame, rects);
        for r in &rects {
            write_rect_header(out, r, numbers::HEXTILE);
            // Background / foreground the client holds from the previous tile, if known.
            let (mut bg_prev, mut fg_prev): (Option<u32>, Option<u32>) = (None, None);
            for t in r.tiles(TILE, TILE) {
                read_pixels(frame, &t, &mut self.px);
                let (w, h) = (usize::from(t.w), usize::from(t.h));
                let raw_cost = w * h * bpp;
                self.palette.clear();
                let few = self.palette.add_pixels(&self.px, 256);
                if few && self.palette.len() == 1 {
                    let c = self.px[0];
                    if bg_prev == Some(c) {
                        out.push(0);
                    } else {
                        out.push(BACKGROUND);
                        wr.write_pixel(c, out);
                        bg_prev = Some(c);
                    }
                    continue;
                }
                let mut encoded = false;
                if few {
                    let bg = self.palette.colours()[self.palette.most_used()];
                    find_subrects(&self.px, w, h, bg, &mut self.subrects);
                    let mono = self.palette.len() == 2;
                    let fg = self.subrects.first().map(|s| s.0).unwrap_or(bg);
                    let send_bg = bg_prev != Some(bg);
                    let send_fg = mono && fg_prev != Some(fg);
                    let per = if mono { 2 } else { bpp + 2 };
                    let cost = usize::from(send_bg) * bpp
                        + usize::from(send_fg) * bpp
                        + 1
                        + self.subrects.len() * per;
                    if self.subrects.len() <= 255 && cost < raw_cost {
                        let mut sub = ANY_SUBRECTS;
                        if send_bg {
                            sub |= BACKGROUND;
                        }
                        if send_fg {
                            sub |= FOREGROUND;
                        }
                        if !mono {
                            sub |= SUBRECTS_COLOURED;
                        }
                        out.push(sub);
                        if send_bg {
                            wr.write_pixel(bg, out);
                        }
                        if send_fg {
                            wr.write_pixel(fg, out);
                        }
                        out.push(self.subrects.len() as u8);
                        for &(c, x, y, sw, sh) in &self.subrects {
                            if !mono {
                                wr.write_pixel(c, out);
                            }
                            out.push((x << 4) | y);
                            out.push(((sw - 1) << 4) | (sh - 1));
                        }
                        bg_prev = Some(bg);
                        // Decoders differ on what a coloured tile leaves as foreground.
                        fg_prev = if mono { Some(fg) } else { None };
                        encoded = true;
                    }
                }
                if !encoded {
                    out.push(RAW);
                    wr.write_pixels(&self.px, out);
                    bg_prev = None;
                    fg_prev = None;
                }
            }
        }
        Ok(Encoded {
            rects: rects.len(),
            lossy: Vec::new(),
        })
    }
}
