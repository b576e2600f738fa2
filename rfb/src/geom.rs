//! Rectangles and regions in framebuffer coordinates.

/// An axis-aligned rectangle. `x + w` and `y + h` never exceed `u16::MAX + 1` in practice
/// because all rectangles come from screens of at most 65535 pixels a side; arithmetic is done
/// in `u32` to be safe regardless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rect {
    /// Left edge.
    pub x: u16,
    /// Top edge.
    pub y: u16,
    /// Width in pixels.
    pub w: u16,
    /// Height in pixels.
    pub h: u16,
}

impl Rect {
    /// A rectangle from its position and size.
    pub const fn new(x: u16, y: u16, w: u16, h: u16) -> Self {
        Rect { x, y, w, h }
    }

    /// True when the rectangle covers no pixel.
    pub fn is_empty(&self) -> bool {
        self.w == 0 || self.h == 0
    }

    /// Number of pixels covered.
    pub fn area(&self) -> u64 {
        u64::from(self.w) * u64::from(self.h)
    }

    /// One past the right edge.
    pub fn right(&self) -> u32 {
        u32::from(self.x) + u32::from(self.w)
    }

    /// One past the bottom edge.
    pub fn bottom(&self) -> u32 {
        u32::from(self.y) + u32::from(self.h)
    }

    fn from_edges(x0: u32, y0: u32, x1: u32, y1: u32) -> Rect {
        if x1 <= x0 || y1 <= y0 {
            return Rect::default();
        }
        let clamp = |v: u32| v.min(u32::from(u16::MAX)) as u16;
        Rect::new(clamp(x0), clamp(y0), clamp(x1 - x0), clamp(y1 - y0))
    }

    /// The overlap of two rectangles (empty when they do not overlap).
    pub fn intersect(&self, o: &Rect) -> Rect {
        Rect::from_edges(
            u32::from(self.x.max(o.x)),
            u32::from(self.y.max(o.y)),
            self.right().min(o.right()),
            self.bottom().min(o.bottom()),
        )
    }

    /// True when the two rectangles share at least one pixel.
    pub fn overlaps(&self, o: &Rect) -> bool {
        !self.intersect(o).is_empty()
    }

    /// True when `o` lies entirely inside `self`.
    pub fn contains_rect(&self, o: &Rect) -> bool {
        o.is_empty()
            || (o.x >= self.x
                && o.y >= self.y
                && o.right() <= self.right()
                && o.bottom() <= self.bottom())
    }

    /// True when the pixel (x, y) lies inside.
    pub fn contains(&self, x: u16, y: u16) -> bool {
        x >= self.x && y >= self.y && u32::from(x) < self.right() && u32::from(y) < self.bottom()
    }

    /// The smallest rectangle covering both (an empty one is ignored).
    pub fn union_bounds(&self, o: &Rect) -> Rect {
        if self.is_empty() {
            return *o;
        }
        if o.is_empty() {
            return *self;
        }
        Rect::from_edges(
            u32::from(self.x.min(o.x)),
            u32::from(self.y.min(o.y)),
            self.right().max(o.right()),
            self.bottom().max(o.bottom()),
        )
    }

    /// Clip to a screen of the given size.
    pub fn clamp_to(&self, width: u16, height: u16) -> Rect {
        self.intersect(&Rect::new(0, 0, width, height))
    }

    /// `self` minus `o`, as up to four disjoint rectangles (top, bottom, left, right bands).
    pub fn subtract(&self, o: &Rect) -> impl Iterator<Item = Rect> {
        let i = self.intersect(o);
        let mut out = [Rect::default(); 4];
        if i.is_empty() {
            out[0] = *self;
        } else {
            let (x0, y0, x1, y1) = (
                u32::from(self.x),
                u32::from(self.y),
                self.right(),
                self.bottom(),
            );
            let (ix0, iy0, ix1, iy1) = (u32::from(i.x), u32::from(i.y), i.right(), i.bottom());
            out[0] = Rect::from_edges(x0, y0, x1, iy0);
            out[1] = Rect::from_edges(x0, iy1, x1, y1);
            out[2] = Rect::from_edges(x0, iy0, ix0, iy1);
            out[3] = Rect::from_edges(ix1, iy0, x1, iy1);
        }
        out.into_iter().filter(|r| !r.is_empty())
    }

    /// Split into tiles of at most `tw` x `th`, row by row.
    pub fn tiles(&self, tw: u16, th: u16) -> impl Iterator<Item = Rect> + '_ {
        let (tw, th) = (u32::from(tw.max(1)), u32::from(th.max(1)));
        let (x0, y0, x1, y1) = (
            u32::from(self.x),
            u32::from(self.y),
            self.right(),
            self.bottom(),
        );
        (y0..y1).step_by(th as usize).flat_map(move |ty| {
            (x0..x1)
                .step_by(tw as usize)
                .map(move |tx| Rect::from_edges(tx, ty, (tx + tw).min(x1), (ty + th).min(y1)))
        })
    }
}

/// A set of pixels, kept as disjoint rectangles.
///
/// Operations keep the rectangles disjoint, so [`Region::area`] is exact and an encoder never
/// sends a pixel twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Region {
    rects: Vec<Rect>,
}

impl Region {
    /// The empty region.
    pub fn new() -> Self {
        Region { rects: Vec::new() }
    }

    /// A region covering one rectangle.
    pub fn from_rect(r: Rect) -> Self {
        let mut g = Region::new();
        g.add_rect(r);
        g
    }

    /// The disjoint rectangles making up the region (order unspecified).
    pub fn rects(&self) -> &[Rect] {
        &self.rects
    }

    /// True when no pixel is covered.
    pub fn is_empty(&self) -> bool {
        self.rects.is_empty()
    }

    /// Number of pixels covered.
    pub fn area(&self) -> u64 {
        self.rects.iter().map(Rect::area).sum()
    }

    /// The smallest rectangle covering the region.
    pub fn bounds(&self) -> Rect {
        self.rects
            .iter()
            .fold(Rect::default(), |b, r| b.union_bounds(r))
    }

    /// True when the pixel (x, y) is covered.
    pub fn contains(&self, x: u16, y: u16) -> bool {
        self.rects.iter().any(|r| r.contains(x, y))
    }

    /// Remove everything.
    pub fn clear(&mut self) {
        self.rects.clear();
    }

    /// Add a rectangle (union).
    pub fn add_rect(&mut self, r: Rect) {
        if r.is_empty() || self.rects.iter().any(|e| e.contains_rect(&r)) {
            return;
        }
        // Drop existing rectangles the new one swallows, then add only the uncovered parts.
        self.rects.retain(|e| !r.contains_rect(e));
        let mut pieces = vec![r];
        for e in &self.rects {
            if !pieces.iter().any(|p| p.overlaps(e)) {
                continue;
            }
            pieces = pieces.iter().flat_map(|p| p.subtract(e)).collect();
        }
        self.rects.extend(pieces);
        self.coalesce();
    }

    /// Union with another region.
    pub fn union(&mut self, o: &Region) {
        for r in &o.rects {
            self.add_rect(*r);
        }
    }

    /// Remove a rectangle.
    pub fn subtract_rect(&mut self, r: Rect) {
        if r.is_empty() || !self.rects.iter().any(|e| e.overlaps(&r)) {
            return;
        }
        self.rects = self.rects.iter().flat_map(|e| e.subtract(&r)).collect();
        self.coalesce();
    }

    /// Remove another region.
    pub fn subtract(&mut self, o: &Region) {
        for r in &o.rects {
            self.subtract_rect(*r);
        }
    }

    /// Keep only the part inside `r`.
    pub fn intersect_rect(&mut self, r: Rect) {
        self.rects = self
            .rects
            .iter()
            .map(|e| e.intersect(&r))
            .filter(|e| !e.is_empty())
            .collect();
    }

    /// Keep only the part also in `o`.
    pub fn intersect(&mut self, o: &Region) {
        let mut out = Vec::new();
        for a in &self.rects {
            for b in &o.rects {
                let i = a.intersect(b);
                if !i.is_empty() {
                    out.push(i);
                }
            }
        }
        self.rects = out;
        self.coalesce();
    }

    /// Clip to a screen of the given size.
    pub fn clamp_to(&mut self, width: u16, height: u16) {
        self.intersect_rect(Rect::new(0, 0, width, height));
    }

    /// The region split into tiles of at most `tw` x `th`.
    pub fn tiles(&self, tw: u16, th: u16) -> Vec<Rect> {
        self.rects
            .iter()
            .flat_map(|r| r.tiles(tw, th).collect::<Vec<_>>())
            .collect()
    }

    /// Merge rectangles that share a full edge, to keep the list short.
    fn coalesce(&mut self) {
        let mut changed = true;
        while changed && self.rects.len() > 1 {
            changed = false;
            'outer: for i in 0..self.rects.len() {
                for j in (i + 1)..self.rects.len() {
                    let (a, b) = (self.rects[i], self.rects[j]);
                    let merged = if a.y == b.y
                        && a.h == b.h
                        && (a.right() == u32::from(b.x) || b.right() == u32::from(a.x))
                    {
                        Some(a.union_bounds(&b))
                    } else if a.x == b.x
                        && a.w == b.w
                        && (a.bottom() == u32::from(b.y) || b.bottom() == u32::from(a.y))
                    {
                        Some(a.union_bounds(&b))
                    } else {
                        None
                    };
                    if let Some(m) = merged {
                        self.rects[i] = m;
                        self.rects.swap_remove(j);
                        changed = true;
                        break 'outer;
                    }
                }
            }
        }
    }
}

impl From<Rect> for Region {
    fn from(r: Rect) -> Self {
        Region::from_rect(r)
    }
}

impl FromIterator<Rect> for Region {
    fn from_iter<I: IntoIterator<Item = Rect>>(iter: I) -> Self {
        let mut g = Region::new();
        for r in iter {
            g.add_rect(r);
        }
        g
    }
}
