//! Input injection: what RFB clients and the action API both drive.

pub mod fake;
pub mod held;
pub mod keymap;
pub mod xtest;

use crate::desktop::DesktopError;

/// Pointer and keyboard input into the desktop. Methods block briefly (they write to the X
/// connection); call them from a blocking context or accept a sub-millisecond stall.
pub trait InputSink: Send + Sync {
    /// Move the pointer to (x, y), clamped to the screen.
    fn pointer_move(&self, x: u16, y: u16) -> Result<(), DesktopError>;

    /// Press or release a button: 1 left, 2 middle, 3 right, 4/5 wheel up/down, 6/7 wheel
    /// left/right, 8/9 back/forward.
    fn button(&self, button: u8, down: bool) -> Result<(), DesktopError>;

    /// Press or release the key that produces `keysym`, adding or removing the modifiers it
    /// needs (and restoring them after); keysyms absent from the keymap are bound temporarily.
    /// Returns the X keycode pressed or released (`None`: a release that matched no key).
    fn key(&self, keysym: u32, down: bool) -> Result<Option<u8>, DesktopError>;

    /// Press or release a key by XT scancode (QEMU extended key event), bypassing keysyms.
    /// Returns the X keycode.
    fn key_scancode(&self, xt_scancode: u32, down: bool) -> Result<u8, DesktopError>;

    /// Press or release an X keycode as is (to release what [`held::Held`] recorded).
    fn keycode(&self, keycode: u8, down: bool) -> Result<(), DesktopError>;

    /// Where the pointer is now.
    fn pointer_position(&self) -> Result<(u16, u16), DesktopError>;

    /// Wait until the X server has processed everything sent so far.
    fn sync(&self) -> Result<(), DesktopError>;
}
