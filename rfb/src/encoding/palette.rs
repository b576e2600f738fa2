//! Colour analysis shared by the palette-based encoders (ZRLE, Tight, Hextile): a small
//! open-addressing hash from native pixel to palette index, with use counts.

/// Slots in the hash table; twice the largest palette any encoder asks for (256).
const SLOTS: usize = 512;
/// Native pixels have the X byte masked off, so this never collides with a real colour.
const EMPTY: u32 = u32::MAX;

/// Up to 256 distinct colours in first-seen order, with how many pixels use each.
#[derive(Clone)]
pub(crate) struct Palette {
    keys: Box<[u32; SLOTS]>,
    index: Box<[u8; SLOTS]>,
    used: Vec<u16>,
    colours: Vec<u32>,
    pub(crate) counts: Vec<u32>,
}

impl std::fmt::Debug for Palette {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Palette")
            .field("colours", &self.colours)
            .finish()
    }
}

impl Default for Palette {
    fn default() -> Self {
        Palette {
            keys: Box::new([EMPTY; SLOTS]),
            index: Box::new([0; SLOTS]),
            used: Vec::with_capacity(256),
            colours: Vec::with_capacity(256),
            counts: Vec::with_capacity(256),
        }
    }
}

/// The two most recently indexed colours, for [`Palette::index_more`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recent {
    last: u32,
    last_k: u8,
    prev: u32,
    prev_k: u8,
}

impl Default for Recent {
    fn default() -> Self {
        Recent {
            last: EMPTY,
            last_k: 0,
            prev: EMPTY,
            prev_k: 0,
        }
    }
}

#[inline(always)]
fn slot_of(c: u32) -> usize {
    (c.wrapping_mul(0x9E37_79B1) >> 23) as usize & (SLOTS - 1)
}

impl Palette {
    /// Forget all colours (cost proportional to the colours held, not the table).
    pub(crate) fn clear(&mut self) {
        for &s in &self.used {
            self.keys[usize::from(s)] = EMPTY;
        }
        self.used.clear();
        self.colours.clear();
        self.counts.clear();
    }

    /// Colours in first-seen order.
    pub(crate) fn colours(&self) -> &[u32] {
        &self.colours
    }

    /// Number of colours.
    pub(crate) fn len(&self) -> usize {
        self.colours.len()
    }

    /// Count `n` pixels of colour `c`. Returns false (and adds nothing) when `c` is new and the
    /// palette already holds `max` colours (`max` <= 256).
    #[inline]
    pub(crate) fn add(&mut self, c: u32, n: u32, max: usize) -> bool {
        self.add_indexed(c, n, max).is_some()
    }

    /// Like [`Self::add`], returning the colour's index.
    #[inline]
    pub(crate) fn add_indexed(&mut self, c: u32, n: u32, max: usize) -> Option<u8> {
        let mut s = slot_of(c);
        loop {
            let k = self.keys[s];
            if k == c {
                let i = self.index[s];
                self.counts[usize::from(i)] += n;
                return Some(i);
            }
            if k == EMPTY {
                if self.colours.len() >= max.min(256) {
                    return None;
                }
                let i = self.colours.len() as u8;
                self.keys[s] = c;
                self.index[s] = i;
                self.used.push(s as u16);
                self.colours.push(c);
                self.counts.push(n);
                return Some(i);
            }
            s = (s + 1) & (SLOTS - 1);
        }
    }

    /// The index of `c`, if it was added.
    #[inline]
    pub(crate) fn find(&self, c: u32) -> Option<u8> {
        let mut s = slot_of(c);
        for _ in 0..SLOTS {
            let k = self.keys[s];
            if k == c {
                return Some(self.index[s]);
            }
            if k == EMPTY {
                return None;
            }
            s = (s + 1) & (SLOTS - 1);
        }
        None
    }

    /// The index of a colour that was added (0 for one that was not).
    #[inline]
    pub(crate) fn index_of(&self, c: u32) -> u8 {
        self.find(c).unwrap_or(0)
    }

    /// Add the colours of `px` and write each pixel's index to `idx`, without use counts.
    /// Returns false as soon as more than `max` colours are seen.
    #[cfg(test)]
    pub(crate) fn index_pixels(&mut self, px: &[u32], max: usize, idx: &mut Vec<u8>) -> bool {
        idx.clear();
        self.index_more(px, max, idx, &mut Recent::default())
    }

    /// [`Self::index_pixels`] continued: append the indices of `px` to `idx`, with the
    /// recent-colour cache carried between calls.
    #[cfg(test)]
    pub(crate) fn index_more(
        &mut self,
        px: &[u32],
        max: usize,
        idx: &mut Vec<u8>,
        r: &mut Recent,
    ) -> bool {
        let start = idx.len();
        idx.resize(start + px.len(), 0);
        for (&p, slot) in px.iter().zip(idx[start..].iter_mut()) {
            if self.index_one(p, max, slot, r).is_none() {
                return false;
            }
        }
        true
    }

    /// Append the indices of a row of native BGRX pixels to `idx`, with the recent-colour
    /// cache carried between calls (so a tile can be indexed row by row and abandoned early).
    /// Returns false as soon as more than `max` colours are seen.
    pub(crate) fn index_row(
        &mut self,
        row: &[u8],
        max: usize,
        idx: &mut Vec<u8>,
        r: &mut Recent,
    ) -> bool {
        let start = idx.len();
        idx.resize(start + row.len() / 4, 0);
        for (b, slot) in row.chunks_exact(4).zip(idx[start..].iter_mut()) {
            let p = u32::from_le_bytes([b[0], b[1], b[2], 0]);
            if self.index_one(p, max, slot, r).is_none() {
                return false;
            }
        }
        true
    }

    #[inline(always)]
    fn index_one(&mut self, p: u32, max: usize, slot: &mut u8, r: &mut Recent) -> Option<()> {
        if p != r.last {
            // Text alternates between two colours: try the one before the last first.
            let k = if p == r.prev {
                r.prev_k
            } else {
                self.add_indexed(p, 0, max)?
            };
            (r.prev, r.prev_k) = (r.last, r.last_k);
            (r.last, r.last_k) = (p, k);
        }
        *slot = r.last_k;
        Some(())
    }

    /// Add every pixel of `px` (run by run). Returns false as soon as more than `max` colours
    /// are seen; the palette then holds the first `max`.
    pub(crate) fn add_pixels(&mut self, px: &[u32], max: usize) -> bool {
        let mut i = 0;
        while i < px.len() {
            let c = px[i];
            let mut j = i + 1;
            while j < px.len() && px[j] == c {
                j += 1;
            }
            if !self.add(c, (j - i) as u32, max) {
                return false;
            }
            i = j;
        }
        true
    }

    /// Index of the most used colour.
    pub(crate) fn most_used(&self) -> usize {
        let mut best = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            if n > self.counts[best] {
                best = i;
            }
        }
        best
    }
}

/// Copy the pixels of `r` from `frame` into `px` as native `u32`s (X byte cleared).
pub(crate) fn read_pixels(frame: &super::FrameView<'_>, r: &crate::geom::Rect, px: &mut Vec<u32>) {
    px.clear();
    px.reserve(r.area() as usize);
    for y in r.y..r.y.saturating_add(r.h) {
        let row = frame.row(r.x, y, r.w);
        px.extend(
            row.chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], 0])),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_limits() {
        let mut p = Palette::default();
        assert!(p.add_pixels(&[5, 5, 7, 5, 9], 3));
        assert_eq!(p.colours(), &[5, 7, 9]);
        assert_eq!(p.counts, [3, 1, 1]);
        assert_eq!(p.index_of(9), 2);
        assert_eq!(p.most_used(), 0);
        let mut idx = Vec::new();
        p.clear();
        assert!(p.index_pixels(&[4, 4, 6, 4, 6, 8, 8, 6], 3, &mut idx));
        assert_eq!(idx, [0, 0, 1, 0, 1, 2, 2, 1]);
        assert_eq!(p.find(8), Some(2));
        assert_eq!(p.find(5), None);
        p.clear();
        assert!(!p.index_pixels(&[1, 2, 3, 4], 3, &mut idx));
        assert!(!p.add_pixels(&[9], 3), "full palette refuses a new colour");
        p.clear();
        assert_eq!(p.len(), 0);
        let many: Vec<u32> = (0..300).collect();
        assert!(!p.add_pixels(&many, 256));
        assert_eq!(p.len(), 256);
        for c in 0..256u32 {
            assert_eq!(u32::from(p.index_of(c)), c);
        }
    }
}
