//! End to end with native VNC clients over TCP, each forced to one encoding: vncdotool (raw,
//! hextile, zrle; lossless PNG captures), TigerVNC's vncviewer on a second Xvfb (tight without
//! JPEG, zrle, hextile, raw; its window read back from that X server), and vncsnapshot (zlib
//! and tight; it only writes JPEG files, so compared by PSNR). Then eight clients at once with
//! one client that never reads. And TigerVNC's viewer with JPEG: exact once still (lossless
//! refresh), and the X bell ringing its bell.
//!
//! Needs: Xvfb, python3 with vncdotool, tigervnc-viewer, vncsnapshot, imagemagick,
//! x11-xkb-utils.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod e2e_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use e2e_support::{
    bare_xvfb, diff, image_rgb, psnr, require_tool, stalled_client, tigervnc_viewer,
    vncdotool_capture, wait_equal, Deskd, RawClient, X,
};

const WAIT: Duration = Duration::from_secs(30);

/// Draw a picture and wait until deskd serves it (seen by our own client), so a one-shot
/// capture that follows sees the new picture.
fn draw_and_settle(x: &X, d: &Deskd, seed: u32) {
    x.draw_picture(seed);
    let probe = RawClient::connect(d.rfb);
    wait_equal(x, "deskd catching up with X", WAIT, || probe.pixels());
}

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("deskd-e2e-{}-{name}", std::process::id()))
}

#[test]
fn native_vncdotool_each_encoding() {
    let d = Deskd::start(640, 480, &[]);
    let x = X::connect(&d.display);
    for (i, enc) in ["raw", "hextile", "zrle"].into_iter().enumerate() {
        draw_and_settle(&x, &d, 10 + i as u32);
        let (w, h, got) = vncdotool_capture(&d, enc);
        let (xw, xh, want) = x.root_rgb();
        assert_eq!((w, h), (xw, xh), "vncdotool {enc} capture size");
        if let Some(d) = diff(w, h, &want, &got) {
            panic!("vncdotool {enc}: capture differs from X: {d}");
        }
    }
}

#[test]
fn native_tigervnc_viewer_each_encoding() {
    require_tool("vncviewer", "tigervnc-viewer");
    let d = Deskd::start(640, 480, &[]);
    let x = X::connect(&d.display);
    // The viewer runs on its own, larger X server (no window manager, so no decorations),
    // with its window at the origin; that server's pixels are the viewer's picture.
    let (_viewer_x, viewer_display) = bare_xvfb(800, 600, &[]);
    let vx = X::connect(&viewer_display);
    for (i, enc) in ["Tight", "ZRLE", "Hextile", "Raw"].into_iter().enumerate() {
        x.draw_picture(20 + i as u32);
        let preferred = format!("-PreferredEncoding={enc}");
        let _viewer = tigervnc_viewer(
            &viewer_display,
            d.rfb,
            &[
                "-AutoSelect=0",
                &preferred,
                "-FullColor",
                "-NoJPEG",
                "-ViewOnly",
                "-geometry",
                "640x480+0+0",
            ],
        );
        let (wx, wy) = vx.wait_window(640, 480, WAIT);
        let crop = || (640u16, 480u16, vx.region_rgb(wx, wy, 640, 480));
        wait_equal(&x, &format!("TigerVNC viewer, {enc}"), WAIT, crop);
        // And an incremental update after a change.
        x.draw_picture(30 + i as u32);
        wait_equal(
            &x,
            &format!("TigerVNC viewer, {enc}, after drawing"),
            WAIT,
            crop,
        );
    }
}

#[test]
fn native_vncsnapshot_zlib_and_tight() {
    require_tool("vncsnapshot", "vncsnapshot");
    // vncsnapshot only writes JPEG (here at quality 100, about 63 dB on this picture), so the
    // comparison is by PSNR; a single wrong 16x16 block already drops it below 40 dB.
    const MIN_PSNR: f64 = 45.0;
    let d = Deskd::start(640, 480, &[]);
    let x = X::connect(&d.display);
    for (i, enc) in ["zlib", "tight", "hextile"].into_iter().enumerate() {
        draw_and_settle(&x, &d, 40 + i as u32);
        let file = tmp(&format!("vncsnapshot-{enc}.jpg"));
        let out = Command::new("vncsnapshot")
            .args([
                "-quiet",
                "-nojpeg",
                "-nocursor",
                "-quality",
                "100",
                "-encodings",
                enc,
            ])
            .arg(format!("127.0.0.1::{}", d.rfb.port()))
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .expect("run vncsnapshot");
        assert!(
            out.status.success(),
            "vncsnapshot {enc} failed: {}{}\ndeskd log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            d.log_text()
        );
        let (w, h, got) = image_rgb(&file);
        let _ = std::fs::remove_file(&file);
        let (xw, xh, want) = x.root_rgb();
        assert_eq!((w, h), (xw, xh), "vncsnapshot {enc} size");
        let p = psnr(&want, &got);
        eprintln!("vncsnapshot {enc}: PSNR {p:.1} dB against X");
        assert!(
            p >= MIN_PSNR,
            "vncsnapshot {enc}: PSNR {p:.1} dB < {MIN_PSNR} dB"
        );
    }
}

#[test]
fn eight_clients_and_one_that_never_reads() {
    let d = Deskd::start(1024, 768, &[]);
    let x = X::connect(&d.display);
    x.draw_picture(50);
    let clients: Vec<RawClient> = (0..8).map(|_| RawClient::connect(d.rfb)).collect();
    for (i, c) in clients.iter().enumerate() {
        wait_equal(&x, &format!("client {i} initial"), WAIT, || c.pixels());
    }

    // Asks for a thousand full frames and never reads one.
    let _stalled = stalled_client(d.rfb);
    // Let deskd fill the stalled socket's buffers before taking the baseline.
    for seed in 0..10 {
        x.draw_picture(60 + seed);
    }
    for (i, c) in clients.iter().enumerate() {
        wait_equal(
            &x,
            &format!("client {i} once the stalled client stalls"),
            WAIT,
            || c.pixels(),
        );
    }
    let baseline = d.rss_kib();

    // Keep the whole screen changing: 150 full frames, about 450 MB of raw pixels the stalled
    // client asked for, while the others must keep up.
    let mut peak = baseline;
    let started: Vec<usize> = clients
        .iter()
        .map(|c| c.updates.load(std::sync::atomic::Ordering::Relaxed))
        .collect();
    for seed in 0..150 {
        x.draw_picture(100 + seed);
        if seed % 10 == 0 {
            peak = peak.max(d.rss_kib());
        }
    }
    for (i, c) in clients.iter().enumerate() {
        wait_equal(
            &x,
            &format!("client {i} after the stalled period"),
            WAIT,
            || c.pixels(),
        );
        let got = c.updates.load(std::sync::atomic::Ordering::Relaxed) - started[i];
        assert!(
            got > 0,
            "client {i} got no update while the stalled client stalled"
        );
    }
    peak = peak.max(d.rss_kib());
    let growth_mib = peak.saturating_sub(baseline) / 1024;
    eprintln!(
        "deskd RSS: baseline {} MiB, peak {} MiB",
        baseline / 1024,
        peak / 1024
    );
    assert!(
        growth_mib < 64,
        "deskd grew by {growth_mib} MiB while one client stalled (baseline {} MiB)",
        baseline / 1024
    );
    // deskd still accepts and serves a new client.
    let late = RawClient::connect(d.rfb);
    wait_equal(&x, "a client connecting after the stall", WAIT, || {
        late.pixels()
    });
}

/// TigerVNC's viewer with JPEG at quality 6 (its Tight settings, not auto-selected): after
/// a few photo-like frames in a row and stillness, lossless refresh makes its window equal to
/// X pixel for pixel. Then the X bell rings the viewer's bell on its own X server.
#[test]
fn tigervnc_viewer_jpeg_becomes_exact_and_rings() {
    require_tool("xkbbell", "x11-xkb-utils");
    let d = Deskd::start(640, 480, &[]);
    let x = X::connect(&d.display);
    let (_viewer_x, viewer_display) = bare_xvfb(800, 600, &[]);
    let vx = X::connect(&viewer_display);
    let bells = e2e_support::BellCounter::start(&viewer_display);
    let _viewer = e2e_support::tigervnc_viewer(
        &viewer_display,
        d.rfb,
        &[
            "-AutoSelect=0",
            "-PreferredEncoding=Tight",
            "-QualityLevel=6",
            "-ViewOnly",
            "-geometry",
            "640x480+0+0",
        ],
    );
    let (wx, wy) = vx.wait_window(640, 480, WAIT);
    let crop = || (640u16, 480u16, vx.region_rgb(wx, wy, 640, 480));
    // Motion: pictures in a row, then the screen stays still.
    for seed in 40..44 {
        x.draw_picture(seed);
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_equal(&x, "TigerVNC viewer (JPEG) once still", WAIT, crop);

    let before = bells.count();
    let st = d.x_command("xkbbell").status().unwrap();
    assert!(st.success(), "xkbbell failed");
    let deadline = std::time::Instant::now() + WAIT;
    while bells.count() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the viewer never rang its bell; deskd log:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
