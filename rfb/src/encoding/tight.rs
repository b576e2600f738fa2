//! Tight encoding (7), and TightPNG (-260) in PNG mode.
//!
//! A rectangle is cut into 64x64 tiles and each tile is classified by its colours: one colour
//! is a fill, two use the mono palette filter, few use the indexed palette filter, many are
//! sent as JPEG when the client asked for a quality level (photo-like content), otherwise as
//! full-colour basic compression. Same-colour fill tiles merge into large fill rectangles (also
//! downwards), full-colour and JPEG tiles merge along a tile row within Tight's limits (2048
//! wide, 65536 pixels for basic compression). Basic data uses zlib streams 0 (full colour),
//! 1 (mono) and 2 (indexed); data under 12 bytes is sent uncompressed as the protocol requires.
//!
//! Encoding runs in three steps so a large update can use two cores: classify tiles and build
//! each rectangle's filtered data (split by tile rows), compress per zlib stream (each stream
//! in order on its own thread), then write rectangles in order.

use super::jpeg::Jpeg;
use super::palette::{read_pixels, Palette};
use super::raw::cached_writer;
use super::zstream::ZStream;
use super::{numbers, write_rect_header, EncodeParams, Encoder, FrameView};
use crate::geom::Rect;
use crate::pixel::{Packing, PixelWriter};

const TILE: u16 = 64;
const MAX_WIDTH: u32 = 2048;
const MAX_AREA: u32 = 65536;
const MIN_TO_COMPRESS: usize = 12;
/// More colours than this in a tile means photo-like: JPEG when enabled.
const JPEG_MIN_COLOURS: usize = 24;
/// Updates smaller than this many pixels are encoded on one thread.
const PARALLEL_MIN_AREA: u64 = 256 * 256;

const STREAM_RAW: usize = 0;
const STREAM_MONO: usize = 1;
const STREAM_INDEXED: usize = 2;

/// CompressLevel when the client sent none (what TigerVNC and noVNC send by default).
pub const DEFAULT_LEVEL: u8 = 2;

/// zlib levels (indexed, mono, full colour) per CompressLevel, as TigerVNC uses them.
const ZLIB_LEVELS: [(u32, u32, u32); 10] = [
    (0, 0, 0),
    (1, 1, 1),
    (3, 3, 2),
    (5, 5, 2),
    (6, 7, 3),
    (7, 8, 4),
    (7, 8, 5),
    (8, 9, 6),
    (9, 9, 7),
    (9, 9, 9),
];

#[derive(Debug)]
enum Body {
    /// Nothing after the head (fill).
    None,
    /// Compact length + bytes (JPEG or PNG).
    Image(Vec<u8>),
    /// Basic compression on a zlib stream; `compressed` once `data` holds zlib output (data
    /// under 12 bytes is never compressed).
    Zlib {
        stream: usize,
        data: Vec<u8>,
        compressed: bool,
    },
}

#[derive(Debug)]
struct Job {
    rect: Rect,
    ctl: u8,
    head: Vec<u8>,
    body: Body,
}

/// Per-thread buffers.
#[derive(Debug, Default)]
struct Worker {
    palette: Palette,
    px: Vec<u32>,
    /// Palette index of each pixel of the tile in `px` (valid for palette classes).
    idx: Vec<u8>,
    jpeg: Option<Jpeg>,
    jpeg_tried: bool,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Class {
    Solid(u32),
    Mono,
    Indexed,
    Raw,
    Jpeg,
}

/// What a band of tiles is encoded with (shared read-only by the workers).
struct Ctx<'a> {
    frame: &'a FrameView<'a>,
    writer: &'a PixelWriter,
    /// JPEG quality level when JPEG may be used.
    jpeg: Option<u8>,
    png: bool,
}

/// The Tight (or TightPNG) encoder for one client.
#[derive(Debug)]
pub struct TightEncoder {
    png: bool,
    threads: usize,
    streams: [Option<ZStream>; 4],
    level: Option<u8>,
    resets: u8,
    writer: Option<PixelWriter>,
    workers: Vec<Worker>,
}

impl Default for TightEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl TightEncoder {
    /// A Tight encoder using one thread.
    pub fn new() -> Self {
        TightEncoder {
            png: false,
            threads: 1,
            streams: [None, None, None, None],
            level: None,
            resets: 0,
            writer: None,
            workers: Vec::new(),
        }
    }

    /// A TightPNG encoder (noVNC's -260): fills, JPEG, and PNG instead of basic compression.
    pub fn new_png() -> Self {
        TightEncoder {
            png: true,
            ..Self::new()
        }
    }

    /// Use up to `n` threads for large updates (output is identical in content).
    pub fn with_threads(mut self, n: usize) -> Self {
        self.threads = n.clamp(1, 8);
        self
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

fn classify(pal: &mut Palette, px: &[u32], idx: &mut Vec<u8>, ctx: &Ctx<'_>) -> Class {
    pal.clear();
    let few = pal.add_pixels_indexed(px, 256, idx);
    let n = pal.len();
    if few && n == 1 {
        Class::Solid(px[0])
    } else if few && n == 2 {
        Class::Mono
    } else if ctx.jpeg.is_some() && (!few || n > JPEG_MIN_COLOURS) {
        Class::Jpeg
    } else if few && n <= px.len() / 2 {
        Class::Indexed
    } else {
        Class::Raw
    }
}

impl Worker {
    /// Jobs for the tiles of `band` (a rectangle whose height is a multiple of the tile size,
    /// except at the bottom), in an order any decoder accepts.
    fn band_jobs(&mut self, ctx: &Ctx<'_>, band: &Rect, jobs: &mut Vec<Job>) {
        // Open fill rectangles: (x, w, colour, y, h), extended downwards while they match.
        let mut open: Vec<(u16, u16, u32, u16, u16)> = Vec::new();
        let mut spans: Vec<(Rect, Class)> = Vec::new();
        for ty in (band.y..band.y.saturating_add(band.h)).step_by(usize::from(TILE)) {
            let th = (band.bottom() - u32::from(ty)).min(u32::from(TILE)) as u16;
            let row = Rect::new(band.x, ty, band.w, th);
            spans.clear();
            for t in row.tiles(TILE, TILE) {
                read_pixels(ctx.frame, &t, &mut self.px);
                let class = classify(&mut self.palette, &self.px, &mut self.idx, ctx);
                match class {
                    Class::Mono | Class::Indexed => {
                        jobs.push(self.palette_job(ctx, &t, class));
                        continue;
                    }
                    _ => {}
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
                            jobs.push(fill_job(ctx, Rect::new(o.0, o.3, o.1, o.4), o.2));
                        }
                        still_open.push((r.x, r.w, c, r.y, r.h));
                    }
                    Class::Jpeg => jobs.push(self.jpeg_job(ctx, &r)),
                    _ => jobs.push(self.raw_job(ctx, &r)),
                }
            }
            for o in open.drain(..) {
                jobs.push(fill_job(ctx, Rect::new(o.0, o.3, o.1, o.4), o.2));
            }
            open = still_open;
        }
        for o in open {
            jobs.push(fill_job(ctx, Rect::new(o.0, o.3, o.1, o.4), o.2));
        }
    }

    /// Mono or indexed tile; the palette holds the tile's colours and `px` its pixels.
    fn palette_job(&mut self, ctx: &Ctx<'_>, t: &Rect, class: Class) -> Job {
        let pal = &self.palette;
        let colours = pal.colours();
        let (w, h) = (usize::from(t.w), usize::from(t.h));
        if ctx.png {
            let idx = &self.idx;
            let rgb: Vec<u8> = colours
                .iter()
                .flat_map(|&c| [(c >> 16) as u8, (c >> 8) as u8, c as u8])
                .collect();
            return match png_bytes(t, idx, Some(&rgb)) {
                Some(data) => image_job(*t, 0xA0, data),
                None => self.raw_job(ctx, t),
            };
        }
        let mut head = vec![1, (colours.len() - 1) as u8];
        ctx.writer.write_pixels(colours, &mut head);
        let mut data;
        let stream;
        if class == Class::Mono {
            stream = STREAM_MONO;
            data = Vec::with_capacity(w.div_ceil(8) * h);
            for row in self.idx.chunks_exact(w) {
                for chunk in row.chunks(8) {
                    let mut b = 0u8;
                    for (i, &k) in chunk.iter().enumerate() {
                        b |= k << (7 - i);
                    }
                    data.push(b);
                }
            }
        } else {
            stream = STREAM_INDEXED;
            data = self.idx.clone();
        }
        Job {
            rect: *t,
            ctl: ((stream as u8) << 4) | 0x40,
            head,
            body: Body::Zlib {
                stream,
                data,
                compressed: false,
            },
        }
    }

    fn raw_job(&mut self, ctx: &Ctx<'_>, r: &Rect) -> Job {
        if ctx.png {
            let mut rgb = Vec::with_capacity(r.area() as usize * 3);
            let w = PixelWriter::new(&crate::PixelFormat::NATIVE, Packing::Tight);
            for y in r.y..r.y + r.h {
                w.write_row(ctx.frame.row(r.x, y, r.w), &mut rgb);
            }
            if let Some(data) = png_bytes(r, &rgb, None) {
                return image_job(*r, 0xA0, data);
            }
        }
        let mut data = Vec::with_capacity(r.area() as usize * ctx.writer.bytes_per_pixel());
        for y in r.y..r.y + r.h {
            ctx.writer.write_row(ctx.frame.row(r.x, y, r.w), &mut data);
        }
        Job {
            rect: *r,
            ctl: (STREAM_RAW as u8) << 4,
            head: Vec::new(),
            body: Body::Zlib {
                stream: STREAM_RAW,
                data,
                compressed: false,
            },
        }
    }

    fn jpeg_job(&mut self, ctx: &Ctx<'_>, r: &Rect) -> Job {
        if !self.jpeg_tried {
            self.jpeg_tried = true;
            self.jpeg = Jpeg::new();
        }
        let level = ctx.jpeg.unwrap_or(6);
        match self.jpeg.as_mut().and_then(|j| j.compress(ctx.frame, r, level)) {
            Some(data) => image_job(*r, 0x90, data),
            None => self.raw_job(ctx, r),
        }
    }
}

fn fill_job(ctx: &Ctx<'_>, rect: Rect, c: u32) -> Job {
    let mut head = Vec::with_capacity(4);
    ctx.writer.write_pixel(c, &mut head);
    Job {
        rect,
        ctl: 0x80,
        head,
        body: Body::None,
    }
}

fn image_job(rect: Rect, ctl: u8, data: Vec<u8>) -> Job {
    Job {
        rect,
        ctl,
        head: Vec::new(),
        body: Body::Image(data),
    }
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

/// Compress, in job order, the basic-compression data of the jobs on stream `s`.
fn compress_stream(stream: &mut ZStream, s: usize, jobs: &mut [&mut Job]) {
    let mut buf = Vec::new();
    for job in jobs.iter_mut() {
        if let Body::Zlib {
            stream: js,
            data,
            compressed,
        } = &mut job.body
        {
            if *js == s && !*compressed && data.len() >= MIN_TO_COMPRESS {
                buf.clear();
                stream.compress(data, &mut buf);
                std::mem::swap(data, &mut buf);
                *compressed = true;
            }
        }
    }
}

impl TightEncoder {
    fn streams_for(&mut self, params: &EncodeParams) {
        let level = params.compress_level.unwrap_or(DEFAULT_LEVEL).min(9);
        if self.level != Some(level) {
            // New levels: start fresh streams and tell the client to reset its inflaters.
            for (i, s) in self.streams.iter_mut().enumerate() {
                if s.take().is_some() {
                    self.resets |= 1 << i;
                }
            }
            self.level = Some(level);
        }
        let (idx, mono, raw) = ZLIB_LEVELS[usize::from(level)];
        for (i, lvl) in [(STREAM_RAW, raw), (STREAM_MONO, mono), (STREAM_INDEXED, idx)] {
            if self.streams[i].is_none() {
                self.streams[i] = Some(ZStream::new(lvl));
            }
        }
    }
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
    ) -> usize {
        self.streams_for(params);
        let encoding = self.encoding();
        let jpeg = params
            .quality_level
            .filter(|_| params.format.bits_per_pixel >= 16)
            .map(|q| q.min(9));
        let writer = cached_writer(&mut self.writer, params, Packing::Tight);
        let ctx = Ctx {
            frame,
            writer,
            jpeg,
            png: self.png,
        };
        let area: u64 = rects.iter().map(Rect::area).sum();
        let threads = if area >= PARALLEL_MIN_AREA {
            self.threads
        } else {
            1
        };
        while self.workers.len() < threads {
            self.workers.push(Worker::default());
        }

        // Step 1: classify and filter, bands of tile rows split between threads.
        let mut jobs: Vec<Job> = Vec::new();
        if threads == 1 {
            let w = &mut self.workers[0];
            for r in rects {
                w.band_jobs(&ctx, r, &mut jobs);
            }
        } else {
            let bands = split_bands(rects, threads);
            let parts: Vec<Vec<Job>> = std::thread::scope(|scope| {
                let handles: Vec<_> = self.workers[..threads]
                    .iter_mut()
                    .zip(bands.iter())
                    .map(|(w, bs)| {
                        let ctx = &ctx;
                        scope.spawn(move || {
                            let mut jobs = Vec::new();
                            for b in bs {
                                w.band_jobs(ctx, b, &mut jobs);
                            }
                            jobs
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_default())
                    .collect()
            });
            jobs = parts.into_iter().flatten().collect();
        }

        // Step 2: compress each zlib stream's data in job order.
        let [s0, s1, s2, _] = &mut self.streams;
        let (Some(s0), Some(s1), Some(s2)) = (s0.as_mut(), s1.as_mut(), s2.as_mut()) else {
            return 0;
        };
        if threads > 1 {
            let raw_bytes: usize = jobs
                .iter()
                .map(|j| match &j.body {
                    Body::Zlib { stream: 0, data, .. } => data.len(),
                    _ => 0,
                })
                .sum();
            let mut refs: Vec<&mut Job> = jobs.iter_mut().collect();
            if raw_bytes > 0 {
                // Full-colour data on one thread, palette streams on another.
                let (a, b): (Vec<&mut Job>, Vec<&mut Job>) = refs
                    .drain(..)
                    .partition(|j| matches!(j.body, Body::Zlib { stream: 0, .. }));
                let (mut a, mut b) = (a, b);
                std::thread::scope(|scope| {
                    scope.spawn(|| compress_stream(s0, STREAM_RAW, &mut a));
                    compress_stream(s1, STREAM_MONO, &mut b);
                    compress_stream(s2, STREAM_INDEXED, &mut b);
                });
            } else {
                let (a, b): (Vec<&mut Job>, Vec<&mut Job>) = refs
                    .drain(..)
                    .partition(|j| matches!(j.body, Body::Zlib { stream: 1, .. }));
                let (mut a, mut b) = (a, b);
                std::thread::scope(|scope| {
                    scope.spawn(|| compress_stream(s1, STREAM_MONO, &mut a));
                    compress_stream(s2, STREAM_INDEXED, &mut b);
                });
            }
        } else {
            let mut refs: Vec<&mut Job> = jobs.iter_mut().collect();
            compress_stream(s0, STREAM_RAW, &mut refs);
            compress_stream(s1, STREAM_MONO, &mut refs);
            compress_stream(s2, STREAM_INDEXED, &mut refs);
        }

        // Step 3: write in job order.
        for job in &jobs {
            write_rect_header(out, &job.rect, encoding);
            out.push(job.ctl | std::mem::take(&mut self.resets));
            out.extend_from_slice(&job.head);
            match &job.body {
                Body::None => {}
                Body::Image(data) => {
                    compact_len(data.len(), out);
                    out.extend_from_slice(data);
                }
                Body::Zlib {
                    data, compressed, ..
                } => {
                    if *compressed {
                        compact_len(data.len(), out);
                    }
                    out.extend_from_slice(data);
                }
            }
        }
        jobs.len()
    }
}

/// Split rects into `n` groups of whole tile rows with about equal area.
fn split_bands(rects: &[Rect], n: usize) -> Vec<Vec<Rect>> {
    let mut bands: Vec<Rect> = Vec::new();
    for r in rects {
        for y in (r.y..r.y.saturating_add(r.h)).step_by(usize::from(TILE)) {
            let h = (r.bottom() - u32::from(y)).min(u32::from(TILE)) as u16;
            bands.push(Rect::new(r.x, y, r.w, h));
        }
    }
    let total: u64 = bands.iter().map(Rect::area).sum();
    let mut groups: Vec<Vec<Rect>> = vec![Vec::new(); n];
    let (mut acc, mut g) = (0u64, 0usize);
    for b in bands {
        if acc * n as u64 >= total * (g as u64 + 1) && g + 1 < n {
            g += 1;
        }
        acc += b.area();
        // Merge consecutive bands of the same rect back into one rect per group.
        match groups[g].last_mut() {
            Some(last) if last.x == b.x && last.w == b.w && last.bottom() == u32::from(b.y) => {
                last.h += b.h;
            }
            _ => groups[g].push(b),
        }
    }
    groups
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

    #[test]
    fn bands_cover_rects_once() {
        let rects = [Rect::new(0, 0, 100, 300), Rect::new(200, 10, 50, 50)];
        let groups = split_bands(&rects, 2);
        let area: u64 = groups.iter().flatten().map(Rect::area).sum();
        assert_eq!(area, 100 * 300 + 50 * 50);
        assert!(groups.iter().all(|g| !g.is_empty()));
    }
}
