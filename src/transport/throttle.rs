//! Per-address throttle for VNC password failures, as TigerVNC's blacklist: after
//! [`THRESHOLD`] failures an address is refused for [`FIRST_BLOCK`]; each failure after a
//! block doubles the interval (up to [`MAX_BLOCK`]); a success forgets the address. Pure: the
//! caller passes the time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures allowed before an address is blocked.
pub const THRESHOLD: u32 = 5;
/// The first block.
pub const FIRST_BLOCK: Duration = Duration::from_secs(10);
/// The longest block.
pub const MAX_BLOCK: Duration = Duration::from_secs(3600);
/// Addresses remembered at most; beyond this, only blocked ones are kept (memory stays
/// bounded whatever the number of source addresses).
const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Clone)]
struct Entry {
    failures: u32,
    blocked_until: Option<Instant>,
    interval: Duration,
}

/// The throttle state of every address that failed recently.
#[derive(Debug, Default)]
pub struct AuthThrottle {
    entries: HashMap<IpAddr, Entry>,
}

impl AuthThrottle {
    /// No address known.
    pub fn new() -> AuthThrottle {
        AuthThrottle::default()
    }

    /// `Err(remaining)` while `ip` is blocked.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.entries.get(&ip).and_then(|e| e.blocked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Record a failed password from `ip`. Returns the block it now gets, if any.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if !self.entries.contains_key(&ip) && self.entries.len() >= MAX_ENTRIES {
            self.entries
                .retain(|_, e| e.blocked_until.is_some_and(|u| u > now));
            if self.entries.len() >= MAX_ENTRIES {
                return None;
            }
        }
        let e = self.entries.entry(ip).or_insert(Entry {
            failures: 0,
            blocked_until: None,
            interval: FIRST_BLOCK,
        });
        e.failures = e.failures.saturating_add(1);
        if e.failures < THRESHOLD {
            return None;
        }
        // Once blocked, every further failure (one attempt after each block) blocks again,
        // twice as long.
        if e.blocked_until.is_some() {
            e.interval = (e.interval * 2).min(MAX_BLOCK);
        }
        e.blocked_until = Some(now + e.interval);
        Some(e.interval)
    }

    /// A correct password from `ip`: forget its failures.
    pub fn succeeded(&mut self, ip: IpAddr) {
        self.entries.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn blocks_after_the_threshold_and_doubles() {
        let mut t = AuthThrottle::new();
        let t0 = Instant::now();
        for _ in 0..THRESHOLD - 1 {
            assert_eq!(t.failed(ip(1), t0), None);
            assert!(t.check(ip(1), t0).is_ok());
        }
        assert_eq!(t.failed(ip(1), t0), Some(FIRST_BLOCK));
        assert_eq!(t.check(ip(1), t0), Err(FIRST_BLOCK));
        // Other addresses are not affected.
        assert!(t.check(ip(2), t0).is_ok());
        // After the block, one more try; failing it doubles the block.
        let t1 = t0 + FIRST_BLOCK;
        assert!(t.check(ip(1), t1).is_ok());
        assert_eq!(t.failed(ip(1), t1), Some(FIRST_BLOCK * 2));
        assert!(t.check(ip(1), t1 + FIRST_BLOCK).is_err());
        let mut now = t1;
        for _ in 0..20 {
            now += MAX_BLOCK;
            assert!(t.failed(ip(1), now).unwrap() <= MAX_BLOCK);
        }
        t.succeeded(ip(1));
        assert!(t.check(ip(1), now).is_ok());
    }

    #[test]
    fn memory_stays_bounded_under_many_addresses() {
        let mut t = AuthThrottle::new();
        let t0 = Instant::now();
        for i in 0..20_000u32 {
            t.failed(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert!(t.entries.len() <= MAX_ENTRIES);
    }
}
