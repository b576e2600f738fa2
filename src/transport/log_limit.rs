//! Rate limiting for repeated log lines (accept failures under an fd storm, refused
//! connections): the first occurrence is logged, then at most one per interval with the count
//! of those left out. Pure: the caller passes the time.

use std::time::{Duration, Instant};

/// The interval deskd's repeated warnings (accept failures, refused clients) use.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// One kind of repeated event.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    /// Log at most once per `interval`.
    pub fn new(interval: Duration) -> LogLimiter {
        LogLimiter {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(left_out)` when this occurrence should be logged (with how many were left out
    /// since the last logged one), `None` when it should be left out.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                self.suppressed = self.suppressed.saturating_add(1);
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_left_out() {
        let mut l = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.allow(t0), Some(0));
        let logged = (1..2711u64)
            .filter(|i| l.allow(t0 + Duration::from_millis(i * 3)).is_some())
            .count();
        assert_eq!(logged, 0, "a storm within the interval logs nothing more");
        assert_eq!(l.allow(t0 + Duration::from_secs(10)), Some(2710));
        assert_eq!(l.allow(t0 + Duration::from_secs(21)), Some(0));
    }
}
