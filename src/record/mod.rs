//! Screen recording to fragmented MP4 from deskd's own capture path.
//!
//! One [`Recorder`] per desktop; at most one recording runs at a time. A recording thread (off
//! the async runtime) waits for new frame versions, encodes them with [`crate::video`]'s H.264
//! encoder, at most `fps` times a second, and appends fragments of at most about a second
//! (see [`timeline`]), so a crash or `kill -9` loses at most about a second and a still screen
//! writes nothing. Sample times are the frames' capture times.
//!
//! **Resize:** a file has one size, so a screen size change completes the current recording
//! and continues in a new one (a new id, listed with status `recording`) from the first frame
//! of the new size; [`Recorder::stop`] stops whichever is running.
//!
//! Files live in the directory given to [`Recorder::new`] (deskd passes
//! `<state dir>/recordings`) as `<id>.mp4`, with `<id>.json` holding the [`RecordingInfo`], so
//! recordings survive a restart; one interrupted by a crash is listed as completed with an
//! error saying so, and plays up to its last fragment.
//!
//! For the HTTP layer: [`Recorder::start`] is quick; [`Recorder::stop`] and
//! [`Recorder::delete`] wait for the recording thread to write its last fragment (tens of
//! milliseconds), so call them from `spawn_blocking`.

pub mod fmp4;
pub mod timeline;
mod worker;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::capture::FrameSource;

/// Limits on recordings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    /// Largest file; a recording reaching it stops (completed, with a note in `error`).
    pub max_file_bytes: u64,
    /// Largest total of all recordings kept; `start` refuses beyond it.
    pub max_total_bytes: u64,
    /// Highest frame rate a recording may ask for.
    pub max_fps: u32,
}

impl Default for RecordLimits {
    fn default() -> Self {
        RecordLimits {
            max_file_bytes: 2 << 30,
            max_total_bytes: 8 << 30,
            max_fps: 60,
        }
    }
}

/// How to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartOptions {
    /// At most this many frames a second (frames are written only when the screen changes).
    pub fps: u32,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions { fps: 30 }
    }
}

/// Where a recording is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingStatus {
    /// Being written.
    Recording,
    /// Finished; the file is complete.
    Completed,
    /// Stopped by an error (see `error`); the file plays up to its last fragment.
    Failed,
}

/// A recording and its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingInfo {
    /// Identifier (letters, digits and `-`), also the file's stem.
    pub id: String,
    /// The file's name inside the recordings directory.
    pub file_name: String,
    /// Recording, completed or failed.
    pub status: RecordingStatus,
    /// When recording started.
    pub started_at: SystemTime,
    /// When it ended.
    pub ended_at: Option<SystemTime>,
    /// Length of the video.
    pub duration_ms: u64,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// Video width (the screen's, rounded up to even).
    pub width: u16,
    /// Video height.
    pub height: u16,
    /// Samples written (one per screen change, at most `fps` a second).
    pub frames: u64,
    /// Why it failed or stopped early.
    pub error: Option<String>,
}

/// Why a recording operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A recording is already running (its id), or the recording asked for is running.
    #[error("a recording is already in progress: {0}")]
    Conflict(String),
    /// `stop` without a running recording.
    #[error("no recording is in progress")]
    NotRecording,
    /// No recording with this id.
    #[error("recording {0:?} not found")]
    NotFound(String),
    /// Bad start options.
    #[error("invalid recording options: {0}")]
    Invalid(String),
    /// The recordings kept already use the space allowed.
    #[error("recordings use {used} bytes, at the limit of {limit} bytes: delete some first")]
    QuotaExceeded {
        /// Bytes used.
        used: u64,
        /// The limit.
        limit: u64,
    },
    /// The disk is full.
    #[error("disk full: {0}")]
    DiskFull(String),
    /// Any other filesystem error.
    #[error("{0}")]
    Io(String),
}

impl RecordError {
    fn io(what: &str, path: &Path, e: &std::io::Error) -> RecordError {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            RecordError::DiskFull(format!("no space left on device {what} {}", path.display()))
        } else {
            RecordError::Io(format!("{what} {}: {e}", path.display()))
        }
    }
}

/// The recordings of one desktop. Cheap to clone (shared).
#[derive(Clone)]
pub struct Recorder {
    shared: Arc<Shared>,
}

struct Shared {
    frames: Arc<dyn FrameSource>,
    dir: PathBuf,
    limits: RecordLimits,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    infos: BTreeMap<String, RecordingInfo>,
    active: Option<Active>,
    next_run: u64,
}

struct Active {
    run: u64,
    stop: tokio::sync::watch::Sender<bool>,
    /// Returns the id of the recording running when it ended (a resize changes it).
    thread: JoinHandle<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Change a recording's info (in memory).
    fn update(&self, id: &str, f: impl FnOnce(&mut RecordingInfo)) {
        if let Some(info) = self.lock().infos.get_mut(id) {
            f(info);
        }
    }

    /// Save a recording's info beside its file (at its start and end).
    fn save_info(&self, id: &str) {
        let Some(info) = self.lock().infos.get(id).cloned() else {
            return;
        };
        self.save(&info);
    }

    fn save(&self, info: &RecordingInfo) {
        let path = self.dir.join(format!("{}.json", info.id));
        let write = serde_json::to_vec_pretty(info)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(&path, json));
        if let Err(e) = write {
            tracing::warn!(path = %path.display(), "cannot save recording info: {e}");
        }
    }

    /// The recording thread of run `run` ended on its own (error or size limit).
    fn ended(&self, run: u64) {
        let mut s = self.lock();
        if s.active.as_ref().is_some_and(|a| a.run == run) {
            // Detach: the thread is returning.
            s.active = None;
        }
    }
}

impl Recorder {
    /// Recordings of `frames` kept in `dir` (created owner-only by the first recording; earlier
    /// recordings found there are listed).
    pub fn new(frames: Arc<dyn FrameSource>, dir: PathBuf, limits: RecordLimits) -> Recorder {
        let mut infos = BTreeMap::new();
        for info in load_infos(&dir) {
            infos.insert(info.id.clone(), info);
        }
        Recorder {
            shared: Arc::new(Shared {
                frames,
                dir,
                limits,
                state: Mutex::new(State {
                    infos,
                    ..State::default()
                }),
            }),
        }
    }

    /// Start recording. `Conflict` if a recording is running.
    pub fn start(&self, opts: StartOptions) -> Result<RecordingInfo, RecordError> {
        let limits = self.shared.limits;
        if opts.fps == 0 || opts.fps > limits.max_fps {
            return Err(RecordError::Invalid(format!(
                "fps must be 1..={}, got {}",
                limits.max_fps, opts.fps
            )));
        }
        let mut s = self.shared.lock();
        if s.active.is_some() {
            let id = s
                .infos
                .values()
                .find(|i| i.status == RecordingStatus::Recording)
                .map_or_else(String::new, |i| i.id.clone());
            return Err(RecordError::Conflict(id));
        }
        let used: u64 = s.infos.values().map(|i| i.size_bytes).sum();
        if used >= limits.max_total_bytes {
            return Err(RecordError::QuotaExceeded {
                used,
                limit: limits.max_total_bytes,
            });
        }
        crate::state_dir::ensure(&self.shared.dir).map_err(RecordError::Io)?;
        let (_, frame) = self.shared.frames.store().snapshot();
        let info = new_info(&s.infos, frame.width, frame.height);
        let file = worker::OutputFile::create(&self.shared.dir, &info.file_name)?;
        s.infos.insert(info.id.clone(), info.clone());
        s.next_run += 1;
        let run = s.next_run;
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let shared = Arc::clone(&self.shared);
        let budget = limits.max_file_bytes.min(limits.max_total_bytes - used);
        let first_id = info.id.clone();
        let thread = std::thread::Builder::new()
            .name("deskd-record".into())
            .spawn(move || {
                let id = worker::run(&shared, first_id, file, opts, budget, stop_rx);
                shared.ended(run);
                id
            })
            .map_err(|e| RecordError::Io(format!("cannot start the recording thread: {e}")))?;
        s.active = Some(Active { run, stop, thread });
        drop(s);
        self.shared.save(&info);
        Ok(info)
    }

    /// Stop the running recording and return it, complete. Waits for its last fragment.
    pub fn stop(&self) -> Result<RecordingInfo, RecordError> {
        let active = self
            .shared
            .lock()
            .active
            .take()
            .ok_or(RecordError::NotRecording)?;
        active.stop.send_replace(true);
        let id = active
            .thread
            .join()
            .map_err(|_| RecordError::Io("the recording thread panicked".into()))?;
        self.get(&id).ok_or(RecordError::NotFound(id))
    }

    /// Every recording, oldest first.
    pub fn list(&self) -> Vec<RecordingInfo> {
        let mut v: Vec<RecordingInfo> = self.shared.lock().infos.values().cloned().collect();
        v.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
        v
    }

    /// One recording.
    pub fn get(&self, id: &str) -> Option<RecordingInfo> {
        self.shared.lock().infos.get(id).cloned()
    }

    /// The path of a recording's file, for download. A running recording's file is valid
    /// up to its last fragment.
    pub fn file(&self, id: &str) -> Result<PathBuf, RecordError> {
        let info = self
            .get(id)
            .ok_or_else(|| RecordError::NotFound(id.to_string()))?;
        let path = self.shared.dir.join(&info.file_name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(RecordError::NotFound(id.to_string()))
        }
    }

    /// Delete a recording and its file. `Conflict` while it is being recorded.
    pub fn delete(&self, id: &str) -> Result<(), RecordError> {
        let mut s = self.shared.lock();
        let info = s
            .infos
            .get(id)
            .ok_or_else(|| RecordError::NotFound(id.to_string()))?;
        if info.status == RecordingStatus::Recording && s.active.is_some() {
            return Err(RecordError::Conflict(id.to_string()));
        }
        let file = self.shared.dir.join(&info.file_name);
        let json = self.shared.dir.join(format!("{id}.json"));
        for path in [&file, &json] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(RecordError::io("deleting", path, &e)),
            }
        }
        s.infos.remove(id);
        Ok(())
    }

    /// The recordings directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }
}

/// A new recording's info: an id from the time (sortable, safe as a file name).
fn new_info(existing: &BTreeMap<String, RecordingInfo>, width: u16, height: u16) -> RecordingInfo {
    let now = SystemTime::now();
    let stamp = rfc3339(now).replace([':', '-', '.', 'Z'], "");
    let mut id = format!("rec-{stamp}");
    let mut n = 1;
    while existing.contains_key(&id) {
        n += 1;
        id = format!("rec-{stamp}-{n}");
    }
    RecordingInfo {
        file_name: format!("{id}.mp4"),
        id,
        status: RecordingStatus::Recording,
        started_at: now,
        ended_at: None,
        duration_ms: 0,
        size_bytes: 0,
        width: width + (width & 1),
        height: height + (height & 1),
        frames: 0,
        error: None,
    }
}

/// Recordings saved in `dir` by an earlier run. One still marked as recording was cut short
/// by a crash: its file plays up to its last fragment.
fn load_infos(dir: &Path) -> Vec<RecordingInfo> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Some(mut info) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<RecordingInfo>(&b).ok())
        else {
            continue;
        };
        if !valid_id(&info.id) || info.file_name != format!("{}.mp4", info.id) {
            continue;
        }
        let Ok(meta) = std::fs::metadata(dir.join(&info.file_name)) else {
            continue;
        };
        info.size_bytes = meta.len();
        if info.status == RecordingStatus::Recording {
            info.status = RecordingStatus::Completed;
            info.ended_at = meta.modified().ok();
            info.error = Some("interrupted: deskd stopped while recording".into());
        }
        out.push(info);
    }
    out
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `t` as an RFC 3339 UTC timestamp with milliseconds, e.g. `2026-12-01T23:26:41.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_formats() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_994_801_123);
        assert_eq!(rfc3339(t), "2026-11-29T23:26:41.123Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn ids_are_file_safe() {
        assert!(valid_id("rec-20261201T232641123"));
        assert!(!valid_id("../etc"));
        assert!(!valid_id(""));
        let info = new_info(&BTreeMap::new(), 641, 480);
        assert!(info.id.starts_with("rec-") && !info.id.contains(':'));
        assert_eq!((info.width, info.height), (642, 480));
    }
}
