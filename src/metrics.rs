//! Process-wide counters and timings for `/api/v0/desktop/status` and `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// A counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Add `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A gauge (can go down).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Add one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Remove one.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    /// Set the value.
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// All of deskd's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Frames (versions) captured.
    pub frames_captured: Counter,
    /// Total microseconds spent reading pixels from the X server.
    pub capture_micros: Counter,
    /// Framebuffer updates sent to RFB clients.
    pub updates_sent: Counter,
    /// Bytes of framebuffer updates sent.
    pub update_bytes: Counter,
    /// Total microseconds spent encoding updates.
    pub encode_micros: Counter,
    /// RFB clients connected now.
    pub rfb_clients: Gauge,
    /// RFB clients disconnected for protocol errors.
    pub rfb_protocol_errors: Counter,
    /// Action API requests served.
    pub actions: Counter,
    /// Clipboard messages for RFB clients built (copied and, for ExtendedClipboard,
    /// compressed); shared by every client that gets the same text.
    pub clipboard_messages_built: Counter,
    /// Clipboard INCR transfers to X clients open now.
    pub clipboard_incr_transfers: Gauge,
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static M: std::sync::OnceLock<Metrics> = std::sync::OnceLock::new();
    M.get_or_init(Metrics::default)
}
