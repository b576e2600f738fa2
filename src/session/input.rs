//! Pointer button masks to button presses and releases.
//!
//! RFB PointerEvents carry the whole button state; X wants transitions. Bit `n` of the mask is
//! button `n + 1` (1 left, 2 middle, 3 right, 4/5 wheel up/down, 6/7 wheel left/right,
//! 8/9 back/forward with the ExtendedMouseButtons pseudo-encoding).

/// The buttons a client last reported as held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Buttons {
    mask: u16,
}

impl Buttons {
    /// The mask currently held.
    pub fn mask(&self) -> u16 {
        self.mask
    }

    /// Record a new mask and return the transitions as `(button, down)`: releases first (so a
    /// button swap never shows both held), then presses, each in button order.
    pub fn update(&mut self, mask: u16) -> Vec<(u8, bool)> {
        let changed = self.mask ^ mask;
        let mut out = Vec::new();
        for down in [false, true] {
            for bit in 0..16u8 {
                let b = 1u16 << bit;
                if changed & b != 0 && (mask & b != 0) == down {
                    out.push((bit + 1, down));
                }
            }
        }
        self.mask = mask;
        out
    }

    /// Transitions that release everything still held (on disconnect, so no button stays
    /// stuck in the X server).
    pub fn release_all(&mut self) -> Vec<(u8, bool)> {
        self.update(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn press_and_release_follow_the_mask() {
        let mut b = Buttons::default();
        assert_eq!(b.update(0b1), vec![(1, true)]);
        assert_eq!(b.update(0b1), vec![]);
        assert_eq!(b.update(0b100), vec![(1, false), (3, true)]);
        assert_eq!(b.update(0), vec![(3, false)]);
    }

    #[test]
    fn wheel_clicks_are_press_then_release() {
        let mut b = Buttons::default();
        assert_eq!(b.update(0b1000), vec![(4, true)]);
        assert_eq!(b.update(0), vec![(4, false)]);
    }

    #[test]
    fn extended_buttons_map_to_back_and_forward() {
        let mut b = Buttons::default();
        assert_eq!(b.update(1 << 7), vec![(8, true)]);
        assert_eq!(b.update(1 << 8), vec![(8, false), (9, true)]);
        assert_eq!(b.release_all(), vec![(9, false)]);
        assert_eq!(b.mask(), 0);
    }
}
