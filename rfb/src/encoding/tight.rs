//! Tight encoding (7), and TightPNG (-260) in PNG mode.
//!
//! A rectangle is cut into 64x64 tiles and each tile is classified by its colours: one colour
//! is a fill, two use the mono palette filter, few use the indexed palette filter, many are
//! sent as JPEG when the client asked for a quality level (photo-like content), otherwise as
//! full-colour basic compression. Same-colour fill tiles merge into large fill rectangles (also
//! downwards), full-colour and JPEG tiles merge along a tile row within Tight's limits (2048
//! wide, 65536 pixels for basic compression). Data under 12 bytes is sent uncompressed as the
//! protocol requires.
//!
//! Tight gives a client four independent zlib streams; this encoder uses two of them (stream 0
//! for full colour, 1 for palette data). It runs on one thread: the caller parallelises across
//! pieces of an update and across clients (see [`super::shared`]).
//!
//! [`encode_stateless`] encodes a rectangle whose bytes do not depend on what the client
//! received before, so they can be shared by every client with the same settings: fills,
//! JPEG and PNG keep no state, and zlib data goes on streams 2 and 3, reset (a control byte
//! bit) for every rectangle. The connection's own encoder keeps streams 0 and 1, so shared
//! pieces and its own rectangles interleave freely.

use super::jpeg::Jpeg;
use super::palette::{Palette, Recent};
use super::raw::cached_writer;
use super::zstream::ZStream;
use super::{numbers, write_rect_header, EncodeError, EncodeParams, Encoded, Encoder, FrameView};
use crate::geom::Rect;
use crate::pixel::{Packing, PixelFormat, PixelWriter};

const TILE: u16 = 64;
const MAX_WIDTH: u32 = 2048;
const MAX_AREA: u32 = 65536;
const MIN_TO_COMPRESS: usize = 12;
/// More colours than this in a tile means photo-like: JPEG when enabled.
const JPEG_MIN_COLOURS: usize = 24;

/// CompressLevel when the client sent none (what TigerVNC and noVNC send by default).
pub const DEFAULT_LEVEL: u8 = 2;

/// zlib levels (palette data, full colour) per CompressLevel, as TigerVNC uses them for its
/// indexed and full-colour streams.
const ZLIB_LEVELS: [(u32, u32); 10] = [
    (0, 0),
    (1, 1),
    (3, 2),
    (5, 2),
    (6, 3),
    (7, 4),
    (7, 5),
    (8, 6),
    (9, 7),
    (9, 9),
];

#[derive(Clone, Copy, PartialEq, Debug)]
enum Class {
    Solid(u32),
    Mono,
    Indexed,
    Raw,
    Jpeg,
}

/// What the tiles are encoded with (shared read-only by the workers).
struct Ctx<'a> {
    frame: &'a FrameView<'a>,
    writer: &'a PixelWriter,
    /// JPEG quality level when JPEG may be used.
    jpeg: Option<u8>,
    png: bool,
    encoding: i32,
    /// Independent of the connection: zlib data on streams reset for every rect (Tight), or
    /// none at all (TightPNG: a rect that needs zlib marks the output unusable instead).
    stateless: bool,
    /// zlib levels (palette data, full colour) for streams opened during this encode.
    levels: (u32, u32),
}

/// One thread's state: its two zlib streams and reusable buffers.
#[derive(Debug, Default)]
struct Worker {
    /// Stream ids on the wire for (full colour, palette data).
    ids: (u8, u8),
    raw_stream: Option<ZStream>,
    pal_stream: Option<ZStream>,
    palette: Palette,
    /// Palette index of each pixel of the tile in `px` (valid for palette classes).
    idx: Vec<u8>,
    data: Vec<u8>,
    zbuf: Vec<u8>,
    /// Palette tiles merged along a tile row: their rect, union palette, and each tile's
    /// width and indices into the union palette (buffers reused).
    span: Option<Rect>,
    span_palette: Palette,
    span_tiles: Vec<(usize, Vec<u8>)>,
    span_pool: Vec<Vec<u8>>,
    jpeg: Option<Jpeg>,
    jpeg_tried: bool,
    rects: usize,
    /// Rects sent as JPEG in this update.
    lossy: Vec<Rect>,
    /// The first failure in this update (the update is then abandoned).
    error: Option<EncodeError>,
    /// A stateless TightPNG encode met a rect that needs zlib (PNG failed).
    needs_stream: bool,
}

/// The Tight (or TightPNG) encoder for one client.
#[derive(Debug)]
pub struct TightEncoder {
    png: bool,
    level: Option<u8>,
    resets: u8,
    writer: Option<PixelWriter>,
    worker: Worker,
}

impl Default for TightEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl TightEncoder {
    /// A Tight encoder.
    pub fn new() -> Self {
        TightEncoder {
            png: false,
            level: None,
            resets: 0,
            writer: None,
            worker: Worker {
                ids: (0, 1),
                ..Worker::default()
            },
        }
    }

    /// A TightPNG encoder (noVNC's -260): fills, JPEG, and PNG instead of basic compression.
    pub fn new_png() -> Self {
        TightEncoder {
            png: true,
            ..Self::new()
        }
    }
}

fn compact_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x4000 {
        out.extend_from_slice(&[(n as u8 & 0x7f) | 0x80, (n >> 7) as u8]);
    } else {
        out.extend_from_slice(&[
            (n as u8 & 0x7f) | 0x80,
            ((n >> 7) as u8 & 0x7f) | 0x80,
            (n >> 14).min(0xff) as u8,
        ]);
    }
}

/// Classify tile `t` by its colours. Pixels are indexed row by row straight from the frame
/// so a photo-like tile stops after its first rows; `idx` is complete only for the palette
/// classes.
fn classify(pal: &mut Palette, idx: &mut Vec<u8>, ctx: &Ctx<'_>, t: &Rect) -> Class {
    pal.clear();
    idx.clear();
    // With JPEG on, more than JPEG_MIN_COLOURS colours settles it: stop counting there.
    let max = if ctx.jpeg.is_some() {
        JPEG_MIN_COLOURS + 1
    } else {
        256
    };
    let mut recent = Recent::default();
    let mut few = true;
    for y in t.y..t.y + t.h {
        if !pal.index_row(ctx.frame.row(t.x, y, t.w), max, idx, &mut recent) {
            few = false;
            break;
        }
    }
    let n = pal.len();
    if few && n == 1 {
        Class::Solid(pal.colours()[0])
    } else if few && n == 2 {
        Class::Mono
    } else if ctx.jpeg.is_some() && (!few || n > JPEG_MIN_COLOURS) {
        Class::Jpeg
    } else if few && n <= t.area() as usize / 2 {
        Class::Indexed
    } else {
        Class::Raw
    }
}

fn fill_rect(ctx: &Ctx<'_>, rect: &Rect, c: u32, out: &mut Vec<u8>) {
    write_rect_header(out, rect, ctx.encoding);
    out.push(0x80);
    ctx.writer.write_pixel(c, out);
}

fn image_rect(ctx: &Ctx<'_>, rect: &Rect, ctl: u8, data: &[u8], out: &mut Vec<u8>) {
    write_rect_header(out, rect, ctx.encoding);
    out.push(ctl);
    compact_len(data.len(), out);
    out.extend_from_slice(data);
}

/// An 8-bit PNG of `r`: RGB samples, or indices into `palette` (RGB triples).
fn png_bytes(r: &Rect, samples: &[u8], palette: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, u32::from(r.w), u32::from(r.h));
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    match palette {
        Some(p) => {
            enc.set_color(png::ColorType::Indexed);
            enc.set_palette(p.to_vec());
        }
        None => enc.set_color(png::ColorType::Rgb),
    }
    let mut w = enc.write_header().ok()?;
    w.write_image_data(samples).ok()?;
    w.finish().ok()?;
    Some(out)
}

impl Worker {
    /// Start an update.
    fn reset(&mut self) {
        self.rects = 0;
        self.lossy.clear();
        self.error = None;
        self.needs_stream = false;
    }

    /// Encode the tiles of `band` into `out`.
    fn band(&mut self, ctx: &Ctx<'_>, band: &Rect, out: &mut Vec<u8>) {
        // Open fill rectangles: (x, w, colour, y, h), extended downwards while they match.
        let mut open: Vec<(u16, u16, u32, u16, u16)> = Vec::new();
        let mut spans: Vec<(Rect, Class)> = Vec::new();
        for ty in (band.y..band.y.saturating_add(band.h)).step_by(usize::from(TILE)) {
            let th = (band.bottom() - u32::from(ty)).min(u32::from(TILE)) as u16;
            let row = Rect::new(band.x, ty, band.w, th);
            spans.clear();
            for t in row.tiles(TILE, TILE) {
                let class = classify(&mut self.palette, &mut self.idx, ctx, &t);
                if matches!(class, Class::Mono | Class::Indexed) {
                    self.add_palette_tile(ctx, &t, out);
                    continue;
                }
                if let Some((last, lc)) = spans.last_mut() {
                    let merged_w = u32::from(last.w) + u32::from(t.w);
                    let fits = match class {
                        Class::Solid(_) => merged_w <= u32::from(u16::MAX),
                        Class::Jpeg => merged_w <= MAX_WIDTH,
                        _ => merged_w <= MAX_WIDTH && merged_w * u32::from(th) <= MAX_AREA,
                    };
                    if *lc == class && last.right() == u32::from(t.x) && fits {
                        last.w += t.w;
                        continue;
                    }
                }
                spans.push((t, class));
            }
            self.close_span(ctx, out);
            let mut still_open = Vec::with_capacity(open.len());
            for (r, class) in spans.drain(..) {
                match class {
                    Class::Solid(c) => {
                        if let Some(i) = open
                            .iter()
                            .position(|o| o.0 == r.x && o.1 == r.w && o.2 == c)
                        {
                            let mut o = open.swap_remove(i);
                            if u32::from(o.4) + u32::from(r.h) <= u32::from(u16::MAX) {
                                o.4 += r.h;
                                still_open.push(o);
                                continue;
                            }
                            self.rects += 1;
                            fill_rect(ctx, &Rect::new(o.0, o.3, o.1, o.4), o.2, out);
                        }
                        still_open.push((r.x, r.w, c, r.y, r.h));
                    }
                    Class::Jpeg => self.jpeg_rect(ctx, &r, out),
                    _ => self.raw_rect(ctx, &r, out),
                }
            }
            for o in open.drain(..) {
                self.rects += 1;
                fill_rect(ctx, &Rect::new(o.0, o.3, o.1, o.4), o.2, out);
            }
            open = still_open;
        }
        for o in open {
            self.rects += 1;
            fill_rect(ctx, &Rect::new(o.0, o.3, o.1, o.4), o.2, out);
        }
    }

    /// Write a basic-compression rect whose filtered data is in `self.data`: `head` holds
    /// the filter id and palette when there is an explicit filter.
    fn basic_rect(
        &mut self,
        ctx: &Ctx<'_>,
        rect: &Rect,
        palette_data: bool,
        head: &[u8],
        out: &mut Vec<u8>,
    ) {
        self.rects += 1;
        write_rect_header(out, rect, ctx.encoding);
        let id = if palette_data { self.ids.1 } else { self.ids.0 };
        let control = out.len();
        out.push((id << 4) | if head.is_empty() { 0 } else { 0x40 });
        out.extend_from_slice(head);
        if self.data.len() < MIN_TO_COMPRESS {
            out.extend_from_slice(&self.data);
            return;
        }
        if ctx.stateless && ctx.png {
            self.needs_stream = true;
            return;
        }
        let stream = if palette_data {
            &mut self.pal_stream
        } else {
            &mut self.raw_stream
        };
        if ctx.stateless {
            // A stream of its own for every rect, reset on the client first: noVNC's inflater
            // (its vendored pako) loses its window on a reset, so data after a reset must not
            // refer back past the rect it is in.
            match stream {
                Some(z) => z.restart(),
                None => {
                    let level = if palette_data {
                        ctx.levels.0
                    } else {
                        ctx.levels.1
                    };
                    *stream = Some(ZStream::new(level));
                }
            }
            out[control] |= 1 << id;
        }
        let Some(stream) = stream.as_mut() else {
            self.error
                .get_or_insert(EncodeError::State("Tight zlib stream"));
            return;
        };
        self.zbuf.clear();
        if let Err(e) = stream.compress(&self.data, &mut self.zbuf) {
            self.error.get_or_insert(e);
            return;
        }
        compact_len(self.zbuf.len(), out);
        out.extend_from_slice(&self.zbuf);
    }

    /// Add a mono or indexed tile (colours in `palette`, indices in `idx`) to the open
    /// palette span when it continues it and the union palette stays within 256 colours;
    /// otherwise send the span and start a new one. Fewer, wider rects mean fewer zlib
    /// flushes and headers.
    fn add_palette_tile(&mut self, ctx: &Ctx<'_>, t: &Rect, out: &mut Vec<u8>) {
        let joins = self.span.is_some_and(|s| {
            let w = u32::from(s.w) + u32::from(t.w);
            s.right() == u32::from(t.x)
                && s.y == t.y
                && s.h == t.h
                && w <= MAX_WIDTH
                && w * u32::from(t.h) <= MAX_AREA
        }) && {
            let new = self
                .palette
                .colours()
                .iter()
                .filter(|&&c| self.span_palette.find(c).is_none())
                .count();
            self.span_palette.len() + new <= 256
        };
        if !joins {
            self.close_span(ctx, out);
            self.span_palette.clear();
            self.span = Some(*t);
        } else if let Some(s) = self.span.as_mut() {
            s.w += t.w;
        }
        let mut map = [0u8; 256];
        for (i, (&c, &n)) in self
            .palette
            .colours()
            .iter()
            .zip(self.palette.counts.iter())
            .enumerate()
        {
            map[i] = self.span_palette.add_indexed(c, n, 256).unwrap_or(0);
        }
        let mut buf = self.span_pool.pop().unwrap_or_default();
        buf.clear();
        buf.extend(self.idx.iter().map(|&k| map[usize::from(k)]));
        self.span_tiles.push((usize::from(t.w), buf));
    }

    /// Send the open palette span, if any, as one mono or indexed rect.
    fn close_span(&mut self, ctx: &Ctx<'_>, out: &mut Vec<u8>) {
        let Some(r) = self.span.take() else {
            return;
        };
        let (w, h) = (usize::from(r.w), usize::from(r.h));
        let colours = self.span_palette.colours();
        let mono = colours.len() <= 2;
        // Rows of the span, tile after tile.
        self.data.clear();
        if ctx.png {
            for y in 0..h {
                for (tw, idx) in &self.span_tiles {
                    self.data.extend_from_slice(&idx[y * tw..(y + 1) * tw]);
                }
            }
            let rgb: Vec<u8> = colours
                .iter()
                .flat_map(|&c| [(c >> 16) as u8, (c >> 8) as u8, c as u8])
                .collect();
            match png_bytes(&r, &self.data, Some(&rgb)) {
                Some(data) => {
                    self.rects += 1;
                    image_rect(ctx, &r, 0xA0, &data, out);
                }
                None => self.raw_rect(ctx, &r, out),
            }
        } else {
            let mut head = Vec::with_capacity(2 + colours.len() * 4);
            head.extend_from_slice(&[1, (colours.len().max(1) - 1) as u8]);
            ctx.writer.write_pixels(colours, &mut head);
            if mono {
                self.data.reserve(w.div_ceil(8) * h);
                for y in 0..h {
                    let (mut acc, mut nbits) = (0u8, 0u32);
                    for (tw, idx) in &self.span_tiles {
                        for &k in &idx[y * tw..(y + 1) * tw] {
                            acc = (acc << 1) | k;
                            nbits += 1;
                            if nbits == 8 {
                                self.data.push(acc);
                                (acc, nbits) = (0, 0);
                            }
                        }
                    }
                    if nbits > 0 {
                        self.data.push(acc << (8 - nbits));
                    }
                }
            } else {
                self.data.reserve(w * h);
                for y in 0..h {
                    for (tw, idx) in &self.span_tiles {
                        self.data.extend_from_slice(&idx[y * tw..(y + 1) * tw]);
                    }
                }
            }
            self.basic_rect(ctx, &r, true, &head, out);
        }
        for (_, b) in self.span_tiles.drain(..) {
            self.span_pool.push(b);
        }
    }

    fn raw_rect(&mut self, ctx: &Ctx<'_>, r: &Rect, out: &mut Vec<u8>) {
        if ctx.png {
            let mut rgb = Vec::with_capacity(r.area() as usize * 3);
            let w = PixelWriter::new(&PixelFormat::NATIVE, Packing::Tight);
            for y in r.y..r.y + r.h {
                w.write_row(ctx.frame.row(r.x, y, r.w), &mut rgb);
            }
            if let Some(data) = png_bytes(r, &rgb, None) {
                self.rects += 1;
                image_rect(ctx, r, 0xA0, &data, out);
                return;
            }
        }
        self.data.clear();
        for y in r.y..r.y + r.h {
            ctx.writer
                .write_row(ctx.frame.row(r.x, y, r.w), &mut self.data);
        }
        self.basic_rect(ctx, r, false, &[], out);
    }

    fn jpeg_rect(&mut self, ctx: &Ctx<'_>, r: &Rect, out: &mut Vec<u8>) {
        if !self.jpeg_tried {
            self.jpeg_tried = true;
            self.jpeg = Jpeg::new();
        }
        let level = ctx.jpeg.unwrap_or(6);
        match self
            .jpeg
            .as_mut()
            .and_then(|j| j.compress(ctx.frame, r, level))
        {
            Some(data) => {
                self.rects += 1;
                self.lossy.push(*r);
                image_rect(ctx, r, 0x90, &data, out);
            }
            None => self.raw_rect(ctx, r, out),
        }
    }
}

impl TightEncoder {
    /// Make sure the streams exist at the levels for `params`.
    fn prepare(&mut self, params: &EncodeParams) {
        let level = params.compress_level.unwrap_or(DEFAULT_LEVEL).min(9);
        let w = &mut self.worker;
        if self.level != Some(level) {
            // New levels: start fresh streams and tell the client to reset its inflaters.
            if w.raw_stream.take().is_some() {
                self.resets |= 1 << w.ids.0;
            }
            if w.pal_stream.take().is_some() {
                self.resets |= 1 << w.ids.1;
            }
            self.level = Some(level);
        }
        let (pal, raw) = zlib_levels(params);
        w.raw_stream.get_or_insert_with(|| ZStream::new(raw));
        w.pal_stream.get_or_insert_with(|| ZStream::new(pal));
    }
}

/// zlib levels (palette data, full colour) for the client's CompressLevel.
fn zlib_levels(params: &EncodeParams) -> (u32, u32) {
    ZLIB_LEVELS[usize::from(params.compress_level.unwrap_or(DEFAULT_LEVEL).min(9))]
}

/// Stream ids of shared pieces (full colour, palette data): 0 and 1 are the connection's.
const SHARED_STREAM_IDS: (u8, u8) = (2, 3);

/// The JPEG quality level `params` enable (none below 16 bpp).
fn jpeg_level(params: &EncodeParams) -> Option<u8> {
    params
        .quality_level
        .filter(|_| params.format.bits_per_pixel >= 16)
        .map(|q| q.min(9))
}

/// Encode `rect` (clamped to the frame) as Tight (or TightPNG with `png`) so that the bytes do
/// not depend on the connection: zlib data on streams 2 and 3, reset for every rect.
/// `None` for TightPNG when some part needs zlib after all (PNG failed): then only the
/// client's own encoder can send it. TightPNG's output does not depend on
/// `params.compress_level`; Tight's does.
pub fn encode_stateless(
    png: bool,
    frame: &FrameView<'_>,
    rect: &Rect,
    params: &EncodeParams,
    out: &mut Vec<u8>,
) -> Option<Encoded> {
    let writer = PixelWriter::new(&params.format, Packing::Tight);
    let ctx = Ctx {
        frame,
        writer: &writer,
        jpeg: jpeg_level(params),
        png,
        encoding: if png {
            numbers::TIGHT_PNG
        } else {
            numbers::TIGHT
        },
        stateless: true,
        levels: zlib_levels(params),
    };
    let mut w = Worker {
        ids: SHARED_STREAM_IDS,
        ..Worker::default()
    };
    w.reset();
    let start = out.len();
    for r in super::raw::clamped(frame, std::slice::from_ref(rect)) {
        w.band(&ctx, &r, out);
    }
    if w.needs_stream || w.error.is_some() {
        out.truncate(start);
        return None;
    }
    Some(Encoded {
        rects: w.rects,
        lossy: w.lossy,
    })
}

impl Encoder for TightEncoder {
    fn encoding(&self) -> i32 {
        if self.png {
            numbers::TIGHT_PNG
        } else {
            numbers::TIGHT
        }
    }

    fn encode(
        &mut self,
        frame: &FrameView<'_>,
        rects: &[Rect],
        params: &EncodeParams,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, EncodeError> {
        self.prepare(params);
        let encoding = self.encoding();
        let writer = cached_writer(&mut self.writer, params, Packing::Tight);
        let ctx = Ctx {
            frame,
            writer,
            jpeg: jpeg_level(params),
            png: self.png,
            encoding,
            stateless: false,
            levels: zlib_levels(params),
        };
        let start = out.len();
        let w = &mut self.worker;
        w.reset();
        for r in super::raw::clamped(frame, rects) {
            w.band(&ctx, &r, out);
        }
        if let Some(e) = w.error.take() {
            out.truncate(start);
            return Err(e);
        }
        // The reset bits ride on the first control byte of the update.
        if w.rects > 0 && self.resets != 0 {
            out[start + 12] |= std::mem::take(&mut self.resets);
        }
        Ok(Encoded {
            rects: w.rects,
            lossy: std::mem::take(&mut w.lossy),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_lengths() {
        let mut v = Vec::new();
        compact_len(10, &mut v);
        compact_len(200, &mut v);
        compact_len(70000, &mut v);
        assert_eq!(v, [10, 0xc8, 0x01, 0xf0, 0xa2, 0x04]);
    }
}
