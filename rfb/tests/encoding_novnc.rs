//! Every encoder's output decoded by noVNC's own decoders (npm @novnc/novnc, run under Node)
//! and compared pixel for pixel with the source frame, in noVNC's pixel format (32 bpp LE).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod encoding_util;

use encoding_util::content::{self, Image};
use encoding_util::*;
use rfb::encoding::{self, EncodeParams, Encoder};
use rfb::Rect;

fn params() -> EncodeParams {
    EncodeParams {
        format: NOVNC_FORMAT,
        ..EncodeParams::default()
    }
}

/// A second frame: `img` with a changed band and block, plus the rects that changed.
fn changed(img: &Image) -> (Image, Vec<Rect>) {
    let mut next = Image {
        width: img.width,
        height: img.height,
        data: img.data.clone(),
    };
    let (w, h) = (usize::from(img.width), usize::from(img.height));
    let band = Rect::new(0, (h / 3) as u16, img.width, (h / 4).max(1) as u16);
    let noise = content::noise(img.width, img.height, 77);
    for y in usize::from(band.y)..band.bottom() as usize {
        for x in 0..w {
            next.set(x, y, noise.get(x, y) | 0x0080_0000);
        }
    }
    let block = Rect::new(
        (w / 2) as u16,
        (h * 3 / 4) as u16,
        (w / 3).max(1) as u16,
        (h / 5).max(1) as u16,
    )
    .clamp_to(img.width, img.height);
    next.fill(
        usize::from(block.x),
        usize::from(block.y),
        usize::from(block.w),
        usize::from(block.h),
        0x0012_3456,
    );
    let rects = [band, block]
        .into_iter()
        .filter(|r| !r.is_empty())
        .collect();
    (next, rects)
}

/// Encode each case as a full update then a partial one with one encoder value (so persistent
/// zlib streams carry over), decode with noVNC and require exact pixels.
fn check_lossless(name: &str, make: impl Fn() -> Box<dyn Encoder>, params: EncodeParams) {
    for (case, img) in cases() {
        let mut enc = make();
        let full = update(enc.as_mut(), &img, &[img_rect(&img)], &params);
        let (next, rects) = changed(&img);
        let part = update(enc.as_mut(), &next, &rects, &params);
        eprintln!("{name} {case}: {} + {} bytes", full.len(), part.len());
        let (mut fb, images) = novnc_decode(img.width, img.height, &[full, part]);
        let placed = composite_images(&mut fb, img.width, &images);
        assert!(
            placed.iter().all(|(_, mime)| mime == "image/png"),
            "{name} {case}: lossy image rects"
        );
        assert_rgba_matches(&fb, &next, img_rect(&img), &format!("{name} {case}"));
    }
}

fn img_rect(img: &Image) -> Rect {
    Rect::new(0, 0, img.width, img.height)
}

#[test]
fn raw_decodes_in_novnc() {
    check_lossless(
        "raw",
        || Box::new(encoding::raw::RawEncoder::new()),
        params(),
    );
}

#[test]
fn zlib_decodes_in_novnc() {
    check_lossless(
        "zlib",
        || Box::new(encoding::zlib::ZlibEncoder::new()),
        params(),
    );
    let level9 = EncodeParams {
        compress_level: Some(9),
        ..params()
    };
    check_lossless(
        "zlib level 9",
        || Box::new(encoding::zlib::ZlibEncoder::new()),
        level9,
    );
}

#[test]
fn zrle_decodes_in_novnc() {
    check_lossless(
        "zrle",
        || Box::new(encoding::zrle::ZrleEncoder::new()),
        params(),
    );
}

#[test]
fn tight_decodes_in_novnc() {
    check_lossless(
        "tight",
        || Box::new(encoding::tight::TightEncoder::new()),
        params(),
    );
    let level9 = EncodeParams {
        compress_level: Some(9),
        ..params()
    };
    check_lossless(
        "tight level 9",
        || Box::new(encoding::tight::TightEncoder::new()),
        level9,
    );
}

/// Tight and TightPNG as the encode service sends them ([`SharedPieces`]).
#[test]
fn tight_in_shared_pieces_decodes_in_novnc() {
    check_lossless(
        "tight in shared pieces",
        || Box::new(SharedPieces(encoding::tight::TightEncoder::new())),
        params(),
    );
    check_lossless(
        "tightpng in shared pieces",
        || Box::new(SharedPieces(encoding::tight::TightEncoder::new_png())),
        params(),
    );
}

/// Changing CompressLevel mid-connection makes new streams and sets the reset bits; noVNC
/// must reset its inflaters and keep decoding.
#[test]
fn tight_level_change_resets_streams_in_novnc() {
    let img = content::desktop(640, 400);
    let (next, rects) = changed(&img);
    // Streams 0 (full colour) and 1 (palette data) were used, so both get reset.
    let mut enc = encoding::tight::TightEncoder::new();
    let full = update(&mut enc, &img, &[img_rect(&img)], &params());
    let lvl = EncodeParams {
        compress_level: Some(6),
        ..params()
    };
    let part = update(&mut enc, &next, &rects, &lvl);
    assert_eq!(
        part[4 + 12] & 0x0f,
        0x03,
        "first control byte carries the reset bits"
    );
    let (fb, _) = novnc_decode(img.width, img.height, &[full, part]);
    assert_rgba_matches(&fb, &next, img_rect(&img), "tight level change");
}

#[test]
fn tightpng_decodes_in_novnc() {
    check_lossless(
        "tightpng",
        || Box::new(encoding::tight::TightEncoder::new_png()),
        params(),
    );
}

/// Tight with QualityLevel 6: photo-like tiles go as JPEG (noVNC hands them to the browser, so
/// the payload is decoded here with libjpeg-turbo's decoder); everything else must be exact and
/// the JPEG parts must reach PSNR > 30 dB.
#[test]
fn tight_jpeg_decodes_in_novnc() {
    for png in [false, true] {
        for (case, img) in [
            ("photo", content::photo(640, 480)),
            ("desktop", content::desktop(1920, 1080)),
        ] {
            let mut enc = if png {
                encoding::tight::TightEncoder::new_png()
            } else {
                encoding::tight::TightEncoder::new()
            };
            let q6 = EncodeParams {
                quality_level: Some(6),
                ..params()
            };
            let u = update(&mut enc, &img, &[img_rect(&img)], &q6);
            let (mut fb, images) = novnc_decode(img.width, img.height, &[u]);
            let placed = composite_images(&mut fb, img.width, &images);
            let jpegs: Vec<Rect> = placed
                .iter()
                .filter(|(_, m)| m == "image/jpeg")
                .map(|(r, _)| *r)
                .collect();
            if case != "desktop" {
                assert!(
                    !jpegs.is_empty(),
                    "{case}: photo-like content must use JPEG"
                );
            }
            for r in &jpegs {
                let p = psnr(&fb, &img, *r);
                assert!(p > 30.0, "{case} png={png}: JPEG rect {r:?} PSNR {p:.1} dB");
            }
            // Everything outside JPEG rects is exact.
            let mut exact = img.data.clone();
            for r in &jpegs {
                for y in r.y..r.y + r.h {
                    for x in r.x..r.x + r.w {
                        let i = (usize::from(y) * usize::from(img.width) + usize::from(x)) * 4;
                        exact[i..i + 3].copy_from_slice(&[fb[i + 2], fb[i + 1], fb[i]]);
                    }
                }
            }
            let exact = Image {
                width: img.width,
                height: img.height,
                data: exact,
            };
            assert_rgba_matches(
                &fb,
                &exact,
                img_rect(&img),
                &format!("tight jpeg {case} png={png}"),
            );
        }
    }
}

#[test]
fn hextile_decodes_in_novnc() {
    check_lossless(
        "hextile",
        || Box::new(encoding::hextile::HextileEncoder::new()),
        params(),
    );
}

/// CopyRect after a full update: the copied area must show the source pixels.
#[test]
fn copyrect_decodes_in_novnc() {
    let img = content::desktop(300, 200);
    let mut first = update(
        &mut encoding::raw::RawEncoder::new(),
        &img,
        &[img_rect(&img)],
        &params(),
    );
    // Second update: one CopyRect moving (10,20) 100x50 to (150,120).
    let mut second = vec![0, 0, 0, 1];
    encoding::copyrect::write_copy_rect(&mut second, &Rect::new(150, 120, 100, 50), 10, 20);
    first.extend_from_slice(&second);
    let (fb, _) = novnc_decode(img.width, img.height, &[first]);
    let mut moved = Image {
        width: img.width,
        height: img.height,
        data: img.data.clone(),
    };
    for y in 0..50 {
        for x in 0..100 {
            moved.set(150 + x, 120 + y, img.get(10 + x, 20 + y));
        }
    }
    assert_rgba_matches(&fb, &moved, img_rect(&img), "copyrect");
}
