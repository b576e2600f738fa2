//! RFB over WebSocket: an axum WebSocket turned into a plain byte stream.
//!
//! Binary frames carry raw RFB bytes in any chunking; text frames are refused (the connection
//! is closed with 1003 and a reason), and so are WebSocket protocol violations (1002, logged
//! with the reason). The session gets one end of an in-memory duplex pipe and
//! never knows it is not talking to TCP; a pump task moves bytes between the pipe and frames.

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// Bytes buffered between the pump and the session in each direction; also the largest
/// binary frame sent.
const PIPE: usize = 256 * 1024;

/// The largest WebSocket message accepted from a client. RFB client messages are small; the
/// largest legitimate one is clipboard text, which the session caps separately.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Turn `ws` into a byte stream. A task pumps frames until either side closes.
pub fn into_stream(ws: WebSocket, peer: String) -> DuplexStream {
    let (ours, theirs) = tokio::io::duplex(PIPE);
    tokio::spawn(pump(ws, theirs, peer));
    ours
}

/// A close reason for a protocol violation: the library's message, cut to fit a close frame
/// (123 bytes) on a character boundary.
fn violation(error: &str) -> String {
    let mut reason = format!("protocol violation: {error}");
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.truncate(end);
    reason
}

async fn pump(ws: WebSocket, pipe: DuplexStream, peer: String) {
    let (mut sink, mut frames) = ws.split();
    let (mut from_session, mut to_session) = tokio::io::split(pipe);

    let outbound = async {
        let mut buf = vec![0u8; PIPE];
        loop {
            match from_session.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let frame = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                    if sink.send(frame).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let inbound = async {
        while let Some(msg) = frames.next().await {
            match msg {
                Ok(Message::Binary(b)) => {
                    if to_session.write_all(&b).await.is_err() {
                        return None;
                    }
                }
                Ok(Message::Text(_)) => {
                    return Some((
                        close_code::UNSUPPORTED,
                        "text frames are not accepted: send RFB bytes as binary frames".into(),
                    ));
                }
                Ok(Message::Close(_)) => return None,
                Err(e) => return Some((close_code::PROTOCOL, violation(&e.to_string()))),
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
            }
        }
        None
    };

    let refused = tokio::select! {
        () = outbound => None,
        reason = inbound => reason,
    };
    // Dropping `to_session` here (end of scope) gives the session EOF.
    match refused {
        Some((code, reason)) => {
            tracing::warn!(%peer, code, %reason, "websocket client refused");
            let _ = sink
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })))
                .await;
        }
        None => {
            let _ = sink
                .send(Message::Close(Some(CloseFrame {
                    code: close_code::NORMAL,
                    reason: "".into(),
                })))
                .await;
        }
    }
    let _ = sink.close().await;
}
