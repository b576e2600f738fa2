//! A buffer that turns arbitrarily chunked client bytes into messages.

use super::client::{parse_client_message, ClientMessage, Limits, ParseError};

/// Accumulates client bytes and yields whole messages.
///
/// Feed whatever the transport delivered with [`ClientMessageReader::feed`], then call
/// [`ClientMessageReader::next_message`] until it returns `Ok(None)`. After an error the
/// connection should be closed; the reader keeps returning that error.
#[derive(Debug, Clone, Default)]
pub struct ClientMessageReader {
    buf: Vec<u8>,
    start: usize,
    failed: Option<ParseError>,
    /// Caps and negotiated state used for parsing; may be changed between messages (e.g. to
    /// turn on extended mouse buttons).
    pub limits: Limits,
}

impl ClientMessageReader {
    /// An empty reader.
    pub fn new(limits: Limits) -> Self {
        ClientMessageReader {
            limits,
            ..Default::default()
        }
    }

    /// Append received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        // Drop consumed bytes first so the buffer never grows past one partial message plus
        // the new input.
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as messages.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<ClientMessage>, ParseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match parse_client_message(&self.buf[self.start..], &self.limits) {
            Ok(Some((msg, n))) => {
                self.start += n;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                Ok(Some(msg))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_at_a_time() {
        let mut bytes = Vec::new();
        ClientMessage::KeyEvent {
            down: true,
            keysym: 0x61,
        }
        .write(&mut bytes);
        ClientMessage::SetEncodings(vec![0, 1, -239]).write(&mut bytes);
        bytes.push(7); // unknown type
        let mut r = ClientMessageReader::new(Limits::default());
        let mut got = Vec::new();
        let mut err = None;
        for b in bytes {
            r.feed(&[b]);
            loop {
                match r.next_message() {
                    Ok(Some(m)) => got.push(m),
                    Ok(None) => break,
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
        }
        assert_eq!(
            got,
            [
                ClientMessage::KeyEvent {
                    down: true,
                    keysym: 0x61
                },
                ClientMessage::SetEncodings(vec![0, 1, -239])
            ]
        );
        assert_eq!(err, Some(ParseError::UnknownMessageType(7)));
        assert_eq!(r.next_message(), Err(ParseError::UnknownMessageType(7)));
    }
}
