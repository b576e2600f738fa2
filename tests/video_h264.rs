//! The H.264 encoder checked by an independent decoder: frames encoded by `deskd::video`,
//! written as an Annex B stream, decode with Debian's `ffmpeg` without errors, with the frame
//! count and size sent, and pictures that match the input (PSNR).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../benches/data/content.rs"]
mod content;
mod e2e_support;

use std::path::PathBuf;

use deskd::capture::Frame;
use deskd::video::{nal_types, H264Encoder, H264Settings};
use e2e_support::ffmpeg::{decode_rgb, ffprobe, Input};
use e2e_support::psnr;

fn frame(img: &content::Image) -> Frame {
    Frame {
        width: img.width,
        height: img.height,
        stride: img.stride(),
        data: img.data.clone(),
    }
}

/// RGB of a BGRX frame, cropped to `w x h`.
fn rgb(f: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    for y in 0..usize::from(f.height) {
        for x in 0..usize::from(f.width) {
            let i = y * f.stride + x * 4;
            out.extend_from_slice(&[f.data[i + 2], f.data[i + 1], f.data[i]]);
        }
    }
    out
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("deskd-h264-{}-{name}", std::process::id()))
}

#[test]
fn stream_decodes_with_ffmpeg_and_matches_input() {
    // An odd size: the encoder pads to even, the decoder's picture is cropped back.
    let (w, h) = (641u16, 361u16);
    let base = content::desktop(w, h);
    let photo = content::photo(w, h);
    let mut enc = H264Encoder::new(H264Settings::default()).unwrap();
    let mut stream = Vec::new();
    let mut inputs = Vec::new();
    let mut keys = Vec::new();
    for i in 0..12u16 {
        // Text desktop with a photo panel that moves and a box that changes colour.
        let mut img = content::Image {
            width: w,
            height: h,
            data: base.data.clone(),
        };
        for y in 0..120usize {
            for x in 0..200usize {
                let c = photo.get(x + usize::from(i) * 7, y + 100);
                img.set(x + usize::from(i) * 20, y + 200, c);
            }
        }
        img.fill(500, 20, 60, 40, 0x0030_4050 * u32::from(i + 1));
        if i == 6 {
            enc.request_key_frame();
        }
        let f = frame(&img);
        let out = enc.encode(&f, u64::from(i) * 33).unwrap();
        assert_eq!((out.width, out.height), (642, 362));
        keys.push(out.key);
        let types = nal_types(&out.data);
        if out.key {
            // SPS and PPS before every IDR.
            assert_eq!(&types[..3], &[7, 8, 5], "key frame NALs {types:?}");
        } else {
            assert_eq!(types, vec![1], "delta frame NALs");
        }
        stream.extend_from_slice(&out.data);
        inputs.push(rgb(&f));
    }
    assert_eq!(
        keys,
        [true, false, false, false, false, false, true, false, false, false, false, false]
    );

    let path = temp("odd.h264");
    std::fs::write(&path, &stream).unwrap();
    let probe = ffprobe(&path, Input::AnnexB);
    let decoded = decode_rgb(
        &path,
        Input::AnnexB,
        (642, 362),
        (usize::from(w), usize::from(h)),
    );
    std::fs::remove_file(&path).ok();

    // Constrained Baseline, full range, the coded (even) size, every frame decoded.
    assert!(probe.contains("codec_name=h264"), "{probe}");
    assert!(probe.contains("profile=Constrained Baseline"), "{probe}");
    assert!(probe.contains("color_range=pc"), "{probe}");
    assert!(probe.contains("\nwidth=642\n"), "{probe}");
    assert!(probe.contains("\nheight=362\n"), "{probe}");
    assert!(probe.contains("nb_read_frames=12"), "{probe}");
    assert_eq!(decoded.len(), inputs.len());
    for (i, (want, got)) in inputs.iter().zip(&decoded).enumerate() {
        let p = psnr(want, got);
        assert!(p >= 35.0, "frame {i}: PSNR {p:.1} dB");
    }
}

#[test]
fn size_change_restarts_with_a_key_frame() {
    let mut enc = H264Encoder::new(H264Settings::default()).unwrap();
    let mut stream = Vec::new();
    for (i, (w, h)) in [(320u16, 240u16), (320, 240), (200, 100), (200, 100)]
        .into_iter()
        .enumerate()
    {
        let f = frame(&content::windows(w, h));
        let out = enc.encode(&f, i as u64 * 40).unwrap();
        assert_eq!(out.key, i % 2 == 0, "frame {i}");
        assert_eq!((out.width, out.height), (w, h));
        stream.extend_from_slice(&out.data);
    }
    // ffmpeg decodes across the size change.
    let path = temp("resize.h264");
    std::fs::write(&path, &stream).unwrap();
    let probe = ffprobe(&path, Input::AnnexB);
    std::fs::remove_file(&path).ok();
    assert!(probe.contains("nb_read_frames=4"), "{probe}");
}

#[test]
fn bad_frames_are_errors_not_panics() {
    let mut enc = H264Encoder::new(H264Settings::default()).unwrap();
    let short = Frame {
        width: 64,
        height: 64,
        stride: 256,
        data: vec![0; 100],
    };
    assert!(enc.encode(&short, 0).is_err());
    assert!(enc.encode(&Frame::new(0, 0), 0).is_err());
    assert!(enc.encode(&Frame::new(4000, 2000), 0).is_err());
    // Still usable afterwards.
    assert!(enc.encode(&Frame::new(64, 64), 0).unwrap().key);
}
