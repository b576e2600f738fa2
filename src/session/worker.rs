//! The desktop's input thread: blocking `InputSink`, `Clipboard` and resize calls run here, in
//! the order sessions queue them, so the async runtime never waits on the X server and one
//! client's events never overtake each other.

use tokio::sync::{mpsc, oneshot};

use crate::desktop::Desktop;

type Job = Box<dyn FnOnce(&Desktop) + Send>;

/// Events queued before a session stops reading from its client (backpressure, not loss).
const QUEUE: usize = 1024;

/// A handle to the input thread. The thread ends when every handle is dropped.
#[derive(Clone)]
pub struct InputWorker {
    tx: mpsc::Sender<Job>,
}

impl InputWorker {
    /// Start the thread for `desktop`.
    pub fn start(desktop: Desktop) -> std::io::Result<InputWorker> {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("deskd-input".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    job(&desktop);
                }
            })?;
        Ok(InputWorker { tx })
    }

    /// Queue `job` without waiting for it to run. False when the thread is gone.
    pub async fn run(&self, job: impl FnOnce(&Desktop) + Send + 'static) -> bool {
        self.tx.send(Box::new(job)).await.is_ok()
    }

    /// Queue `job` and wait for its result. `None` when the thread is gone.
    pub async fn call<R: Send + 'static>(
        &self,
        job: impl FnOnce(&Desktop) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        let queued = self
            .run(move |d| {
                let _ = tx.send(job(d));
            })
            .await;
        if !queued {
            return None;
        }
        rx.await.ok()
    }
}
