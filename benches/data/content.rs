//! Deterministic, realistic-looking framebuffers (native BGRX) for encoder tests and benches:
//! a desktop with text windows and a terminal, a photo-like still, and a plain background with
//! a few windows. Shared by benches/encode.rs and rfb/tests/encoding_*.rs via `#[path]`.
#![allow(dead_code)]

/// A framebuffer: BGRX bytes with stride `width * 4`.
pub struct Image {
    pub width: u16,
    pub height: u16,
    pub data: Vec<u8>,
}

impl Image {
    pub fn new(width: u16, height: u16, colour: u32) -> Image {
        let mut data = Vec::with_capacity(usize::from(width) * usize::from(height) * 4);
        for _ in 0..usize::from(width) * usize::from(height) {
            data.extend_from_slice(&colour.to_le_bytes());
        }
        Image {
            width,
            height,
            data,
        }
    }

    pub fn stride(&self) -> usize {
        usize::from(self.width) * 4
    }

    pub fn get(&self, x: usize, y: usize) -> u32 {
        let i = (y * usize::from(self.width) + x) * 4;
        u32::from_le_bytes([self.data[i], self.data[i + 1], self.data[i + 2], 0])
    }

    pub fn set(&mut self, x: usize, y: usize, c: u32) {
        if x < usize::from(self.width) && y < usize::from(self.height) {
            let i = (y * usize::from(self.width) + x) * 4;
            self.data[i..i + 4].copy_from_slice(&(c & 0x00ff_ffff).to_le_bytes());
        }
    }

    pub fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, c: u32) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, c);
            }
        }
    }
}

/// xorshift64*: small, fast, deterministic.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }
    pub fn below(&mut self, n: u32) -> u32 {
        self.next() % n.max(1)
    }
}

fn blend(fg: u32, bg: u32, a: u32) -> u32 {
    let ch = |s: u32| {
        let f = (fg >> s) & 255;
        let b = (bg >> s) & 255;
        ((f * a + b * (255 - a)) / 255) << s
    };
    ch(16) | ch(8) | ch(0)
}

/// 64 glyphs of 7x13 coverage values (0..=255), stroke-like so they compress like text.
fn glyphs() -> Vec<[u8; 7 * 13]> {
    let mut rng = Rng::new(7);
    (0..64)
        .map(|_| {
            let mut g = [0u8; 7 * 13];
            let strokes = 2 + rng.below(3);
            for _ in 0..strokes {
                if rng.below(2) == 0 {
                    let x = 1 + rng.below(5) as usize;
                    let (y0, y1) = (2 + rng.below(4) as usize, 8 + rng.below(4) as usize);
                    for y in y0..y1 {
                        g[y * 7 + x] = 255;
                        g[y * 7 + x + 1] = g[y * 7 + x + 1].max(96);
                    }
                } else {
                    let y = 3 + rng.below(8) as usize;
                    let (x0, x1) = (rng.below(3) as usize, 4 + rng.below(3) as usize);
                    for x in x0..x1 {
                        g[y * 7 + x] = 255;
                        g[(y + 1) * 7 + x] = g[(y + 1) * 7 + x].max(64);
                    }
                }
            }
            g
        })
        .collect()
}

/// Draw `cols` x `rows` cells of pseudo-text (8x16 cells) with antialiased glyphs.
#[allow(clippy::too_many_arguments)]
fn text(
    img: &mut Image,
    x: usize,
    y: usize,
    cols: usize,
    rows: usize,
    fg: u32,
    bg: u32,
    seed: u64,
) {
    let gl = glyphs();
    let mut rng = Rng::new(seed);
    for r in 0..rows {
        let len = rng.below(cols as u32) as usize;
        for c in 0..len {
            let ch = rng.below(80) as usize;
            if ch >= 64 {
                continue; // a space
            }
            let g = &gl[ch];
            for gy in 0..13 {
                for gx in 0..7 {
                    let a = u32::from(g[gy * 7 + gx]);
                    if a > 0 {
                        img.set(x + c * 8 + gx, y + r * 16 + gy + 2, blend(fg, bg, a));
                    }
                }
            }
        }
    }
}

fn window(img: &mut Image, x: usize, y: usize, w: usize, h: usize, body: u32) {
    img.fill(x, y, w, h, 0x0080_8080);
    if w < 80 || h < 40 {
        return;
    }
    img.fill(x + 1, y + 1, w - 2, 24, 0x0030_5090);
    img.fill(x + 1, y + 25, w - 2, h - 26, body);
    // Title text and buttons.
    text(
        img,
        x + 8,
        y + 4,
        (w / 8).saturating_sub(12).min(40),
        1,
        0x00ff_ffff,
        0x0030_5090,
        (x * 31 + y) as u64,
    );
    for b in 0..3 {
        img.fill(x + w - 22 - b * 20, y + 6, 14, 14, 0x00c0_c0c0);
    }
}

/// A desktop: gradient wallpaper, an editor window with text, a terminal, a panel.
pub fn desktop(width: u16, height: u16) -> Image {
    let (w, h) = (usize::from(width), usize::from(height));
    let mut img = Image::new(width, height, 0);
    for y in 0..h {
        let c = 0x0020_3040 + ((y * 64 / h.max(1)) as u32) * 0x0001_0101;
        img.fill(0, y, w, 1, c);
    }
    // Editor window with dark text on white.
    let (ex, ey, ew, eh) = (w / 20, h / 12, w * 11 / 20, h * 7 / 10);
    window(&mut img, ex, ey, ew, eh, 0x00ff_ffff);
    text(
        &mut img,
        ex + 10,
        ey + 30,
        ew.saturating_sub(20) / 8,
        eh.saturating_sub(40) / 16,
        0x0010_1010,
        0x00ff_ffff,
        1,
    );
    // Terminal: light grey/green text on near-black.
    let (tx, ty, tw, th) = (w * 6 / 10, h / 5, w * 37 / 100, h * 6 / 10);
    window(&mut img, tx, ty, tw, th, 0x0010_1010);
    text(
        &mut img,
        tx + 6,
        ty + 30,
        tw.saturating_sub(12) / 8,
        th.saturating_sub(40) / 16,
        0x00d0_d0d0,
        0x0010_1010,
        2,
    );
    text(
        &mut img,
        tx + 6,
        ty + 30 + 16 * 3,
        20,
        4,
        0x0040_e040,
        0x0010_1010,
        3,
    );
    // Panel with a clock-like text block and icons.
    img.fill(0, h.saturating_sub(28), w, 28, 0x0028_2828);
    for i in 0..8 {
        img.fill(
            6 + i * 34,
            h.saturating_sub(24),
            24,
            20,
            0x0040_6090 + (i as u32) * 0x0010_0804,
        );
    }
    text(
        &mut img,
        w.saturating_sub(90),
        h.saturating_sub(22),
        10,
        1,
        0x00ff_ffff,
        0x0028_2828,
        4,
    );
    img
}

/// A photo-like still: smooth colour gradients with low-amplitude noise.
pub fn photo(width: u16, height: u16) -> Image {
    let (w, h) = (usize::from(width), usize::from(height));
    let mut img = Image::new(width, height, 0);
    let mut rng = Rng::new(99);
    for y in 0..h {
        for x in 0..w {
            let fx = x as f32 / w.max(1) as f32;
            let fy = y as f32 / h.max(1) as f32;
            let n = rng.below(13) as f32 - 6.0;
            let r = 128.0 + 100.0 * (fx * 6.3 + fy * 2.0).sin() + n;
            let g = 110.0 + 90.0 * (fy * 5.1 - fx * 1.3).cos() + n;
            let b = 90.0 + 80.0 * ((fx + fy) * 4.0).sin() + n;
            let c = |v: f32| v.clamp(0.0, 255.0) as u32;
            img.set(x, y, (c(r) << 16) | (c(g) << 8) | c(b));
        }
    }
    img
}

/// A solid background with a few flat windows, one with a little text.
pub fn windows(width: u16, height: u16) -> Image {
    let (w, h) = (usize::from(width), usize::from(height));
    let mut img = Image::new(width, height, 0x0035_6a8c);
    window(&mut img, w / 10, h / 10, w / 3, h / 3, 0x00ee_eeee);
    window(&mut img, w / 2, h / 4, w / 3, h / 2, 0x00f8_f4e8);
    text(
        &mut img,
        w / 2 + 10,
        h / 4 + 30,
        30,
        6,
        0x0020_2020,
        0x00f8_f4e8,
        5,
    );
    img
}

/// Random pixels (worst case for every encoder).
pub fn noise(width: u16, height: u16, seed: u64) -> Image {
    let mut img = Image::new(width, height, 0);
    let mut rng = Rng::new(seed);
    for p in img.data.chunks_exact_mut(4) {
        p.copy_from_slice(&(rng.next() & 0x00ff_ffff).to_le_bytes());
    }
    img
}
