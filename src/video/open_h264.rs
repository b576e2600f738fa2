//! RFB encoding 50 (Open H.264) for the session engine: [`H264Encoder`] behind rfb's
//! [`Encoder`] trait, framed by `rfb::encoding::h264`. The recorder is the encoder's other sink.
//!
//! Every update is one access unit of the whole framebuffer in one rectangle covering it (the
//! client crops the even-padded picture). The engine decides when this encoder is used
//! (`rfb::server::motion`) and says when the stream restarts ([`Encoder::reset`]): the next
//! rectangle then carries ResetAllContexts and an IDR with SPS and PPS.

use std::time::Instant;

use rfb::encoding::{h264, numbers, EncodeError, EncodeParams, Encoded, Encoder, FrameView};
use rfb::server::HostEncoders;
use rfb::Rect;

use super::{H264Encoder, H264Settings};

/// One client's H.264 stream.
pub struct OpenH264 {
    encoder: H264Encoder,
    /// The next rectangle resets the client's decoders (a new client, a restart).
    reset: bool,
    started: Instant,
}

impl OpenH264 {
    /// A new stream: its first rectangle resets the client's contexts and is a key frame.
    pub fn new(settings: H264Settings) -> Result<OpenH264, super::VideoError> {
        Ok(OpenH264 {
            encoder: H264Encoder::new(settings)?,
            reset: true,
            started: Instant::now(),
        })
    }
}

impl Encoder for OpenH264 {
    fn encoding(&self) -> i32 {
        h264::ENCODING
    }

    /// Encodes the whole frame whatever `rects` says: H.264 pictures are whole frames.
    fn encode(
        &mut self,
        frame: &FrameView<'_>,
        _rects: &[Rect],
        _params: &EncodeParams,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, EncodeError> {
        let time_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let picture = self
            .encoder
            .encode_bgrx(frame.data, frame.width, frame.height, frame.stride, time_ms)
            .map_err(|e| EncodeError::Codec(e.to_string()))?;
        let flags = if std::mem::take(&mut self.reset) {
            h264::RESET_ALL_CONTEXTS
        } else {
            0
        };
        let rect = frame.bounds();
        h264::write_rect(out, &rect, flags, &picture.data)
            .map_err(|e| EncodeError::Codec(e.to_string()))?;
        // Lossy: once the screen is still, the lossless refresh makes it exact.
        Ok(Encoded {
            rects: 1,
            lossy: vec![rect],
        })
    }

    fn request_key_frame(&mut self) {
        self.encoder.request_key_frame();
    }

    fn reset(&mut self) {
        self.reset = true;
        self.encoder.request_key_frame();
    }
}

/// The encoders deskd supplies to the engine: H.264 from [`H264Encoder`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DeskdEncoders;

impl HostEncoders for DeskdEncoders {
    fn encoder(&self, encoding: i32, width: u16, height: u16) -> Option<Box<dyn Encoder>> {
        if encoding != numbers::H264 || !H264Encoder::fits(width, height) {
            return None;
        }
        match OpenH264::new(H264Settings::default()) {
            Ok(e) => Some(Box::new(e)),
            Err(e) => {
                tracing::warn!(error = %e, "H.264 encoder unavailable");
                None
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::video::nal_types;

    fn encode(e: &mut OpenH264, frame: &[u8], w: u16, h: u16) -> (u32, Vec<u8>) {
        let view = FrameView {
            data: frame,
            width: w,
            height: h,
            stride: usize::from(w) * 4,
        };
        let mut out = Vec::new();
        let done = e
            .encode(&view, &[], &EncodeParams::default(), &mut out)
            .unwrap();
        assert_eq!(done.lossy, vec![Rect::new(0, 0, w, h)], "all lossy");
        assert_eq!(&out[..12], {
            let mut hdr = Vec::new();
            rfb::encoding::write_rect_header(&mut hdr, &Rect::new(0, 0, w, h), 50);
            hdr
        });
        let (flags, data, used) = h264::parse_body(&out[12..], 1 << 24).unwrap().unwrap();
        assert_eq!(used, out.len() - 12);
        (flags, nal_types(data))
    }

    #[test]
    fn resets_start_with_reset_all_and_a_key_frame() {
        let (w, h) = (66u16, 34u16);
        let mut e = OpenH264::new(H264Settings::default()).unwrap();
        let frame: Vec<u8> = (0..usize::from(w) * usize::from(h) * 4)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        assert_eq!(encode(&mut e, &frame, w, h), (2, vec![7, 8, 5]));
        assert_eq!(encode(&mut e, &frame, w, h).0, 0);
        e.request_key_frame();
        assert_eq!(encode(&mut e, &frame, w, h), (0, vec![7, 8, 5]));
        e.reset();
        assert_eq!(encode(&mut e, &frame, w, h), (2, vec![7, 8, 5]));
        assert_eq!(encode(&mut e, &frame, w, h).1, vec![1]);
        // Too large for H.264: an error, not a panic; the host offers no encoder for it.
        assert!(DeskdEncoders.encoder(50, 4000, 3000).is_none());
        assert!(DeskdEncoders.encoder(7, 64, 64).is_none());
        assert!(DeskdEncoders.encoder(50, 64, 64).is_some());
    }
}
