//! What a session sends next: pure scheduling over damage, requests and lossless refresh.
//!
//! The engine feeds in damage (regions changed since it last looked), client requests and
//! "the previous update is out"; [`Scheduler::next`] answers with the pixels to send now, or
//! nothing. One update is being prepared at a time and damage merges into one pending region
//! meanwhile, so a slow client gets the newest pixels later, never a queue of stale frames.

use crate::{Rect, Region};

/// A pending or forced region with more rectangles than this is replaced by its bounding box, so
/// the bookkeeping for a client that never reads (or floods tiny requests) stays small: each
/// damage or request costs at most a union with this many rectangles.
const MAX_PENDING_RECTS: usize = 256;

/// What to send in the next FramebufferUpdate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Tell the client the new framebuffer size (DesktopSize / ExtendedDesktopSize) first.
    pub resize: Option<(u16, u16)>,
    /// Pixels to encode, disjoint and inside the framebuffer the client knows.
    pub region: Region,
    /// A lossless refresh of areas sent lossily before: encode without JPEG.
    pub lossless: bool,
}

/// Per-client update scheduling state.
#[derive(Debug, Clone)]
pub struct Scheduler {
    /// Changed since last sent and not yet sent.
    pending: Region,
    /// Must be sent whether changed or not (non-incremental requests).
    forced: Region,
    /// The area of an outstanding FramebufferUpdateRequest.
    request: Option<Rect>,
    /// The continuous-updates area, when enabled.
    continuous: Option<Rect>,
    /// An update has been handed to the writer and not yet written.
    in_flight: bool,
    /// The framebuffer size the client believes in.
    client_size: (u16, u16),
    /// What the last two updates sent: areas changing continuously (an animation, video).
    recent: [Region; 2],
    /// The client understands DesktopSize or ExtendedDesktopSize.
    resize_supported: bool,
}

impl Scheduler {
    /// A client that was told the framebuffer is `width` x `height` (ServerInit).
    pub fn new(width: u16, height: u16) -> Scheduler {
        Scheduler {
            pending: Region::new(),
            forced: Region::new(),
            request: None,
            continuous: None,
            in_flight: false,
            client_size: (width, height),
            recent: [Region::new(), Region::new()],
            resize_supported: false,
        }
    }

    /// Whether the client announced DesktopSize or ExtendedDesktopSize.
    pub fn set_resize_supported(&mut self, supported: bool) {
        self.resize_supported = supported;
    }

    /// The framebuffer size the client knows.
    pub fn client_size(&self) -> (u16, u16) {
        self.client_size
    }

    /// Pixels changed.
    pub fn damage(&mut self, region: &Region) {
        self.pending.union_capped(region, MAX_PENDING_RECTS);
    }

    /// A FramebufferUpdateRequest. A non-incremental one forces the whole area to be sent.
    pub fn request(&mut self, incremental: bool, area: Rect) {
        if !incremental {
            self.forced
                .union_capped(&Region::from_rect(area), MAX_PENDING_RECTS);
        }
        self.request = Some(match self.request {
            Some(r) => r.union_bounds(&area),
            None => area,
        });
    }

    /// EnableContinuousUpdates with enable set: send changes in `area` without waiting for
    /// requests.
    pub fn enable_continuous(&mut self, area: Rect) {
        self.continuous = Some(area);
    }

    /// EnableContinuousUpdates with enable clear. Returns whether it was enabled (the server
    /// then answers with EndOfContinuousUpdates).
    pub fn disable_continuous(&mut self) -> bool {
        self.continuous.take().is_some()
    }

    /// True when the client may receive a FramebufferUpdate now (a request is outstanding or
    /// continuous updates are on) and none is in flight.
    pub fn can_send(&self) -> bool {
        !self.in_flight && (self.request.is_some() || self.continuous.is_some())
    }

    /// True while an update is being written.
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// The writer finished the update in flight.
    pub fn sent(&mut self) {
        self.in_flight = false;
    }

    /// Decide the next update for a frame of `frame_w` x `frame_h`. `extras` says the session
    /// has pseudo-rectangles to deliver (cursor, acknowledgements), which justify an update
    /// even without pixels. `refresh` is what is due for a lossless refresh: it is sent when
    /// there is no new damage to send. With `fresh_first` (a slow link), areas that changed
    /// but were not part of the last updates (typically input echo) go out alone first, ahead
    /// of areas that keep changing. Marks the update in flight when it returns one.
    pub fn next(
        &mut self,
        frame_w: u16,
        frame_h: u16,
        extras: bool,
        refresh: &Region,
        fresh_first: bool,
    ) -> Option<Plan> {
        if !self.can_send() {
            return None;
        }
        if (frame_w, frame_h) != self.client_size && self.resize_supported {
            // The client's framebuffer contents are undefined after a resize: send everything.
            self.client_size = (frame_w, frame_h);
            let all = Rect::new(0, 0, frame_w, frame_h);
            self.pending = Region::new();
            self.forced = Region::new();
            self.request = None;
            self.in_flight = true;
            return Some(Plan {
                resize: Some((frame_w, frame_h)),
                region: Region::from_rect(all),
                lossless: false,
            });
        }
        let area = match (self.continuous, self.request) {
            (Some(c), Some(r)) => c.union_bounds(&r),
            (Some(c), None) => c,
            (None, Some(r)) => r,
            (None, None) => return None,
        };
        // A client that cannot learn the new size keeps its old framebuffer: stay inside both.
        let w = frame_w.min(self.client_size.0);
        let h = frame_h.min(self.client_size.1);
        let mut region = self.pending.clone();
        region.intersect_rect(area);
        region.union(&self.forced);
        region.clamp_to(w, h);
        if fresh_first && self.forced.is_empty() {
            let mut fresh = region.clone();
            fresh.subtract(&self.recent[0]);
            fresh.subtract(&self.recent[1]);
            if !fresh.is_empty() && fresh.area() * 4 <= region.area() {
                region = fresh;
            }
        }
        let mut lossless = false;
        if region.is_empty() && !refresh.is_empty() {
            let mut r = refresh.clone();
            r.intersect_rect(area);
            r.clamp_to(w, h);
            lossless = !r.is_empty();
            region = r;
        }
        if region.is_empty() && !extras {
            // An incremental request with nothing new waits for damage. Forced areas outside
            // the screen are simply dropped.
            self.forced.clear();
            return None;
        }
        self.pending.subtract(&region);
        self.forced.clear();
        self.request = None;
        self.in_flight = true;
        if !lossless {
            self.recent.swap(0, 1);
            self.recent[0] = region.clone();
        }
        Some(Plan {
            resize: None,
            region,
            lossless,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(x: u16, y: u16, w: u16, h: u16) -> Rect {
        Rect::new(x, y, w, h)
    }

    fn none() -> Region {
        Region::new()
    }

    #[test]
    fn on_a_slow_link_fresh_changes_overtake_an_animation() {
        let mut s = Scheduler::new(800, 600);
        s.enable_continuous(r(0, 0, 800, 600));
        let anim = r(0, 100, 800, 500);
        s.damage(&anim.into());
        assert_eq!(
            s.next(800, 600, false, &none(), true).unwrap().region,
            Region::from(anim)
        );
        s.sent();
        // The animation moves on and a key echo appears: the echo goes alone first.
        s.damage(&anim.into());
        s.damage(&r(0, 0, 64, 64).into());
        let p = s.next(800, 600, false, &none(), true).unwrap();
        assert_eq!(p.region, Region::from(r(0, 0, 64, 64)));
        s.sent();
        assert_eq!(
            s.next(800, 600, false, &none(), true).unwrap().region,
            Region::from(anim)
        );
        s.sent();
        // Without the hint everything goes together.
        s.damage(&anim.into());
        s.damage(&r(0, 0, 64, 64).into());
        let p = s.next(800, 600, false, &none(), false).unwrap();
        assert_eq!(p.region.area(), anim.area() + 64 * 64);
    }

    #[test]
    fn refresh_goes_out_only_when_no_damage_is_pending() {
        let mut s = Scheduler::new(100, 100);
        s.enable_continuous(r(0, 0, 100, 100));
        let due = Region::from(r(0, 0, 50, 50));
        s.damage(&r(60, 60, 10, 10).into());
        let p = s.next(100, 100, false, &due, false).unwrap();
        assert_eq!(
            (p.region, p.lossless),
            (Region::from(r(60, 60, 10, 10)), false)
        );
        s.sent();
        let p = s.next(100, 100, false, &due, false).unwrap();
        assert_eq!((p.region, p.lossless), (due.clone(), true));
        s.sent();
        // Outside the requested area nothing is refreshed.
        s.disable_continuous();
        s.request(true, r(80, 80, 20, 20));
        assert_eq!(s.next(100, 100, false, &due, false), None);
    }

    #[test]
    fn nothing_is_sent_without_a_request() {
        let mut s = Scheduler::new(100, 100);
        s.damage(&r(0, 0, 10, 10).into());
        assert_eq!(s.next(100, 100, false, &none(), false), None);
        s.request(true, r(0, 0, 100, 100));
        let p = s.next(100, 100, false, &none(), false).unwrap();
        assert_eq!(p.region, Region::from(r(0, 0, 10, 10)));
        assert_eq!(p.resize, None);
    }

    #[test]
    fn incremental_request_waits_for_damage() {
        let mut s = Scheduler::new(100, 100);
        s.request(true, r(0, 0, 100, 100));
        assert_eq!(s.next(100, 100, false, &none(), false), None);
        s.damage(&r(5, 5, 1, 1).into());
        assert_eq!(
            s.next(100, 100, false, &none(), false).unwrap().region,
            Region::from(r(5, 5, 1, 1))
        );
    }

    #[test]
    fn non_incremental_request_sends_the_whole_area() {
        let mut s = Scheduler::new(100, 100);
        s.request(false, r(10, 10, 20, 20));
        let p = s.next(100, 100, false, &none(), false).unwrap();
        assert_eq!(p.region, Region::from(r(10, 10, 20, 20)));
    }

    #[test]
    fn damage_outside_the_request_stays_pending() {
        let mut s = Scheduler::new(100, 100);
        s.damage(&r(0, 0, 100, 10).into());
        s.request(true, r(0, 0, 50, 50));
        assert_eq!(
            s.next(100, 100, false, &none(), false).unwrap().region,
            Region::from(r(0, 0, 50, 10))
        );
        s.sent();
        s.request(true, r(0, 0, 100, 100));
        assert_eq!(
            s.next(100, 100, false, &none(), false).unwrap().region,
            Region::from(r(50, 0, 50, 10))
        );
    }

    #[test]
    fn one_update_in_flight_and_damage_merges_meanwhile() {
        let mut s = Scheduler::new(100, 100);
        s.enable_continuous(r(0, 0, 100, 100));
        s.damage(&r(0, 0, 10, 10).into());
        assert!(s.next(100, 100, false, &none(), false).is_some());
        for i in 0..50 {
            s.damage(&r(i, 0, 1, 1).into());
            s.damage(&r(0, 0, 10, 10).into());
            assert_eq!(s.next(100, 100, false, &none(), false), None);
        }
        s.sent();
        let p = s.next(100, 100, false, &none(), false).unwrap();
        assert_eq!(p.region.bounds(), r(0, 0, 50, 10));
        s.sent();
        assert_eq!(
            s.next(100, 100, false, &none(), false),
            None,
            "nothing left after sending"
        );
    }

    #[test]
    fn pending_stays_small_however_much_damage() {
        let mut s = Scheduler::new(1000, 1000);
        for i in 0..500u16 {
            s.damage(&r((i * 7) % 990, (i * 13) % 990, 3, 3).into());
        }
        assert!(s.pending.rects().len() <= MAX_PENDING_RECTS);
        s.request(true, r(0, 0, 1000, 1000));
        let p = s.next(1000, 1000, false, &none(), false).unwrap();
        assert!(p.region.contains(7, 13));
    }

    /// A client flooding 1x1 non-incremental requests without reading (issue 13, item 3) keeps
    /// the forced region, and so the cost of each request, bounded.
    #[test]
    fn forced_stays_small_however_many_tiny_requests() {
        let mut s = Scheduler::new(1000, 1000);
        s.enable_continuous(r(0, 0, 1, 1));
        s.damage(&r(0, 0, 1, 1).into());
        assert!(
            s.next(1000, 1000, false, &none(), false).is_some(),
            "one update in flight"
        );
        for i in 0..80_000u32 {
            let (x, y) = ((i * 7 % 997) as u16, (i * 13 % 991) as u16);
            s.request(false, r(x, y, 1, 1));
            assert!(s.forced.rects().len() <= MAX_PENDING_RECTS);
        }
        s.sent();
        let p = s.next(1000, 1000, false, &none(), false).unwrap();
        assert!(p.region.contains(7, 13) && p.region.contains(0, 0));
    }

    /// Fuzz smoke (issue 13): random damage, requests, resizes and acknowledgements in any
    /// order never panic, every plan lies inside the framebuffer the client knows, and the
    /// regions kept between updates stay within their cap.
    #[test]
    fn random_operations_keep_plans_inside_and_bounded() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n.max(1)
        };
        for _ in 0..200 {
            let mut s = Scheduler::new(1 + next(2000) as u16, 1 + next(2000) as u16);
            let (mut fw, mut fh) = s.client_size();
            for _ in 0..500 {
                let rect = r(
                    next(65536) as u16,
                    next(65536) as u16,
                    next(65536) as u16,
                    next(65536) as u16,
                );
                match next(8) {
                    0 => s.damage(&rect.into()),
                    1 => s.request(next(2) == 0, rect),
                    2 => s.enable_continuous(rect),
                    3 => {
                        s.disable_continuous();
                    }
                    4 => s.sent(),
                    5 => s.set_resize_supported(next(2) == 0),
                    6 if next(10) == 0 => {
                        fw = 1 + next(3000) as u16;
                        fh = 1 + next(3000) as u16;
                    }
                    _ => {
                        let (cw, ch) = s.client_size();
                        if let Some(p) = s.next(fw, fh, next(4) == 0, &none(), next(2) == 0) {
                            let (w, h) = p.resize.unwrap_or((cw.min(fw), ch.min(fh)));
                            let b = p.region.bounds();
                            assert!(
                                p.region.is_empty()
                                    || (b.right() <= u32::from(w) && b.bottom() <= u32::from(h))
                            );
                        }
                    }
                }
                assert!(s.pending.rects().len() <= MAX_PENDING_RECTS);
                assert!(s.forced.rects().len() <= MAX_PENDING_RECTS);
            }
        }
    }

    #[test]
    fn resize_is_announced_then_everything_sent() {
        let mut s = Scheduler::new(100, 100);
        s.set_resize_supported(true);
        s.request(true, r(0, 0, 100, 100));
        let p = s.next(200, 50, false, &none(), false).unwrap();
        assert_eq!(p.resize, Some((200, 50)));
        assert_eq!(p.region, Region::from(r(0, 0, 200, 50)));
        assert_eq!(s.client_size(), (200, 50));
    }

    #[test]
    fn clients_without_resize_support_stay_inside_their_size() {
        let mut s = Scheduler::new(100, 100);
        s.damage(&r(0, 0, 200, 200).into());
        s.request(true, r(0, 0, 100, 100));
        let p = s.next(200, 50, false, &none(), false).unwrap();
        assert_eq!(p.resize, None);
        assert_eq!(p.region, Region::from(r(0, 0, 100, 50)));
    }

    #[test]
    fn extras_go_out_without_pixels() {
        let mut s = Scheduler::new(100, 100);
        s.request(true, r(0, 0, 100, 100));
        let p = s.next(100, 100, true, &none(), false).unwrap();
        assert!(p.region.is_empty());
        assert!(s.in_flight());
    }

    #[test]
    fn continuous_updates_need_no_request_and_can_be_disabled() {
        let mut s = Scheduler::new(100, 100);
        s.enable_continuous(r(0, 0, 50, 50));
        s.damage(&r(40, 40, 20, 20).into());
        assert_eq!(
            s.next(100, 100, false, &none(), false).unwrap().region,
            Region::from(r(40, 40, 10, 10))
        );
        s.sent();
        assert!(s.disable_continuous());
        assert!(!s.disable_continuous());
        s.damage(&r(0, 0, 1, 1).into());
        assert_eq!(s.next(100, 100, false, &none(), false), None);
    }
}
