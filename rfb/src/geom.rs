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

    pub(crate) fn from_edges(x0: u32, y0: u32, x1: u32, y1: u32) -> Rect {
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

/// A set of pixels, kept as disjoint rectangles in y-x banded form.
///
/// The rectangles are sorted by y then x; rectangles in one horizontal band share y and height;
/// bands do not overlap; within a band, rectangles neither overlap nor touch; vertically
/// adjacent bands with the same x-intervals are merged. That form is canonical, so two regions
/// covering the same pixels compare equal, [`Region::area`] is exact and an encoder never sends
/// a pixel twice. Every operation is one sweep over both operands' bands (linear time), the
/// classic X11/pixman design.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Region {
    rects: Vec<Rect>,
}

/// A half-open interval of x (or y) coordinates; u32 because edges reach 2 * 65535.
type Span = (u32, u32);

/// One band of a region being built: rows `y0..y1` covered on `spans[start..end]`.
#[derive(Debug, Clone, Copy)]
struct Band {
    y0: u32,
    y1: u32,
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Intersect,
    Subtract,
}

impl Op {
    fn keep(self, a: bool, b: bool) -> bool {
        match self {
            Op::Union => a || b,
            Op::Intersect => a && b,
            Op::Subtract => a && !b,
        }
    }
}

/// The bands of a banded rect list, as (y0, y1, spans) with spans appended to `spans`.
fn bands_of(rects: &[Rect], spans: &mut Vec<Span>) -> Vec<Band> {
    let mut bands: Vec<Band> = Vec::new();
    for r in rects {
        let (y0, y1) = (u32::from(r.y), r.bottom());
        match bands.last_mut() {
            Some(b) if b.y0 == y0 && b.y1 == y1 => b.end += 1,
            _ => bands.push(Band {
                y0,
                y1,
                start: spans.len(),
                end: spans.len() + 1,
            }),
        }
        spans.push((u32::from(r.x), r.right()));
    }
    bands
}

/// Combine two sorted, disjoint span lists with `op`, appending merged spans to `out`.
fn combine_spans(a: &[Span], b: &[Span], op: Op, out: &mut Vec<Span>) {
    let first = out.len();
    // Walk all span edges in order; between consecutive edges membership is constant.
    let (mut i, mut j) = (0, 0);
    let mut pos = match (a.first(), b.first()) {
        (Some(x), Some(y)) => x.0.min(y.0),
        (Some(x), None) => x.0,
        (None, Some(y)) => y.0,
        (None, None) => return,
    };
    loop {
        while i < a.len() && a[i].1 <= pos {
            i += 1;
        }
        while j < b.len() && b[j].1 <= pos {
            j += 1;
        }
        let in_a = i < a.len() && a[i].0 <= pos;
        let in_b = j < b.len() && b[j].0 <= pos;
        // The next edge after pos.
        let next_a = a.get(i).map(|s| if in_a { s.1 } else { s.0 });
        let next_b = b.get(j).map(|s| if in_b { s.1 } else { s.0 });
        let next = match (next_a, next_b) {
            (Some(x), Some(y)) => x.min(y),
            (Some(x), None) => x,
            (None, Some(y)) => y,
            (None, None) => break,
        };
        if op.keep(in_a, in_b) {
            let len = out.len();
            match out.last_mut() {
                Some(last) if len > first && last.1 == pos => last.1 = next,
                _ => out.push((pos, next)),
            }
        }
        pos = next;
    }
}

/// The band of `bands` covering row `y`, advancing the cursor `k` (rows are visited in order).
fn band_at(bands: &[Band], k: &mut usize, y: u32) -> Option<Band> {
    while *k < bands.len() && bands[*k].y1 <= y {
        *k += 1;
    }
    bands.get(*k).copied().filter(|b| b.y0 <= y)
}

/// Sweep both regions band by band.
fn region_op(a: &[Rect], b: &[Rect], op: Op) -> Vec<Rect> {
    let mut sa = Vec::new();
    let mut sb = Vec::new();
    let ba = bands_of(a, &mut sa);
    let bb = bands_of(b, &mut sb);
    // Every row edge of either operand, sorted.
    let mut edges: Vec<u32> = Vec::with_capacity(2 * (ba.len() + bb.len()));
    for band in ba.iter().chain(bb.iter()) {
        edges.push(band.y0);
        edges.push(band.y1);
    }
    edges.sort_unstable();
    edges.dedup();

    let mut spans: Vec<Span> = Vec::new();
    let mut out: Vec<Band> = Vec::new();
    let (mut ka, mut kb) = (0, 0);
    for w in edges.windows(2) {
        let (y0, y1) = (w[0], w[1]);
        let sa_row = band_at(&ba, &mut ka, y0).map_or(&[][..], |x| &sa[x.start..x.end]);
        let sb_row = band_at(&bb, &mut kb, y0).map_or(&[][..], |x| &sb[x.start..x.end]);
        let start = spans.len();
        combine_spans(sa_row, sb_row, op, &mut spans);
        let end = spans.len();
        if start == end {
            continue;
        }
        // Merge with the band above when it touches and covers the same columns.
        if let Some(prev) = out.last_mut() {
            if prev.y1 == y0 && spans[prev.start..prev.end] == spans[start..end] {
                prev.y1 = y1;
                spans.truncate(start);
                continue;
            }
        }
        out.push(Band { y0, y1, start, end });
    }
    let mut rects = Vec::with_capacity(spans.len());
    for band in &out {
        push_band(&mut rects, band, &spans[band.start..band.end]);
    }
    rects
}

/// Emit one band as rectangles. Edges can exceed what a u16 size holds only for regions
/// reaching past coordinate 65535; such spans are split so nothing is lost.
fn push_band(rects: &mut Vec<Rect>, band: &Band, spans: &[Span]) {
    const MAX: u32 = u16::MAX as u32;
    let mut y = band.y0;
    while y < band.y1 && y <= MAX {
        let h = (band.y1 - y).min(MAX);
        for &(x0, x1) in spans {
            let mut x = x0;
            while x < x1 && x <= MAX {
                let w = (x1 - x).min(MAX);
                rects.push(Rect::new(x as u16, y as u16, w as u16, h as u16));
                x += w;
            }
        }
        y += h;
    }
}

impl Region {
    /// The empty region.
    pub fn new() -> Self {
        Region { rects: Vec::new() }
    }

    /// A region covering one rectangle.
    pub fn from_rect(r: Rect) -> Self {
        let rects = if r.is_empty() { Vec::new() } else { vec![r] };
        Region { rects }
    }

    /// The disjoint rectangles making up the region, sorted by y then x.
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

    fn apply(&mut self, other: &[Rect], op: Op) {
        self.rects = region_op(&self.rects, other, op);
    }

    /// Add a rectangle (union).
    pub fn add_rect(&mut self, r: Rect) {
        if r.is_empty() || self.rects.iter().any(|e| e.contains_rect(&r)) {
            return;
        }
        self.apply(&[r], Op::Union);
    }

    /// Union with another region.
    pub fn union(&mut self, o: &Region) {
        if o.is_empty() {
            return;
        }
        self.apply(&o.rects, Op::Union);
    }

    /// Union with another region, then, if that leaves more than `max_rects` rectangles,
    /// replace the region by its bounding box. Keeps a region fed by a client (damage to
    /// send, areas it asked for) cheap however many pieces arrive: each union works on at most
    /// `max_rects` rectangles, never on a count the client controls.
    pub fn union_capped(&mut self, o: &Region, max_rects: usize) {
        self.union(o);
        if self.rects.len() > max_rects {
            *self = Region::from_rect(self.bounds());
        }
    }

    /// Remove a rectangle.
    pub fn subtract_rect(&mut self, r: Rect) {
        if r.is_empty() || !self.rects.iter().any(|e| e.overlaps(&r)) {
            return;
        }
        self.apply(&[r], Op::Subtract);
    }

    /// Remove another region.
    pub fn subtract(&mut self, o: &Region) {
        if o.is_empty() || self.is_empty() {
            return;
        }
        self.apply(&o.rects, Op::Subtract);
    }

    /// Keep only the part inside `r`.
    pub fn intersect_rect(&mut self, r: Rect) {
        if r.is_empty() {
            self.rects.clear();
            return;
        }
        self.apply(&[r], Op::Intersect);
    }

    /// Keep only the part also in `o`.
    pub fn intersect(&mut self, o: &Region) {
        self.apply(&o.rects, Op::Intersect);
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
}

impl From<Rect> for Region {
    fn from(r: Rect) -> Self {
        Region::from_rect(r)
    }
}

impl FromIterator<Rect> for Region {
    /// Builds by pairwise merging (like merge sort) so n rectangles cost O(n log n) sweeps'
    /// worth of work instead of n full-region sweeps.
    fn from_iter<I: IntoIterator<Item = Rect>>(iter: I) -> Self {
        let mut level: Vec<Vec<Rect>> = iter
            .into_iter()
            .filter(|r| !r.is_empty())
            .map(|r| vec![r])
            .collect();
        while level.len() > 1 {
            let mut next = Vec::with_capacity(level.len().div_ceil(2));
            let mut it = level.chunks(2);
            for pair in &mut it {
                match pair {
                    [a, b] => next.push(region_op(a, b, Op::Union)),
                    [a] => next.push(a.clone()),
                    _ => {}
                }
            }
            level = next;
        }
        Region {
            rects: level.pop().unwrap_or_default(),
        }
    }
}
