//! When to send a client H.264 video (encoding 50) instead of its general encoding: pure
//! logic over the area each update covers, in the time the engine passes in.
//!
//! The rule:
//! - A change is **large** when it covers at least [`LARGE_SHARE_DEN`]ths of the framebuffer
//!   (a quarter). H.264 codes the whole frame whatever changed, so a smaller change costs
//!   less CPU as Tight JPEG of just the changed rectangles, and a typing echo or a blinking
//!   cursor never pays for a whole-frame encode.
//! - Video **starts** once large changes have kept coming (no more than [`STREAK_GAP`] apart)
//!   for at least [`ENTER_AFTER`] and [`ENTER_UPDATES`] large updates: a video, scrolling or an
//!   animation. A one-off
//!   repaint (a window opening, a tab switch) is one or two updates and stays Tight/JPEG: a key
//!   frame would cost more than its JPEG and leave text blurred until the refresh.
//! - Video **continues** through small updates (a quiet scene in a video) and ends when there
//!   has been no large change for [`LEAVE_AFTER`], or at once when the screen is still: the
//!   engine then plans a lossless refresh of the whole video area (every H.264 frame marks the
//!   framebuffer lossy), so text becomes exact and the next change starts over in Tight/JPEG.
//! - A pause of more than [`STREAK_GAP`] between large changes is not continuous motion.

use std::time::{Duration, Instant};

/// Denominator of the smallest share of the framebuffer that counts as a large change.
pub const LARGE_SHARE_DEN: u64 = 4;

/// How long large changes must keep coming before video starts: 250 ms is eight frames of a
/// 30 Hz animation, longer than any one-off repaint, short enough that a video or a scroll
/// turns to H.264 within a quarter of a second.
pub const ENTER_AFTER: Duration = Duration::from_millis(250);

/// Fewest large updates in a run before video starts (a slow client sees fewer updates in
/// [`ENTER_AFTER`]; two big repaints in a row are not yet motion).
pub const ENTER_UPDATES: u32 = 4;

/// Video ends when nothing large changed for this long (a paused video under a blinking
/// cursor): two thirds of a second, so a quiet scene or a short pause in scrolling does not
/// restart the stream with a key frame.
pub const LEAVE_AFTER: Duration = Duration::from_millis(600);

/// Large changes further apart than this are separate events, not continuous motion.
pub const STREAK_GAP: Duration = Duration::from_millis(500);

/// The motion state of one client.
#[derive(Debug, Clone, Default)]
pub struct Motion {
    /// When the current run of consecutive large updates began, and its length.
    streak: Option<(Instant, u32)>,
    /// The last large update.
    last_large: Option<Instant>,
    /// Video is on.
    active: bool,
}

/// What [`Motion::update`] decided for the next update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Send this update as H.264.
    pub video: bool,
    /// Video starts with this update: the stream must restart (ResetAllContexts + IDR).
    pub start: bool,
}

impl Motion {
    /// No motion seen.
    pub fn new() -> Motion {
        Motion::default()
    }

    /// Whether video is on.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// An update covering `changed` pixels of a `screen`-pixel framebuffer goes out at `now`.
    pub fn update(&mut self, changed: u64, screen: u64, now: Instant) -> Decision {
        let large = screen > 0 && changed.saturating_mul(LARGE_SHARE_DEN) >= screen;
        let recent = self
            .last_large
            .is_some_and(|t| now.saturating_duration_since(t) <= STREAK_GAP);
        if large {
            self.streak = match self.streak {
                Some((start, n)) if recent => Some((start, n.saturating_add(1))),
                _ => Some((now, 1)),
            };
            self.last_large = Some(now);
        } else if !recent {
            // A pause, not motion. Small updates between large ones do not break a run: a
            // capture may catch a frame half drawn, and a 15 fps video seen at 30 Hz alternates.
            self.streak = None;
        }
        let was = self.active;
        self.active = if was {
            self.last_large
                .is_some_and(|t| now.saturating_duration_since(t) < LEAVE_AFTER)
        } else {
            large
                && self.streak.is_some_and(|(start, n)| {
                    n >= ENTER_UPDATES && now.saturating_duration_since(start) >= ENTER_AFTER
                })
        };
        if was && !self.active {
            self.streak = None;
        }
        Decision {
            video: self.active,
            start: self.active && !was,
        }
    }

    /// The screen is still (a lossless refresh is going out) or was replaced (a resize): video
    /// ends and motion must build up again.
    pub fn still(&mut self) {
        *self = Motion::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCREEN: u64 = 1920 * 1080;

    /// Feed updates of `changed` pixels every `every` for `count` updates from `t`; returns
    /// the decisions and the time after the last one.
    fn feed(
        m: &mut Motion,
        t: Instant,
        every: Duration,
        count: u32,
        changed: u64,
    ) -> (Vec<Decision>, Instant) {
        let mut out = Vec::new();
        let mut now = t;
        for _ in 0..count {
            out.push(m.update(changed, SCREEN, now));
            now += every;
        }
        (out, now - every)
    }

    const FRAME: Duration = Duration::from_millis(33);

    #[test]
    fn continuous_full_screen_change_starts_video_after_a_quarter_second() {
        let mut m = Motion::new();
        let t0 = Instant::now();
        let (d, _) = feed(&mut m, t0, FRAME, 20, SCREEN);
        let first = d.iter().position(|d| d.video).expect("video started");
        // 8 frames of 33 ms = 264 ms >= 250 ms.
        assert_eq!(first, 8);
        assert!(d[first].start);
        assert!(d[first + 1..].iter().all(|d| d.video && !d.start));
    }

    #[test]
    fn one_off_repaints_and_small_changes_stay_off() {
        let mut m = Motion::new();
        let t0 = Instant::now();
        // A window opening: two big updates, then quiet, then another big one a second later.
        let (d, t) = feed(&mut m, t0, FRAME, 2, SCREEN);
        assert!(d.iter().all(|d| !d.video));
        let (d, _) = feed(&mut m, t + Duration::from_secs(1), FRAME, 2, SCREEN);
        assert!(d.iter().all(|d| !d.video));
        // Typing: small updates forever.
        let (d, _) = feed(&mut m, t0 + Duration::from_secs(5), FRAME, 100, SCREEN / 10);
        assert!(d.iter().all(|d| !d.video));
    }

    #[test]
    fn half_captured_frames_do_not_break_the_motion() {
        // A 15 fps video seen at 30 Hz, or captures that catch a frame half drawn: large and
        // small updates alternate, and the large ones keep coming.
        let mut m = Motion::new();
        let mut now = Instant::now();
        let mut started = None;
        for i in 0..40 {
            let changed = if i % 2 == 0 { SCREEN } else { 100 };
            if m.update(changed, SCREEN, now).video && started.is_none() {
                started = Some(i);
            }
            now += FRAME;
        }
        assert_eq!(started, Some(8), "the first large update past 250 ms");
    }

    #[test]
    fn slow_clients_need_the_update_count_as_well() {
        let mut m = Motion::new();
        let t0 = Instant::now();
        // Updates 300 ms apart: each is large; the third is past 250 ms but only the fourth
        // update starts video.
        let (d, _) = feed(&mut m, t0, Duration::from_millis(300), 5, SCREEN);
        let v: Vec<bool> = d.iter().map(|d| d.video).collect();
        assert_eq!(v, [false, false, false, true, true]);
        // Updates further apart than the streak gap never start it.
        let mut m = Motion::new();
        let (d, _) = feed(&mut m, t0, Duration::from_millis(700), 10, SCREEN);
        assert!(d.iter().all(|d| !d.video));
    }

    #[test]
    fn video_survives_quiet_scenes_and_ends_after_leave_after() {
        let mut m = Motion::new();
        let t0 = Instant::now();
        let (_, t) = feed(&mut m, t0, FRAME, 12, SCREEN);
        assert!(m.is_active());
        // Small changes (a quiet scene) keep video on until LEAVE_AFTER since the last large.
        let mut now = t;
        let mut ended = None;
        for _ in 0..40 {
            now += FRAME;
            if !m.update(1000, SCREEN, now).video {
                ended = Some(now);
                break;
            }
        }
        let ended = ended.expect("video ended");
        assert!(ended - t >= LEAVE_AFTER && ended - t < LEAVE_AFTER + FRAME);
        // Motion has to build up again.
        let (d, _) = feed(&mut m, ended + FRAME, FRAME, 8, SCREEN);
        assert!(d.iter().all(|d| !d.video));
        let d = m.update(SCREEN, SCREEN, ended + 9 * FRAME);
        assert!(d.video && d.start);
    }

    #[test]
    fn stillness_ends_video_at_once() {
        let mut m = Motion::new();
        let t0 = Instant::now();
        let (_, t) = feed(&mut m, t0, FRAME, 12, SCREEN);
        assert!(m.is_active());
        m.still();
        assert!(!m.is_active());
        assert!(!m.update(SCREEN, SCREEN, t + FRAME).video);
    }

    #[test]
    fn a_quarter_of_the_screen_is_large() {
        let mut m = Motion::new();
        let t0 = Instant::now();
        let (d, _) = feed(&mut m, t0, FRAME, 12, SCREEN / 4);
        assert!(d.last().is_some_and(|d| d.video));
        let mut m = Motion::new();
        let (d, _) = feed(&mut m, t0, FRAME, 12, SCREEN / 4 - 1);
        assert!(d.iter().all(|d| !d.video));
        // An empty framebuffer never counts.
        assert!(!Motion::new().update(0, 0, t0).video);
    }
}
