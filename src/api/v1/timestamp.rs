//! Timestamps as sandbox-agent writes them (chrono's `to_rfc3339()`): UTC with a `+00:00`
//! offset and as many sub-second digits (none, 3, 6 or 9) as it takes to show them all, e.g.
//! `2026-12-02T02:34:08.984447397+00:00`.

use std::time::SystemTime;

use crate::record::rfc3339;

/// `t` in the reference server's format.
pub fn format(t: SystemTime) -> String {
    let nanos = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    // The date and time of day come from the recorder's formatter (".mmmZ" cut off).
    let millis_z = rfc3339(t);
    let seconds = millis_z.get(..19).unwrap_or(&millis_z);
    let fraction = if nanos == 0 {
        String::new()
    } else if nanos.is_multiple_of(1_000_000) {
        format!(".{:03}", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!(".{:06}", nanos / 1_000)
    } else {
        format!(".{nanos:09}")
    };
    format!("{seconds}{fraction}+00:00")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn digits_as_chrono_auto_si() {
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_994_801);
        assert_eq!(format(base), "2026-11-29T23:26:41+00:00");
        let at = |n| format(base + Duration::from_nanos(n));
        assert_eq!(at(123_000_000), "2026-11-29T23:26:41.123+00:00");
        assert_eq!(at(120_000_000), "2026-11-29T23:26:41.120+00:00");
        assert_eq!(at(123_456_000), "2026-11-29T23:26:41.123456+00:00");
        assert_eq!(at(984_447_397), "2026-11-29T23:26:41.984447397+00:00");
        assert_eq!(at(5), "2026-11-29T23:26:41.000000005+00:00");
    }
}
