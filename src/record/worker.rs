//! The recording thread: waits for frame versions, encodes, and appends fragments.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use super::fmp4::{self, TIMESCALE};
use super::timeline::Timeline;
use super::{RecordError, RecordingStatus, Shared, StartOptions};
use crate::capture::Frame;
use crate::video::{H264Encoder, H264Settings};

/// A recording file being written.
pub(super) struct OutputFile {
    path: PathBuf,
    file: File,
    written: u64,
}

impl OutputFile {
    /// Create `dir/name` (refusing to overwrite).
    pub(super) fn create(dir: &Path, name: &str) -> Result<OutputFile, RecordError> {
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| RecordError::io("creating", &path, &e))?;
        Ok(OutputFile {
            path,
            file,
            written: 0,
        })
    }

    /// Append whole segments. A partial write leaves a truncated last fragment, which players
    /// skip.
    fn append(&mut self, bytes: &[u8]) -> Result<(), RecordError> {
        self.file
            .write_all(bytes)
            .map_err(|e| RecordError::io("writing", &self.path, &e))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn sync(&mut self) {
        if let Err(e) = self.file.sync_data() {
            tracing::warn!(path = %self.path.display(), "recording sync: {e}");
        }
    }
}

/// How a file's writing ended.
enum End {
    /// Stop requested.
    Stopped,
    /// The screen size changed: continue in a new file.
    Resized,
    /// The size limit was reached.
    Limit,
    /// Writing failed.
    Failed(RecordError),
}

/// One file in progress: its encoder state and timeline.
struct Segment {
    id: String,
    out: OutputFile,
    /// Size of the file's picture (even), fixed at its first frame.
    size: Option<(u16, u16)>,
    timeline: Timeline,
    /// Capture instant of time 0.
    origin: Instant,
    sequence: u32,
    frames: u64,
    budget: u64,
}

impl Segment {
    fn ticks(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.origin);
        (d.as_nanos() * u128::from(TIMESCALE) / 1_000_000_000) as u64
    }

    /// Write a fragment; `Err` ends the file.
    fn write(&mut self, samples: Option<Vec<fmp4::Sample>>) -> Result<(), End> {
        let Some(samples) = samples else {
            return Ok(());
        };
        self.sequence += 1;
        let bytes = fmp4::media_segment(self.sequence, &samples)
            .map_err(|e| End::Failed(RecordError::Io(e.to_string())))?;
        if self.out.written + bytes.len() as u64 > self.budget {
            return Err(End::Limit);
        }
        self.out.append(&bytes).map_err(End::Failed)?;
        self.frames += samples.len() as u64;
        Ok(())
    }

    fn report(&self, shared: &Shared, now: u64) {
        let (frames, size, duration_ms) = (
            self.frames,
            self.out.written,
            self.timeline.end(now) * 1000 / u64::from(TIMESCALE),
        );
        let size_wh = self.size;
        shared.update(&self.id, |i| {
            i.frames = frames;
            i.size_bytes = size;
            i.duration_ms = duration_ms;
            if let Some((w, h)) = size_wh {
                (i.width, i.height) = (w, h);
            }
        });
    }
}

/// Record until stopped; returns the id of the recording running at the end.
pub(super) fn run(
    shared: &Arc<Shared>,
    id: String,
    out: OutputFile,
    opts: StartOptions,
    budget: u64,
    mut stop: watch::Receiver<bool>,
) -> String {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let note = Some(format!("cannot start the recording thread: {e}"));
            finish_info(shared, &id, RecordingStatus::Failed, note);
            return id;
        }
    };
    let store = Arc::clone(shared.frames.store());
    let mut versions = store.subscribe();
    let interval = Duration::from_secs(1) / opts.fps.max(1);
    let mut encoder = match H264Encoder::new(H264Settings {
        max_fps: opts.fps as f32,
        // A recording shows a still screen for long (no lossless refresh follows): keep text
        // sharper than live video needs.
        qp_min: 16,
        qp_max: 28,
        ..H264Settings::default()
    }) {
        Ok(e) => e,
        Err(e) => {
            finish_info(shared, &id, RecordingStatus::Failed, Some(e.to_string()));
            return id;
        }
    };
    let mut seg = Segment {
        id,
        out,
        size: None,
        timeline: Timeline::new(),
        origin: Instant::now(),
        sequence: 0,
        frames: 0,
        budget,
    };
    let mut budget_left = budget;
    let mut last_version = 0u64;
    let mut next_sample = Instant::now();
    let mut changed = true; // the screen as it is at start is the first frame
    let mut stopping = false;

    loop {
        let now = Instant::now();
        // Sample the newest frame if it changed and the fps cap allows.
        let mut end = None;
        if changed && now >= next_sample {
            changed = false;
            let (version, frame, captured) = store.snapshot_timed();
            if version != last_version {
                last_version = version;
                next_sample = now + interval;
                // The first frame of a file is stamped at the file's start.
                match sample(&mut seg, &mut encoder, &frame, captured) {
                    Ok(()) => {}
                    Err(e) => end = Some(e),
                }
            }
        }
        if end.is_none() {
            let t = seg.ticks(Instant::now());
            let due = seg.timeline.poll(t);
            end = seg.write(due).err();
            seg.report(shared, t);
        }
        if end.is_none() && (stopping || *stop.borrow()) {
            if seg.timeline.is_idle() && seg.size.is_some() {
                // Still since the last fragment: show the screen once more at the stop time,
                // so the video lasts as long as the recording did (an unchanged picture
                // encodes to a few bytes).
                let (_, frame, _) = store.snapshot_timed();
                if let Err(e) = sample(&mut seg, &mut encoder, &frame, Instant::now()) {
                    end = Some(e);
                }
            }
            end = end.or(Some(End::Stopped));
        }
        if let Some(end) = end {
            match close(shared, &mut seg, end) {
                Some(next) => {
                    // Resized: continue in a new recording.
                    budget_left = budget_left.saturating_sub(seg.out.written);
                    match open_next(shared, budget_left) {
                        Ok((id, out)) => {
                            seg = Segment {
                                id,
                                out,
                                size: None,
                                timeline: Timeline::new(),
                                origin: next,
                                sequence: 0,
                                frames: 0,
                                budget: budget_left,
                            };
                            encoder.request_key_frame();
                            changed = true;
                            last_version = 0;
                            next_sample = Instant::now();
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!("recording cannot continue after a resize: {e}");
                            return seg.id;
                        }
                    }
                }
                None => return seg.id,
            }
        }
        // Wait for a change, the next fragment, the fps cap, or stop.
        let fragment_due = seg
            .timeline
            .deadline()
            .map(|d| seg.origin + Duration::from_nanos(d * 1_000_000_000 / u64::from(TIMESCALE)));
        let sample_due = changed.then_some(next_sample);
        let deadline = [fragment_due, sample_due].into_iter().flatten().min();
        rt.block_on(async {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = versions.changed() => {
                    if r.is_ok() {
                        changed = true;
                    }
                }
                // A dropped sender (the recorder is gone) also stops.
                r = stop.changed() => stopping |= r.is_err(),
                _ = sleep => {}
            }
        });
    }
}

/// Encode `frame` into the current file, or end it on a size change.
fn sample(
    seg: &mut Segment,
    encoder: &mut H264Encoder,
    frame: &Frame,
    captured: Instant,
) -> Result<(), End> {
    let size = (
        frame.width + (frame.width & 1),
        frame.height + (frame.height & 1),
    );
    if seg.size.is_some_and(|s| s != size) {
        return Err(End::Resized);
    }
    let t = if seg.size.is_none() {
        0
    } else {
        seg.ticks(captured)
    };
    let encoded = encoder
        .encode(frame, t * 1000 / u64::from(TIMESCALE))
        .map_err(|e| End::Failed(RecordError::Io(e.to_string())))?;
    let au = fmp4::annexb_to_sample(&encoded.data);
    if seg.size.is_none() {
        let (Some(sps), Some(pps)) = (&au.sps, &au.pps) else {
            return Err(End::Failed(RecordError::Io(
                "the encoder's first frame has no SPS/PPS".into(),
            )));
        };
        let init = fmp4::init_segment(encoded.width, encoded.height, sps, pps)
            .map_err(|e| End::Failed(RecordError::Io(e.to_string())))?;
        seg.out.append(&init).map_err(End::Failed)?;
        seg.size = Some(size);
    }
    if !au.data.is_empty() {
        seg.timeline.push(t, encoded.key, au.data);
    }
    Ok(())
}

/// Finish the file; `Some(origin)` when recording should continue in a new file (resize),
/// starting at `origin`.
fn close(shared: &Shared, seg: &mut Segment, end: End) -> Option<Instant> {
    let now = Instant::now();
    let t = seg.ticks(now);
    let tail = seg.timeline.finish(t);
    let end = match end {
        End::Stopped | End::Resized => match seg.write(tail) {
            Ok(()) => end,
            Err(e) => e,
        },
        other => other,
    };
    seg.out.sync();
    seg.report(shared, t);
    let (status, note, next) = match end {
        End::Stopped => (RecordingStatus::Completed, None, None),
        End::Resized => (RecordingStatus::Completed, None, Some(now)),
        End::Limit => (
            RecordingStatus::Completed,
            Some(format!("stopped at the size limit of {} bytes", seg.budget)),
            None,
        ),
        End::Failed(e) => (RecordingStatus::Failed, Some(e.to_string()), None),
    };
    finish_info(shared, &seg.id, status, note);
    next
}

/// Mark a recording ended and save its info.
fn finish_info(shared: &Shared, id: &str, status: RecordingStatus, note: Option<String>) {
    if let Some(note) = &note {
        tracing::warn!(recording = id, "recording ended: {note}");
    }
    shared.update(id, |i| {
        i.ended_at = Some(SystemTime::now());
        i.status = status;
        i.error = note;
    });
    shared.save_info(id);
}

/// Register and create the next recording after a resize.
fn open_next(shared: &Shared, budget: u64) -> Result<(String, OutputFile), RecordError> {
    if budget == 0 {
        return Err(RecordError::QuotaExceeded {
            used: shared.limits.max_total_bytes,
            limit: shared.limits.max_total_bytes,
        });
    }
    let (_, frame) = shared.frames.store().snapshot();
    let info = {
        let mut s = shared.lock();
        let info = super::new_info(&s.infos, frame.width, frame.height);
        s.infos.insert(info.id.clone(), info.clone());
        info
    };
    let out = OutputFile::create(&shared.dir, &info.file_name).inspect_err(|e| {
        finish_info(
            shared,
            &info.id,
            RecordingStatus::Failed,
            Some(e.to_string()),
        );
    })?;
    shared.save_info(&info.id);
    Ok((info.id, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_a_clear_error() {
        // /dev/full answers every write with ENOSPC.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let mut out = OutputFile {
            path: PathBuf::from("/dev/full"),
            file,
            written: 0,
        };
        let e = out.append(&[0; 4096]).unwrap_err();
        assert!(matches!(e, RecordError::DiskFull(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "disk full: no space left on device writing /dev/full"
        );
        assert_eq!(out.written, 0);
    }
}
