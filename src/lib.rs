//! deskd: an X11 desktop over RFB (TCP and WebSocket) and a JSON action API.
//!
//! See DESIGN.md for the architecture. `session` sees only `rfb`, the [`capture::FrameSource`]
//! and [`input::InputSink`] traits and a byte stream; only `capture::x11*` and `input::xtest*`
//! import x11rb.

pub mod api;
pub mod apps;
pub mod capture;
pub mod clipboard;
pub mod desktop;
pub mod display;
pub mod encode;
pub mod input;
pub mod links;
pub mod metrics;
pub mod record;
pub mod server;
pub mod session;
pub mod state_dir;
pub mod transport;
pub mod video;

pub use desktop::{Desktop, DesktopError};
