//! Mapping between the coordinate space an agent uses (`scaled_width` x `scaled_height`, the
//! size its screenshots come back at) and native screen pixels. Pure.
//!
//! Scaled to native is Coder's formula: the centre of scaled pixel `c` lands on native
//! `(c + 0.5) * native / scaled - 0.5`, truncated and clamped to the screen. Native to scaled
//! (for `cursor_position`) picks the scaled pixel that maps back to that native pixel when one
//! does, so a round trip returns where the agent pointed.

/// One axis: the agent's size for it, when it scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    /// Native size in pixels (at least 1).
    pub native: u32,
    /// The agent's size, when it differs from native; `None` means coordinates are native.
    pub scaled: Option<u32>,
}

impl Axis {
    /// An axis; a `scaled` that is absent, not positive or equal to native means no scaling
    /// (as in Coder).
    pub fn new(native: u32, scaled: Option<i64>) -> Axis {
        let native = native.max(1);
        let scaled = scaled
            .filter(|s| *s > 0 && *s != i64::from(native))
            .and_then(|s| u32::try_from(s).ok());
        Axis { native, scaled }
    }

    /// The size screenshots come back at on this axis.
    pub fn output_size(&self) -> u32 {
        self.scaled.unwrap_or(self.native)
    }
}

/// Scaled coordinate to native, clamped to `0..native`.
pub fn to_native(c: i64, scaled: u32, native: u32) -> u32 {
    if scaled == 0 || scaled == native {
        return clamp(c as f64, native);
    }
    // i64 -> f64 loses precision only far outside any screen, where we clamp anyway.
    let n = (c as f64 + 0.5) * f64::from(native) / f64::from(scaled) - 0.5;
    clamp(n, native)
}

fn clamp(v: f64, native: u32) -> u32 {
    let max = f64::from(native.saturating_sub(1));
    // Truncation after clamping, as Go's int(float64) does for these non-negative values.
    v.clamp(0.0, max) as u32
}

/// Native coordinate to scaled: the scaled pixel whose mapping is `n` if one exists, else the
/// one whose centre is nearest.
pub fn to_scaled(n: u32, scaled: u32, native: u32) -> u32 {
    if scaled == 0 || scaled == native {
        return n;
    }
    let ratio = f64::from(scaled) / f64::from(native);
    let est = ((f64::from(n) + 0.5) * ratio - 0.5).round();
    let est = est.clamp(0.0, f64::from(scaled - 1)) as u32;
    let candidates = [est, est.saturating_sub(1), (est + 1).min(scaled - 1)];
    candidates
        .into_iter()
        .find(|c| to_native(i64::from(*c), scaled, native) == n)
        .unwrap_or(est)
}

impl Axis {
    /// Map an agent coordinate on this axis to native.
    pub fn to_native(&self, c: i64) -> u32 {
        match self.scaled {
            Some(s) => to_native(c, s, self.native),
            None => clamp(c as f64, self.native),
        }
    }

    /// Map a native coordinate to the agent's space.
    pub fn to_scaled(&self, n: u32) -> u32 {
        match self.scaled {
            Some(s) => to_scaled(n, s, self.native),
            None => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_points() {
        // 1280 native seen as 1024: scale 1.25.
        assert_eq!(to_native(0, 1024, 1280), 0);
        assert_eq!(to_native(512, 1024, 1280), 640);
        assert_eq!(to_native(1023, 1024, 1280), 1278);
        assert_eq!(to_native(100, 1024, 1280), 125);
        // 800 native seen as 720.
        assert_eq!(to_native(360, 720, 800), 400);
        assert_eq!(to_native(719, 720, 800), 798);
        // Out of range clamps.
        assert_eq!(to_native(-50, 1024, 1280), 0);
        assert_eq!(to_native(5000, 1024, 1280), 1279);
        // Upscaled view (agent sees 2560 for 1280 native).
        assert_eq!(to_native(0, 2560, 1280), 0);
        assert_eq!(to_native(1, 2560, 1280), 0);
        assert_eq!(to_native(2, 2560, 1280), 0);
        assert_eq!(to_native(3, 2560, 1280), 1);
        assert_eq!(to_native(2559, 2560, 1280), 1279);
    }

    #[test]
    fn both_directions_agree_when_downscaled() {
        for (scaled, native) in [
            (1024, 1280),
            (720, 800),
            (1280, 1920),
            (1279, 1280),
            (7, 13),
        ] {
            for c in 0..scaled {
                let n = to_native(i64::from(c), scaled, native);
                assert_eq!(to_scaled(n, scaled, native), c, "{scaled}->{native} at {c}");
            }
        }
    }

    #[test]
    fn native_to_scaled_known_points() {
        assert_eq!(to_scaled(640, 1024, 1280), 512);
        assert_eq!(to_scaled(1279, 1024, 1280), 1023);
        assert_eq!(to_scaled(0, 1024, 1280), 0);
        assert_eq!(to_scaled(400, 720, 800), 360);
    }

    #[test]
    fn axis_rules() {
        assert_eq!(Axis::new(1280, Some(1280)).scaled, None);
        assert_eq!(Axis::new(1280, Some(0)).scaled, None);
        assert_eq!(Axis::new(1280, Some(-5)).scaled, None);
        assert_eq!(Axis::new(1280, None).output_size(), 1280);
        assert_eq!(Axis::new(1280, Some(1024)).output_size(), 1024);
        assert_eq!(Axis::new(1280, Some(1024)).to_native(512), 640);
        assert_eq!(Axis::new(1280, None).to_native(7), 7);
    }
}
