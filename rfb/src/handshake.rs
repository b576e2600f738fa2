//! Server side of the RFB handshake (RFC 6143 §7.1–7.3). Implementation pending.
