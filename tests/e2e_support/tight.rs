//! A Tight decoder for test and bench clients (32 bpp, depth 24, 8-bit channels: 3-byte
//! TPIXELs in R, G, B order): fill, JPEG and basic compression with the copy, palette and
//! gradient filters over the four zlib streams. It paints for an RGB framebuffer ([`Fb`]), so a client
//! can compare what it shows with X's pixels. Standalone (the latency bench includes it by
//! path).

use std::io::{self, Read};

use flate2::{Decompress, FlushDecompress, Status};

/// Caps on what a server may make the decoder allocate.
const MAX_DATA: u64 = 64 << 20;

/// An RGB framebuffer.
pub struct Fb {
    pub width: u16,
    pub height: u16,
    pub rgb: Vec<u8>,
}

impl Fb {
    pub fn new(width: u16, height: u16) -> Fb {
        Fb {
            width,
            height,
            rgb: vec![0; width as usize * height as usize * 3],
        }
    }

    /// The pixel at (x, y).
    pub fn at(&self, x: u16, y: u16) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Copy `w`x`h` RGB pixels to (x, y); fails when the rect is outside.
    pub fn put(&mut self, x: u16, y: u16, w: u16, h: u16, rgb: &[u8]) -> io::Result<()> {
        let (fw, fh) = (self.width as usize, self.height as usize);
        let (x, y, w, h) = (x as usize, y as usize, w as usize, h as usize);
        if x + w > fw || y + h > fh || rgb.len() < w * h * 3 {
            return Err(io::Error::other(format!(
                "rect {x},{y} {w}x{h} outside {fw}x{fh}"
            )));
        }
        for row in 0..h {
            let to = ((y + row) * fw + x) * 3;
            self.rgb[to..to + w * 3].copy_from_slice(&rgb[row * w * 3..(row + 1) * w * 3]);
        }
        Ok(())
    }
}

/// The decoder's state: Tight's four zlib streams persist across rectangles.
pub struct TightDecoder {
    streams: [Decompress; 4],
}

impl Default for TightDecoder {
    fn default() -> Self {
        TightDecoder {
            streams: std::array::from_fn(|_| Decompress::new(true)),
        }
    }
}

fn byte(s: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    Ok(b[0])
}

/// Tight's compact length: 1 to 3 bytes, 7 bits each; returns it and the bytes it took.
pub fn read_compact(s: &mut impl Read) -> io::Result<(u64, usize)> {
    let mut len = 0u64;
    for i in 0..3 {
        let b = byte(s)?;
        let bits = if i == 2 { b } else { b & 0x7f };
        len |= u64::from(bits) << (7 * i);
        if i == 2 || b & 0x80 == 0 {
            return Ok((len, i + 1));
        }
    }
    unreachable!("the loop returns by its third byte")
}

fn read_vec(s: &mut impl Read, n: u64) -> io::Result<Vec<u8>> {
    if n > MAX_DATA {
        return Err(io::Error::other(format!("Tight data of {n} bytes")));
    }
    let mut v = vec![0u8; n as usize];
    s.read_exact(&mut v)?;
    Ok(v)
}

impl TightDecoder {
    /// Reads and decodes one Tight rectangle of `w`x`h`; returns its RGB pixels and the bytes
    /// read. (Decoding apart from painting lets a client lock its framebuffer only to paint.)
    pub fn rect(&mut self, s: &mut impl Read, w: u16, h: u16) -> io::Result<(Vec<u8>, usize)> {
        let control = byte(s)?;
        for (i, z) in self.streams.iter_mut().enumerate() {
            if control & (1 << i) != 0 {
                z.reset(true);
            }
        }
        let pixels = w as usize * h as usize;
        if pixels as u64 * 3 > MAX_DATA {
            return Err(io::Error::other(format!("Tight rect of {w}x{h}")));
        }
        match control >> 4 {
            8 => {
                let mut p = [0u8; 3];
                s.read_exact(&mut p)?;
                Ok((p.iter().copied().cycle().take(pixels * 3).collect(), 4))
            }
            9 => {
                let (len, n) = read_compact(s)?;
                let jpeg = read_vec(s, len)?;
                let img = turbojpeg::decompress(&jpeg, turbojpeg::PixelFormat::RGB)
                    .map_err(|e| io::Error::other(format!("JPEG: {e}")))?;
                if (img.width, img.height) != (w as usize, h as usize)
                    || img.pitch != w as usize * 3
                {
                    return Err(io::Error::other("JPEG size differs from its rect"));
                }
                Ok((img.pixels, 1 + n + len as usize))
            }
            0..=7 => {
                let stream = usize::from((control >> 4) & 3);
                let mut used = 1;
                let filter = if control & 0x40 != 0 {
                    used += 1;
                    byte(s)?
                } else {
                    0
                };
                let mut palette = Vec::new();
                if filter == 1 {
                    let colours = usize::from(byte(s)?) + 1;
                    palette = read_vec(s, colours as u64 * 3)?;
                    used += 1 + palette.len();
                }
                let row = match palette.len() / 3 {
                    0 => w as usize * 3,
                    2 => (w as usize).div_ceil(8),
                    _ => w as usize,
                };
                let raw_len = row * h as usize;
                let data = if raw_len < 12 {
                    used += raw_len;
                    read_vec(s, raw_len as u64)?
                } else {
                    let (len, n) = read_compact(s)?;
                    let z = read_vec(s, len)?;
                    used += n + z.len();
                    inflate(&mut self.streams[stream], &z, raw_len)?
                };
                let rgb = match filter {
                    0 => data,
                    1 => unpalette(&data, &palette, w as usize, h as usize, row),
                    2 => ungradient(&data, w as usize, h as usize),
                    f => return Err(io::Error::other(format!("Tight filter {f}"))),
                };
                Ok((rgb, used))
            }
            c => Err(io::Error::other(format!("Tight compression {c}"))),
        }
    }
}

/// Inflate exactly `want` bytes from one Tight zlib stream (the server sync-flushes each rect).
fn inflate(z: &mut Decompress, input: &[u8], want: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(want);
    let start_in = z.total_in();
    loop {
        let consumed = (z.total_in() - start_in) as usize;
        let status = z
            .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
            .map_err(|e| io::Error::other(format!("zlib: {e}")))?;
        let consumed = (z.total_in() - start_in) as usize;
        if out.len() == want {
            return Ok(out);
        }
        if consumed == input.len() || status == Status::StreamEnd {
            return Err(io::Error::other(format!(
                "zlib gave {} of {want} bytes",
                out.len()
            )));
        }
    }
}

fn unpalette(data: &[u8], palette: &[u8], w: usize, h: usize, row: usize) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(w * h * 3);
    let colour = |i: usize| palette.get(i * 3..i * 3 + 3).unwrap_or(&[0, 0, 0]);
    for y in 0..h {
        for x in 0..w {
            let i = if palette.len() == 6 {
                usize::from((data[y * row + x / 8] >> (7 - x % 8)) & 1)
            } else {
                usize::from(data[y * row + x])
            };
            rgb.extend_from_slice(colour(i));
        }
    }
    rgb
}

/// Tight's gradient filter: each pixel is sent as its difference from left + up - up-left,
/// clamped per channel.
fn ungradient(data: &[u8], w: usize, h: usize) -> Vec<u8> {
    let mut rgb = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let at = |x: usize, y: usize| i32::from(rgb[(y * w + x) * 3 + c]);
                let left = if x > 0 { at(x - 1, y) } else { 0 };
                let up = if y > 0 { at(x, y - 1) } else { 0 };
                let corner = if x > 0 && y > 0 { at(x - 1, y - 1) } else { 0 };
                let predicted = (left + up - corner).clamp(0, 255) as u8;
                let i = (y * w + x) * 3 + c;
                rgb[i] = data[i].wrapping_add(predicted);
            }
        }
    }
    rgb
}
