//! The H.264 encoder: OpenH264 (built from the `openh264` crate's bundled source) fed straight
//! from framebuffer pixels.
//!
//! Output is Annex B (start-code delimited NAL units), Constrained Baseline, one slice per frame,
//! no B-frames, so every access unit decodes as soon as it arrives and decode order is display
//! order. Key frames (IDR) come only on request or after a size change, each preceded by SPS
//! and PPS, so a decoder can join at any IDR. The SPS carries VUI with full-range BT.601
//! colour, matching [`super::yuv`].

use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    QpRange, RateControlMode, SpsPpsStrategy, UsageType, VuiConfig,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};

use super::yuv::{even, I420};
use crate::capture::Frame;

/// OpenH264 refuses pictures beyond level 5.2 (3840x2160, or 2160x3840 portrait).
const MAX_LONG_SIDE: usize = 3840;
const MAX_SHORT_SIDE: usize = 2160;

/// Why encoding failed.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// The frame is empty or its pixel buffer is shorter than its size says.
    #[error("bad frame: {0}")]
    BadFrame(String),
    /// H.264 (OpenH264) cannot encode pictures this large.
    #[error("{width}x{height} is larger than H.264 encoding supports (3840x2160)")]
    TooLarge {
        /// Width in pixels.
        width: u16,
        /// Height in pixels.
        height: u16,
    },
    /// OpenH264 reported an error.
    #[error("H.264 encoder: {0}")]
    Codec(String),
}

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct H264Settings {
    /// Quality floor and ceiling: the quantizer range (0 best .. 51 worst). The rate control
    /// stays inside it, so a fast-moving screen costs bytes rather than turning to mush. Live
    /// video starts at 26 (OpenH264's own default QP): each finer step costs time and bytes
    /// (from 16: 1.7x the bytes of a moving 1080p photo, benches/h264.rs) for detail the
    /// lossless refresh restores once the screen is still.
    pub qp_min: u8,
    /// See `qp_min`.
    pub qp_max: u8,
    /// Target bitrate for the rate control, bits per second.
    pub bitrate_bps: u32,
    /// The frame rate the rate control plans for.
    pub max_fps: f32,
    /// Encoder threads (1: encode on the caller's thread only).
    pub threads: u16,
}

impl Default for H264Settings {
    fn default() -> Self {
        H264Settings {
            qp_min: 26,
            qp_max: 32,
            bitrate_bps: 8_000_000,
            max_fps: 30.0,
            threads: 1,
        }
    }
}

/// One encoded access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// Annex B bytes: start codes and NAL units (SPS and PPS first on a key frame).
    pub data: Vec<u8>,
    /// An IDR picture: decodable on its own.
    pub key: bool,
    /// Coded width (the source width rounded up to even).
    pub width: u16,
    /// Coded height (the source height rounded up to even).
    pub height: u16,
}

/// An H.264 encoder for one stream (one RFB client, or one recording).
pub struct H264Encoder {
    encoder: Encoder,
    picture: I420,
    key_requested: bool,
    size: Option<(usize, usize)>,
}

/// [`I420`] as OpenH264's input.
struct Source<'a>(&'a I420);

impl YUVSource for Source<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width(), self.0.height())
    }
    fn strides(&self) -> (usize, usize, usize) {
        (self.0.width(), self.0.width() / 2, self.0.width() / 2)
    }
    fn y(&self) -> &[u8] {
        self.0.y()
    }
    fn u(&self) -> &[u8] {
        self.0.u()
    }
    fn v(&self) -> &[u8] {
        self.0.v()
    }
}

impl H264Encoder {
    /// A new encoder; its first frame is a key frame.
    pub fn new(settings: H264Settings) -> Result<H264Encoder, VideoError> {
        let qp_max = settings.qp_max.min(51);
        let qp_min = settings.qp_min.min(qp_max);
        let config = EncoderConfig::new()
            .profile(Profile::Baseline)
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Quality)
            .bitrate(BitRate::from_bps(settings.bitrate_bps.max(100_000)))
            .max_frame_rate(FrameRate::from_hz(settings.max_fps.clamp(1.0, 240.0)))
            .qp(QpRange::new(qp_min, qp_max))
            // Every frame handed in is a frame the viewer or the recording needs.
            .skip_frames(false)
            .complexity(Complexity::Low)
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            // H.264 only carries motion (video, scrolling, animation); the lossless refresh
            // makes text exact afterwards. Camera mode without scene-change detection costs
            // 0.4x (scroll) to 0.66x (video) of screen-content mode's CPU per 1080p frame
            // (benches/h264.rs), and no analysis pass is spent on IDRs nobody asked for.
            .scene_change_detect(false)
            .adaptive_quantization(false)
            .background_detection(false)
            .num_threads(settings.threads.max(1))
            .vui(VuiConfig::bt601().full_range(true));
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| VideoError::Codec(e.to_string()))?;
        Ok(H264Encoder {
            encoder,
            picture: I420::default(),
            key_requested: true,
            size: None,
        })
    }

    /// Make the next frame a key frame (IDR with SPS/PPS): a new viewer, a lost stream, a
    /// non-incremental request.
    pub fn request_key_frame(&mut self) {
        self.key_requested = true;
    }

    /// Encode a frame captured at `time_ms` (any monotonic millisecond clock; used by the rate
    /// control). A size change restarts the stream with a key frame.
    pub fn encode(&mut self, frame: &Frame, time_ms: u64) -> Result<EncodedFrame, VideoError> {
        self.encode_bgrx(
            &frame.data,
            frame.width,
            frame.height,
            frame.stride,
            time_ms,
        )
    }

    /// Whether pictures of `width` x `height` can be encoded at all.
    pub fn fits(width: u16, height: u16) -> bool {
        let (w, h) = (even(usize::from(width)), even(usize::from(height)));
        w > 0 && h > 0 && w.max(h) <= MAX_LONG_SIDE && w.min(h) <= MAX_SHORT_SIDE
    }

    /// [`H264Encoder::encode`] on borrowed BGRX pixels: `height` rows of `stride` bytes (the
    /// last may be exactly `width * 4`).
    pub fn encode_bgrx(
        &mut self,
        data: &[u8],
        width: u16,
        height: u16,
        stride: usize,
        time_ms: u64,
    ) -> Result<EncodedFrame, VideoError> {
        let (w, h) = (usize::from(width), usize::from(height));
        if w == 0 || h == 0 {
            return Err(VideoError::BadFrame("empty frame".into()));
        }
        if stride < w * 4 || data.len() < (h - 1) * stride + w * 4 {
            return Err(VideoError::BadFrame(format!(
                "{w}x{h} frame with stride {stride} has only {} bytes",
                data.len()
            )));
        }
        if !H264Encoder::fits(width, height) {
            return Err(VideoError::TooLarge { width, height });
        }
        let (ew, eh) = (even(w), even(h));
        if self.size != Some((ew, eh)) {
            // OpenH264 reinitializes on a new size and starts with an IDR; ask anyway so the
            // request below cannot be lost.
            self.size = Some((ew, eh));
            self.key_requested = true;
        }
        self.picture.fill_from_bgrx(data, w, h, stride);
        if std::mem::take(&mut self.key_requested) {
            // Harmless before OpenH264 initializes on its first frame, which is an IDR anyway.
            self.encoder.force_intra_frame();
        }
        let stream = self
            .encoder
            .encode_at(&Source(&self.picture), Timestamp::from_millis(time_ms))
            .map_err(|e| VideoError::Codec(e.to_string()))?;
        let key = stream.frame_type() == FrameType::IDR;
        if matches!(stream.frame_type(), FrameType::Invalid) {
            return Err(VideoError::Codec("encoder produced no picture".into()));
        }
        let mut data = Vec::new();
        stream.write_vec(&mut data);
        Ok(EncodedFrame {
            data,
            key,
            width: ew as u16,
            height: eh as u16,
        })
    }
}

/// The NAL unit types in an Annex B stream, in order (tests, diagnostics, and the RFB framing's
/// key-frame checks).
pub fn nal_types(annexb: &[u8]) -> Vec<u8> {
    nal_units(annexb).map(|n| n[0] & 0x1f).collect()
}

/// The NAL units (without start codes) of an Annex B stream.
pub fn nal_units(annexb: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= annexb.len() {
        if annexb[i] == 0 && annexb[i + 1] == 0 && annexb[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&s| {
            // Trailing zeros before a start code belong to the 4-byte form of the next code.
            let mut e = s - 3;
            while e > 0 && annexb[e - 1] == 0 {
                e -= 1;
            }
            e
        })
        .chain(std::iter::once(annexb.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .filter(|(s, e)| s < e)
        .map(move |(s, e)| &annexb[s..e])
}
