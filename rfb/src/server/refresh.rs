//! Areas the client shows lossily (JPEG), and when each becomes due for a lossless refresh.
//!
//! An area is due once it has been unchanged for [`REFRESH_DELAY`] since it was sent. New
//! damage removes an area (it will be sent again anyway, and starts over if that is lossy
//! too), so a continuously animating area is never refreshed: only what has gone still.

use std::time::{Duration, Instant};

use crate::Region;

/// How long a lossily sent area must stay unchanged before it is re-sent losslessly.
///
/// 150 ms: longer than four frames of a 30 Hz animation, so areas that keep moving (video,
/// scrolling, dragging) are not refreshed only to be overwritten; short enough that text
/// settles sharp before the eye does (a fixation takes 200-300 ms), and leaves most of the one
/// second budget for sending a full-screen lossless refresh over a slower link.
pub const REFRESH_DELAY: Duration = Duration::from_millis(150);

/// Batches of lossy areas are merged beyond this many (keeping the newest time, so merging
/// only ever delays a refresh), bounding the bookkeeping.
const MAX_BATCHES: usize = 16;

/// Lossily sent areas not yet refreshed, with the time each batch was sent.
#[derive(Debug, Clone, Default)]
pub struct LossyAreas {
    batches: Vec<(Instant, Region)>,
}

impl LossyAreas {
    /// Nothing lossy.
    pub fn new() -> LossyAreas {
        LossyAreas::default()
    }

    /// `region` was just sent lossily at `now`.
    pub fn sent_lossy(&mut self, region: Region, now: Instant) {
        if region.is_empty() {
            return;
        }
        // Areas sent again supersede their older batch.
        self.remove(&region);
        self.batches.push((now, region));
        if self.batches.len() > MAX_BATCHES {
            let (_, older) = self.batches.remove(0);
            if let Some((_, next)) = self.batches.first_mut() {
                next.union(&older);
            }
        }
    }

    /// `region` changed or was sent losslessly: it no longer needs a refresh from here.
    pub fn remove(&mut self, region: &Region) {
        if region.is_empty() {
            return;
        }
        for (_, r) in &mut self.batches {
            r.subtract(region);
        }
        self.batches.retain(|(_, r)| !r.is_empty());
    }

    /// Areas due for a refresh at `now`.
    pub fn due(&self, now: Instant) -> Region {
        let mut out = Region::new();
        for (t, r) in &self.batches {
            if now.saturating_duration_since(*t) >= REFRESH_DELAY {
                out.union(r);
            }
        }
        out
    }

    /// When the next area becomes due (`None` when nothing is lossy).
    pub fn next_due(&self) -> Option<Instant> {
        self.next_due_after(None)
    }

    /// When the next area becomes due strictly after `after` (areas due earlier are waiting
    /// for room to send, which other events signal, not a timer).
    pub fn next_due_after(&self, after: Option<Instant>) -> Option<Instant> {
        self.batches
            .iter()
            .map(|(t, _)| *t + REFRESH_DELAY)
            .filter(|due| after.is_none_or(|a| *due > a))
            .min()
    }

    /// Nothing is waiting for a refresh.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Forget everything (the client's framebuffer was replaced, e.g. after a resize).
    pub fn clear(&mut self) {
        self.batches.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rect;

    fn reg(x: u16, y: u16, w: u16, h: u16) -> Region {
        Region::from_rect(Rect::new(x, y, w, h))
    }

    #[test]
    fn still_areas_become_due_after_the_delay() {
        let t0 = Instant::now();
        let mut l = LossyAreas::new();
        l.sent_lossy(reg(0, 0, 10, 10), t0);
        assert!(l.due(t0 + REFRESH_DELAY / 2).is_empty());
        assert_eq!(l.next_due(), Some(t0 + REFRESH_DELAY));
        assert_eq!(l.due(t0 + REFRESH_DELAY), reg(0, 0, 10, 10));
    }

    #[test]
    fn changed_areas_are_not_refreshed_and_resending_restarts_the_clock() {
        let t0 = Instant::now();
        let mut l = LossyAreas::new();
        l.sent_lossy(reg(0, 0, 20, 10), t0);
        l.remove(&reg(0, 0, 10, 10));
        assert_eq!(l.due(t0 + REFRESH_DELAY), reg(10, 0, 10, 10));
        let t1 = t0 + REFRESH_DELAY / 2;
        l.sent_lossy(reg(10, 0, 10, 10), t1);
        assert!(l.due(t0 + REFRESH_DELAY).is_empty());
        assert_eq!(l.due(t1 + REFRESH_DELAY), reg(10, 0, 10, 10));
        l.remove(&reg(0, 0, 100, 100));
        assert!(l.is_empty() && l.next_due().is_none());
    }

    #[test]
    fn batches_stay_bounded_and_merging_never_refreshes_early() {
        let t0 = Instant::now();
        let mut l = LossyAreas::new();
        for i in 0..100u16 {
            l.sent_lossy(
                reg(i * 5, 0, 5, 5),
                t0 + Duration::from_millis(u64::from(i)),
            );
        }
        assert!(l.batches.len() <= MAX_BATCHES);
        let first_due = t0 + REFRESH_DELAY;
        assert!(
            !l.due(first_due).contains(0, 0),
            "merged into a newer batch"
        );
        let all = l.due(t0 + Duration::from_millis(99) + REFRESH_DELAY);
        assert_eq!(all.area(), 100 * 25);
    }
}
