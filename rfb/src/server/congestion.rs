//! Congestion control from Fence round trips.
//!
//! After each framebuffer update the engine sends a Fence request; the client answers it once
//! it has processed everything before it, so each answer says "these bytes arrived" and how
//! long the round trip took. From that:
//! - the base RTT is the smallest recent round trip (the link without our queue);
//! - the bytes between two fences, divided by the time from their first byte leaving the
//!   socket (or the link freeing up from earlier bytes) to the answer, less the base RTT, is a
//!   bandwidth sample (the link drained them in that time);
//! - the window, the bytes allowed in flight, is bandwidth × base RTT with headroom, and grows
//!   while round trips show no queue.
//!
//! Once the bandwidth is known, updates are paced: a new one may start when the link has (by
//! that estimate) drained what was sent before, so the link never idles for a round trip
//! waiting for an answer, and the bytes not yet acknowledged stay below bandwidth × (base RTT
//! + [`MAX_QUEUE_DELAY`]), so nothing queues for long. Before that the window alone gates.
//!
//! Without Fence the engine falls back to one update per request, written out before the
//! next is prepared.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The window never shrinks below this: one small update (a key echo) always fits.
pub const MIN_WINDOW: u64 = 16 * 1024;
/// The window before any measurement.
const INITIAL_WINDOW: u64 = 64 * 1024;
/// The window never grows beyond this.
const MAX_WINDOW: u64 = 64 << 20;
/// Bytes in flight allowed per byte of bandwidth × base RTT: room to keep the link busy
/// while a fence answer travels back, without building a standing queue.
const WINDOW_GAIN: f64 = 2.0;
/// Bandwidth samples kept; the estimate is their median (answers that a client sends in a
/// burst make single samples too high, idle periods make them too low).
const BW_SAMPLES: usize = 9;
/// A bandwidth sample needs the link busy at least this long.
const MIN_SAMPLE_TIME: Duration = Duration::from_millis(5);
/// The base RTT is re-learned after this long (routes and client load change).
const BASE_RTT_LIFETIME: Duration = Duration::from_secs(10);
/// Extra delay below this is noise, not a queue.
const MIN_QUEUE_DELAY: Duration = Duration::from_millis(1);
/// Fewer bytes than this in flight say little about bandwidth.
const MIN_SAMPLE_BYTES: u64 = 4 * 1024;
/// Fence answers outstanding beyond this are not tracked (a client that stopped answering).
const MAX_PINGS: usize = 64;
/// Most queueing delay our own bytes may cause on the link (input echo waits behind it).
pub const MAX_QUEUE_DELAY: Duration = Duration::from_millis(50);
/// A paced update may start this long before the link is expected to drain.
const PACE_SLACK: Duration = Duration::from_millis(5);

#[derive(Debug, Clone)]
struct Ping {
    seq: u32,
    /// Stream offset of the first byte after the previous fence.
    start: u64,
    /// Stream offset just after the fence.
    end: u64,
    queued_at: Instant,
    /// When the first byte after the previous fence left the socket.
    first_left_at: Option<Instant>,
    /// When its last byte left the socket.
    left_at: Option<Instant>,
}

/// Per-connection congestion state. All times are passed in.
#[derive(Debug, Clone)]
pub struct Congestion {
    queued: u64,
    transmitted: u64,
    acked: u64,
    pings: VecDeque<Ping>,
    next_seq: u32,
    /// Stream offset after the newest fence.
    last_ping_end: u64,
    /// When the newest answer arrived.
    last_pong_at: Option<Instant>,
    base_rtt: Option<(Duration, Instant)>,
    last_rtt: Option<Duration>,
    bw: VecDeque<f64>,
    window: u64,
    /// The last update could not start because the window was full.
    window_limited: bool,
    /// When the link is expected to have drained what left the socket (with a bandwidth
    /// estimate).
    link_free_at: Option<Instant>,
    /// The latest answer's delay beyond the base RTT and its own bytes' transmission.
    standing_queue: Option<Duration>,
}

impl Default for Congestion {
    fn default() -> Self {
        Congestion {
            queued: 0,
            transmitted: 0,
            acked: 0,
            pings: VecDeque::new(),
            next_seq: 1,
            last_ping_end: 0,
            last_pong_at: None,
            base_rtt: None,
            last_rtt: None,
            bw: VecDeque::new(),
            window: INITIAL_WINDOW,
            window_limited: false,
            link_free_at: None,
            standing_queue: None,
        }
    }
}

impl Congestion {
    /// A fresh connection.
    pub fn new() -> Congestion {
        Congestion::default()
    }

    /// `n` bytes were added to the outgoing stream.
    pub fn queued(&mut self, n: usize) {
        self.queued += n as u64;
    }

    /// Bytes added to the outgoing stream and not yet written to the socket.
    pub fn unsent(&self) -> u64 {
        self.queued - self.transmitted
    }

    /// `n` bytes left the socket at `now`.
    pub fn transmitted(&mut self, n: usize, now: Instant) {
        self.transmitted = (self.transmitted + n as u64).min(self.queued);
        if let Some(bw) = self.bandwidth() {
            let from = self.link_free_at.map_or(now, |t| t.max(now));
            self.link_free_at = Some(from + Duration::from_secs_f64(n as f64 / bw));
        }
        for p in self.pings.iter_mut() {
            if p.first_left_at.is_none() && p.start < self.transmitted {
                p.first_left_at = Some(now);
            }
            if p.left_at.is_none() && p.end <= self.transmitted {
                p.left_at = Some(now);
            }
        }
    }

    /// The payload for a new fence request, to be queued right away (its bytes included in a
    /// following [`Congestion::queued`] call before [`Congestion::ping_queued`]).
    pub fn next_ping(&mut self) -> u32 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        seq
    }

    /// The fence `seq` was queued (after [`Congestion::queued`] counted its bytes).
    pub fn ping_queued(&mut self, seq: u32, now: Instant) {
        if self.pings.len() >= MAX_PINGS {
            self.pings.pop_front();
        }
        self.pings.push_back(Ping {
            seq,
            start: self.last_ping_end,
            end: self.queued,
            queued_at: now,
            // Some of its bytes already left (the driver wrote them before the fence).
            first_left_at: (self.transmitted > self.last_ping_end).then_some(now),
            left_at: None,
        });
        self.last_ping_end = self.queued;
    }

    /// The client answered fence `seq` at `now`. Unknown sequence numbers are ignored.
    pub fn pong(&mut self, seq: u32, now: Instant) {
        let Some(i) = self.pings.iter().position(|p| p.seq == seq) else {
            return;
        };
        // Answers come in order: earlier fences were answered or lost with the same bytes.
        let p = self.pings.drain(..=i).next_back();
        let Some(p) = p else { return };
        self.acked = self.acked.max(p.end);
        let rtt = now.saturating_duration_since(p.left_at.unwrap_or(p.queued_at));
        self.last_rtt = Some(rtt);
        let base = match self.base_rtt {
            Some((b, at)) if b <= rtt && now.saturating_duration_since(at) < BASE_RTT_LIFETIME => b,
            _ => {
                self.base_rtt = Some((rtt, now));
                rtt
            }
        };
        let queue_delay = rtt.saturating_sub(base);
        // The link carried this fence's bytes from when the first left (or the link freed up
        // from earlier ones, an answer's base RTT before that answer) until one base RTT
        // before this answer.
        let bytes = p.end - p.start;
        let first = p.first_left_at.unwrap_or(p.queued_at);
        let from = match self.last_pong_at {
            Some(prev) => first.max(prev.checked_sub(base).unwrap_or(prev)),
            None => first,
        };
        let busy = now.saturating_duration_since(from).saturating_sub(base);
        if busy >= MIN_SAMPLE_TIME && bytes >= MIN_SAMPLE_BYTES {
            let sample = bytes as f64 / busy.as_secs_f64();
            if self.bw.len() >= BW_SAMPLES {
                self.bw.pop_front();
            }
            self.bw.push_back(sample);
        }
        self.last_pong_at = Some(now);
        // The queue our own earlier bytes caused: the extra delay beyond this fence's own bytes
        // crossing the link.
        let own = self.bandwidth().map_or(Duration::ZERO, |bw| {
            Duration::from_secs_f64(bytes as f64 / bw)
        });
        self.standing_queue = Some(queue_delay.saturating_sub(own));
        let target = match self.bandwidth() {
            Some(bw) => (bw * base.as_secs_f64() * WINDOW_GAIN) as u64,
            None => self.window,
        };
        if queue_delay < MIN_QUEUE_DELAY.max(base / 4) && self.window_limited {
            // No queue and we wanted to send more: probe upwards.
            self.window = self.window.saturating_mul(2).max(target);
        } else if queue_delay > base.max(MIN_QUEUE_DELAY * 10) {
            // A standing queue: back to the bandwidth-delay product.
            self.window = target.min(self.window);
        }
        self.window = self.window.clamp(MIN_WINDOW, MAX_WINDOW);
        self.window_limited = false;
    }

    /// Bytes queued and not yet acknowledged.
    pub fn in_flight(&self) -> u64 {
        self.queued - self.acked
    }

    /// Whether a new update may start at `now`. Records that the window, not the screen,
    /// limited the sender (which lets the window grow).
    pub fn may_send(&mut self, now: Instant) -> bool {
        // The window (bytes not yet acknowledged) always gates; pacing may only let an update
        // start earlier, while earlier ones are still unanswered but (by the bandwidth
        // estimate) through the link, and never when round trips show a standing queue.
        let ok = self.in_flight() < self.window
            || match (self.bandwidth(), self.base_rtt()) {
                (Some(bw), Some(base)) if !self.congested() => {
                    let cap = (bw * (base + MAX_QUEUE_DELAY).as_secs_f64()) as u64;
                    self.ready_at().is_none_or(|t| t <= now) && self.in_flight() < cap
                }
                _ => false,
            };
        if !ok {
            self.window_limited = true;
        }
        ok
    }

    /// When pacing next allows an update (`None`: only an answer can open the window).
    pub fn ready_at(&self) -> Option<Instant> {
        self.link_free_at
            .map(|t| t.checked_sub(PACE_SLACK).unwrap_or(t))
    }

    /// The current window in bytes.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// The latest round-trip time, once one was measured.
    pub fn rtt(&self) -> Option<Duration> {
        self.last_rtt
    }

    /// The smallest recent round-trip time.
    pub fn base_rtt(&self) -> Option<Duration> {
        self.base_rtt.map(|(b, _)| b)
    }

    /// Estimated bandwidth in bytes per second, once measured.
    pub fn bandwidth(&self) -> Option<f64> {
        let mut v: Vec<f64> = self.bw.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    }

    /// Our bytes are queueing on the way: the latest round trip exceeds the base RTT and its
    /// own bytes' transmission time by more than [`MAX_QUEUE_DELAY`].
    pub fn congested(&self) -> bool {
        self.standing_queue.is_some_and(|q| q > MAX_QUEUE_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Send `bytes` then a fence through a link of `rate` bytes/s and one-way `delay`; returns
    /// when the answer arrives (the link is idle at `t`).
    fn round(c: &mut Congestion, t: Instant, bytes: usize, rate: f64, delay: Duration) -> Instant {
        c.queued(bytes);
        let seq = c.next_ping();
        c.queued(24);
        c.ping_queued(seq, t);
        c.transmitted(bytes + 24, t);
        let drain = Duration::from_secs_f64((bytes + 24) as f64 / rate);
        let back = t + drain + delay * 2;
        c.pong(seq, back);
        back
    }

    #[test]
    fn measures_rtt_and_bandwidth_of_a_slow_link() {
        let mut c = Congestion::new();
        let t0 = Instant::now();
        let delay = Duration::from_millis(20);
        let rate = 1_000_000.0; // 8 Mbit/s
                                // A small message gives the base RTT.
        let t = round(&mut c, t0, 100, rate, delay);
        assert!(c.base_rtt().unwrap() >= Duration::from_millis(40));
        // A large update queues: bandwidth sample.
        round(&mut c, t, 200_000, rate, delay);
        let bw = c.bandwidth().unwrap();
        assert!((0.8e6..1.3e6).contains(&bw), "{bw}");
        // Its own bytes crossing the link are no standing queue.
        assert!(!c.congested());
        // Window near bandwidth × RTT × gain (about 80 KB), never the whole update.
        assert!(
            c.window() < 200_000 && c.window() >= MIN_WINDOW,
            "{}",
            c.window()
        );
    }

    #[test]
    fn paced_updates_start_as_the_link_drains_not_a_round_trip_later() {
        let mut c = Congestion::new();
        let t0 = Instant::now();
        let delay = Duration::from_millis(20);
        let rate = 1_000_000.0;
        let t = round(&mut c, t0, 100, rate, delay);
        let t = round(&mut c, t, 100_000, rate, delay);
        assert!(c.bandwidth().is_some());
        // The queue has drained: a small answer comes back at the base RTT.
        let t = round(&mut c, t, 100, rate, delay);
        assert!(!c.congested());
        // 80 KB leave at once: the link needs about 80 ms for them.
        c.queued(80_000);
        let s = c.next_ping();
        c.queued(24);
        c.ping_queued(s, t);
        c.transmitted(80_024, t);
        assert!(!c.may_send(t));
        let ready = c.ready_at().unwrap();
        let drain = ready.duration_since(t);
        assert!(
            drain > Duration::from_millis(60) && drain < Duration::from_millis(100),
            "{drain:?}"
        );
        // Before its answer (due 40 ms after it drains), the next update may start.
        assert!(c.may_send(ready));
        // But never more than the queue allows in flight.
        c.queued(200_000);
        assert!(!c.may_send(ready + Duration::from_secs(1)));
    }

    #[test]
    fn window_gates_and_opens_on_answers() {
        let mut c = Congestion::new();
        let t = Instant::now();
        assert!(c.may_send(t));
        c.queued(100_000);
        let seq = c.next_ping();
        c.queued(24);
        c.ping_queued(seq, t);
        assert!(!c.may_send(t), "in flight beyond the initial window");
        c.transmitted(100_024, t);
        assert_eq!(c.unsent(), 0);
        c.pong(seq, t + Duration::from_micros(300));
        assert_eq!(c.in_flight(), 0);
        assert!(c.may_send(t));
        // No queue while window-limited: the window grew.
        assert!(c.window() > INITIAL_WINDOW);
    }

    #[test]
    fn unknown_and_stale_answers_are_harmless() {
        let mut c = Congestion::new();
        let t = Instant::now();
        c.pong(12345, t);
        for _ in 0..(MAX_PINGS + 10) {
            let s = c.next_ping();
            c.queued(24);
            c.ping_queued(s, t);
        }
        assert!(c.pings.len() <= MAX_PINGS);
        assert_eq!(c.in_flight(), 24 * (MAX_PINGS as u64 + 10));
    }
}
