//! Bytes to client messages, and server messages to bytes.
//!
//! [`MessageReader`] buffers what the client sent and hands out whole parsed messages.
//! [`Writer`] is a task owning the write half: it writes small messages as they come and
//! encodes framebuffer updates on a blocking thread right before writing them, so a session
//! holds at most one encoded update, and only while it is being written.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use rfb::messages::server::{
    patch_rect_count, write_framebuffer_update_header, write_last_rect, RECT_COUNT_UNTIL_LAST_RECT,
};
use rfb::messages::{ClientMessage, ClientMessageReader, Limits, ParseError};
use rfb::{EncodeParams, Encoder, Region};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::capture::Frame;
use crate::metrics;

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The client sent something malformed or not allowed.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The connection failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The handshake was refused (unsupported version, throttled address...).
    #[error("handshake: {0}")]
    Handshake(String),
    /// The client gave a wrong password.
    #[error("authentication failed")]
    AuthFailed,
}

impl From<ParseError> for SessionError {
    fn from(e: ParseError) -> Self {
        SessionError::Protocol(e.to_string())
    }
}

/// Reads client messages from a byte stream (the async side of
/// [`rfb::messages::ClientMessageReader`]).
pub struct MessageReader<R> {
    rd: R,
    chunk: Box<[u8]>,
    messages: ClientMessageReader,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// A reader over `rd`, starting with `leftover` bytes already received (after the
    /// handshake).
    pub fn new(rd: R, leftover: &[u8], limits: Limits) -> Self {
        let mut messages = ClientMessageReader::new(limits);
        messages.feed(leftover);
        MessageReader {
            rd,
            chunk: vec![0u8; 16 * 1024].into_boxed_slice(),
            messages,
        }
    }

    /// Parse limits and negotiated state (e.g. extended mouse buttons), changeable between
    /// messages.
    pub fn limits_mut(&mut self) -> &mut Limits {
        &mut self.messages.limits
    }

    /// The next message, or `None` at a clean end of stream. Cancel-safe: bytes already read
    /// stay buffered.
    pub async fn next(&mut self) -> Result<Option<ClientMessage>, SessionError> {
        loop {
            if let Some(msg) = self.messages.next_message()? {
                return Ok(Some(msg));
            }
            let n = self.rd.read(&mut self.chunk).await?;
            if n == 0 {
                let pending = self.messages.buffered();
                return if pending == 0 {
                    Ok(None)
                } else {
                    Err(SessionError::Protocol(format!(
                        "connection closed inside a message ({pending} bytes pending)"
                    )))
                };
            }
            self.messages.feed(&self.chunk[..n]);
        }
    }
}

/// A framebuffer update to encode and write.
pub struct UpdateJob {
    /// The frame to take pixels from.
    pub frame: Arc<Frame>,
    /// Pixels to send (inside the frame).
    pub region: Region,
    /// Encoder settings.
    pub params: EncodeParams,
    /// The client's encoder (returned when the update is written).
    pub encoder: Box<dyn Encoder>,
    /// Pseudo-rectangles to put first (desktop size, cursor, acknowledgements).
    pub pseudo: Vec<u8>,
    /// How many rectangles `pseudo` holds.
    pub pseudo_rects: u16,
    /// The client understands LastRect.
    pub last_rect: bool,
}

/// Something for the writer.
pub enum Outgoing {
    /// Bytes of complete server messages, holding their share of the queue budget until
    /// written.
    Bytes(Bytes, Option<OwnedSemaphorePermit>),
    /// A framebuffer update.
    Update(UpdateJob),
}

/// Handle to a writer task.
pub struct Writer {
    tx: mpsc::Sender<Outgoing>,
    budget: Arc<Semaphore>,
}

/// Bytes of small messages (clipboard text, fence replies) that may wait for a busy writer.
/// A client that keeps asking for a large clipboard without reading waits here instead of
/// growing the queue.
const BUDGET: usize = 16 << 20;

/// Messages (other than updates) that may wait for a busy writer before the session stops
/// reading from its client.
const QUEUE: usize = 32;

impl Writer {
    /// Start a writer task on `wr`. Each written update's encoder comes back on `done`.
    pub fn spawn<W: AsyncWrite + Unpin + Send + 'static>(
        wr: W,
        done: mpsc::UnboundedSender<Box<dyn Encoder>>,
    ) -> (Writer, tokio::task::JoinHandle<Result<(), SessionError>>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run_writer(wr, rx, done));
        let budget = Arc::new(Semaphore::new(BUDGET));
        (Writer { tx, budget }, task)
    }

    /// Queue `out`. Fails when the writer has stopped (connection gone).
    pub async fn send(&self, out: Outgoing) -> Result<(), SessionError> {
        self.tx.send(out).await.map_err(|_| {
            SessionError::Io(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "writer stopped",
            ))
        })
    }

    /// Queue bytes of complete messages, waiting while the bytes already queued exceed the
    /// budget (a message larger than the whole budget waits until the queue is empty).
    pub async fn bytes(&self, b: impl Into<Bytes>) -> Result<(), SessionError> {
        let b = b.into();
        let n = u32::try_from(b.len().min(BUDGET)).unwrap_or(u32::MAX);
        let permit = Arc::clone(&self.budget)
            .acquire_many_owned(n)
            .await
            .map_err(|_| SessionError::Io(std::io::ErrorKind::BrokenPipe.into()))?;
        self.send(Outgoing::Bytes(b, Some(permit))).await
    }
}

async fn run_writer<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::Receiver<Outgoing>,
    done: mpsc::UnboundedSender<Box<dyn Encoder>>,
) -> Result<(), SessionError> {
    while let Some(out) = rx.recv().await {
        match out {
            Outgoing::Bytes(b, permit) => {
                wr.write_all(&b).await?;
                drop(permit);
            }
            Outgoing::Update(job) => {
                let (bytes, encoder) = tokio::task::spawn_blocking(move || encode(job))
                    .await
                    .map_err(|e| SessionError::Protocol(format!("encoder failed: {e}")))?;
                wr.write_all(&bytes).await?;
                let m = metrics::global();
                m.updates_sent.add(1);
                m.update_bytes.add(bytes.len() as u64);
                drop(bytes);
                if done.send(encoder).is_err() {
                    break;
                }
            }
        }
        if rx.is_empty() {
            wr.flush().await?;
        }
    }
    let _ = wr.shutdown().await;
    Ok(())
}

/// Build one FramebufferUpdate message: header, pseudo-rectangles, encoded pixels.
pub fn encode(mut job: UpdateJob) -> (Vec<u8>, Box<dyn Encoder>) {
    let started = Instant::now();
    let mut out = Vec::with_capacity(job.pseudo.len() + 4 + job.region.area() as usize);
    write_framebuffer_update_header(&mut out, 0);
    out.extend_from_slice(&job.pseudo);
    let rects = job.region.rects().to_vec();
    let mut count = usize::from(job.pseudo_rects);
    if !rects.is_empty() {
        count += job
            .encoder
            .encode(&job.frame.view(), &rects, &job.params, &mut out);
    }
    if count < usize::from(RECT_COUNT_UNTIL_LAST_RECT) {
        patch_rect_count(&mut out, 0, count as u16);
    } else if job.last_rect {
        patch_rect_count(&mut out, 0, RECT_COUNT_UNTIL_LAST_RECT);
        write_last_rect(&mut out);
    } else {
        // Too many rectangles for the count field and no LastRect: send the bounding box raw.
        out.clear();
        write_framebuffer_update_header(&mut out, 0);
        out.extend_from_slice(&job.pseudo);
        let mut raw = rfb::encoding::raw::RawEncoder::new();
        let bounds = [job.region.bounds()];
        let n = raw.encode(&job.frame.view(), &bounds, &job.params, &mut out);
        patch_rect_count(
            &mut out,
            0,
            (usize::from(job.pseudo_rects) + n).min(usize::from(u16::MAX - 1)) as u16,
        );
    }
    metrics::global()
        .encode_micros
        .add(started.elapsed().as_micros() as u64);
    (out, job.encoder)
}
