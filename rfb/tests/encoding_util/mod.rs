//! Helpers for the encoder tests: build FramebufferUpdate messages with our encoders and decode
//! them with implementations we did not write (noVNC's decoders under Node, vncdotool, and
//! Debian's libvncclient).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../benches/data/content.rs"]
pub mod content;

use content::Image;
use rfb::encoding::{EncodeParams, Encoder, FrameView};
use rfb::{PixelFormat, Rect};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The pixel format noVNC always asks for: 32 bpp, R at 0, G at 8, B at 16, little-endian.
pub const NOVNC_FORMAT: PixelFormat = PixelFormat {
    bits_per_pixel: 32,
    depth: 24,
    big_endian: false,
    true_colour: true,
    red_max: 255,
    green_max: 255,
    blue_max: 255,
    red_shift: 0,
    green_shift: 8,
    blue_shift: 16,
};

pub fn view(img: &Image) -> FrameView<'_> {
    FrameView {
        data: &img.data,
        width: img.width,
        height: img.height,
        stride: img.stride(),
    }
}

/// One FramebufferUpdate message holding what `enc` writes for `rects`.
pub fn update(
    enc: &mut dyn Encoder,
    img: &Image,
    rects: &[Rect],
    params: &EncodeParams,
) -> Vec<u8> {
    let mut out = vec![0, 0, 0, 0];
    let n = enc
        .encode(&view(img), rects, params, &mut out)
        .expect("encode")
        .rects;
    assert!(n <= usize::from(u16::MAX));
    out[2..4].copy_from_slice(&(n as u16).to_be_bytes());
    out
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn temp_path(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("deskd-enc-{}-{}-{}", std::process::id(), tag, n))
}

/// An image rectangle (JPEG or PNG) noVNC handed to the display without decoding.
#[derive(Debug)]
pub struct ImageRect {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
    pub mime: String,
    pub data: Vec<u8>,
    /// Pixels of the frame this image still owns (not drawn over later), row-major bitmap.
    pub visible: Vec<bool>,
}

/// Decode the updates with noVNC's decoders; returns the RGBA framebuffer and image rects.
pub fn novnc_decode(width: u16, height: u16, updates: &[Vec<u8>]) -> (Vec<u8>, Vec<ImageRect>) {
    let script = workspace().join("tests/decoders/novnc-decode.mjs");
    let novnc = workspace().join("web/node_modules/@novnc/novnc/core/decoders/zrle.js");
    assert!(
        novnc.exists(),
        "noVNC is not installed: run `npm ci` in web/ (needs @novnc/novnc)"
    );
    let input = temp_path("in");
    let output = temp_path("out");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&width.to_be_bytes());
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.push(24);
    for u in updates {
        bytes.extend_from_slice(u);
    }
    std::fs::write(&input, &bytes).unwrap();
    let res = Command::new("node")
        .arg(&script)
        .arg(&input)
        .arg(&output)
        .output()
        .expect("node is not installed: install Node.js 20 (nodejs) to run the noVNC decoder");
    let _ = std::fs::remove_file(&input);
    assert!(
        res.status.success(),
        "noVNC decoder failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let fb = std::fs::read(&output).unwrap();
    let _ = std::fs::remove_file(&output);
    let owner_path = format!("{}.owner", output.display());
    let owner: Vec<i32> = std::fs::read(&owner_path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let _ = std::fs::remove_file(&owner_path);
    let mut images = Vec::new();
    for line in String::from_utf8_lossy(&res.stdout).lines() {
        let field = |name: &str| -> String {
            let key = format!("\"{name}\":");
            let start = line.find(&key).unwrap() + key.len();
            let rest = &line[start..];
            let end = rest.find([',', '}']).unwrap();
            rest[..end].trim_matches('"').to_string()
        };
        let file = field("file");
        let data = std::fs::read(&file).unwrap();
        let _ = std::fs::remove_file(&file);
        images.push(ImageRect {
            x: field("x").parse().unwrap(),
            y: field("y").parse().unwrap(),
            w: field("w").parse().unwrap(),
            h: field("h").parse().unwrap(),
            mime: field("mime"),
            data,
            visible: owner.iter().map(|&o| o == images.len() as i32).collect(),
        });
    }
    (fb, images)
}

/// Assert the RGBA framebuffer equals `img` inside `rect`, naming the first differing pixel.
pub fn assert_rgba_matches(fb: &[u8], img: &Image, rect: Rect, what: &str) {
    let w = usize::from(img.width);
    for y in usize::from(rect.y)..rect.bottom() as usize {
        for x in usize::from(rect.x)..rect.right() as usize {
            let p = img.get(x, y);
            let want = [(p >> 16) as u8, (p >> 8) as u8, p as u8, 255];
            let got = &fb[(y * w + x) * 4..(y * w + x) * 4 + 4];
            assert_eq!(got, want, "{what}: pixel ({x},{y}) differs");
        }
    }
}

/// Composite decoded JPEG/PNG rects into the RGBA framebuffer (decoding with libjpeg-turbo's
/// decoder and the png crate's decoder); returns the image rects' (x, y, w, h, mime).
pub fn composite_images(fb: &mut [u8], width: u16, images: &[ImageRect]) -> Vec<(Rect, String)> {
    let fw = usize::from(width);
    let mut placed = Vec::new();
    for im in images {
        let rgb: Vec<u8> = if im.mime == "image/jpeg" {
            let img = turbojpeg::decompress(&im.data, turbojpeg::PixelFormat::RGB).unwrap();
            assert_eq!((img.width, img.height), (im.w, im.h), "JPEG size");
            img.pixels
        } else {
            let mut dec = png::Decoder::new(std::io::Cursor::new(&im.data));
            dec.set_transformations(png::Transformations::EXPAND);
            let mut reader = dec.read_info().unwrap();
            let mut buf = vec![0; reader.output_buffer_size()];
            let info = reader.next_frame(&mut buf).unwrap();
            assert_eq!(
                (info.width as usize, info.height as usize),
                (im.w, im.h),
                "PNG size"
            );
            let bpp = info.color_type.samples();
            assert!(info.bit_depth == png::BitDepth::Eight, "PNG bit depth");
            buf[..info.buffer_size()]
                .chunks_exact(bpp)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect()
        };
        for y in 0..im.h {
            for x in 0..im.w {
                let s = (y * im.w + x) * 3;
                let d = ((im.y + y) * fw + im.x + x) * 4;
                if !im.visible[(im.y + y) * fw + im.x + x] {
                    continue;
                }
                fb[d..d + 4].copy_from_slice(&[rgb[s], rgb[s + 1], rgb[s + 2], 255]);
            }
        }
        placed.push((
            Rect::new(im.x as u16, im.y as u16, im.w as u16, im.h as u16),
            im.mime.clone(),
        ));
    }
    placed
}

/// PSNR (dB) of the RGBA framebuffer against `img` over `rect`.
pub fn psnr(fb: &[u8], img: &Image, rect: Rect) -> f64 {
    let w = usize::from(img.width);
    let (mut se, mut n) = (0f64, 0f64);
    for y in usize::from(rect.y)..rect.bottom() as usize {
        for x in usize::from(rect.x)..rect.right() as usize {
            let p = img.get(x, y);
            let want = [(p >> 16) as u8, (p >> 8) as u8, p as u8];
            for c in 0..3 {
                let d = f64::from(fb[(y * w + x) * 4 + c]) - f64::from(want[c]);
                se += d * d;
                n += 1.0;
            }
        }
    }
    if se == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0 * 255.0 / (se / n)).log10()
}

/// The test images: (name, image) covering odd sizes and content kinds.
pub fn cases() -> Vec<(&'static str, Image)> {
    vec![
        ("1x1", content::noise(1, 1, 1)),
        ("1x77", content::desktop(1, 77)),
        ("77x1", content::noise(77, 1, 2)),
        ("65x67 desktop", content::desktop(65, 67)),
        ("129x70 noise", content::noise(129, 70, 3)),
        ("300x200 photo", content::photo(300, 200)),
        ("333x251 windows", content::windows(333, 251)),
        ("1920x1080 desktop", content::desktop(1920, 1080)),
    ]
}

/// A cursor as libvncclient decoded it.
#[derive(Debug)]
pub struct DecodedCursor {
    pub w: usize,
    pub h: usize,
    pub hot_x: usize,
    pub hot_y: usize,
    pub pixels: Vec<u8>,
    pub mask: Vec<u8>,
}

/// Build tests/decoders/vncclient-decode.c against Debian's libvncclient once per test run.
fn vncclient_binary() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let src = workspace().join("tests/decoders/vncclient-decode.c");
        let bin = temp_path("vncclient-decode");
        let flags = Command::new("pkg-config")
            .args(["--cflags", "--libs", "libvncclient"])
            .output()
            .expect("pkg-config is not installed: apt-get install pkg-config libvncserver-dev");
        assert!(
            flags.status.success(),
            "libvncclient not found: apt-get install libvncserver-dev"
        );
        let flags = String::from_utf8(flags.stdout).unwrap();
        let st = Command::new("cc")
            .arg("-O1")
            .arg("-o")
            .arg(&bin)
            .arg(&src)
            .args(flags.split_whitespace())
            .status()
            .expect("a C compiler is needed: apt-get install build-essential");
        assert!(st.success(), "building the libvncclient harness failed");
        bin
    })
    .clone()
}

pub fn pixel_format_bytes(f: &PixelFormat) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = f.bits_per_pixel;
    b[1] = f.depth;
    b[2] = u8::from(f.big_endian);
    b[3] = u8::from(f.true_colour);
    b[4..6].copy_from_slice(&f.red_max.to_be_bytes());
    b[6..8].copy_from_slice(&f.green_max.to_be_bytes());
    b[8..10].copy_from_slice(&f.blue_max.to_be_bytes());
    b[10] = f.red_shift;
    b[11] = f.green_shift;
    b[12] = f.blue_shift;
    b
}

/// Decode the updates with libvncclient in `format`; returns its framebuffer bytes and the
/// last cursor shape it received.
pub fn vncclient_decode(
    width: u16,
    height: u16,
    format: &PixelFormat,
    updates: &[Vec<u8>],
) -> (Vec<u8>, Option<DecodedCursor>) {
    let bin = vncclient_binary();
    let input = temp_path("vin");
    let output = temp_path("vout");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&width.to_be_bytes());
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(&(updates.len() as u16).to_be_bytes());
    bytes.extend_from_slice(&pixel_format_bytes(format));
    for u in updates {
        bytes.extend_from_slice(u);
    }
    std::fs::write(&input, &bytes).unwrap();
    let res = Command::new(&bin)
        .arg(&input)
        .arg(&output)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&input);
    assert!(
        res.status.success(),
        "libvncclient decoder failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let mut fb = std::fs::read(&output).unwrap();
    let _ = std::fs::remove_file(&output);
    let n = usize::from(width) * usize::from(height) * format.bytes_per_pixel();
    let tail = fb.split_off(n);
    let cursor = (tail.len() >= 8).then(|| {
        let r = |i: usize| usize::from(u16::from_le_bytes([tail[i], tail[i + 1]]));
        let (w, h) = (r(0), r(2));
        let np = w * h * format.bytes_per_pixel();
        DecodedCursor {
            w,
            h,
            hot_x: r(4),
            hot_y: r(6),
            pixels: tail[8..8 + np].to_vec(),
            mask: tail[8 + np..8 + np + w * h].to_vec(),
        }
    });
    (fb, cursor)
}

/// The wire bytes of every pixel of `img` in `format` (what a client stores).
pub fn expected_fb(img: &Image, format: &PixelFormat) -> Vec<u8> {
    let w = rfb::pixel::PixelWriter::new(format, rfb::pixel::Packing::Full);
    let mut out = Vec::new();
    for row in img.data.chunks_exact(img.stride()) {
        w.write_row(row, &mut out);
    }
    out
}

/// A Tight client's updates as the encode service builds them: grid pieces encoded on their
/// own (zlib data on streams 2 and 3, reset for every rect), interleaved here with pieces from
/// the client's own encoder (streams 0 and 1, continuing across updates), as when a piece is
/// missing from the cache. A decoder must keep both kinds of stream straight.
pub struct SharedPieces<E: Encoder>(pub E);

impl<E: Encoder> Encoder for SharedPieces<E> {
    fn encoding(&self) -> i32 {
        self.0.encoding()
    }

    fn encode(
        &mut self,
        frame: &FrameView<'_>,
        rects: &[Rect],
        params: &EncodeParams,
        out: &mut Vec<u8>,
    ) -> Result<rfb::encoding::Encoded, rfb::encoding::EncodeError> {
        use rfb::encoding::shared::{encode_piece, pieces, PieceKey};
        let mut all = rfb::encoding::Encoded::default();
        for (i, p) in pieces(rects).into_iter().enumerate() {
            let key = PieceKey::new(self.encoding(), p, 0, params);
            let shared = (i % 2 == 0).then(|| encode_piece(frame, &key)).flatten();
            let e = match shared {
                Some(piece) => {
                    out.extend_from_slice(&piece.bytes);
                    rfb::encoding::Encoded {
                        rects: piece.rects,
                        lossy: piece.lossy,
                    }
                }
                None => self.0.encode(frame, &[p], params, out)?,
            };
            all.rects += e.rects;
            all.lossy.extend(e.lossy);
        }
        Ok(all)
    }
}
