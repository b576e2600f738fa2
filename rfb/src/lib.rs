//! The RFB (VNC) protocol, sans-IO.
//!
//! This crate parses client bytes from slices and serializes server messages into buffers.
//! It never touches a socket, a thread or a clock: the application owns all I/O. Incomplete
//! input is `Ok(None)` ("need more bytes"); malformed input is a typed error.
//!
//! - [`handshake`]: the server side of version, security and init negotiation.
//! - [`messages`]: client messages (incremental parse) and server messages (serialize).
//! - [`pixel`]: pixel formats and conversion from the native 32-bit BGRX framebuffer.
//! - [`geom`]: rectangles and regions.
//! - [`encoding`]: framebuffer-update encoders, one per file, behind one trait.
//! - [`server`]: one server connection as a state machine (greeting, scheduling, fences,
//!   congestion control, lossless refresh, framing), driven with time passed in.
#![warn(missing_docs)]

pub mod auth;
pub mod encoding;
pub mod geom;
pub mod handshake;
pub mod messages;
pub mod pixel;
pub mod server;

pub use encoding::{EncodeParams, Encoder, FrameView};
pub use geom::{Rect, Region};
pub use pixel::PixelFormat;
