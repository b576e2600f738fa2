//! What a client's SetEncodings list says it supports.

use crate::encoding::{numbers as n, registry};

/// A summary of one SetEncodings list: the real encodings in preference order and the
/// pseudo-encodings (extensions) the client announced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCaps {
    /// Real encodings (Raw, CopyRect, Tight...) in the client's order of preference.
    pub encodings: Vec<i32>,
    /// CompressLevel 0..=9 (the last one sent wins).
    pub compress_level: Option<u8>,
    /// QualityLevel 0..=9 (the last one sent wins).
    pub quality_level: Option<u8>,
    /// Cursor pseudo-encoding.
    pub cursor: bool,
    /// DesktopSize pseudo-encoding.
    pub desktop_size: bool,
    /// ExtendedDesktopSize pseudo-encoding (send it instead of DesktopSize when both are set).
    pub extended_desktop_size: bool,
    /// LastRect pseudo-encoding.
    pub last_rect: bool,
    /// DesktopName pseudo-encoding.
    pub desktop_name: bool,
    /// Fence pseudo-encoding.
    pub fence: bool,
    /// ContinuousUpdates pseudo-encoding.
    pub continuous_updates: bool,
    /// ExtendedClipboard pseudo-encoding.
    pub extended_clipboard: bool,
    /// ExtendedMouseButtons pseudo-encoding.
    pub extended_mouse_buttons: bool,
    /// QEMU extended key event pseudo-encoding.
    pub qemu_key_event: bool,
}

impl ClientCaps {
    /// Summarize a SetEncodings list. Unknown numbers are ignored, as the protocol requires.
    pub fn from_encodings(list: &[i32]) -> ClientCaps {
        let mut c = ClientCaps::default();
        for &e in list {
            match e {
                e if registry::entry(e).is_some() && !c.encodings.contains(&e) => {
                    c.encodings.push(e)
                }
                n::COMPRESS_LEVEL_0..=n::COMPRESS_LEVEL_9 => {
                    c.compress_level = Some((e - n::COMPRESS_LEVEL_0) as u8)
                }
                n::QUALITY_LEVEL_0..=n::QUALITY_LEVEL_9 => {
                    c.quality_level = Some((e - n::QUALITY_LEVEL_0) as u8)
                }
                n::CURSOR => c.cursor = true,
                n::DESKTOP_SIZE => c.desktop_size = true,
                n::EXTENDED_DESKTOP_SIZE => c.extended_desktop_size = true,
                n::LAST_RECT => c.last_rect = true,
                n::DESKTOP_NAME => c.desktop_name = true,
                n::FENCE => c.fence = true,
                n::CONTINUOUS_UPDATES => c.continuous_updates = true,
                n::EXTENDED_CLIPBOARD => c.extended_clipboard = true,
                n::EXTENDED_MOUSE_BUTTONS => c.extended_mouse_buttons = true,
                n::QEMU_EXTENDED_KEY_EVENT => c.qemu_key_event = true,
                _ => {}
            }
        }
        c
    }

    /// True when the client listed `encoding` among its real encodings.
    pub fn supports(&self, encoding: i32) -> bool {
        self.encodings.contains(&encoding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarizes_a_novnc_like_list() {
        let c = ClientCaps::from_encodings(&[
            n::TIGHT,
            n::TIGHT_PNG,
            n::ZRLE,
            n::RAW,
            n::COPY_RECT,
            -23,
            -251,
            n::CURSOR,
            n::EXTENDED_DESKTOP_SIZE,
            n::LAST_RECT,
            n::FENCE,
            n::CONTINUOUS_UPDATES,
            n::EXTENDED_CLIPBOARD,
            n::EXTENDED_MOUSE_BUTTONS,
            n::QEMU_EXTENDED_KEY_EVENT,
            n::DESKTOP_NAME,
            12345,
            n::TIGHT,
        ]);
        assert_eq!(
            c.encodings,
            [n::TIGHT, n::TIGHT_PNG, n::ZRLE, n::RAW, n::COPY_RECT]
        );
        assert_eq!(c.quality_level, Some(9));
        assert_eq!(c.compress_level, Some(5));
        assert!(c.cursor && c.extended_desktop_size && c.last_rect && c.fence);
        assert!(c.continuous_updates && c.extended_clipboard && c.extended_mouse_buttons);
        assert!(c.qemu_key_event && c.desktop_name && !c.desktop_size);
        assert!(c.supports(n::ZRLE) && !c.supports(n::HEXTILE));
    }
}
