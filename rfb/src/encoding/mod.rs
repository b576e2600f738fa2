//! Framebuffer-update encoders: one per file, all behind [`Encoder`].
//!
//! An encoder takes a borrowed view of the native framebuffer, the rectangles to send and the
//! client's pixel format, and appends complete rectangles (12-byte header + data) to a buffer.
//! State that must persist across updates for one client (zlib streams) lives in the value.

use crate::geom::Rect;
use crate::pixel::PixelFormat;

pub mod copyrect;
pub mod cursor;
pub mod h264;
pub mod hextile;
pub mod jpeg;
mod palette;
pub mod raw;
pub mod registry;
pub mod shared;
pub mod tight;
pub mod zlib;
pub mod zrle;
mod zstream;

/// Encoding numbers (RFC 6143 §7.7 and the community registry).
pub mod numbers {
    /// Raw.
    pub const RAW: i32 = 0;
    /// CopyRect.
    pub const COPY_RECT: i32 = 1;
    /// RRE (not implemented; listed so clients' lists parse to names).
    pub const RRE: i32 = 2;
    /// Hextile.
    pub const HEXTILE: i32 = 5;
    /// Zlib.
    pub const ZLIB: i32 = 6;
    /// Tight.
    pub const TIGHT: i32 = 7;
    /// ZRLE.
    pub const ZRLE: i32 = 16;
    /// Open H.264 (community registry; noVNC 1.6+ decodes it).
    pub const H264: i32 = 50;
    /// TightPNG (noVNC).
    pub const TIGHT_PNG: i32 = -260;
    /// JPEG quality level 0 pseudo-encoding; levels 0..=9 are -32..=-23.
    pub const QUALITY_LEVEL_0: i32 = -32;
    /// JPEG quality level 9.
    pub const QUALITY_LEVEL_9: i32 = -23;
    /// Compress level 0 pseudo-encoding; levels 0..=9 are -256..=-247.
    pub const COMPRESS_LEVEL_0: i32 = -256;
    /// Compress level 9.
    pub const COMPRESS_LEVEL_9: i32 = -247;
    /// DesktopSize pseudo-encoding.
    pub const DESKTOP_SIZE: i32 = -223;
    /// LastRect pseudo-encoding.
    pub const LAST_RECT: i32 = -224;
    /// Cursor pseudo-encoding.
    pub const CURSOR: i32 = -239;
    /// DesktopName pseudo-encoding.
    pub const DESKTOP_NAME: i32 = -307;
    /// ExtendedDesktopSize pseudo-encoding.
    pub const EXTENDED_DESKTOP_SIZE: i32 = -308;
    /// Fence pseudo-encoding.
    pub const FENCE: i32 = -312;
    /// ContinuousUpdates pseudo-encoding.
    pub const CONTINUOUS_UPDATES: i32 = -313;
    /// ExtendedMouseButtons pseudo-encoding.
    pub const EXTENDED_MOUSE_BUTTONS: i32 = -316;
    /// QEMU extended key event pseudo-encoding.
    pub const QEMU_EXTENDED_KEY_EVENT: i32 = -258;
    /// ExtendedClipboard pseudo-encoding.
    pub const EXTENDED_CLIPBOARD: i32 = 0xC0A1_E5CE_u32 as i32;
}

/// A borrowed view of a native framebuffer (32 bpp BGRX, see [`crate::pixel`]).
#[derive(Debug, Clone, Copy)]
pub struct FrameView<'a> {
    /// Pixel bytes, row after row.
    pub data: &'a [u8],
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Bytes from one row to the next (at least `width * 4`).
    pub stride: usize,
}

impl<'a> FrameView<'a> {
    /// The bytes of row `y` from column `x` for `w` pixels. Callers pass rectangles already
    /// clamped to the frame.
    pub fn row(&self, x: u16, y: u16, w: u16) -> &'a [u8] {
        let start = usize::from(y) * self.stride + usize::from(x) * 4;
        &self.data[start..start + usize::from(w) * 4]
    }

    /// The whole frame as a rectangle.
    pub fn bounds(&self) -> Rect {
        Rect::new(0, 0, self.width, self.height)
    }
}

/// Per-update settings an encoder may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeParams {
    /// The client's pixel format.
    pub format: PixelFormat,
    /// CompressLevel pseudo-encoding (0..=9), if the client sent one.
    pub compress_level: Option<u8>,
    /// QualityLevel pseudo-encoding (0..=9), if the client sent one. Enables JPEG in Tight.
    pub quality_level: Option<u8>,
}

impl Default for EncodeParams {
    fn default() -> Self {
        EncodeParams {
            format: PixelFormat::NATIVE,
            compress_level: None,
            quality_level: None,
        }
    }
}

/// What one [`Encoder::encode`] call wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Rectangles written (an encoder may split a rectangle).
    pub rects: usize,
    /// Areas sent lossily (JPEG): a lossless refresh re-sends them once they are still.
    pub lossy: Vec<Rect>,
}

/// Why an encoder could not produce its rectangles. The client's decoder state may have
/// advanced with what was written, so the connection cannot continue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A zlib stream failed.
    #[error("zlib stream failed: {0}")]
    Zlib(String),
    /// A compression stream the encoder needs was missing.
    #[error("encoder state missing: {0}")]
    State(&'static str),
    /// A codec the application supplies (H.264) failed.
    #[error("codec failed: {0}")]
    Codec(String),
}

/// An encoder for one client.
pub trait Encoder: Send {
    /// The encoding number written in rectangle headers.
    fn encoding(&self) -> i32;

    /// Append encoded rectangles covering `rects` (each already clamped to the frame) to `out`.
    /// Nothing half-written is left on error: the caller must drop the connection, since
    /// compression streams may have advanced.
    fn encode(
        &mut self,
        frame: &FrameView<'_>,
        rects: &[Rect],
        params: &EncodeParams,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, EncodeError>;

    /// Make the next update decodable on its own (a key frame), for encoders whose output
    /// depends on earlier updates (video; see the registry's `key_frame_on_request`).
    fn request_key_frame(&mut self) {}

    /// Start the stream over: the next update tells the client to drop its decoder state
    /// (H.264: ResetAllContexts) and is a key frame.
    fn reset(&mut self) {}
}

pub use registry::new_encoder;

/// Append a rectangle header (x, y, w, h, encoding) to `out`.
pub fn write_rect_header(out: &mut Vec<u8>, r: &Rect, encoding: i32) {
    out.extend_from_slice(&r.x.to_be_bytes());
    out.extend_from_slice(&r.y.to_be_bytes());
    out.extend_from_slice(&r.w.to_be_bytes());
    out.extend_from_slice(&r.h.to_be_bytes());
    out.extend_from_slice(&encoding.to_be_bytes());
}
