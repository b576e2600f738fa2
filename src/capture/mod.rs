//! Screen capture: the versioned framebuffer every reader shares, and the sources that fill it.
//!
//! A source (X11 via SHM + DAMAGE, or a synthetic script) writes changed pixels into a
//! [`FrameStore`]; readers (RFB sessions, screenshots) take cheap `Arc` snapshots and ask for the
//! region changed since the version they last saw.

mod store;
pub mod synthetic;
pub mod x11;

pub use store::{CursorImage, Frame, FrameStore};

use std::sync::Arc;

use crate::desktop::DesktopError;

/// A screen whose pixels land in a [`FrameStore`].
pub trait FrameSource: Send + Sync {
    /// The store the source writes into.
    fn store(&self) -> &Arc<FrameStore>;

    /// Read any pending damage now and return the resulting version, so that a screenshot
    /// taken right after an action shows its effect. Blocking: call from a blocking context.
    fn refresh(&self) -> Result<u64, DesktopError>;

    /// Change the screen size (RandR). Returns the size obtained. Blocking.
    fn resize(&self, width: u16, height: u16) -> Result<(u16, u16), DesktopError>;
}
