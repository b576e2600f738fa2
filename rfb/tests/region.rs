//! Region algebra checked against a bitmap model on a small grid: every operation must cover
//! exactly the pixels the model says, with disjoint rectangles.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use rfb::{Rect, Region};

const N: usize = 48;

type Bitmap = Vec<bool>;

fn rect() -> impl Strategy<Value = Rect> {
    (0u16..32, 0u16..32, 0u16..14, 0u16..14).prop_map(|(x, y, w, h)| Rect::new(x, y, w, h))
}

fn rects() -> impl Strategy<Value = Vec<Rect>> {
    prop::collection::vec(rect(), 0..12)
}

fn paint(rs: &[Rect]) -> Bitmap {
    let mut m = vec![false; N * N];
    for r in rs {
        for y in r.y..r.y + r.h {
            for x in r.x..r.x + r.w {
                m[usize::from(y) * N + usize::from(x)] = true;
            }
        }
    }
    m
}

fn model_of(g: &Region) -> Bitmap {
    paint(g.rects())
}

/// The region's rectangles are non-empty and pairwise disjoint, its area is exact, and it
/// covers exactly `expected`.
fn check(g: &Region, expected: &Bitmap) {
    let rs = g.rects();
    for (i, a) in rs.iter().enumerate() {
        assert!(!a.is_empty(), "empty rect {a:?}");
        for b in &rs[i + 1..] {
            assert!(!a.overlaps(b), "{a:?} overlaps {b:?}");
        }
    }
    assert_eq!(&model_of(g), expected);
    let count = expected.iter().filter(|&&b| b).count() as u64;
    assert_eq!(g.area(), count);
    assert_eq!(g.is_empty(), count == 0);
    for y in 0..N as u16 {
        for x in 0..N as u16 {
            assert_eq!(
                g.contains(x, y),
                expected[usize::from(y) * N + usize::from(x)]
            );
        }
    }
}

fn zip(a: &Bitmap, b: &Bitmap, f: impl Fn(bool, bool) -> bool) -> Bitmap {
    a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn from_rects_is_union(a in rects()) {
        let g: Region = a.iter().copied().collect();
        check(&g, &paint(&a));
    }

    #[test]
    fn union(a in rects(), b in rects()) {
        let mut g: Region = a.iter().copied().collect();
        let h: Region = b.iter().copied().collect();
        g.union(&h);
        check(&g, &zip(&paint(&a), &paint(&b), |x, y| x || y));
    }

    #[test]
    fn intersect(a in rects(), b in rects()) {
        let mut g: Region = a.iter().copied().collect();
        let h: Region = b.iter().copied().collect();
        g.intersect(&h);
        check(&g, &zip(&paint(&a), &paint(&b), |x, y| x && y));
    }

    #[test]
    fn subtract(a in rects(), b in rects()) {
        let mut g: Region = a.iter().copied().collect();
        let h: Region = b.iter().copied().collect();
        g.subtract(&h);
        check(&g, &zip(&paint(&a), &paint(&b), |x, y| x && !y));
    }

    #[test]
    fn rect_operations(a in rects(), r in rect()) {
        let base: Region = a.iter().copied().collect();
        let ma = paint(&a);
        let mr = paint(&[r]);

        let mut g = base.clone();
        g.intersect_rect(r);
        check(&g, &zip(&ma, &mr, |x, y| x && y));

        let mut g = base.clone();
        g.subtract_rect(r);
        check(&g, &zip(&ma, &mr, |x, y| x && !y));

        let mut g = base.clone();
        g.add_rect(r);
        check(&g, &zip(&ma, &mr, |x, y| x || y));

        let mut g = base;
        g.clamp_to(r.w, r.h);
        check(&g, &zip(&ma, &paint(&[Rect::new(0, 0, r.w, r.h)]), |x, y| x && y));
    }

    /// Union, intersection and difference partition A ∪ B: (A−B) + (A∩B) + (B−A) areas add up.
    #[test]
    fn inclusion_exclusion(a in rects(), b in rects()) {
        let ga: Region = a.iter().copied().collect();
        let gb: Region = b.iter().copied().collect();
        let mut u = ga.clone();
        u.union(&gb);
        let mut i = ga.clone();
        i.intersect(&gb);
        let mut d1 = ga.clone();
        d1.subtract(&gb);
        let mut d2 = gb.clone();
        d2.subtract(&ga);
        prop_assert_eq!(u.area(), d1.area() + i.area() + d2.area());
        prop_assert_eq!(u.area() + i.area(), ga.area() + gb.area());
    }

    #[test]
    fn bounds_and_tiles(a in rects(), tw in 1u16..9, th in 1u16..9) {
        let g: Region = a.iter().copied().collect();
        let b = g.bounds();
        for r in g.rects() {
            prop_assert!(b.contains_rect(r));
        }
        let tiles = g.tiles(tw, th);
        for t in &tiles {
            prop_assert!(t.w <= tw && t.h <= th && !t.is_empty());
        }
        let tiled: Region = tiles.iter().copied().collect();
        prop_assert_eq!(tiled.area(), g.area());
        prop_assert_eq!(tiles.iter().map(Rect::area).sum::<u64>(), g.area());
        prop_assert_eq!(model_of(&tiled), model_of(&g));
    }
}

#[test]
fn edges_at_the_coordinate_limit() {
    // A full 65535-wide row and a rect touching the far edge do not overflow.
    let mut g = Region::from_rect(Rect::new(0, 0, u16::MAX, 1));
    g.add_rect(Rect::new(u16::MAX - 1, 0, 1, 2));
    assert_eq!(g.area(), u64::from(u16::MAX) + 1);
    g.subtract_rect(Rect::new(1, 0, u16::MAX - 1, 2));
    assert_eq!(g.area(), 1);
    assert!(g.contains(0, 0));
}

#[test]
fn equal_pixel_sets_compare_equal() {
    // The banded form is canonical: the same pixels built two ways give the same rects.
    let a: Region = [Rect::new(0, 0, 4, 2), Rect::new(0, 2, 4, 2)]
        .into_iter()
        .collect();
    let b: Region = [Rect::new(0, 0, 2, 4), Rect::new(2, 0, 2, 4)]
        .into_iter()
        .collect();
    assert_eq!(a, b);
    assert_eq!(a.rects(), &[Rect::new(0, 0, 4, 4)]);
}
