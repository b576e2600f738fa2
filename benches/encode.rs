//! Encoder benchmarks: time per frame, bytes per frame, MB/s and compression ratio for each
//! encoding and setting, on full 1280x800 and 1920x1080 frames of generated content (desktop
//! with text windows and a terminal, photo-like still, plain background with windows) and on
//! small damage (a 200x20 text line, a 64x64 tile, a 16x16 cursor area).
//!
//! `cargo bench --bench encode` prints a summary table (medians of our own timing loop, one
//! line per case: wall-clock time, and on-CPU time of the encoding thread, which stays honest
//! when other processes share the cores) and then runs the same cases under criterion. Set
//! ENCODE_BENCH_QUICK=1 to print the table only, ENCODE_BENCH_FILTER=text to run only the
//! cases whose "setting content" label contains the text.

#![allow(clippy::expect_used)]

#[path = "data/content.rs"]
mod content;

use content::Image;
use criterion::{black_box, Criterion};
use rfb::encoding::shared;
use rfb::encoding::{self, EncodeError, EncodeParams, Encoded, Encoder, FrameView};
use rfb::Rect;
use std::time::{Duration, Instant};

fn view(img: &Image) -> FrameView<'_> {
    FrameView {
        data: &img.data,
        width: img.width,
        height: img.height,
        stride: img.stride(),
    }
}

struct Setting {
    name: &'static str,
    make: fn() -> Box<dyn Encoder>,
    params: EncodeParams,
}

fn settings() -> Vec<Setting> {
    let base = EncodeParams::default();
    let q6 = EncodeParams {
        quality_level: Some(6),
        ..base
    };
    vec![
        Setting {
            name: "raw",
            make: || Box::new(encoding::raw::RawEncoder::new()),
            params: base,
        },
        Setting {
            name: "zlib",
            make: || Box::new(encoding::zlib::ZlibEncoder::new()),
            params: base,
        },
        Setting {
            name: "hextile",
            make: || Box::new(encoding::hextile::HextileEncoder::new()),
            params: base,
        },
        Setting {
            name: "zrle",
            make: || Box::new(encoding::zrle::ZrleEncoder::new()),
            params: base,
        },
        Setting {
            name: "tight",
            make: || Box::new(encoding::tight::TightEncoder::new()),
            params: base,
        },
        Setting {
            name: "tight-jpeg-q6",
            make: || Box::new(encoding::tight::TightEncoder::new()),
            params: q6,
        },
        Setting {
            name: "tightpng",
            make: || Box::new(encoding::tight::TightEncoder::new_png()),
            params: base,
        },
        Setting {
            name: "tight-pieces",
            make: || Box::new(Pieces(encoding::tight::TightEncoder::new())),
            params: base,
        },
        Setting {
            name: "tight-jpeg-q6-pieces",
            make: || Box::new(Pieces(encoding::tight::TightEncoder::new())),
            params: q6,
        },
    ]
}

/// Tight as the encode service sends it: the update cut on the sharing grid, every piece
/// encoded on its own (what the piece cache holds), zlib data on streams reset per rect.
struct Pieces(encoding::tight::TightEncoder);

impl Encoder for Pieces {
    fn encoding(&self) -> i32 {
        self.0.encoding()
    }

    fn encode(
        &mut self,
        frame: &FrameView<'_>,
        rects: &[Rect],
        params: &EncodeParams,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, EncodeError> {
        shared::encode_in_pieces(&mut self.0, frame, rects, params, out)
    }
}

struct Case {
    name: String,
    img: Image,
    rect: Rect,
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (w, h) in [(1280u16, 800u16), (1920, 1080)] {
        for (kind, img) in [
            ("desktop", content::desktop(w, h)),
            ("photo", content::photo(w, h)),
            ("windows", content::windows(w, h)),
        ] {
            v.push(Case {
                name: format!("{kind} {w}x{h}"),
                rect: Rect::new(0, 0, w, h),
                img,
            });
        }
    }
    let d = content::desktop(1920, 1080);
    // A line of text inside the editor window, a tile of it, and a cursor-sized area.
    for (name, rect) in [
        ("text line 200x20", Rect::new(140, 300, 200, 20)),
        ("tile 64x64", Rect::new(140, 300, 64, 64)),
        ("cursor 16x16", Rect::new(150, 310, 16, 16)),
    ] {
        v.push(Case {
            name: name.to_string(),
            img: Image {
                width: d.width,
                height: d.height,
                data: d.data.clone(),
            },
            rect,
        });
    }
    v
}

/// Nanoseconds this thread has spent on a CPU (Linux schedstat): unlike wall-clock time it
/// does not count time the thread waited for a core, so it stays meaningful on a busy machine
/// (its resolution may be a scheduler tick, hence the batches below).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Median wall time and median on-CPU time of the calling thread per encode (samples of
/// `batch` encodes, after a warm-up), and the bytes of one encode.
fn measure(s: &Setting, c: &Case, samples: usize, batch: usize) -> (Duration, Duration, usize) {
    let mut enc = (s.make)();
    let frame = view(&c.img);
    let mut out = Vec::with_capacity(c.img.data.len() + 1024);
    enc.encode(&frame, &[c.rect], &s.params, &mut out)
        .expect("encode");
    let bytes = out.len();
    let mut wall = Vec::with_capacity(samples);
    let mut cpu = Vec::with_capacity(samples);
    for _ in 0..samples {
        let (t, c0) = (Instant::now(), thread_cpu_ns());
        for _ in 0..batch {
            out.clear();
            enc.encode(&frame, &[c.rect], &s.params, &mut out)
                .expect("encode");
            black_box(&out);
        }
        cpu.push(Duration::from_nanos((thread_cpu_ns() - c0) / batch as u64));
        wall.push(t.elapsed() / batch as u32);
    }
    wall.sort();
    cpu.sort();
    (wall[samples / 2], cpu[samples / 2], bytes)
}

fn fmt_time(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 1e-3 {
        format!("{:.2} ms", secs * 1e3)
    } else {
        format!("{:.1} us", secs * 1e6)
    }
}

fn main() {
    let cases = cases();
    let settings = settings();
    let only = std::env::var("ENCODE_BENCH_FILTER").ok();
    println!(
        "{:<24} {:<20} {:>10} {:>10} {:>11} {:>8} {:>9}",
        "encoding", "content", "wall", "cpu", "bytes", "ratio", "MB/s"
    );
    for s in &settings {
        for c in &cases {
            let label = format!("{} {}", s.name, c.name);
            if only.as_ref().is_some_and(|f| !label.contains(f.as_str())) {
                continue;
            }
            let raw = c.rect.area() as f64 * 4.0;
            // The kernel's on-CPU clock here ticks in milliseconds: batch full frames so a
            // sample spans ~100 ms; small rects are timed by wall clock (median of short
            // samples, which rarely see preemption).
            let big = c.rect.area() > 100_000;
            let (samples, batch) = if big { (9, 10) } else { (31, 20) };
            let (wall, cpu, bytes) = measure(s, c, samples, batch);
            // MB/s of source pixels per on-CPU second (every setting runs on this thread).
            let use_cpu = big;
            let t = if use_cpu { cpu } else { wall };
            println!(
                "{:<24} {:<20} {:>10} {:>10} {:>11} {:>8.1} {:>9.0}",
                s.name,
                c.name,
                fmt_time(wall),
                if use_cpu {
                    fmt_time(cpu)
                } else {
                    "-".to_string()
                },
                bytes,
                raw / bytes as f64,
                raw / t.as_secs_f64() / 1e6
            );
        }
    }
    if std::env::var_os("ENCODE_BENCH_QUICK").is_some() {
        return;
    }
    let mut crit = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    for s in &settings {
        let mut group = crit.benchmark_group(s.name);
        for c in &cases {
            let label = format!("{} {}", s.name, c.name);
            if only.as_ref().is_some_and(|f| !label.contains(f.as_str())) {
                continue;
            }
            let mut enc = (s.make)();
            let frame = view(&c.img);
            let mut out = Vec::with_capacity(c.img.data.len() + 1024);
            group.bench_function(c.name.as_str(), |b| {
                b.iter(|| {
                    out.clear();
                    enc.encode(&frame, &[c.rect], &s.params, &mut out)
                        .expect("encode");
                    black_box(out.len())
                })
            });
        }
        group.finish();
    }
    crit.final_summary();
}
