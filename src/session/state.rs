//! Per-client settings negotiated by SetPixelFormat and SetEncodings.

use rfb::encoding::numbers as n;
use rfb::messages::ClientCaps;
use rfb::{EncodeParams, Encoder, PixelFormat};

/// The encodings deskd can send pixels with, best first when the client has no preference
/// among them (the client's own order wins).
pub const SUPPORTED: [i32; 6] = [n::TIGHT, n::TIGHT_PNG, n::ZRLE, n::ZLIB, n::HEXTILE, n::RAW];

/// Tight splits big updates across threads: latency matters more than throughput here.
fn tight_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().min(4))
        .unwrap_or(1)
}

/// Whether deskd has an encoder for `encoding`.
pub fn implemented(encoding: i32) -> bool {
    SUPPORTED.contains(&encoding)
}

/// A fresh encoder for `encoding`, if deskd implements it.
pub fn new_encoder(encoding: i32) -> Option<Box<dyn Encoder>> {
    use rfb::encoding as e;
    match encoding {
        n::RAW => Some(Box::new(e::raw::RawEncoder::new())),
        n::ZLIB => Some(Box::new(e::zlib::ZlibEncoder::new())),
        n::ZRLE => Some(Box::new(e::zrle::ZrleEncoder::new())),
        n::HEXTILE => Some(Box::new(e::hextile::HextileEncoder::new())),
        n::TIGHT => Some(Box::new(
            e::tight::TightEncoder::new().with_threads(tight_threads()),
        )),
        n::TIGHT_PNG => Some(Box::new(
            e::tight::TightEncoder::new_png().with_threads(tight_threads()),
        )),
        _ => None,
    }
}

/// What one client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// The pixel format updates are sent in.
    pub format: PixelFormat,
    /// The encoding for pixel rectangles: the client's first choice among those deskd has.
    pub encoding: i32,
    /// What the last SetEncodings announced (pseudo-encodings, levels).
    pub caps: ClientCaps,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            format: PixelFormat::NATIVE,
            encoding: n::RAW,
            caps: ClientCaps::default(),
        }
    }
}

impl ClientSettings {
    /// Apply a SetEncodings list (the client's order of preference). Replaces everything the
    /// previous list said; the pixel format is kept.
    pub fn set_encodings(&mut self, encodings: &[i32]) {
        self.caps = ClientCaps::from_encodings(encodings);
        // Raw is the fallback every client supports, listed or not.
        self.encoding = self
            .caps
            .encodings
            .iter()
            .copied()
            .find(|&e| implemented(e))
            .unwrap_or(n::RAW);
    }

    /// Encoder parameters for the next update.
    pub fn params(&self) -> EncodeParams {
        EncodeParams {
            format: self.format,
            compress_level: self.caps.compress_level,
            quality_level: self.caps.quality_level,
        }
    }

    /// The client can learn about a new framebuffer size.
    pub fn resize_supported(&self) -> bool {
        self.caps.desktop_size || self.caps.extended_desktop_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_supported_encoding_in_client_order_wins() {
        let mut s = ClientSettings::default();
        s.set_encodings(&[99, n::ZRLE, n::TIGHT, n::RAW]);
        assert_eq!(s.encoding, n::ZRLE);
        s.set_encodings(&[n::COPY_RECT, n::RRE]);
        assert_eq!(
            s.encoding,
            n::RAW,
            "Raw is the fallback every client supports"
        );
    }

    #[test]
    fn pseudo_encodings_and_levels_are_recorded() {
        let mut s = ClientSettings::default();
        s.set_encodings(&[
            n::TIGHT,
            n::QUALITY_LEVEL_0 + 6,
            n::COMPRESS_LEVEL_0 + 2,
            n::CURSOR,
            n::EXTENDED_DESKTOP_SIZE,
            n::EXTENDED_CLIPBOARD,
            n::FENCE,
        ]);
        assert_eq!(s.caps.quality_level, Some(6));
        assert_eq!(s.caps.compress_level, Some(2));
        assert!(s.caps.cursor && s.caps.extended_desktop_size);
        assert!(s.caps.extended_clipboard && s.caps.fence);
        assert!(!s.caps.desktop_size);
        assert!(s.resize_supported());
        assert_eq!(s.params().quality_level, Some(6));
        s.set_encodings(&[n::RAW]);
        assert_eq!(s.caps.encodings, vec![n::RAW]);
        assert!(!s.caps.cursor, "a new list replaces the old one");
    }
}
