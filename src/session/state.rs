//! Per-client settings negotiated by SetPixelFormat and SetEncodings.

use rfb::encoding::numbers as n;
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

/// Pseudo-encodings a client announced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pseudo {
    /// DesktopSize.
    pub desktop_size: bool,
    /// ExtendedDesktopSize (and SetDesktopSize).
    pub extended_desktop_size: bool,
    /// LastRect.
    pub last_rect: bool,
    /// Cursor.
    pub cursor: bool,
    /// DesktopName.
    pub desktop_name: bool,
    /// Fence.
    pub fence: bool,
    /// ContinuousUpdates.
    pub continuous_updates: bool,
    /// ExtendedMouseButtons.
    pub extended_mouse_buttons: bool,
    /// QEMU extended key event.
    pub qemu_key: bool,
    /// ExtendedClipboard.
    pub extended_clipboard: bool,
}

/// What one client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// The pixel format updates are sent in.
    pub format: PixelFormat,
    /// The encoding for pixel rectangles.
    pub encoding: i32,
    /// Pseudo-encodings announced.
    pub pseudo: Pseudo,
    /// CompressLevel, if sent.
    pub compress_level: Option<u8>,
    /// QualityLevel, if sent.
    pub quality_level: Option<u8>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            format: PixelFormat::NATIVE,
            encoding: n::RAW,
            pseudo: Pseudo::default(),
            compress_level: None,
            quality_level: None,
        }
    }
}

impl ClientSettings {
    /// Apply a SetEncodings list (the client's order of preference). Replaces everything the
    /// previous list said; the pixel format is kept.
    pub fn set_encodings(&mut self, encodings: &[i32]) {
        let format = self.format;
        *self = ClientSettings {
            format,
            ..ClientSettings::default()
        };
        let mut chosen = None;
        for &e in encodings {
            match e {
                _ if implemented(e) => {
                    chosen.get_or_insert(e);
                }
                n::DESKTOP_SIZE => self.pseudo.desktop_size = true,
                n::EXTENDED_DESKTOP_SIZE => self.pseudo.extended_desktop_size = true,
                n::LAST_RECT => self.pseudo.last_rect = true,
                n::CURSOR => self.pseudo.cursor = true,
                n::DESKTOP_NAME => self.pseudo.desktop_name = true,
                n::FENCE => self.pseudo.fence = true,
                n::CONTINUOUS_UPDATES => self.pseudo.continuous_updates = true,
                n::EXTENDED_MOUSE_BUTTONS => self.pseudo.extended_mouse_buttons = true,
                n::QEMU_EXTENDED_KEY_EVENT => self.pseudo.qemu_key = true,
                n::EXTENDED_CLIPBOARD => self.pseudo.extended_clipboard = true,
                n::COMPRESS_LEVEL_0..=n::COMPRESS_LEVEL_9 if self.compress_level.is_none() => {
                    self.compress_level = Some((e - n::COMPRESS_LEVEL_0) as u8);
                }
                n::QUALITY_LEVEL_0..=n::QUALITY_LEVEL_9 if self.quality_level.is_none() => {
                    self.quality_level = Some((e - n::QUALITY_LEVEL_0) as u8);
                }
                _ => {}
            }
        }
        self.encoding = chosen.unwrap_or(n::RAW);
    }

    /// Encoder parameters for the next update.
    pub fn params(&self) -> EncodeParams {
        EncodeParams {
            format: self.format,
            compress_level: self.compress_level,
            quality_level: self.quality_level,
        }
    }

    /// The client can learn about a new framebuffer size.
    pub fn resize_supported(&self) -> bool {
        self.pseudo.desktop_size || self.pseudo.extended_desktop_size
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
            n::QUALITY_LEVEL_0 + 1,
            n::CURSOR,
            n::EXTENDED_DESKTOP_SIZE,
            n::EXTENDED_CLIPBOARD,
            n::FENCE,
        ]);
        assert_eq!(s.quality_level, Some(6));
        assert_eq!(s.compress_level, Some(2));
        assert!(s.pseudo.cursor && s.pseudo.extended_desktop_size);
        assert!(s.pseudo.extended_clipboard && s.pseudo.fence);
        assert!(!s.pseudo.desktop_size);
        assert!(s.resize_supported());
        s.set_encodings(&[n::RAW]);
        assert_eq!(
            s.pseudo,
            Pseudo::default(),
            "a new list replaces the old one"
        );
    }
}
