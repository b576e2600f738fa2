//! A recording [`InputSink`] for unit tests of sessions and the action API.

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
    /// `key_scancode(xt, keysym, down)`.
    Scancode(u32, u32, bool),
    /// `sync()`.
    Sync,
}

/// Records every call; the pointer position follows moves. Can be told to fail.
#[derive(Debug, Default)]
pub struct FakeInput {
    events: Mutex<Vec<InputEvent>>,
    pointer: Mutex<(u16, u16)>,
    failure: Mutex<Option<String>>,
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

    fn record(&self, e: InputEvent) -> Result<(), DesktopError> {
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
        self.record(InputEvent::Button(button, down))
    }

    fn key(&self, keysym: u32, down: bool) -> Result<(), DesktopError> {
        self.record(InputEvent::Key(keysym, down))
    }

    fn key_scancode(&self, xt_scancode: u32, keysym: u32, down: bool) -> Result<(), DesktopError> {
        self.record(InputEvent::Scancode(xt_scancode, keysym, down))
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
