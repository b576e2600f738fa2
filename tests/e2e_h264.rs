//! Open H.264 (encoding 50) end to end: deskd attached to its own Xvfb, a 30 Hz full-screen
//! animation drawn into X, and two independent decoders: noVNC 1.7 in headless Debian
//! Chromium (WebCodecs, default settings) and Debian's ffmpeg on the Annex B stream a raw RFB
//! client dumped. Both show the switch in both directions: Tight/Raw while still, H.264 while
//! the screen moves, exact pixels again once it is still.
//!
//! Needs: Xvfb, node, chromium, ffmpeg, and `npm ci` in web/.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod e2e_support;

use std::time::{Duration, Instant};

use deskd::video::nal_types;
use e2e_support::ffmpeg::{decode_all, ffprobe, field, Input};
use e2e_support::{
    animation_frame, psnr, wait_equal, Animation, Browser, Deskd, RawClient, ANIMATION_FRAMES, X,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// Counts, in the page, the rectangles each noVNC decoder finished (wrapping `decodeRect`), so
/// the test knows which encoding painted the canvas.
const COUNT_RECTS: &str = "(() => {
    const rfb = window.deskdRfb;
    window.rectCounts = {};
    for (const [enc, dec] of Object.entries(rfb._decoders)) {
        window.rectCounts[enc] = 0;
        const orig = dec.decodeRect.bind(dec);
        dec.decodeRect = (...args) => {
            const done = orig(...args);
            if (done) window.rectCounts[enc] += 1;
            return done;
        };
    }
    return true;
})()";

fn rect_count(b: &mut Browser, encoding: i32) -> u64 {
    b.eval(&format!("window.rectCounts['{encoding}']"))
        .as_u64()
        .unwrap_or(0)
}

fn wait_for(d: &Deskd, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok() {
        if Instant::now() > deadline {
            let log = d.log_text();
            panic!(
                "timed out waiting for {what}; deskd log ends:\n{}",
                &log[log.len().saturating_sub(4000)..]
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn novnc_decodes_h264_video_and_is_exact_once_still() {
    let (w, h) = (640u16, 480u16);
    let d = Deskd::start(w, h, &[]);
    let x = X::connect(&d.display);
    x.put_rgb(0, 0, w, h, &animation_frame(w, h, 0));
    let mut b = Browser::start();
    b.open(&d.url(""), 1024, 768);
    // noVNC offers 50 only when WebCodecs decodes H.264 here (its own start-up probe).
    assert_eq!(
        b.eval("import('/novnc/core/util/browser.js').then((m) => m.supportsWebCodecsH264Decode)"),
        json!(true),
        "noVNC in this Chromium does not offer H.264"
    );
    b.eval(COUNT_RECTS);
    wait_equal(&x, "first picture", WAIT, || b.pixels());
    assert_eq!(
        rect_count(&mut b, 50),
        0,
        "a still screen is not sent as H.264"
    );

    let anim = Animation::start(&d.display, 30);
    wait_for(&d, "H.264 rectangles", || rect_count(&mut b, 50) >= 5);
    // The canvas tracks X: each sample shows one of the animation's frames (the best match of
    // its loop; a neighbouring frame scores about 16 dB), and later samples show other frames.
    // How far behind X it is depends on the load of the shared machine, so it is reported.
    let frames: Vec<Vec<u8>> = (0..ANIMATION_FRAMES)
        .map(|t| animation_frame(w, h, t))
        .collect();
    let mut samples = Vec::new();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(250));
        let before = rect_count(&mut b, 50);
        let on_x = anim.recent(Duration::ZERO)[0];
        let (gw, gh, got) = b.pixels();
        assert_eq!((gw, gh), (w, h));
        let (t, best) = frames
            .iter()
            .enumerate()
            .map(|(t, f)| (t, psnr(f, &got)))
            .fold((0, 0.0f64), |a, b| if b.1 > a.1 { b } else { a });
        let behind = (on_x + ANIMATION_FRAMES - t) % ANIMATION_FRAMES;
        samples.push((best, t, behind, before));
    }
    let during = rect_count(&mut b, 50);
    let drawn = anim.frames();
    anim.stop();
    eprintln!(
        "samples (PSNR dB, frame shown, frames behind X, H.264 rects so far): {samples:?}; \
         {during} H.264 rects for {drawn} frames drawn"
    );
    for (p, ..) in &samples {
        assert!(
            *p >= 30.0,
            "canvas PSNR {p:.1} dB during the animation: {samples:?}"
        );
    }
    assert!(
        samples.windows(2).all(|s| s[1].3 > s[0].3),
        "H.264 rectangles kept coming: {samples:?}"
    );
    assert!(
        samples.windows(2).any(|s| s[1].1 != s[0].1),
        "the canvas moved: {samples:?}"
    );

    // Still: the lossless refresh replaces the video picture, exactly.
    wait_equal(&x, "canvas after stillness", WAIT, || b.pixels());
    let after = rect_count(&mut b, 50);
    // And small changes go out as Tight again, not as video.
    x.fill(100, 100, 40, 20, 0x00c0_2040);
    wait_equal(&x, "a small change", WAIT, || b.pixels());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        rect_count(&mut b, 50),
        after,
        "a small change went out as H.264"
    );
    let console = b.call(json!({"cmd": "console"}));
    let errors: Vec<&str> = console
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .filter(|l| l.contains("pageerror") || l.contains("Failed to decode"))
        .collect();
    assert!(errors.is_empty(), "decoder errors in the page: {errors:?}");
}

#[test]
fn raw_client_h264_stream_decodes_with_ffmpeg() {
    let (w, h) = (640u16, 360u16);
    let d = Deskd::start(w, h, &[]);
    let x = X::connect(&d.display);
    let client = RawClient::connect_with(d.rfb, &[50]);
    wait_equal(&x, "first picture (Raw)", WAIT, || client.pixels());
    assert!(client.h264.lock().unwrap().rects.is_empty());

    let anim = Animation::start(&d.display, 30);
    wait_for(&d, "20 H.264 rectangles", || {
        client.h264.lock().unwrap().rects.len() >= 20
    });
    anim.stop();
    // Once still, the lossless refresh (Raw for this client) makes the picture exact.
    wait_equal(&x, "picture after stillness", WAIT, || client.pixels());
    let dump = client.h264.lock().unwrap().clone();

    // One rectangle per access unit covering the screen. The stream starts by resetting the
    // client's contexts (ResetAllContexts = 2) with a key frame (SPS, PPS, IDR); the rest
    // continue it (a hiccup of the animation may restart it, again with a reset and an IDR).
    assert_eq!(dump.rects[0].4, 2, "first rect flags");
    let mut at = 0;
    for r in &dump.rects {
        assert_eq!((r.0, r.1, r.2, r.3), (0, 0, w, h), "{:?}", dump.rects);
        let types = nal_types(&dump.annexb[at..at + r.5]);
        at += r.5;
        match r.4 {
            2 => assert_eq!(&types[..3], &[7, 8, 5], "a reset starts with a key frame"),
            0 => assert!(!types.is_empty()),
            f => panic!("flags {f}"),
        }
    }

    let path = std::env::temp_dir().join(format!("deskd-e2e-h264-{}.h264", std::process::id()));
    std::fs::write(&path, &dump.annexb).unwrap();
    let probe = ffprobe(&path, Input::AnnexB);
    decode_all(&path, Input::AnnexB);
    std::fs::remove_file(&path).ok();
    assert_eq!(field(&probe, "codec_name"), "h264");
    assert_eq!(field(&probe, "profile"), "Constrained Baseline");
    assert_eq!(field(&probe, "width"), w.to_string());
    assert_eq!(field(&probe, "height"), h.to_string());
    assert_eq!(
        field(&probe, "nb_read_frames"),
        dump.rects.len().to_string()
    );
}
