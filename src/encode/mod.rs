//! The shared encode service: one worker pool for every session, and a cache of stateless
//! pieces so that clients watching the same pixels with the same settings share one encode.
//!
//! A session hands over its [`UpdateJob`] with the frame it was planned on. On the pool the
//! update is cut into grid pieces ([`rfb::encoding::shared`]); each piece is keyed by the
//! version that last changed its pixels (from the frame store's history) and its settings,
//! encoded once on a miss (the pieces of one update in parallel, concurrent misses on one key
//! waiting for the first) and appended to every client's update that needs it. What needs a
//! client's own zlib stream (Zlib, ZRLE, Tight's palette and basic compression) is encoded by
//! that client's encoder in the same job.

pub mod cache;
pub mod pool;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rfb::encoding::shared::{self, Piece};
use rfb::server::{EncodedUpdate, UpdateJob};
use tokio::sync::oneshot;

use crate::capture::{Frame, FrameStore};
use crate::metrics;
use cache::{PieceCache, Slot};
use pool::Pool;

/// The pool and the cache.
pub struct EncodeService {
    pool: Pool,
    cache: Arc<PieceCache>,
}

/// The process's encode service, started on first use with one thread per core.
pub fn service() -> Result<&'static EncodeService, String> {
    static S: OnceLock<Result<EncodeService, String>> = OnceLock::new();
    S.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        EncodeService::new(cores).map_err(|e| format!("starting encode threads: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

impl EncodeService {
    /// A service with `threads` encode threads.
    pub fn new(threads: usize) -> std::io::Result<EncodeService> {
        Ok(EncodeService {
            pool: Pool::new(threads)?,
            cache: Arc::new(PieceCache::new()),
        })
    }

    /// The piece cache.
    pub fn cache(&self) -> &PieceCache {
        &self.cache
    }

    /// Encode `job` from `frame`, which is version `version` of `store`, on the pool. The
    /// receiver yields the result (it is dropped only if the encode panicked).
    pub fn submit(
        &'static self,
        job: UpdateJob,
        frame: Arc<Frame>,
        version: u64,
        store: Arc<FrameStore>,
    ) -> oneshot::Receiver<EncodedUpdate> {
        let (tx, rx) = oneshot::channel();
        // Queued behind the updates already waiting: each session has at most one update in
        // flight, so first come first served takes turns between sessions, and a session
        // flooding requests waits behind everyone else's next update, not the other way round.
        self.pool.spawn(move || {
            let started = Instant::now();
            let e = self.encode(job, frame, version, &store);
            let m = metrics::global();
            m.encode_micros.add(started.elapsed().as_micros() as u64);
            m.updates_sent.add(1);
            m.update_bytes.add(e.len() as u64);
            let _ = tx.send(e);
        });
        rx
    }

    /// Encode `job` on this thread, its shared pieces spread over the pool (this thread takes
    /// its share, so it never waits for a pool thread that is busy).
    pub fn encode(
        &self,
        job: UpdateJob,
        frame: Arc<Frame>,
        version: u64,
        store: &FrameStore,
    ) -> EncodedUpdate {
        let pieces = job.pieces();
        if pieces.is_empty() {
            return job.encode(&frame.view());
        }
        let contents = store.content_versions(&pieces, version);
        let keys: Arc<Vec<_>> = Arc::new(
            pieces
                .iter()
                .zip(contents)
                .map(|(r, c)| (store.id(), job.piece_key(*r, c)))
                .collect(),
        );
        let slots: Arc<Vec<OnceLock<Slot>>> =
            Arc::new(keys.iter().map(|_| OnceLock::new()).collect());
        let (k, s, f, cache) = (
            Arc::clone(&keys),
            Arc::clone(&slots),
            Arc::clone(&frame),
            Arc::clone(&self.cache),
        );
        self.pool.for_each(
            keys.len(),
            Arc::new(move |i| {
                let piece = cache.get_or_encode(&k[i], || shared::encode_piece(&f.view(), &k[i].1));
                let _ = s[i].set(piece);
            }),
        );
        let pieces: Vec<Option<&Piece>> = slots
            .iter()
            .map(|s| s.get().and_then(|p| p.as_deref()))
            .collect();
        job.encode_pieces(&frame.view(), &pieces)
    }
}
