//! When samples are written: variable frame rate timing and fragment boundaries, as a pure
//! state machine (time is an argument, in [`TIMESCALE`] units from the start of the file).
//!
//! A sample's duration is only known when the next one arrives, so the newest sample waits.
//! A fragment is written once the oldest waiting sample is [`FRAGMENT`] old: all waiting
//! samples but the newest, or, when the screen has been still that long, the newest alone with
//! a duration reaching to now. So a crash loses at most about one fragment's time, continuous
//! change yields a gapless timeline, and a still screen writes nothing after one fragment.

use super::fmp4::{Sample, TIMESCALE};

/// Longest a sample waits before it is written (about one second of loss on a crash).
pub const FRAGMENT: u64 = TIMESCALE as u64;

/// The samples waiting to be written and the end of what was written.
#[derive(Debug, Default)]
pub struct Timeline {
    pending: Vec<Sample>,
    /// End time of the last sample written.
    written_end: u64,
}

impl Timeline {
    /// An empty timeline starting at 0.
    pub fn new() -> Timeline {
        Timeline::default()
    }

    /// Add a sample captured at `time`. Times never go backwards: a time before the end of
    /// what was written (or at or before the previous sample) is moved just after it.
    pub fn push(&mut self, time: u64, key: bool, data: Vec<u8>) {
        let floor = match self.pending.last() {
            Some(prev) => prev.time + 1,
            None => self.written_end,
        };
        let time = time.max(floor);
        if let Some(prev) = self.pending.last_mut() {
            prev.duration = clamp_duration(time - prev.time);
        }
        self.pending.push(Sample {
            time,
            duration: 0,
            key,
            data,
        });
    }

    /// Nothing waits to be written (the screen has been still for a fragment's time).
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// When [`Timeline::poll`] next has something to write, if anything waits.
    pub fn deadline(&self) -> Option<u64> {
        self.pending.first().map(|s| s.time + FRAGMENT)
    }

    /// The samples of a fragment due at `now`, if one is.
    pub fn poll(&mut self, now: u64) -> Option<Vec<Sample>> {
        let first = self.pending.first()?;
        if now < first.time + FRAGMENT {
            return None;
        }
        if self.pending.len() >= 2 {
            // Every sample but the newest has its duration.
            let newest = self.pending.pop()?;
            let out = std::mem::replace(&mut self.pending, vec![newest]);
            self.written_end = self.pending[0].time;
            return Some(out);
        }
        self.take_all(now)
    }

    /// Everything waiting, the newest sample lasting until `now` (at least one tick): the end
    /// of a recording, or before a file change.
    pub fn finish(&mut self, now: u64) -> Option<Vec<Sample>> {
        self.take_all(now)
    }

    /// The end time of everything pushed so far, were it finished at `now`.
    pub fn end(&self, now: u64) -> u64 {
        match self.pending.last() {
            Some(s) => now.max(s.time + 1),
            None => self.written_end,
        }
    }

    fn take_all(&mut self, now: u64) -> Option<Vec<Sample>> {
        let last = self.pending.last_mut()?;
        last.duration = clamp_duration(now.saturating_sub(last.time).max(1));
        self.written_end = last.time + u64::from(last.duration);
        Some(std::mem::take(&mut self.pending))
    }
}

fn clamp_duration(d: u64) -> u32 {
    u32::try_from(d).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = TIMESCALE as u64 / 1000;

    #[test]
    fn continuous_change_is_gapless_and_fragments_every_second() {
        let mut t = Timeline::new();
        let mut written = Vec::new();
        // 3 s of 30 fps change.
        for i in 0..90u64 {
            let now = i * 3000;
            t.push(now, i == 0, vec![i as u8]);
            if let Some(f) = t.poll(now) {
                written.push(f);
            }
        }
        written.extend(t.finish(90 * 3000));
        assert!(
            written.len() >= 3 && written.len() <= 4,
            "{}",
            written.len()
        );
        let samples: Vec<&Sample> = written.iter().flatten().collect();
        assert_eq!(samples.len(), 90);
        for w in samples.windows(2) {
            assert_eq!(w[0].time + u64::from(w[0].duration), w[1].time);
        }
        // Fragments hold at most about a second.
        for f in &written {
            assert!(f.last().unwrap().time - f[0].time <= FRAGMENT);
        }
    }

    #[test]
    fn an_idle_minute_writes_nothing_after_one_fragment() {
        let mut t = Timeline::new();
        let mut fragments = 0;
        let mut samples = 0;
        let mut bytes = 0;
        t.push(0, true, vec![0; 1000]);
        t.push(100 * MS, false, vec![0; 50]);
        // A minute of stillness polled every 250 ms.
        let mut now = 100 * MS;
        while now < 61_000 * MS {
            now += 250 * MS;
            if let Some(f) = t.poll(now) {
                fragments += 1;
                samples += f.len();
                bytes += f.iter().map(|s| s.data.len()).sum::<usize>();
            }
        }
        // The two samples, written within ~1 s of their capture, then nothing.
        assert_eq!((fragments, samples, bytes), (2, 2, 1050));
        assert_eq!(t.deadline(), None);
        // The still picture lasted until it was written; the next change starts later.
        t.push(61_000 * MS, false, vec![1]);
        let f = t.finish(62_000 * MS).unwrap();
        assert_eq!(f[0].time, 61_000 * MS);
        assert_eq!(u64::from(f[0].duration), 1000 * MS);
    }

    #[test]
    fn times_never_go_backwards() {
        let mut t = Timeline::new();
        t.push(5000, true, vec![]);
        t.push(4000, false, vec![]);
        let f = t.finish(4000).unwrap();
        assert_eq!(f[1].time, 5001);
        assert_eq!(f[0].duration, 1);
        assert_eq!(f[1].duration, 1);
        t.push(0, false, vec![]);
        assert_eq!(t.finish(0).unwrap()[0].time, 5002);
    }
}
