//! Per-client settings negotiated by SetPixelFormat and SetEncodings.

use crate::encoding::numbers as n;
use crate::encoding::registry;
use crate::messages::ClientCaps;
use crate::{EncodeParams, PixelFormat};

/// What one client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// The pixel format updates are sent in.
    pub format: PixelFormat,
    /// The encoding for pixel rectangles: the client's first choice among those deskd has
    /// (see [`ClientSettings::set_encodings`] for the one exception).
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
    ///
    /// The client's first choice wins, except ZRLE in a format libvncclient misdecodes (see
    /// [`zrle_misread_by_libvncclient`]): then its next choice deskd has, if it listed one.
    /// A correct client gets an encoding it asked for, so this costs it only some bytes.
    pub fn set_encodings(&mut self, encodings: &[i32]) {
        self.caps = ClientCaps::from_encodings(encodings);
        self.choose_encoding();
    }

    /// Apply a SetPixelFormat; the encoding is chosen again because the ZRLE exception depends
    /// on the format.
    pub fn set_format(&mut self, format: PixelFormat) {
        self.format = format;
        self.choose_encoding();
    }

    fn choose_encoding(&mut self) {
        let mut offered = self
            .caps
            .encodings
            .iter()
            .copied()
            .filter(|&e| registry::entry(e).is_some_and(|e| !e.caps.motion_only))
            .filter(|&e| registry::builtin(e));
        // Raw is the fallback every client supports, listed or not.
        self.encoding = match offered.next() {
            Some(n::ZRLE) if zrle_misread_by_libvncclient(&self.format) => {
                offered.next().unwrap_or(n::ZRLE)
            }
            Some(e) => e,
            None => n::RAW,
        };
    }

    /// Encoder parameters for the next update, as the client asked.
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

/// True for the formats libvncclient 0.9.14 (Remmina's and many tools' client library) decodes
/// ZRLE wrongly on little-endian hosts: 32 bpp big-endian with the channels in the low 3 bytes,
/// one of them in the lowest byte. Such a CPIXEL is the low 3 bytes in big-endian order (RFC
/// 6143 7.7.6; x0vncserver sends the same bytes as deskd) and libvncclient stores it shifted by
/// a byte (HandleZRLE24Down), for TigerVNC's output as for ours. libvncclient does not name
/// itself on the wire, so the format alone decides.
pub fn zrle_misread_by_libvncclient(f: &PixelFormat) -> bool {
    let max = (u64::from(f.red_max) << f.red_shift)
        | (u64::from(f.green_max) << f.green_shift)
        | (u64::from(f.blue_max) << f.blue_shift);
    f.bits_per_pixel == 32 && f.big_endian && max & 0xff != 0 && max & 0xff00_0000 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big_endian(shifts: (u8, u8, u8)) -> PixelFormat {
        PixelFormat {
            big_endian: true,
            red_shift: shifts.0,
            green_shift: shifts.1,
            blue_shift: shifts.2,
            ..PixelFormat::NATIVE
        }
    }

    #[test]
    fn zrle_is_skipped_only_for_the_format_libvncclient_misreads() {
        let mut s = ClientSettings::default();
        s.set_format(big_endian((16, 8, 0)));
        s.set_encodings(&[n::ZRLE, n::CURSOR, n::HEXTILE, n::RAW]);
        assert_eq!(s.encoding, n::HEXTILE, "the client's next choice");
        s.set_encodings(&[n::ZRLE, n::CURSOR]);
        assert_eq!(s.encoding, n::ZRLE, "nothing else offered: ZRLE stays");

        // The same list in formats libvncclient decodes keeps ZRLE.
        s.set_encodings(&[n::ZRLE, n::HEXTILE]);
        s.set_format(big_endian((24, 16, 8)));
        assert_eq!(s.encoding, n::ZRLE, "channels in the high bytes");
        s.set_format(PixelFormat::NATIVE);
        assert_eq!(s.encoding, n::ZRLE, "little-endian");
        let mut rgb565 = big_endian((11, 5, 0));
        rgb565.bits_per_pixel = 16;
        rgb565.depth = 16;
        (rgb565.red_max, rgb565.green_max, rgb565.blue_max) = (31, 63, 31);
        s.set_format(rgb565);
        assert_eq!(s.encoding, n::ZRLE, "16 bpp big-endian");

        // A format set after the encodings re-decides.
        s.set_format(big_endian((0, 8, 16)));
        assert_eq!(s.encoding, n::HEXTILE);
        s.set_format(PixelFormat::NATIVE);
        assert_eq!(s.encoding, n::ZRLE);
    }

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
