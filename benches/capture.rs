//! Capture benchmarks against a real Xvfb (`cargo bench --bench capture`):
//! - full-screen read at 1280x800 and 1920x1080: MIT-SHM (deskd's path), plain GetImage
//!   (the same code without SHM) and ImageMagick `import -window root` (a peer, process start
//!   included);
//! - the full pipeline after a full-screen change (fill sent -> DAMAGE -> read + 64x64 tile
//!   diff + store write -> new version published);
//! - damage-to-frame latency: a separate X client fills a 16x16 square; time from sending it
//!   to the FrameStore publishing the new version (the capture thread, DAMAGE driven).
//!
//! Targets: full-screen 1920x1080 read <= 4 ms; damage-to-frame p50 <= 2 ms.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use deskd::capture::x11::CaptureOptions;
use deskd::display::{self, DisplayOptions, RunningDesktop, WindowManager};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{self, ConnectionExt as _};
use x11rb::wrapper::ConnectionExt as _;

fn start(w: u16, h: u16, shm: bool) -> RunningDesktop {
    display::start(DisplayOptions {
        width: w,
        height: h,
        window_manager: WindowManager::None,
        capture: CaptureOptions {
            use_shm: shm,
            ..CaptureOptions::default()
        },
        ..DisplayOptions::default()
    })
    .expect("Xvfb (install xvfb)")
}

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(v[v.len() / 2]), ms(v[v.len() * 9 / 10]), ms(v[0]))
}

fn report(name: &str, v: Vec<Duration>) {
    let n = v.len();
    let (p50, p90, min) = stats(v);
    println!("{name:<48} p50 {p50:8.3} ms   p90 {p90:8.3} ms   min {min:8.3} ms   (n={n})");
}

/// Paint the whole screen with a pattern that changes every call.
fn paint_full(c: &impl Connection, root: u32, w: u16, h: u16, i: u32) {
    let gc = c.generate_id().unwrap();
    c.create_gc(
        gc,
        root,
        &xproto::CreateGCAux::new().foreground(0x0010_2030u32.wrapping_mul(i + 1) & 0xffffff),
    )
    .unwrap();
    c.poly_fill_rectangle(
        root,
        gc,
        &[xproto::Rectangle {
            x: 0,
            y: 0,
            width: w,
            height: h,
        }],
    )
    .unwrap();
    c.free_gc(gc).unwrap();
    c.flush().unwrap();
}

fn full_screen(w: u16, h: u16) {
    for shm in [true, false] {
        let d = start(w, h, shm);
        let cap = d.capture().clone();
        assert_eq!(cap.features().unwrap().shm, shm);
        let mut frame = cap.read_full_frame().unwrap();
        let mut v = Vec::new();
        for _ in 0..60 {
            let t = Instant::now();
            cap.read_full_into(&mut frame).unwrap();
            v.push(t.elapsed());
            assert_eq!((frame.width, frame.height), (w, h));
        }
        let how = if shm { "MIT-SHM" } else { "GetImage" };
        report(&format!("full-screen read {w}x{h} {how}"), v);
        if shm {
            // Whole pipeline after a full-screen change, through the capture thread.
            let (c, screen) = d.server().connect().unwrap();
            let root = c.setup().roots[screen].root;
            let store = d.desktop.frames.store().clone();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            let mut rx = store.subscribe();
            let mut v = Vec::new();
            for i in 0..40 {
                std::thread::sleep(Duration::from_millis(20));
                rx.borrow_and_update();
                let t = Instant::now();
                paint_full(&c, root, w, h, i);
                rt.block_on(async {
                    tokio::time::timeout(Duration::from_secs(5), rx.changed())
                        .await
                        .unwrap()
                        .unwrap();
                });
                v.push(t.elapsed());
            }
            report(&format!("full-screen change to frame {w}x{h}"), v);
            // Peer: ImageMagick `import -window root` (XGetImage, plus process start and output).
            let mut v = Vec::new();
            for _ in 0..10 {
                let t = Instant::now();
                let st = Command::new("import")
                    .args(["-silent", "-window", "root", "-depth", "8", "rgb:/dev/null"])
                    .envs(d.client_env())
                    .stdout(Stdio::null())
                    .status()
                    .expect("import (install imagemagick)");
                v.push(t.elapsed());
                assert!(st.success());
            }
            report(
                &format!("peer: import -window root {w}x{h} (process incl.)"),
                v,
            );
        }
    }
}

fn damage_latency(w: u16, h: u16) {
    let d = start(w, h, true);
    let store = d.desktop.frames.store().clone();
    let (c, screen) = d.server().connect().unwrap();
    let root = c.setup().roots[screen].root;
    let gc = c.generate_id().unwrap();
    c.create_gc(gc, root, &xproto::CreateGCAux::new()).unwrap();
    c.sync().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut rx = store.subscribe();
    let mut v = Vec::new();
    for i in 0..300u32 {
        std::thread::sleep(Duration::from_millis(20));
        rx.borrow_and_update();
        let x = ((i * 37) % u32::from(w - 16)) as i16;
        let y = ((i * 23) % u32::from(h - 16)) as i16;
        c.change_gc(
            gc,
            &xproto::ChangeGCAux::new().foreground(0x0001_0307u32.wrapping_mul(i + 1) & 0xffffff),
        )
        .unwrap();
        c.poly_fill_rectangle(
            root,
            gc,
            &[xproto::Rectangle {
                x,
                y,
                width: 16,
                height: 16,
            }],
        )
        .unwrap();
        let t = Instant::now();
        c.flush().unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), rx.changed())
                .await
                .expect("damage not captured")
                .unwrap();
        });
        v.push(t.elapsed());
    }
    report(&format!("damage-to-frame 16x16 at {w}x{h}"), v);

    // Idle: nothing changes for 3 s; the whole process (capture, clipboard, supervisor
    // threads) should use next to no CPU.
    let cpu = || {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let f: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let before = cpu();
    std::thread::sleep(Duration::from_secs(3));
    let ticks = cpu() - before;
    println!("idle CPU over 3 s at {w}x{h}: {ticks} clock ticks (1 tick = 10 ms)");
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it:
    // only measure when asked.
    if !std::env::args().any(|a| a == "--bench") {
        println!("capture bench: run with `cargo bench --bench capture`");
        return;
    }
    for (w, h) in [(1280, 800), (1920, 1080)] {
        full_screen(w, h);
        damage_latency(w, h);
    }
}
