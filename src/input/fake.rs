//! A recording [`InputSink`] for unit tests of sessions and the action API.

use std::collections::BTreeSet;
use std::sync::Mutex;

use super::InputSink;
use crate::desktop::DesktopError;

/// One call made on a [`FakeInput`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputEvent {
    /// `pointer_move(x, y)`.
    Move(u16, u16),
    /// `button(button, down)`.
    Button(u8, bool),
    /// `key(keysym, down)`.
    Key(u32, bool),
    /// `key_scancode(xt, down)`.
    Scancode(u32, bool),
    /// `keycode(keycode, down)`.
    Keycode(u8, bool),
    /// `sync()`.
    Sync,
}

/// Records every call; the pointer position follows moves, and keys and buttons are tracked as
/// an X server would (keycodes, not keysyms). Can be told to fail.
#[derive(Debug, Default)]
pub struct FakeInput {
    events: Mutex<Vec<InputEvent>>,
    pointer: Mutex<(u16, u16)>,
    failure: Mutex<Option<String>>,
    fail_next: Mutex<u32>,
    fail_keysym: Mutex<Option<u32>>,
    down: Mutex<BTreeSet<Down>>,
}

/// A key or button the fake X server has down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Down {
    /// A keycode.
    Key(u8),
    /// A button.
    Button(u8),
}

impl FakeInput {
    /// An empty recorder.
    pub fn new() -> FakeInput {
        FakeInput::default()
    }

    /// Everything recorded so far.
    pub fn events(&self) -> Vec<InputEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Everything recorded so far, clearing the record.
    pub fn take(&self) -> Vec<InputEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Make every call fail with `DesktopError::Unavailable(msg)` (or succeed again on `None`).
    pub fn set_failure(&self, msg: Option<&str>) {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = msg.map(str::to_string);
    }

    /// Make the next `n` calls fail (then succeed again).
    pub fn fail_next(&self, n: u32) {
        *self.fail_next.lock().unwrap_or_else(|e| e.into_inner()) = n;
    }

    /// Make every press of `keysym` fail (or none on `None`).
    pub fn fail_keysym(&self, keysym: Option<u32>) {
        *self.fail_keysym.lock().unwrap_or_else(|e| e.into_inner()) = keysym;
    }

    /// What the fake X server has down now.
    pub fn down(&self) -> BTreeSet<Down> {
        self.down.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The keycode the fake keymap gives `keysym`: letters share a key with their capitals
    /// and `<` with `>`, as on a pc105 keyboard.
    pub fn keycode_for(keysym: u32) -> u8 {
        let base = match keysym {
            0x3e => 0x3c,
            0x41..=0x5a => keysym + 0x20,
            k => k,
        };
        8 + (base % 248) as u8
    }

    fn set_down(&self, what: Down, down: bool) {
        let mut d = self.down.lock().unwrap_or_else(|e| e.into_inner());
        if down {
            d.insert(what);
        } else {
            d.remove(&what);
        }
    }

    fn record(&self, e: InputEvent) -> Result<(), DesktopError> {
        {
            let mut n = self.fail_next.lock().unwrap_or_else(|e| e.into_inner());
            if *n > 0 {
                *n -= 1;
                return Err(DesktopError::Unavailable("told to fail".into()));
            }
        }
        if let Some(m) = self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(DesktopError::Unavailable(m));
        }
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(e);
        Ok(())
    }
}

impl InputSink for FakeInput {
    fn pointer_move(&self, x: u16, y: u16) -> Result<(), DesktopError> {
        self.record(InputEvent::Move(x, y))?;
        *self.pointer.lock().unwrap_or_else(|e| e.into_inner()) = (x, y);
        Ok(())
    }

    fn button(&self, button: u8, down: bool) -> Result<(), DesktopError> {
        if !(1..=9).contains(&button) {
            return Err(DesktopError::Invalid(format!(
                "button {button} out of range 1-9"
            )));
        }
        self.record(InputEvent::Button(button, down))?;
        self.set_down(Down::Button(button), down);
        Ok(())
    }

    fn key(&self, keysym: u32, down: bool) -> Result<Option<u8>, DesktopError> {
        if keysym == 0 || keysym > 0x1fff_ffff {
            return Err(DesktopError::Invalid(format!("bad keysym {keysym:#x}")));
        }
        if down && *self.fail_keysym.lock().unwrap_or_else(|e| e.into_inner()) == Some(keysym) {
            return Err(DesktopError::Unavailable(format!(
                "keysym {keysym:#x} told to fail"
            )));
        }
        self.record(InputEvent::Key(keysym, down))?;
        let code = FakeInput::keycode_for(keysym);
        self.set_down(Down::Key(code), down);
        Ok(Some(code))
    }

    fn key_scancode(&self, xt_scancode: u32, down: bool) -> Result<u8, DesktopError> {
        if xt_scancode > 0xff {
            return Err(DesktopError::Invalid(format!(
                "unknown XT scancode {xt_scancode:#x}"
            )));
        }
        self.record(InputEvent::Scancode(xt_scancode, down))?;
        let code = 8 + (xt_scancode % 248) as u8;
        self.set_down(Down::Key(code), down);
        Ok(code)
    }

    fn keycode(&self, keycode: u8, down: bool) -> Result<(), DesktopError> {
        self.record(InputEvent::Keycode(keycode, down))?;
        self.set_down(Down::Key(keycode), down);
        Ok(())
    }

    fn pointer_position(&self) -> Result<(u16, u16), DesktopError> {
        if let Some(m) = self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(DesktopError::Unavailable(m));
        }
        Ok(*self.pointer.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn sync(&self) -> Result<(), DesktopError> {
        self.record(InputEvent::Sync)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_in_order() {
        let f = FakeInput::new();
        f.pointer_move(3, 4).unwrap();
        f.button(1, true).unwrap();
        f.key(0x61, true).unwrap();
        assert_eq!(f.pointer_position().unwrap(), (3, 4));
        assert_eq!(
            f.take(),
            vec![
                InputEvent::Move(3, 4),
                InputEvent::Button(1, true),
                InputEvent::Key(0x61, true)
            ]
        );
        assert!(f.button(10, true).is_err());
        f.set_failure(Some("gone"));
        assert!(f.key(1, true).is_err());
    }
}
