//! H.264 (deskd::video, OpenH264 on one thread) against Tight JPEG quality 6 on the same 1920x1080
//! frames of a full-screen continuous change: a text desktop scrolling, and a photo panning
//! (video-like). Prints a table (medians of wall-clock time per frame, on-CPU time of the
//! encoding thread per frame, bytes per frame, share of one core at 30 updates/s), then runs the
//! key-frame and delta-frame encodes under criterion.
//!
//! `cargo bench --bench h264`; H264_BENCH_QUICK=1 prints the table only.
#![allow(clippy::expect_used)]

#[path = "data/content.rs"]
mod content;

use std::time::{Duration, Instant};

use content::Image;
use criterion::{black_box, Criterion};
use deskd::capture::Frame;
use deskd::video::{H264Encoder, H264Settings};
use rfb::encoding::{tight::TightEncoder, EncodeParams, Encoder, FrameView};
use rfb::Rect;

const W: u16 = 1920;
const H: u16 = 1080;
const FRAMES: usize = 30;

/// Nanoseconds this thread has spent on a CPU (Linux schedstat).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// `src` shifted by (dx, dy) with wrap-around: every pixel moves, like scrolling or panning.
fn shifted(src: &Image, dx: usize, dy: usize) -> Frame {
    let (w, h) = (usize::from(src.width), usize::from(src.height));
    let mut data = vec![0u8; w * h * 4];
    for y in 0..h {
        let sy = (y + dy) % h;
        let row = &src.data[sy * w * 4..(sy + 1) * w * 4];
        let out = &mut data[y * w * 4..(y + 1) * w * 4];
        let split = (dx % w) * 4;
        out[..w * 4 - split].copy_from_slice(&row[split..]);
        out[w * 4 - split..].copy_from_slice(&row[..split]);
    }
    Frame {
        width: src.width,
        height: src.height,
        stride: w * 4,
        data,
    }
}

fn sequences() -> Vec<(&'static str, Vec<Frame>)> {
    let desktop = content::desktop(W, H);
    let photo = content::photo(W, H);
    vec![
        (
            "scroll",
            (0..FRAMES).map(|i| shifted(&desktop, 0, i * 16)).collect(),
        ),
        (
            "video",
            (0..FRAMES).map(|i| shifted(&photo, i * 6, i * 3)).collect(),
        ),
    ]
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Row {
    wall: Duration,
    cpu: Duration,
    bytes: usize,
}

/// H.264 over the sequence (after its key frame): per-frame wall median, mean on-CPU time and
/// mean bytes of the delta frames.
fn h264_sequence(frames: &[Frame], rounds: usize) -> (Row, usize) {
    let mut enc = H264Encoder::new(H264Settings::default()).expect("encoder");
    let key = enc.encode(&frames[0], 0).expect("encode").data.len();
    let mut wall = Vec::new();
    let (mut cpu, mut bytes, mut n) = (0u64, 0usize, 0usize);
    for r in 0..rounds {
        for (i, f) in frames.iter().enumerate().skip(1) {
            let (t, c) = (Instant::now(), thread_cpu_ns());
            let out = enc
                .encode(f, ((r * FRAMES + i) * 33) as u64)
                .expect("encode");
            cpu += thread_cpu_ns() - c;
            wall.push(t.elapsed());
            bytes += out.data.len();
            n += 1;
        }
    }
    (
        Row {
            wall: median(wall),
            cpu: Duration::from_nanos(cpu / n as u64),
            bytes: bytes / n,
        },
        key,
    )
}

fn view(f: &Frame) -> FrameView<'_> {
    FrameView {
        data: &f.data,
        width: f.width,
        height: f.height,
        stride: f.stride,
    }
}

fn tight_sequence(frames: &[Frame]) -> Row {
    let mut enc = TightEncoder::new();
    let params = EncodeParams {
        quality_level: Some(6),
        ..EncodeParams::default()
    };
    let mut out = Vec::new();
    let mut wall = Vec::new();
    let (mut cpu, mut bytes) = (0u64, 0usize);
    for f in frames {
        out.clear();
        let (t, c) = (Instant::now(), thread_cpu_ns());
        enc.encode(&view(f), &[Rect::new(0, 0, W, H)], &params, &mut out)
            .expect("encode");
        cpu += thread_cpu_ns() - c;
        wall.push(t.elapsed());
        bytes += out.len();
    }
    Row {
        wall: median(wall),
        cpu: Duration::from_nanos(cpu / frames.len() as u64),
        bytes: bytes / frames.len(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let seqs = sequences();
    println!(
        "{:<8} {:<14} {:>10} {:>10} {:>12} {:>12} {:>14}",
        "content", "encoding", "wall p50", "cpu mean", "bytes/frame", "vs tight", "core @30Hz"
    );
    for (name, frames) in &seqs {
        let tight = tight_sequence(frames);
        let (h264, key_bytes) = h264_sequence(frames, 4);
        for (label, row) in [("tight-jpeg-q6", &tight), ("h264", &h264)] {
            println!(
                "{:<8} {:<14} {:>10} {:>10} {:>12} {:>11.2}x {:>13.0}%",
                name,
                label,
                ms(row.wall),
                ms(row.cpu),
                row.bytes,
                row.bytes as f64 / tight.bytes as f64,
                row.cpu.as_secs_f64() * 30.0 * 100.0
            );
        }
        println!("{name:<8} h264 key frame: {key_bytes} bytes");
    }
    if std::env::var_os("H264_BENCH_QUICK").is_some() {
        return;
    }
    let mut crit = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut group = crit.benchmark_group("h264 1920x1080");
    let desktop = shifted(&content::desktop(W, H), 0, 0);
    group.bench_function("key frame", |b| {
        let mut enc = H264Encoder::new(H264Settings::default()).expect("encoder");
        b.iter(|| {
            enc.request_key_frame();
            black_box(enc.encode(&desktop, 0).expect("encode").data.len())
        })
    });
    for (name, frames) in &seqs {
        group.bench_function(format!("delta frame {name}"), |b| {
            let mut enc = H264Encoder::new(H264Settings::default()).expect("encoder");
            let mut i = 0usize;
            b.iter(|| {
                i += 1;
                let f = &frames[i % frames.len()];
                black_box(enc.encode(f, i as u64 * 33).expect("encode").data.len())
            })
        });
    }
    group.finish();
    crit.final_summary();
}
