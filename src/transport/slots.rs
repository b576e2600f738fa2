//! The cap on RFB clients, shared by the TCP listener and the WebSocket paths: a flood of
//! idle connections can never take every file descriptor (and with them the HTTP API).

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::log_limit::{LogLimiter, LOG_INTERVAL};

/// The cap on RFB clients, shared by the TCP listener and the WebSocket paths.
#[derive(Clone)]
pub struct RfbSlots {
    slots: Arc<Semaphore>,
    max: usize,
    refused: Arc<std::sync::Mutex<LogLimiter>>,
}

impl RfbSlots {
    /// Room for `max` clients at once.
    pub fn new(max: usize) -> RfbSlots {
        RfbSlots {
            slots: Arc::new(Semaphore::new(max)),
            max,
            refused: Arc::new(std::sync::Mutex::new(LogLimiter::new(LOG_INTERVAL))),
        }
    }

    /// A slot for one client, held for its whole session; `None` (logged, rate-limited) when
    /// all are taken.
    pub fn admit(&self, peer: &str) -> Option<OwnedSemaphorePermit> {
        let permit = Arc::clone(&self.slots).try_acquire_owned().ok();
        if permit.is_none() {
            let mut log = self.refused.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(left_out) = log.allow(Instant::now()) {
                tracing::warn!(
                    %peer,
                    max = self.max,
                    left_out,
                    "rfb client refused: too many clients (--max-rfb-clients)"
                );
            }
        }
        permit
    }
}
