//! Screen recording, checked with Debian's ffprobe/ffmpeg: duration, size and codec of a
//! recording, that a frame decoded at time t shows what X showed then (a real Xvfb and deskd
//! process), that a file recorded across a `kill -9` of deskd plays, and that a still screen
//! writes no samples.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../benches/data/content.rs"]
mod content;
mod e2e_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use deskd::capture::synthetic::SyntheticSource;
use deskd::capture::FrameSource;
use deskd::record::{RecordError, RecordLimits, Recorder, RecordingStatus, StartOptions};
use e2e_support::ffmpeg::{decode_all, ffprobe, field, file_duration, Input};
use e2e_support::{psnr, Deskd, X};
use rfb::Rect;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("deskd-rec-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The picture shown at `t` seconds (the last frame starting at or before `t`), as RGB.
fn frame_at(path: &Path, t: f64, w: u16, h: u16) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-vf",
            &format!("select=lte(t\\,{t:.3})"),
            "-fps_mode",
            "passthrough",
            "-enc_time_base",
            "1:90000",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = usize::from(w) * usize::from(h) * 3;
    assert!(out.stdout.len() >= size && out.stdout.len().is_multiple_of(size));
    out.stdout[out.stdout.len() - size..].to_vec()
}

#[test]
fn recording_has_the_wall_duration_size_and_codec_and_idle_costs_nothing() {
    let dir = temp_dir("synthetic");
    let source = Arc::new(SyntheticSource::new(321, 240));
    let rec = Recorder::new(
        Arc::clone(&source) as Arc<dyn FrameSource>,
        dir.clone(),
        RecordLimits::default(),
    );
    let started = Instant::now();
    let info = rec.start(StartOptions { fps: 30 }).unwrap();
    assert_eq!(info.status, RecordingStatus::Recording);
    assert!(matches!(
        rec.start(StartOptions::default()),
        Err(RecordError::Conflict(_))
    ));
    // 1.5 s of animation at ~50 changes a second (the fps cap keeps 30).
    while started.elapsed() < Duration::from_millis(1500) {
        source.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    // Then 2.5 s of stillness: once the last change is written, nothing more.
    std::thread::sleep(Duration::from_millis(1500));
    let busy = rec.get(&info.id).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let idle = rec.get(&info.id).unwrap();
    assert_eq!(idle.frames, busy.frames, "a still screen wrote samples");
    assert_eq!(
        idle.size_bytes, busy.size_bytes,
        "a still screen wrote bytes"
    );
    let done = rec.stop().unwrap();
    let wall = started.elapsed().as_secs_f64();
    assert!(matches!(rec.stop(), Err(RecordError::NotRecording)));

    assert_eq!(done.id, info.id);
    assert_eq!(done.status, RecordingStatus::Completed);
    assert_eq!((done.width, done.height), (322, 240));
    // The fps cap: at most 30 a second of change (plus the first and the one at stop), for
    // changes made every 20 ms (fewer on a loaded machine).
    assert!(
        (10..=48).contains(&done.frames),
        "{} samples for 1.5 s at 30 fps",
        done.frames
    );
    let path = rec.file(&info.id).unwrap();
    assert_eq!(done.size_bytes, std::fs::metadata(&path).unwrap().len());
    let probe = ffprobe(&path, Input::Probe);
    assert_eq!(field(&probe, "codec_name"), "h264");
    assert_eq!(field(&probe, "width"), "322");
    assert_eq!(field(&probe, "height"), "240");
    assert_eq!(field(&probe, "nb_read_frames"), done.frames.to_string());
    let duration: f64 = field(&probe, "duration").parse().unwrap();
    assert!(
        (duration - wall).abs() <= wall * 0.1,
        "duration {duration:.2} s vs wall {wall:.2} s"
    );
    assert!((done.duration_ms as f64 / 1000.0 - duration).abs() < 0.1);
    decode_all(&path, Input::Probe);

    // Listed, survives a new Recorder on the same directory, and deletes.
    assert_eq!(rec.list().len(), 1);
    let again = Recorder::new(source, dir.clone(), RecordLimits::default());
    assert_eq!(
        again.get(&info.id).unwrap().status,
        RecordingStatus::Completed
    );
    again.delete(&info.id).unwrap();
    assert!(!path.exists());
    assert!(matches!(
        again.file(&info.id),
        Err(RecordError::NotFound(_))
    ));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn resize_continues_in_a_new_file() {
    let dir = temp_dir("resize");
    let source = Arc::new(SyntheticSource::new(200, 100));
    let rec = Recorder::new(
        Arc::clone(&source) as Arc<dyn FrameSource>,
        dir.clone(),
        RecordLimits::default(),
    );
    let first = rec.start(StartOptions::default()).unwrap();
    source.fill(Rect::new(0, 0, 50, 50), 0x00ff_0000);
    std::thread::sleep(Duration::from_millis(300));
    source.resize(160, 120).unwrap();
    source.fill(Rect::new(10, 10, 50, 50), 0x0000_ff00);
    std::thread::sleep(Duration::from_millis(500));
    let second = rec.stop().unwrap();
    assert_ne!(second.id, first.id);
    let list = rec.list();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|i| i.status == RecordingStatus::Completed));
    for (info, (w, h)) in [(&list[0], ("200", "100")), (&list[1], ("160", "120"))] {
        let probe = ffprobe(&rec.file(&info.id).unwrap(), Input::Probe);
        assert_eq!((field(&probe, "width"), field(&probe, "height")), (w, h));
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn frames_match_x_and_a_kill_9_leaves_a_playable_file() {
    let state = temp_dir("kill");
    let state_arg = state.to_str().unwrap().to_string();
    let (w, h) = (480u16, 320u16);
    let mut deskd = Deskd::start(w, h, &["--state-dir", &state_arg, "--record"]);
    let x = X::connect(&deskd.display);
    let recordings = state.join("recordings");
    // The recording's info (its start time) appears as the server starts.
    let deadline = Instant::now() + Duration::from_secs(10);
    let info_path = loop {
        let found = std::fs::read_dir(&recordings).ok().and_then(|d| {
            d.flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|e| e == "json"))
        });
        if let Some(p) = found {
            break p;
        }
        assert!(Instant::now() < deadline, "no recording started");
        std::thread::sleep(Duration::from_millis(50));
    };
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&info_path).unwrap()).unwrap();
    let started = SystemTime::UNIX_EPOCH
        + Duration::from_secs(info["startedAt"]["secs_since_epoch"].as_u64().unwrap())
        + Duration::from_nanos(info["startedAt"]["nanos_since_epoch"].as_u64().unwrap());

    // Three screens (text desktop, photo, windows), each still for 1.2 s; X's screen is read
    // in the middle of each.
    let pictures = [
        content::desktop(w, h),
        content::photo(w, h),
        content::windows(w, h),
    ];
    let mut shots = Vec::new();
    for picture in &pictures {
        let rgb: Vec<u8> = picture
            .data
            .chunks_exact(4)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect();
        x.put_rgb(0, 0, w, h, &rgb);
        std::thread::sleep(Duration::from_millis(600));
        let (_, _, rgb) = x.root_rgb();
        let t = SystemTime::now().duration_since(started).unwrap();
        shots.push((t.as_secs_f64(), rgb));
        std::thread::sleep(Duration::from_millis(600));
    }
    // Once the last picture's fragment is on disk (about a second after the change; bounded
    // wait for a loaded machine), kill -9.
    let file = info_path.with_extension("mp4");
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline && file_duration(&file) < shots[2].0 {
        std::thread::sleep(Duration::from_millis(200));
    }
    deskd.proc.0.kill().unwrap();
    deskd.proc.0.wait().unwrap();

    let probe = ffprobe(&file, Input::Probe);
    assert_eq!(field(&probe, "codec_name"), "h264");
    assert_eq!(field(&probe, "width"), w.to_string());
    let duration: f64 = field(&probe, "duration").parse().unwrap();
    assert!(
        duration >= shots[2].0,
        "file ends at {duration:.2} s, before the last picture at {:.2} s",
        shots[2].0
    );
    decode_all(&file, Input::Probe);
    for (i, (t, want)) in shots.iter().enumerate() {
        let got = frame_at(&file, *t, w, h);
        let p = psnr(want, &got);
        eprintln!("picture {i} at {t:.2} s: PSNR {p:.1} dB");
        if p < 35.0 {
            for (name, rgb) in [("x", want), ("video", &got)] {
                let mut ppm = format!("P6 {w} {h} 255\n").into_bytes();
                ppm.extend_from_slice(rgb);
                std::fs::write(format!("/tmp/deskd-record-{i}-{name}.ppm"), ppm).unwrap();
            }
        }
        assert!(
            p >= 35.0,
            "picture {i} at {t:.2} s: PSNR {p:.1} dB (/tmp/deskd-record-{i}-*.ppm)"
        );
    }
    drop(deskd);
    std::fs::remove_dir_all(&state).ok();
}
