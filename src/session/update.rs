//! What a session sends next: pure scheduling over damage, requests and flow control.
//!
//! The session feeds in damage (regions changed since it last looked), client requests and
//! "the previous update has been written"; [`Scheduler::next`] answers with the pixels to send
//! now, or nothing. One update is in flight at a time and damage merges into one pending
//! region meanwhile, so a slow client gets the newest pixels later, never a queue.

use rfb::{Rect, Region};

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
    /// even without pixels. Marks the update in flight when it returns one.
    pub fn next(&mut self, frame_w: u16, frame_h: u16, extras: bool) -> Option<Plan> {
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
        Some(Plan {
            resize: None,
            region,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(x: u16, y: u16, w: u16, h: u16) -> Rect {
        Rect::new(x, y, w, h)
    }

    #[test]
    fn nothing_is_sent_without_a_request() {
        let mut s = Scheduler::new(100, 100);
        s.damage(&r(0, 0, 10, 10).into());
        assert_eq!(s.next(100, 100, false), None);
        s.request(true, r(0, 0, 100, 100));
        let p = s.next(100, 100, false).unwrap();
        assert_eq!(p.region, Region::from(r(0, 0, 10, 10)));
        assert_eq!(p.resize, None);
    }

    #[test]
    fn incremental_request_waits_for_damage() {
        let mut s = Scheduler::new(100, 100);
        s.request(true, r(0, 0, 100, 100));
        assert_eq!(s.next(100, 100, false), None);
        s.damage(&r(5, 5, 1, 1).into());
        assert_eq!(
            s.next(100, 100, false).unwrap().region,
            Region::from(r(5, 5, 1, 1))
        );
    }

    #[test]
    fn non_incremental_request_sends_the_whole_area() {
        let mut s = Scheduler::new(100, 100);
        s.request(false, r(10, 10, 20, 20));
        let p = s.next(100, 100, false).unwrap();
        assert_eq!(p.region, Region::from(r(10, 10, 20, 20)));
    }

    #[test]
    fn damage_outside_the_request_stays_pending() {
        let mut s = Scheduler::new(100, 100);
        s.damage(&r(0, 0, 100, 10).into());
        s.request(true, r(0, 0, 50, 50));
        assert_eq!(
            s.next(100, 100, false).unwrap().region,
            Region::from(r(0, 0, 50, 10))
        );
        s.sent();
        s.request(true, r(0, 0, 100, 100));
        assert_eq!(
            s.next(100, 100, false).unwrap().region,
            Region::from(r(50, 0, 50, 10))
        );
    }

    #[test]
    fn one_update_in_flight_and_damage_merges_meanwhile() {
        let mut s = Scheduler::new(100, 100);
        s.enable_continuous(r(0, 0, 100, 100));
        s.damage(&r(0, 0, 10, 10).into());
        assert!(s.next(100, 100, false).is_some());
        for i in 0..50 {
            s.damage(&r(i, 0, 1, 1).into());
            s.damage(&r(0, 0, 10, 10).into());
            assert_eq!(s.next(100, 100, false), None);
        }
        s.sent();
        let p = s.next(100, 100, false).unwrap();
        assert_eq!(p.region.bounds(), r(0, 0, 50, 10));
        s.sent();
        assert_eq!(s.next(100, 100, false), None, "nothing left after sending");
    }

    #[test]
    fn pending_stays_small_however_much_damage() {
        let mut s = Scheduler::new(1000, 1000);
        for i in 0..500u16 {
            s.damage(&r((i * 7) % 990, (i * 13) % 990, 3, 3).into());
        }
        assert!(s.pending.rects().len() <= MAX_PENDING_RECTS);
        s.request(true, r(0, 0, 1000, 1000));
        let p = s.next(1000, 1000, false).unwrap();
        assert!(p.region.contains(7, 13));
    }

    /// A client flooding 1x1 non-incremental requests without reading (issue 13, item 3) keeps
    /// the forced region, and so the cost of each request, bounded.
    #[test]
    fn forced_stays_small_however_many_tiny_requests() {
        let mut s = Scheduler::new(1000, 1000);
        s.enable_continuous(r(0, 0, 1, 1));
        s.damage(&r(0, 0, 1, 1).into());
        assert!(s.next(1000, 1000, false).is_some(), "one update in flight");
        for i in 0..80_000u32 {
            let (x, y) = ((i * 7 % 997) as u16, (i * 13 % 991) as u16);
            s.request(false, r(x, y, 1, 1));
            assert!(s.forced.rects().len() <= MAX_PENDING_RECTS);
        }
        s.sent();
        let p = s.next(1000, 1000, false).unwrap();
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
                        if let Some(p) = s.next(fw, fh, next(4) == 0) {
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
        let p = s.next(200, 50, false).unwrap();
        assert_eq!(p.resize, Some((200, 50)));
        assert_eq!(p.region, Region::from(r(0, 0, 200, 50)));
        assert_eq!(s.client_size(), (200, 50));
    }

    #[test]
    fn clients_without_resize_support_stay_inside_their_size() {
        let mut s = Scheduler::new(100, 100);
        s.damage(&r(0, 0, 200, 200).into());
        s.request(true, r(0, 0, 100, 100));
        let p = s.next(200, 50, false).unwrap();
        assert_eq!(p.resize, None);
        assert_eq!(p.region, Region::from(r(0, 0, 100, 50)));
    }

    #[test]
    fn extras_go_out_without_pixels() {
        let mut s = Scheduler::new(100, 100);
        s.request(true, r(0, 0, 100, 100));
        let p = s.next(100, 100, true).unwrap();
        assert!(p.region.is_empty());
        assert!(s.in_flight());
    }

    #[test]
    fn continuous_updates_need_no_request_and_can_be_disabled() {
        let mut s = Scheduler::new(100, 100);
        s.enable_continuous(r(0, 0, 50, 50));
        s.damage(&r(40, 40, 20, 20).into());
        assert_eq!(
            s.next(100, 100, false).unwrap().region,
            Region::from(r(40, 40, 10, 10))
        );
        s.sent();
        assert!(s.disable_continuous());
        assert!(!s.disable_continuous());
        s.damage(&r(0, 0, 1, 1).into());
        assert_eq!(s.next(100, 100, false), None);
    }
}
