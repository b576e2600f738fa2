//! Debian's ffprobe and ffmpeg as independent judges of the H.264 deskd writes: stream facts,
//! error-free decoding and decoded pictures.

use std::path::Path;
use std::process::Command;

use super::require_tool;

/// How ffmpeg reads the input: a container it recognizes, or a raw Annex B stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Let ffmpeg probe (MP4 recordings).
    Probe,
    /// Raw H.264 Annex B (`-f h264`).
    AnnexB,
}

impl Input {
    fn args(self) -> &'static [&'static str] {
        match self {
            Input::Probe => &[],
            Input::AnnexB => &["-f", "h264"],
        }
    }
}

/// `key=value` lines of ffprobe's stream and format sections, with every frame counted
/// (`nb_read_frames`).
pub fn ffprobe(path: &Path, input: Input) -> String {
    require_tool("ffprobe", "ffmpeg");
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(input.args())
        .args(["-show_streams", "-show_format", "-count_frames"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The value of `key` in ffprobe's output.
pub fn field<'a>(probe: &'a str, key: &str) -> &'a str {
    probe
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {probe}"))
}

/// The duration ffprobe reads from a file being written (0 before its first fragment).
pub fn file_duration(path: &Path) -> f64 {
    Command::new("ffprobe")
        .args([
            "-v",
            "quiet",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Decode the whole file, every sample at its own time: no errors allowed (`-xerror`, and
/// nothing on stderr).
pub fn decode_all(path: &Path, input: Input) {
    decode(path, input, &["-f", "null", "-"]);
}

/// Decode every picture into RGB frames of the coded size `cw x ch`, each cropped to `w x h`
/// (the encoder's even padding removed). No errors allowed.
pub fn decode_rgb(
    path: &Path,
    input: Input,
    (cw, ch): (usize, usize),
    (w, h): (usize, usize),
) -> Vec<Vec<u8>> {
    let raw = decode(path, input, &["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]);
    let size = cw * ch * 3;
    assert_eq!(raw.len() % size, 0, "partial frame from ffmpeg");
    raw.chunks(size)
        .map(|f| {
            f.chunks(cw * 3)
                .take(h)
                .flat_map(|row| &row[..w * 3])
                .copied()
                .collect()
        })
        .collect()
}

fn decode(path: &Path, input: Input, output: &[&str]) -> Vec<u8> {
    require_tool("ffmpeg", "ffmpeg");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror"])
        .args(input.args())
        .arg("-i")
        .arg(path)
        // Keep every sample at its own time (recordings have a variable frame rate).
        .args(["-fps_mode", "passthrough", "-enc_time_base", "1:90000"])
        .args(output)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "ffmpeg: {err}"
    );
    out.stdout
}
