//! Transports: TCP and WebSocket both hand each client to [`crate::session::serve`] as a plain
//! byte stream.

pub mod assets;
pub mod body_deadline;
pub mod http;
pub mod log_limit;
pub mod slots;
pub mod tcp;
pub mod throttle;
pub mod tls;
pub mod websocket;
