//! The one table of encodings: each number with its name, how an encoder is made and what the
//! session engine must know about it. The SetEncodings parser, the choice of encoding and the
//! factory all read this table, so they cannot disagree.

use super::{hextile, numbers as n, raw, tight, zlib, zrle, Encoder};

/// What the engine must know about an encoding to schedule, share and reset it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Which output may be shared between clients: it depends only on the pixels and the
    /// parameters, not on a per-connection compression stream.
    pub sharing: Sharing,
    /// Encodes the whole framebuffer in every update (a video codec), not damaged rectangles.
    pub whole_frame: bool,
    /// Starts over with a key frame on a non-incremental request or a new client.
    pub key_frame_on_request: bool,
    /// Its stream must be reset when the framebuffer size changes.
    pub reset_on_resize: bool,
    /// Used only while a large area changes continuously, never as a client's general choice.
    pub motion_only: bool,
}

/// Which of an encoding's output is independent of the connection (see [`Capabilities`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Every rectangle (Raw, Hextile, TightPNG).
    All,
    /// Every rectangle, with its zlib data on streams reset for each rectangle (Tight: shared
    /// pieces use streams 2 and 3; the connection's own encoder keeps 0 and 1).
    WithResets,
    /// None: the output continues per-connection streams (Zlib, ZRLE, H.264).
    None,
}

/// How an encoder for an entry is made.
#[derive(Debug, Clone, Copy)]
pub enum Factory {
    /// By this crate. Encoders run on the caller's thread: the caller parallelises across
    /// pieces and clients (see [`super::shared`]).
    Builtin(fn() -> Box<dyn Encoder>),
    /// By the application: the codec is not linked into the protocol crate (H.264).
    Host,
    /// Not at all: the number is known (so lists parse) but deskd never sends it.
    None,
}

/// One encoding.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// The encoding number in SetEncodings and rectangle headers.
    pub number: i32,
    /// Its name, for logs and metrics.
    pub name: &'static str,
    /// How an encoder is made.
    pub factory: Factory,
    /// What the engine must know about it.
    pub caps: Capabilities,
}

const PLAIN: Capabilities = Capabilities {
    sharing: Sharing::None,
    whole_frame: false,
    key_frame_on_request: false,
    reset_on_resize: false,
    motion_only: false,
};

/// Every encoding deskd knows, in the order it prefers when the client has no preference.
pub const ENTRIES: [Entry; 9] = [
    Entry {
        number: n::TIGHT,
        name: "Tight",
        factory: Factory::Builtin(|| Box::new(tight::TightEncoder::new())),
        caps: Capabilities {
            sharing: Sharing::WithResets,
            ..PLAIN
        },
    },
    Entry {
        number: n::TIGHT_PNG,
        name: "TightPNG",
        factory: Factory::Builtin(|| Box::new(tight::TightEncoder::new_png())),
        caps: Capabilities {
            sharing: Sharing::All,
            ..PLAIN
        },
    },
    Entry {
        number: n::ZRLE,
        name: "ZRLE",
        factory: Factory::Builtin(|| Box::new(zrle::ZrleEncoder::new())),
        caps: PLAIN,
    },
    Entry {
        number: n::ZLIB,
        name: "Zlib",
        factory: Factory::Builtin(|| Box::new(zlib::ZlibEncoder::new())),
        caps: PLAIN,
    },
    Entry {
        number: n::HEXTILE,
        name: "Hextile",
        factory: Factory::Builtin(|| Box::new(hextile::HextileEncoder::new())),
        caps: Capabilities {
            sharing: Sharing::All,
            ..PLAIN
        },
    },
    Entry {
        number: n::RAW,
        name: "Raw",
        factory: Factory::Builtin(|| Box::new(raw::RawEncoder::new())),
        caps: Capabilities {
            sharing: Sharing::All,
            ..PLAIN
        },
    },
    Entry {
        number: n::H264,
        name: "H.264",
        factory: Factory::Host,
        caps: Capabilities {
            sharing: Sharing::None,
            whole_frame: true,
            key_frame_on_request: true,
            reset_on_resize: true,
            motion_only: true,
        },
    },
    Entry {
        number: n::COPY_RECT,
        name: "CopyRect",
        factory: Factory::None,
        caps: PLAIN,
    },
    Entry {
        number: n::RRE,
        name: "RRE",
        factory: Factory::None,
        caps: PLAIN,
    },
];

/// The entry for `number`, if deskd knows the encoding.
pub fn entry(number: i32) -> Option<&'static Entry> {
    ENTRIES.iter().find(|e| e.number == number)
}

/// True when this crate can make an encoder for `number`.
pub fn builtin(number: i32) -> bool {
    matches!(entry(number), Some(e) if matches!(e.factory, Factory::Builtin(_)))
}

/// Which of `number`'s output may be shared between clients (none for unknown numbers).
pub fn sharing(number: i32) -> Sharing {
    entry(number).map_or(Sharing::None, |e| e.caps.sharing)
}

/// A fresh encoder for `number` made by this crate (`None` for host-made and unsent ones).
pub fn new_encoder(number: i32) -> Option<Box<dyn Encoder>> {
    match entry(number)?.factory {
        Factory::Builtin(make) => Some(make()),
        Factory::Host | Factory::None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_unique_and_factories_make_their_encoding() {
        for (i, e) in ENTRIES.iter().enumerate() {
            assert!(
                ENTRIES[i + 1..].iter().all(|o| o.number != e.number),
                "{} listed twice",
                e.name
            );
            if let Factory::Builtin(make) = e.factory {
                assert_eq!(make().encoding(), e.number, "{}", e.name);
            }
        }
        assert!(builtin(n::TIGHT) && !builtin(n::H264) && !builtin(n::COPY_RECT));
        assert!(entry(12345).is_none() && new_encoder(n::RRE).is_none());
    }

    #[test]
    fn motion_only_encodings_need_the_host_and_whole_frames() {
        for e in ENTRIES.iter().filter(|e| e.caps.motion_only) {
            assert!(matches!(e.factory, Factory::Host), "{}", e.name);
            assert!(
                e.caps.whole_frame && e.caps.key_frame_on_request,
                "{}",
                e.name
            );
        }
    }
}
