//! Client-to-server messages (RFC 6143 §7.5 and the community extensions).

use super::clipboard::{ClipboardError, ExtClipboard};
use super::{latin1_to_string, read_pixel_format, string_to_latin1, write_pixel_format};
use crate::geom::Rect;
use crate::pixel::{PixelFormat, PixelFormatError};

/// Message type numbers sent by clients.
pub mod types {
    /// SetPixelFormat.
    pub const SET_PIXEL_FORMAT: u8 = 0;
    /// SetEncodings.
    pub const SET_ENCODINGS: u8 = 2;
    /// FramebufferUpdateRequest.
    pub const FRAMEBUFFER_UPDATE_REQUEST: u8 = 3;
    /// KeyEvent.
    pub const KEY_EVENT: u8 = 4;
    /// PointerEvent.
    pub const POINTER_EVENT: u8 = 5;
    /// ClientCutText.
    pub const CLIENT_CUT_TEXT: u8 = 6;
    /// EnableContinuousUpdates.
    pub const ENABLE_CONTINUOUS_UPDATES: u8 = 150;
    /// ClientFence.
    pub const CLIENT_FENCE: u8 = 248;
    /// SetDesktopSize.
    pub const SET_DESKTOP_SIZE: u8 = 251;
    /// QEMU client message.
    pub const QEMU: u8 = 255;
    /// QEMU submessage: extended key event.
    pub const QEMU_EXTENDED_KEY_EVENT: u8 = 0;
}

/// Longest fence payload the protocol allows.
pub const MAX_FENCE_PAYLOAD: usize = 64;

/// Caps on lengths from the wire, checked before anything is allocated, plus the one piece of
/// negotiated state the parser needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest ClientCutText payload (Latin-1 text, or compressed extended clipboard data).
    pub max_cut_text: usize,
    /// Largest number of encodings in one SetEncodings.
    pub max_encodings: usize,
    /// Largest number of screens in one SetDesktopSize.
    pub max_screens: usize,
    /// Largest size of extended clipboard provide data after decompression.
    pub max_clipboard_inflated: usize,
    /// True once ExtendedMouseButtons is negotiated (the client sent the pseudo-encoding and
    /// the server confirmed it): then bit 7 of a PointerEvent mask announces a second byte.
    pub extended_mouse_buttons: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_cut_text: 10 << 20,
            max_encodings: 1024,
            max_screens: 16,
            // The same cap as the clipboard itself: inflating more than deskd would keep is waste.
            max_clipboard_inflated: 10 << 20,
            extended_mouse_buttons: false,
        }
    }
}

/// Why client bytes are refused. Every variant names one malformed-input class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The message type byte is not one deskd knows.
    #[error("unknown client message type {0}")]
    UnknownMessageType(u8),
    /// A QEMU client message with a submessage type other than extended key event.
    #[error("unknown QEMU client submessage type {0}")]
    UnknownQemuSubmessage(u8),
    /// SetPixelFormat with a format deskd cannot produce.
    #[error("bad pixel format: {0}")]
    PixelFormat(#[from] PixelFormatError),
    /// SetPixelFormat whose colour channels share bits.
    #[error("pixel format channels overlap (red {red:#x}, green {green:#x}, blue {blue:#x})")]
    ChannelsOverlap {
        /// Red bits in the pixel value.
        red: u32,
        /// Green bits in the pixel value.
        green: u32,
        /// Blue bits in the pixel value.
        blue: u32,
    },
    /// SetEncodings announcing more encodings than the cap.
    #[error("SetEncodings with {count} encodings (limit {limit})")]
    TooManyEncodings {
        /// The count sent.
        count: usize,
        /// The cap.
        limit: usize,
    },
    /// ClientCutText longer than the cap.
    #[error("ClientCutText of {len} bytes (limit {limit})")]
    CutTextTooLong {
        /// The length sent.
        len: usize,
        /// The cap.
        limit: usize,
    },
    /// SetDesktopSize with more screens than the cap.
    #[error("SetDesktopSize with {count} screens (limit {limit})")]
    TooManyScreens {
        /// The count sent.
        count: usize,
        /// The cap.
        limit: usize,
    },
    /// ClientFence payload longer than 64 bytes.
    #[error("ClientFence payload of {0} bytes (limit 64)")]
    FencePayloadTooLong(usize),
    /// A malformed extended clipboard payload.
    #[error("extended clipboard: {0}")]
    Clipboard(#[from] ClipboardError),
}

/// A PointerEvent as sent on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointerEvent {
    /// Pointer x.
    pub x: u16,
    /// Pointer y.
    pub y: u16,
    /// The button-mask byte (bit n = button n+1).
    pub mask: u8,
    /// The extended-buttons-mask byte, present when ExtendedMouseButtons is negotiated and bit
    /// 7 of `mask` was set (the marker).
    pub extended_mask: Option<u8>,
}

impl PointerEvent {
    /// Button state as a mask where bit n means button n+1 is down: bits 0-6 are left, middle,
    /// right and the four wheel directions, bit 7 back, bit 8 forward, bits 9-14 reserved.
    pub fn buttons(&self) -> u16 {
        match self.extended_mask {
            Some(ext) => u16::from(self.mask & 0x7F) | (u16::from(ext) << 7),
            None => u16::from(self.mask),
        }
    }
}

/// One screen of a multi-head layout (ExtendedDesktopSize / SetDesktopSize).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Screen {
    /// Screen id, stable for the screen's lifetime.
    pub id: u32,
    /// Position and size within the framebuffer.
    pub rect: Rect,
    /// Flags (unused; preserved).
    pub flags: u32,
}

impl Screen {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.rect.x.to_be_bytes());
        out.extend_from_slice(&self.rect.y.to_be_bytes());
        out.extend_from_slice(&self.rect.w.to_be_bytes());
        out.extend_from_slice(&self.rect.h.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
    }

    fn read(b: &[u8]) -> Screen {
        Screen {
            id: be32(b, 0),
            rect: Rect::new(be16(b, 4), be16(b, 6), be16(b, 8), be16(b, 10)),
            flags: be32(b, 12),
        }
    }
}

/// A message from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// Pixel format for future updates (already validated).
    SetPixelFormat(PixelFormat),
    /// Encodings and pseudo-encodings the client supports, in preference order.
    SetEncodings(Vec<i32>),
    /// Please send this area (everything when `incremental` is false).
    FramebufferUpdateRequest {
        /// Only changes are needed.
        incremental: bool,
        /// The area.
        rect: Rect,
    },
    /// A key press or release by keysym.
    KeyEvent {
        /// Pressed (true) or released.
        down: bool,
        /// X keysym.
        keysym: u32,
    },
    /// Pointer position and buttons.
    PointerEvent(PointerEvent),
    /// Latin-1 clipboard text (decoded to a string).
    CutText(String),
    /// An ExtendedClipboard message (ClientCutText with a negative length).
    ExtendedClipboard(ExtClipboard),
    /// Turn continuous updates on or off for an area.
    EnableContinuousUpdates {
        /// On (true) or off.
        enable: bool,
        /// The area.
        rect: Rect,
    },
    /// A fence request or response.
    Fence {
        /// Flag bits (BlockBefore 0, BlockAfter 1, SyncNext 2, Request 31).
        flags: u32,
        /// Up to 64 bytes echoed back in a response.
        payload: Vec<u8>,
    },
    /// Request a new framebuffer size and screen layout.
    SetDesktopSize {
        /// Requested width.
        width: u16,
        /// Requested height.
        height: u16,
        /// Requested screens.
        screens: Vec<Screen>,
    },
    /// QEMU extended key event: keysym plus XT scancode.
    QemuKeyEvent {
        /// Pressed (true) or released.
        down: bool,
        /// X keysym (0 if unknown).
        keysym: u32,
        /// XT keycode; 0xE0-prefixed codes have bit 7 set.
        keycode: u32,
    },
}

/// Channels that share bits cannot be decoded by the client; validate() has already checked
/// that each channel fits in the pixel, so the shifts below cannot overflow.
fn check_overlap(pf: &PixelFormat) -> Result<(), ParseError> {
    let bits = |max: u16, shift: u8| u32::from(max).checked_shl(u32::from(shift)).unwrap_or(0);
    let (red, green, blue) = (
        bits(pf.red_max, pf.red_shift),
        bits(pf.green_max, pf.green_shift),
        bits(pf.blue_max, pf.blue_shift),
    );
    if red & green != 0 || red & blue != 0 || green & blue != 0 {
        return Err(ParseError::ChannelsOverlap { red, green, blue });
    }
    Ok(())
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn rect_at(b: &[u8], at: usize) -> Rect {
    Rect::new(
        be16(b, at),
        be16(b, at + 2),
        be16(b, at + 4),
        be16(b, at + 6),
    )
}

/// Parse one client message from the start of `buf`.
///
/// `Ok(None)` means `buf` holds only part of a message: call again with more bytes.
/// `Ok(Some((msg, n)))` means the first `n` bytes were one message. Length fields are checked
/// against `limits` as soon as they arrive, before waiting for (or allocating) the payload.
pub fn parse_client_message(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(ClientMessage, usize)>, ParseError> {
    let Some(&ty) = buf.first() else {
        return Ok(None);
    };
    // Each arm returns None until the fixed part is present.
    macro_rules! need {
        ($n:expr) => {
            if buf.len() < $n {
                return Ok(None);
            }
        };
    }
    let msg = match ty {
        types::SET_PIXEL_FORMAT => {
            need!(20);
            let mut pf = [0u8; 16];
            pf.copy_from_slice(&buf[4..20]);
            let pf = read_pixel_format(&pf);
            pf.validate()?;
            check_overlap(&pf)?;
            (ClientMessage::SetPixelFormat(pf), 20)
        }
        types::SET_ENCODINGS => {
            need!(4);
            let count = usize::from(be16(buf, 2));
            if count > limits.max_encodings {
                return Err(ParseError::TooManyEncodings {
                    count,
                    limit: limits.max_encodings,
                });
            }
            let len = 4 + 4 * count;
            need!(len);
            let encs = buf[4..len]
                .chunks_exact(4)
                .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (ClientMessage::SetEncodings(encs), len)
        }
        types::FRAMEBUFFER_UPDATE_REQUEST => {
            need!(10);
            (
                ClientMessage::FramebufferUpdateRequest {
                    incremental: buf[1] != 0,
                    rect: rect_at(buf, 2),
                },
                10,
            )
        }
        types::KEY_EVENT => {
            need!(8);
            (
                ClientMessage::KeyEvent {
                    down: buf[1] != 0,
                    keysym: be32(buf, 4),
                },
                8,
            )
        }
        types::POINTER_EVENT => {
            need!(6);
            let mask = buf[1];
            let extended = limits.extended_mouse_buttons && mask & 0x80 != 0;
            let len = if extended { 7 } else { 6 };
            need!(len);
            (
                ClientMessage::PointerEvent(PointerEvent {
                    x: be16(buf, 2),
                    y: be16(buf, 4),
                    mask,
                    extended_mask: extended.then(|| buf[6]),
                }),
                len,
            )
        }
        types::CLIENT_CUT_TEXT => {
            need!(8);
            let raw = be32(buf, 4) as i32;
            let len = raw.unsigned_abs() as usize;
            if len > limits.max_cut_text {
                return Err(ParseError::CutTextTooLong {
                    len,
                    limit: limits.max_cut_text,
                });
            }
            need!(8 + len);
            let payload = &buf[8..8 + len];
            let msg = if raw < 0 {
                ClientMessage::ExtendedClipboard(ExtClipboard::parse(
                    payload,
                    limits.max_clipboard_inflated,
                )?)
            } else {
                ClientMessage::CutText(latin1_to_string(payload))
            };
            (msg, 8 + len)
        }
        types::ENABLE_CONTINUOUS_UPDATES => {
            need!(10);
            (
                ClientMessage::EnableContinuousUpdates {
                    enable: buf[1] != 0,
                    rect: rect_at(buf, 2),
                },
                10,
            )
        }
        types::CLIENT_FENCE => {
            need!(9);
            let len = usize::from(buf[8]);
            if len > MAX_FENCE_PAYLOAD {
                return Err(ParseError::FencePayloadTooLong(len));
            }
            need!(9 + len);
            (
                ClientMessage::Fence {
                    flags: be32(buf, 4),
                    payload: buf[9..9 + len].to_vec(),
                },
                9 + len,
            )
        }
        types::SET_DESKTOP_SIZE => {
            need!(8);
            let count = usize::from(buf[6]);
            if count > limits.max_screens {
                return Err(ParseError::TooManyScreens {
                    count,
                    limit: limits.max_screens,
                });
            }
            let len = 8 + 16 * count;
            need!(len);
            (
                ClientMessage::SetDesktopSize {
                    width: be16(buf, 2),
                    height: be16(buf, 4),
                    screens: buf[8..len].chunks_exact(16).map(Screen::read).collect(),
                },
                len,
            )
        }
        types::QEMU => {
            need!(2);
            match buf[1] {
                types::QEMU_EXTENDED_KEY_EVENT => {
                    need!(12);
                    (
                        ClientMessage::QemuKeyEvent {
                            down: be16(buf, 2) != 0,
                            keysym: be32(buf, 4),
                            keycode: be32(buf, 8),
                        },
                        12,
                    )
                }
                sub => return Err(ParseError::UnknownQemuSubmessage(sub)),
            }
        }
        other => return Err(ParseError::UnknownMessageType(other)),
    };
    Ok(Some(msg))
}

fn put_rect(out: &mut Vec<u8>, r: &Rect) {
    for v in [r.x, r.y, r.w, r.h] {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

impl ClientMessage {
    /// Append this message as a client would send it. Lengths beyond the wire's fields are
    /// truncated (at most 65535 encodings, 255 screens, 64 fence bytes), characters outside
    /// Latin-1 in [`ClientMessage::CutText`] become `?`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            ClientMessage::SetPixelFormat(pf) => {
                out.extend_from_slice(&[types::SET_PIXEL_FORMAT, 0, 0, 0]);
                write_pixel_format(out, pf);
            }
            ClientMessage::SetEncodings(encs) => {
                let n = encs.len().min(usize::from(u16::MAX));
                out.extend_from_slice(&[types::SET_ENCODINGS, 0]);
                out.extend_from_slice(&(n as u16).to_be_bytes());
                for e in &encs[..n] {
                    out.extend_from_slice(&e.to_be_bytes());
                }
            }
            ClientMessage::FramebufferUpdateRequest { incremental, rect } => {
                out.extend_from_slice(&[types::FRAMEBUFFER_UPDATE_REQUEST, u8::from(*incremental)]);
                put_rect(out, rect);
            }
            ClientMessage::KeyEvent { down, keysym } => {
                out.extend_from_slice(&[types::KEY_EVENT, u8::from(*down), 0, 0]);
                out.extend_from_slice(&keysym.to_be_bytes());
            }
            ClientMessage::PointerEvent(p) => {
                out.extend_from_slice(&[types::POINTER_EVENT, p.mask]);
                out.extend_from_slice(&p.x.to_be_bytes());
                out.extend_from_slice(&p.y.to_be_bytes());
                if let Some(ext) = p.extended_mask {
                    out.push(ext);
                }
            }
            ClientMessage::CutText(text) => {
                let bytes = string_to_latin1(text);
                out.extend_from_slice(&[types::CLIENT_CUT_TEXT, 0, 0, 0]);
                out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                out.extend_from_slice(&bytes);
            }
            ClientMessage::ExtendedClipboard(m) => {
                write_ext_clipboard(out, types::CLIENT_CUT_TEXT, m);
            }
            ClientMessage::EnableContinuousUpdates { enable, rect } => {
                out.extend_from_slice(&[types::ENABLE_CONTINUOUS_UPDATES, u8::from(*enable)]);
                put_rect(out, rect);
            }
            ClientMessage::Fence { flags, payload } => {
                super::server::write_fence(out, types::CLIENT_FENCE, *flags, payload);
            }
            ClientMessage::SetDesktopSize {
                width,
                height,
                screens,
            } => {
                let n = screens.len().min(255);
                out.extend_from_slice(&[types::SET_DESKTOP_SIZE, 0]);
                out.extend_from_slice(&width.to_be_bytes());
                out.extend_from_slice(&height.to_be_bytes());
                out.extend_from_slice(&[n as u8, 0]);
                for s in &screens[..n] {
                    s.write(out);
                }
            }
            ClientMessage::QemuKeyEvent {
                down,
                keysym,
                keycode,
            } => {
                out.extend_from_slice(&[types::QEMU, types::QEMU_EXTENDED_KEY_EVENT]);
                out.extend_from_slice(&u16::from(*down).to_be_bytes());
                out.extend_from_slice(&keysym.to_be_bytes());
                out.extend_from_slice(&keycode.to_be_bytes());
            }
        }
    }
}

/// Append a cut-text message of type `ty` carrying an extended clipboard payload: the length
/// field is the negated payload size.
pub(crate) fn write_ext_clipboard(out: &mut Vec<u8>, ty: u8, m: &ExtClipboard) {
    out.extend_from_slice(&[ty, 0, 0, 0]);
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    m.write_payload(out);
    let len = (out.len() - len_at - 4) as i64;
    let field = i32::try_from(-len).unwrap_or(i32::MIN);
    out[len_at..len_at + 4].copy_from_slice(&field.to_be_bytes());
}
