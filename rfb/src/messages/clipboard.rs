//! The ExtendedClipboard payload (community spec, "Extended Clipboard Pseudo-Encoding").
//!
//! With the extension, a ClientCutText or ServerCutText whose length is negative carries
//! `abs(length)` bytes: a u32 of flags, then data depending on the one action set in them.
//! A *provide* payload is one zlib stream holding, for each format bit set (lowest first), a
//! u32 size and that many bytes. Text is UTF-8 with CRLF line ends and a NUL terminator.

use std::io::{Read, Write};

/// Flag bits of an extended clipboard message.
pub mod flags {
    /// Plain UTF-8 text.
    pub const TEXT: u32 = 1 << 0;
    /// Rich text format.
    pub const RTF: u32 = 1 << 1;
    /// HTML fragment.
    pub const HTML: u32 = 1 << 2;
    /// Device-independent bitmap.
    pub const DIB: u32 = 1 << 3;
    /// Files (reserved).
    pub const FILES: u32 = 1 << 4;
    /// Bits that name formats.
    pub const FORMAT_MASK: u32 = 0xFFFF;
    /// The sender's capabilities follow.
    pub const CAPS: u32 = 1 << 24;
    /// Asks the peer to provide the named formats.
    pub const REQUEST: u32 = 1 << 25;
    /// Asks the peer to notify which formats it has.
    pub const PEEK: u32 = 1 << 26;
    /// Announces which formats are available.
    pub const NOTIFY: u32 = 1 << 27;
    /// Carries clipboard data.
    pub const PROVIDE: u32 = 1 << 28;
    /// Bits that name actions.
    pub const ACTION_MASK: u32 = 0xFF00_0000;
}

/// Why an extended clipboard payload is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClipboardError {
    /// The payload ends before the data its flags announce.
    #[error("extended clipboard payload is truncated")]
    Truncated,
    /// The flags name no action.
    #[error("extended clipboard flags {0:#010x} name no action")]
    NoAction(u32),
    /// The flags name more than one action without caps.
    #[error("extended clipboard flags {0:#010x} name more than one action")]
    MultipleActions(u32),
    /// The provide stream is not valid zlib.
    #[error("extended clipboard provide data is not a valid zlib stream")]
    Zlib,
    /// The provide stream inflates to more than the configured cap.
    #[error("extended clipboard data inflates beyond {limit} bytes")]
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
}

/// One extended clipboard message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtClipboard {
    /// The sender's supported formats and actions, and its maximum unsolicited size per format.
    Caps {
        /// All flag bits as sent (includes [`flags::CAPS`]).
        flags: u32,
        /// One size per format bit set in `flags`, lowest bit first.
        sizes: Vec<u32>,
    },
    /// Please provide these formats.
    Request {
        /// Flag bits other than the action bits.
        formats: u32,
    },
    /// Please notify which formats you have.
    Peek {
        /// Flag bits other than the action bits (normally zero).
        formats: u32,
    },
    /// These formats are available.
    Notify {
        /// Flag bits other than the action bits.
        formats: u32,
    },
    /// Clipboard data: (format bit, bytes) pairs, lowest bit first. Text bytes include the
    /// NUL terminator as sent; use [`ExtClipboard::text`] to read text.
    Provide {
        /// The data for each format.
        items: Vec<(u32, Vec<u8>)>,
    },
}

impl ExtClipboard {
    /// The caps deskd announces: text only, all actions, sizes per the spec's recommendation
    /// (0 forces notify-then-request, avoiding ambiguity).
    pub fn server_caps(max_text: u32) -> ExtClipboard {
        ExtClipboard::Caps {
            flags: flags::CAPS
                | flags::REQUEST
                | flags::PEEK
                | flags::NOTIFY
                | flags::PROVIDE
                | flags::TEXT,
            sizes: vec![max_text],
        }
    }

    /// A provide message carrying `text` (CRLF line ends and the NUL terminator are added).
    pub fn provide_text(text: &str) -> ExtClipboard {
        let mut data = Vec::with_capacity(text.len() + 1);
        let mut prev = '\0';
        for c in text.chars() {
            if c == '\n' && prev != '\r' {
                data.push(b'\r');
            }
            let mut buf = [0u8; 4];
            data.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            prev = c;
        }
        data.push(0);
        ExtClipboard::Provide {
            items: vec![(flags::TEXT, data)],
        }
    }

    /// The text of a provide message (NUL terminator stripped, CRLF turned into LF, invalid
    /// UTF-8 replaced), if it carries text.
    pub fn text(&self) -> Option<String> {
        let ExtClipboard::Provide { items } = self else {
            return None;
        };
        let (_, data) = items.iter().find(|(f, _)| *f == flags::TEXT)?;
        let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
        Some(String::from_utf8_lossy(&data[..end]).replace("\r\n", "\n"))
    }

    /// Parse a payload (the `abs(length)` bytes after the length field). `max_inflated` caps
    /// the total size of provide data after decompression.
    pub fn parse(payload: &[u8], max_inflated: usize) -> Result<ExtClipboard, ClipboardError> {
        let Some((head, rest)) = payload.split_first_chunk::<4>() else {
            return Err(ClipboardError::Truncated);
        };
        let fl = u32::from_be_bytes(*head);
        let actions = fl & flags::ACTION_MASK;
        if fl & flags::CAPS != 0 {
            let n = (fl & flags::FORMAT_MASK).count_ones() as usize;
            if rest.len() < n * 4 {
                return Err(ClipboardError::Truncated);
            }
            let sizes = rest
                .chunks_exact(4)
                .take(n)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            return Ok(ExtClipboard::Caps { flags: fl, sizes });
        }
        if actions == 0 {
            return Err(ClipboardError::NoAction(fl));
        }
        if actions.count_ones() > 1 {
            return Err(ClipboardError::MultipleActions(fl));
        }
        let formats = fl & !flags::ACTION_MASK;
        match actions {
            flags::REQUEST => Ok(ExtClipboard::Request { formats }),
            flags::PEEK => Ok(ExtClipboard::Peek { formats }),
            flags::NOTIFY => Ok(ExtClipboard::Notify { formats }),
            flags::PROVIDE => parse_provide(formats, rest, max_inflated),
            // Reserved action bits: nothing we can act on; report as no known action.
            _ => Err(ClipboardError::NoAction(fl)),
        }
    }

    /// Append the payload (flags and data, without message type or length) to `out`.
    pub fn write_payload(&self, out: &mut Vec<u8>) {
        match self {
            ExtClipboard::Caps { flags: fl, sizes } => {
                out.extend_from_slice(&(fl | flags::CAPS).to_be_bytes());
                for s in sizes {
                    out.extend_from_slice(&s.to_be_bytes());
                }
            }
            ExtClipboard::Request { formats } => out.extend_from_slice(
                &((formats & !flags::ACTION_MASK) | flags::REQUEST).to_be_bytes(),
            ),
            ExtClipboard::Peek { formats } => out
                .extend_from_slice(&((formats & !flags::ACTION_MASK) | flags::PEEK).to_be_bytes()),
            ExtClipboard::Notify { formats } => out.extend_from_slice(
                &((formats & !flags::ACTION_MASK) | flags::NOTIFY).to_be_bytes(),
            ),
            ExtClipboard::Provide { items } => {
                // Only single format bits, each once, lowest first: that is what a reader
                // walking the flag bits expects.
                let mut fl = 0u32;
                let mut plain = Vec::new();
                for bit in 0..16 {
                    let f = 1u32 << bit;
                    if let Some((_, data)) = items.iter().find(|(g, _)| *g == f) {
                        fl |= f;
                        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
                        plain.extend_from_slice(&len.to_be_bytes());
                        plain.extend_from_slice(&data[..len as usize]);
                    }
                }
                out.extend_from_slice(&(fl | flags::PROVIDE).to_be_bytes());
                let mut z = flate2::write::ZlibEncoder::new(out, flate2::Compression::default());
                // Writing into a Vec cannot fail.
                let _ = z.write_all(&plain);
                let _ = z.finish();
            }
        }
    }
}

fn parse_provide(
    formats: u32,
    compressed: &[u8],
    max_inflated: usize,
) -> Result<ExtClipboard, ClipboardError> {
    let mut plain = Vec::new();
    let limit = u64::try_from(max_inflated).unwrap_or(u64::MAX);
    // noVNC (and others) flush the stream after each provide but never finish it, so an
    // unexpected end after the data is normal: keep what was inflated (read_to_end appends it
    // before failing) and let the length checks below decide whether it is complete.
    if let Err(e) = flate2::read::ZlibDecoder::new(compressed)
        .take(limit.saturating_add(1))
        .read_to_end(&mut plain)
    {
        if e.kind() != std::io::ErrorKind::UnexpectedEof {
            return Err(ClipboardError::Zlib);
        }
    }
    if plain.len() > max_inflated {
        return Err(ClipboardError::TooLarge {
            limit: max_inflated,
        });
    }
    let mut items = Vec::new();
    let mut rest = &plain[..];
    for bit in 0..16 {
        let f = 1u32 << bit;
        if formats & f == 0 {
            continue;
        }
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(ClipboardError::Truncated);
        };
        let len = u32::from_be_bytes(*len) as usize;
        if tail.len() < len {
            return Err(ClipboardError::Truncated);
        }
        items.push((f, tail[..len].to_vec()));
        rest = &tail[len..];
    }
    Ok(ExtClipboard::Provide { items })
}
