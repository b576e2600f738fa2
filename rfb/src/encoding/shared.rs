//! Encode once, send to many: stateless output cut on a fixed grid and keyed by content.
//!
//! A client's update region is cut along a fixed grid of [`CELL_W`] x [`CELL_H`] cells into
//! pieces (each region rect intersected with each cell). Clients watching the same changes
//! have the same regions, so their pieces coincide. A piece of a stateless encoding is
//! identified by a [`PieceKey`]: the encoding, the rect, a version that names its pixels
//! exactly, and the settings the bytes depend on. Equal keys mean equal bytes, so the caller
//! may encode a piece once and hand the [`Piece`] to every client with that key.
//!
//! What is stateless (see [`super::registry`]): Raw and Hextile entirely; TightPNG (fills,
//! JPEG, PNG) unless PNG fails; Tight entirely, its zlib data on streams that each piece
//! resets (see [`tight::encode_stateless`]). Zlib and ZRLE are sent by the client's own
//! encoder: their streams have no reset, so their bytes depend on everything the client
//! received before.
//!
//! Nothing here caches or runs threads: the application keeps the cache and runs the pieces
//! on its worker pool.

use super::registry::{self, Sharing};
use super::{numbers, tight, EncodeError, EncodeParams, Encoded, Encoder, FrameView};
use crate::geom::Rect;
use crate::pixel::PixelFormat;

/// Grid cell width: Tight's widest rectangle, so a piece of a wide change is the very JPEG
/// rectangle Tight would send for the whole change (one set of JPEG headers per 64-pixel
/// band, not one per narrower cell: 256-pixel cells cost 1.13x the bytes and a third more
/// CPU per 1280x800 photo update, benches/viewers.rs).
pub const CELL_W: u16 = 2048;
/// Grid cell height: one row of Tight's 64-pixel tiles. A full-screen update still splits
/// into a piece per band (13 at 800 lines), plenty to spread over the cores.
pub const CELL_H: u16 = 64;

/// Cut `rects` along the grid, in order: each rect's pieces row by row.
pub fn pieces(rects: &[Rect]) -> Vec<Rect> {
    let mut out = Vec::new();
    for r in rects {
        let (x1, y1) = (r.right(), r.bottom());
        let mut y = u32::from(r.y);
        while y < y1 {
            let ny = ((y / u32::from(CELL_H)) + 1) * u32::from(CELL_H);
            let ny = ny.min(y1);
            let mut x = u32::from(r.x);
            while x < x1 {
                let nx = ((x / u32::from(CELL_W)) + 1) * u32::from(CELL_W);
                let nx = nx.min(x1);
                out.push(Rect::from_edges(x, y, nx, ny));
                x = nx;
            }
            y = ny;
        }
    }
    out
}

/// Whether `encoding` produces shareable pieces at all.
pub fn shares(encoding: i32) -> bool {
    registry::sharing(encoding) != Sharing::None
}

/// What identifies a piece's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PieceKey {
    /// The encoding.
    pub encoding: i32,
    /// The pixels covered.
    pub rect: Rect,
    /// A version naming the pixels of `rect` exactly: the same number for the same rect must
    /// always mean the same pixels (e.g. the last frame version that changed them).
    pub content: u64,
    /// The client's pixel format.
    pub format: PixelFormat,
    /// JPEG quality, for the encodings that use it.
    pub quality: Option<u8>,
    /// CompressLevel, for Tight's zlib data.
    pub compress: Option<u8>,
}

impl PieceKey {
    /// The key of `rect` with `content` in `encoding` for a client with `params`. Settings
    /// the bytes do not depend on are left out, so more clients share.
    pub fn new(encoding: i32, rect: Rect, content: u64, params: &EncodeParams) -> PieceKey {
        let quality = match encoding {
            numbers::TIGHT | numbers::TIGHT_PNG => params.quality_level.map(|q| q.min(9)),
            _ => None,
        };
        let compress = match encoding {
            numbers::TIGHT => Some(params.compress_level.unwrap_or(tight::DEFAULT_LEVEL).min(9)),
            _ => None,
        };
        PieceKey {
            encoding,
            rect,
            content,
            format: params.format,
            quality,
            compress,
        }
    }

    /// The settings to encode with.
    fn params(&self) -> EncodeParams {
        EncodeParams {
            format: self.format,
            compress_level: self.compress,
            quality_level: self.quality,
        }
    }
}

/// A piece's encoded rectangles, ready to append to any client's update with this key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Piece {
    /// Complete rectangles (headers and data).
    pub bytes: Vec<u8>,
    /// How many rectangles.
    pub rects: usize,
    /// Areas sent lossily.
    pub lossy: Vec<Rect>,
}

/// Encode the piece `key` from `frame` (which must hold the pixels `key.content` names).
/// `None` when it cannot be sent without a client's stream state: the client's own encoder
/// sends it.
pub fn encode_piece(frame: &FrameView<'_>, key: &PieceKey) -> Option<Piece> {
    let params = key.params();
    let mut bytes = Vec::new();
    let e: Encoded = match key.encoding {
        // TightPNG falls back to zlib data when PNG fails: only the stateless path is safe.
        numbers::TIGHT => tight::encode_stateless(false, frame, &key.rect, &params, &mut bytes)?,
        numbers::TIGHT_PNG => tight::encode_stateless(true, frame, &key.rect, &params, &mut bytes)?,
        n if registry::sharing(n) == Sharing::All => registry::new_encoder(n)?
            .encode(frame, &[key.rect], &params, &mut bytes)
            .ok()?,
        _ => return None,
    };
    Some(Piece {
        bytes,
        rects: e.rects,
        lossy: e.lossy,
    })
}

/// Encode `rects` the way a sharing client's update is built, without a cache: each grid
/// piece stateless where it can be, else with the client's encoder `own`.
pub fn encode_in_pieces(
    own: &mut dyn Encoder,
    frame: &FrameView<'_>,
    rects: &[Rect],
    params: &EncodeParams,
    out: &mut Vec<u8>,
) -> Result<Encoded, EncodeError> {
    let mut all = Encoded::default();
    for p in pieces(rects) {
        let key = PieceKey::new(own.encoding(), p, 0, params);
        let e = match encode_piece(frame, &key) {
            Some(piece) => {
                out.extend_from_slice(&piece.bytes);
                Encoded {
                    rects: piece.rects,
                    lossy: piece.lossy,
                }
            }
            None => own.encode(frame, &[p], params, out)?,
        };
        all.rects += e.rects;
        all.lossy.extend(e.lossy);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(data: &[u8], w: u16, h: u16) -> FrameView<'_> {
        FrameView {
            data,
            width: w,
            height: h,
            stride: usize::from(w) * 4,
        }
    }

    #[test]
    fn pieces_cover_exactly_and_stay_in_cells() {
        let rects = [Rect::new(2000, 5, 600, 130), Rect::new(700, 300, 20, 1)];
        let p = pieces(&rects);
        let area: u64 = p.iter().map(Rect::area).sum();
        assert_eq!(area, 600 * 130 + 20);
        // Three bands, each cut at x = 2048, and the thin rect whole.
        assert_eq!(p.len(), 3 * 2 + 1);
        for r in &p {
            assert_eq!(u32::from(r.x) / 2048, (r.right() - 1) / 2048, "{r:?}");
            assert_eq!(u32::from(r.y) / 64, (r.bottom() - 1) / 64, "{r:?}");
        }
        // Pieces of different regions coincide where the regions agree on a cell.
        let a = pieces(&[Rect::new(0, 0, 4096, 64)]);
        let b = pieces(&[Rect::new(0, 0, 4096, 128)]);
        assert_eq!(a.len(), 2);
        assert!(a.iter().all(|r| b.contains(r)));
        // The grid reaches the largest frames without overflow.
        let edge = pieces(&[Rect::new(65000, 65000, 535, 535)]);
        assert_eq!(edge.iter().map(Rect::area).sum::<u64>(), 535 * 535);
    }

    #[test]
    fn keys_keep_what_the_bytes_depend_on() {
        let r = Rect::new(0, 0, 64, 64);
        let p6 = EncodeParams {
            quality_level: Some(6),
            compress_level: Some(2),
            ..EncodeParams::default()
        };
        let p7 = EncodeParams {
            quality_level: Some(7),
            ..p6
        };
        let other_format = EncodeParams {
            format: PixelFormat::true_colour(16, 16, false, (31, 63, 31), (11, 5, 0)),
            ..p6
        };
        let k = |enc, content, p: &EncodeParams| PieceKey::new(enc, r, content, p);
        let tight = k(numbers::TIGHT, 5, &p6);
        assert_ne!(tight, k(numbers::TIGHT, 5, &p7), "quality");
        assert_ne!(tight, k(numbers::TIGHT, 5, &other_format), "pixel format");
        assert_ne!(tight, k(numbers::TIGHT, 6, &p6), "changed pixels");
        assert_ne!(tight, k(numbers::TIGHT_PNG, 5, &p6), "encoding");
        assert_ne!(
            tight,
            PieceKey::new(numbers::TIGHT, Rect::new(0, 0, 64, 32), 5, &p6)
        );
        // Compress level changes Tight's zlib data, not TightPNG's; none means Tight's default.
        let p6_c9 = EncodeParams {
            compress_level: Some(9),
            ..p6
        };
        assert_ne!(tight, k(numbers::TIGHT, 5, &p6_c9));
        let p6_default = EncodeParams {
            compress_level: None,
            ..p6
        };
        assert_eq!(tight, k(numbers::TIGHT, 5, &p6_default));
        assert_eq!(
            k(numbers::TIGHT_PNG, 5, &p6),
            k(numbers::TIGHT_PNG, 5, &p6_c9)
        );
        // Raw ignores quality.
        assert_eq!(k(numbers::RAW, 5, &p6), k(numbers::RAW, 5, &p7));
    }

    #[test]
    fn shared_tight_pieces_reset_their_own_streams() {
        let (w, h) = (128u16, 64u16);
        // Left half one colour, right half noise (photo-like).
        let mut data = vec![0u8; usize::from(w) * usize::from(h) * 4];
        let mut seed = 1u32;
        for y in 0..usize::from(h) {
            for x in 0..usize::from(w) {
                let i = (y * usize::from(w) + x) * 4;
                if x < 64 {
                    data[i..i + 4].copy_from_slice(&[10, 20, 30, 0]);
                } else {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    data[i..i + 4].copy_from_slice(&(seed >> 8).to_le_bytes());
                }
            }
        }
        let f = frame(&data, w, h);
        let params = EncodeParams {
            quality_level: Some(6),
            ..EncodeParams::default()
        };
        let key = PieceKey::new(numbers::TIGHT, f.bounds(), 1, &params);
        let piece = encode_piece(&f, &key).expect("fill + JPEG is stateless");
        assert_eq!(piece.rects, 2);
        assert_eq!(piece.lossy, vec![Rect::new(64, 0, 64, 64)]);
        // Without JPEG the noise is zlib data: on stream 2, reset (bit 2) before its first use,
        // so the same bytes suit every client whatever its streams 0 and 1 hold.
        let lossless = PieceKey::new(numbers::TIGHT, f.bounds(), 1, &EncodeParams::default());
        let piece = encode_piece(&f, &lossless).expect("stateless with resets");
        assert_eq!(piece.rects, 2);
        assert!(piece.lossy.is_empty());
        assert_eq!(piece.bytes[12], (2 << 4) | (1 << 2), "stream 2, reset");
        // The fill (control 0x80 and one 3-byte pixel) closes the piece.
        assert_eq!(piece.bytes[piece.bytes.len() - 4], 0x80);
        assert_eq!(
            encode_piece(&f, &lossless),
            Some(piece),
            "the same bytes again"
        );
        // TightPNG sends it as PNG, and Raw is always stateless.
        let png = PieceKey::new(numbers::TIGHT_PNG, f.bounds(), 1, &EncodeParams::default());
        assert!(encode_piece(&f, &png).is_some());
        let raw = PieceKey::new(numbers::RAW, f.bounds(), 1, &EncodeParams::default());
        assert_eq!(
            encode_piece(&f, &raw).map(|p| p.bytes.len()),
            Some(12 + 128 * 64 * 4)
        );
        // Per-client encodings never come out of here.
        let zrle = PieceKey::new(numbers::ZRLE, f.bounds(), 1, &EncodeParams::default());
        assert!(encode_piece(&f, &zrle).is_none());
    }
}
