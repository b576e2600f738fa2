//! What one owner (an RFB client, an action request) holds down on the X side, so that
//! everything it pressed can be released when it leaves.
//!
//! Tracked are X keycodes and buttons that the X server actually accepted as pressed, never the
//! client's keysyms: a press that failed is not recorded, a key released under another keysym
//! (Shift let go first) is still found by its keycode, and releasing everything goes on past a
//! release that fails.

use std::collections::BTreeSet;

use super::InputSink;
use crate::desktop::DesktopError;

/// Keycodes and buttons one owner has pressed and not released.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Held {
    keys: BTreeSet<u8>,
    buttons: BTreeSet<u8>,
}

impl Held {
    /// Nothing held.
    pub fn new() -> Held {
        Held::default()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.buttons.is_empty()
    }

    /// Keycodes held, ascending.
    pub fn keycodes(&self) -> impl Iterator<Item = u8> + '_ {
        self.keys.iter().copied()
    }

    /// Buttons held, ascending.
    pub fn buttons(&self) -> impl Iterator<Item = u8> + '_ {
        self.buttons.iter().copied()
    }

    /// Press or release the key for `keysym`, recording the keycode X saw.
    pub fn key(
        &mut self,
        input: &dyn InputSink,
        keysym: u32,
        down: bool,
    ) -> Result<(), DesktopError> {
        let code = input.key(keysym, down)?;
        self.record_key(code, down);
        Ok(())
    }

    /// Press or release a key by XT scancode, recording its keycode.
    pub fn scancode(
        &mut self,
        input: &dyn InputSink,
        xt_scancode: u32,
        down: bool,
    ) -> Result<(), DesktopError> {
        let code = input.key_scancode(xt_scancode, down)?;
        self.record_key(Some(code), down);
        Ok(())
    }

    /// Press or release a button, recording it once X accepted it.
    pub fn button(
        &mut self,
        input: &dyn InputSink,
        button: u8,
        down: bool,
    ) -> Result<(), DesktopError> {
        input.button(button, down)?;
        if down {
            self.buttons.insert(button);
        } else {
            self.buttons.remove(&button);
        }
        Ok(())
    }

    fn record_key(&mut self, code: Option<u8>, down: bool) {
        match (code, down) {
            (Some(c), true) => {
                self.keys.insert(c);
            }
            (Some(c), false) => {
                self.keys.remove(&c);
            }
            (None, _) => {}
        }
    }

    /// Release everything held: buttons first (a drag ends before its modifiers), then keys,
    /// highest keycode first. Every release is tried even when one fails; the first failure
    /// is returned. Nothing is held afterwards.
    pub fn release_all(&mut self, input: &dyn InputSink) -> Result<(), DesktopError> {
        let mut first = None;
        for b in std::mem::take(&mut self.buttons).into_iter().rev() {
            if let Err(e) = input.button(b, false) {
                first.get_or_insert(e);
            }
        }
        for k in std::mem::take(&mut self.keys).into_iter().rev() {
            if let Err(e) = input.keycode(k, false) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::fake::{FakeInput, InputEvent};

    #[test]
    fn failed_presses_are_not_held_and_release_goes_past_failures() {
        let f = FakeInput::new();
        let mut h = Held::new();
        h.key(&f, 0xffe3, true).unwrap();
        h.key(&f, 0xffe1, true).unwrap();
        // Refused by the sink: a keysym out of range and a button beyond 9.
        assert!(h.key(&f, 0x2000_0000, true).is_err());
        assert!(h.button(&f, 10, true).is_err());
        h.button(&f, 1, true).unwrap();
        assert_eq!(h.buttons().collect::<Vec<_>>(), vec![1]);
        f.take();
        // The first release fails; the others still go out.
        f.fail_next(1);
        assert!(h.release_all(&f).is_err());
        let ctrl = FakeInput::keycode_for(0xffe3);
        let shift = FakeInput::keycode_for(0xffe1);
        let events = f.take();
        assert!(
            events.contains(&InputEvent::Keycode(ctrl, false)),
            "{events:?}"
        );
        assert!(
            events.contains(&InputEvent::Keycode(shift, false)),
            "{events:?}"
        );
        assert!(h.is_empty());
    }

    #[test]
    fn a_key_released_under_another_keysym_is_found_by_keycode() {
        let f = FakeInput::new();
        let mut h = Held::new();
        // '<' and '>' share a key in the fake, as on a pc105 keyboard.
        h.key(&f, u32::from(b'<'), true).unwrap();
        h.key(&f, u32::from(b'>'), true).unwrap();
        assert_eq!(h.keycodes().count(), 1);
        h.key(&f, u32::from(b'>'), false).unwrap();
        assert!(h.is_empty());
    }

    #[test]
    fn a_random_flood_leaves_nothing_down() {
        let f = FakeInput::new();
        let mut h = Held::new();
        let mut x: u32 = 12345;
        for _ in 0..5000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let keysym = (x >> 8) % 0x300;
            let _ = h.key(&f, keysym, x & 1 == 0);
            let _ = h.scancode(&f, (x >> 4) % 0x80, x & 2 == 0);
            let _ = h.button(&f, ((x >> 12) % 12) as u8, x & 4 == 0);
        }
        h.release_all(&f).unwrap();
        assert!(f.down().is_empty(), "still down: {:?}", f.down());
    }
}
