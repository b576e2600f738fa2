//! Zlib encoding (6): Raw pixels compressed with one zlib stream kept for the whole connection,
//! each rectangle prefixed by its compressed length (u32).

use super::raw::{cached_writer, write_rect_pixels};
use super::zstream::ZStream;
use super::{numbers, write_rect_header, EncodeError, EncodeParams, Encoded, Encoder, FrameView};
use crate::geom::Rect;
use crate::pixel::{Packing, PixelWriter};

/// The Zlib encoder for one client.
#[derive(Debug, Default)]
pub struct ZlibEncoder {
    stream: Option<ZStream>,
    writer: Option<PixelWriter>,
    scratch: Vec<u8>,
}

impl ZlibEncoder {
    /// A new encoder; the stream starts with the first rectangle.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Encoder for ZlibEncoder {
    fn encoding(&self) -> i32 {
        numbers::ZLIB
    }

    fn encode(
        &mut self,
        frame: &FrameView<'_>,
        rects: &[Rect],
        params: &EncodeParams,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, EncodeError> {
        let start = out.len();
        let stream = ZStream::for_connection(&mut self.stream, params);
        let w = cached_writer(&mut self.writer, params, Packing::Full);
        let rects = super::raw::clamped(frame, rects);
        for r in &rects {
            self.scratch.clear();
            write_rect_pixels(frame, r, w, &mut self.scratch);
            write_rect_header(out, r, numbers::ZLIB);
            let len_at = out.len();
            out.extend_from_slice(&[0; 4]);
            if let Err(e) = stream.compress(&self.scratch, out) {
                out.truncate(start);
                return Err(e);
            }
            let len = (out.len() - len_at - 4) as u32;
            out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
        }
        Ok(Encoded {
            rects: rects.len(),
            lossy: Vec::new(),
        })
    }
}
