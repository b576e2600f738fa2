//! Cost of a capture write into the FrameStore at 1920x1080 with 0, 1 and 8 readers holding
//! the newest frame (sessions encoding it, a screenshot, a recording), for a 64x64 change, a
//! quarter-screen change and a full-screen change. The peer, measured in the same run, is what
//! a write cost before the frame pool when any reader held the frame: a whole-frame copy plus
//! the write. Also counts the writes that still had to copy the whole frame.
//!
//! `cargo bench --bench frame_store`

use std::sync::Arc;
use std::time::{Duration, Instant};

use deskd::capture::{Frame, FrameStore};
use rfb::{Rect, Region};

const W: u16 = 1920;
const H: u16 = 1080;
const ROUNDS: usize = 200;

fn paint(f: &mut Frame, r: Rect, c: u8) {
    let n = usize::from(r.w) * 4;
    for y in usize::from(r.y)..usize::from(r.y + r.h) {
        let i = y * f.stride + usize::from(r.x) * 4;
        f.data[i..i + n].fill(c);
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> String {
    format!("{:.1} us", d.as_secs_f64() * 1e6)
}

fn main() {
    println!(
        "{:<14} {:>8} {:>12} {:>16} {:>8} {:>12}",
        "change", "readers", "write p50", "old (copy+write)", "ratio", "full copies"
    );
    for (name, rect) in [
        ("64x64", Rect::new(500, 300, 64, 64)),
        ("quarter", Rect::new(0, 0, W / 2, H / 2)),
        ("full screen", Rect::new(0, 0, W, H)),
    ] {
        for readers in [0usize, 1, 8] {
            let store = FrameStore::new(W, H);
            let mut held: Vec<Arc<Frame>> = Vec::new();
            let mut times = Vec::with_capacity(ROUNDS);
            let mut old = Vec::with_capacity(ROUNDS);
            for i in 0..ROUNDS {
                let c = i as u8;
                let t = Instant::now();
                store.write(&Region::from_rect(rect), |f| paint(f, rect, c));
                times.push(t.elapsed());
                // Readers move on to the newest frame and drop the one they held.
                held.clear();
                for _ in 0..readers {
                    held.push(store.snapshot().1);
                }
                if readers > 0 {
                    // What the same write cost before: copy the whole frame, then write.
                    let src = store.snapshot().1;
                    let t = Instant::now();
                    let mut copy = (*src).clone();
                    paint(&mut copy, rect, c);
                    old.push(t.elapsed());
                    std::hint::black_box(&copy);
                }
            }
            let p50 = median(times);
            let (old_s, ratio) = if readers == 0 {
                ("-".to_string(), "-".to_string())
            } else {
                let o = median(old);
                (us(o), format!("{:.2}", p50.as_secs_f64() / o.as_secs_f64()))
            };
            println!(
                "{:<14} {:>8} {:>12} {:>16} {:>8} {:>12}",
                name,
                readers,
                us(p50),
                old_s,
                ratio,
                store.full_copies()
            );
        }
    }
}
