//! A request body that must arrive in full by a deadline. hyper's header timeout ends once the
//! headers are in; without this, a client trickling a body byte by byte would hold a
//! connection slot (and a handler) for as long as it likes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {0:?}")]
pub struct BodyTimedOut(Duration);

/// `inner`, failing with [`BodyTimedOut`] once `limit` has passed since the request arrived.
pub struct DeadlineBody<B> {
    inner: B,
    limit: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<B> DeadlineBody<B> {
    /// Start the clock now (when the request's headers are in).
    pub fn new(inner: B, limit: Duration) -> Self {
        DeadlineBody {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives its frames, then either ends or stalls forever.
    struct Trickle {
        frames: Vec<&'static [u8]>,
        stall: bool,
    }

    impl Body for Trickle {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            let this = self.get_mut();
            match this.frames.pop() {
                Some(f) => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(f))))),
                None if this.stall => Poll::Pending,
                None => Poll::Ready(None),
            }
        }
    }

    async fn read_all(mut body: DeadlineBody<Trickle>) -> Result<usize, String> {
        let mut n = 0;
        loop {
            match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                Some(Ok(f)) => n += f.into_data().map(|d| d.len()).unwrap_or(0),
                Some(Err(e)) => return Err(e.to_string()),
                None => return Ok(n),
            }
        }
    }

    #[tokio::test]
    async fn a_body_that_arrives_in_time_passes_and_a_stalled_one_fails() {
        let limit = Duration::from_millis(50);
        let whole = Trickle {
            frames: vec![b"lo", b"hel"],
            stall: false,
        };
        assert_eq!(read_all(DeadlineBody::new(whole, limit)).await, Ok(5));
        let stalled = Trickle {
            frames: vec![b"a"],
            stall: true,
        };
        let err = read_all(DeadlineBody::new(stalled, limit))
            .await
            .unwrap_err();
        assert!(err.contains("not received within 50ms"), "{err}");
    }
}
