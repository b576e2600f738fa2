//! Encoded pieces shared between clients, keyed by content and settings.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rfb::encoding::shared::{Piece, PieceKey};

/// An encoded piece, or `None` when its piece needs the client's own stream.
pub type Slot = Option<Arc<Piece>>;

/// A piece of one frame store ([`crate::capture::FrameStore::id`]): content versions are
/// numbered per store, so the same version of another desktop is other pixels.
pub type Key = (u64, PieceKey);

/// Pieces kept: dozens of full frames' worth (a 1920x1080 frame is 17 bands).
const MAX_ENTRIES: usize = 1024;
/// Bytes kept: pieces are needed only while the clients at one frame version encode it, so a
/// couple of Raw 1920x1080 frames (8 MB each) or dozens of JPEG ones are plenty.
const MAX_BYTES: usize = 16 << 20;

struct Entry {
    slot: Arc<OnceLock<Slot>>,
    /// When it was last asked for (a counter, not a clock).
    used: u64,
}

#[derive(Default)]
struct Map {
    entries: HashMap<Key, Entry>,
    /// Bytes of the encoded pieces in `entries`.
    bytes: usize,
}

/// A bounded map from [`Key`] to encoded bytes. Concurrent misses on one key encode it
/// once: the others wait for that result.
#[derive(Default)]
pub struct PieceCache {
    map: Mutex<Map>,
    tick: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl PieceCache {
    /// An empty cache.
    pub fn new() -> PieceCache {
        PieceCache::default()
    }

    /// The piece for `key`, from the cache or from `encode` (run at most once per key while
    /// it is cached, outside the map's lock).
    pub fn get_or_encode(&self, key: &Key, encode: impl FnOnce() -> Option<Piece>) -> Slot {
        let used = self.tick.fetch_add(1, Ordering::Relaxed);
        let slot = {
            let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
            let e = m.entries.entry(*key).or_insert_with(|| Entry {
                slot: Arc::new(OnceLock::new()),
                used,
            });
            e.used = used;
            Arc::clone(&e.slot)
        };
        let mut encoded = false;
        let piece = slot.get_or_init(|| {
            encoded = true;
            encode().map(Arc::new)
        });
        if encoded {
            self.misses.fetch_add(1, Ordering::Relaxed);
            let size = piece.as_ref().map_or(0, |p| p.bytes.len());
            let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
            // Counted only while the entry is still the one filled (it may have been evicted).
            if m.entries
                .get(key)
                .is_some_and(|e| Arc::ptr_eq(&e.slot, &slot))
            {
                m.bytes += size;
                evict(&mut m);
            }
        } else {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        piece.clone()
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Entries and bytes held.
    pub fn size(&self) -> (usize, usize) {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        (m.entries.len(), m.bytes)
    }
}

/// Over a bound, drop the least recently used quarter and more until within both bounds.
fn evict(m: &mut Map) {
    if m.entries.len() <= MAX_ENTRIES && m.bytes <= MAX_BYTES {
        return;
    }
    let mut by_age: Vec<(u64, Key)> = m.entries.iter().map(|(k, e)| (e.used, *k)).collect();
    by_age.sort_unstable_by_key(|(used, _)| *used);
    let keep_entries = MAX_ENTRIES * 3 / 4;
    let keep_bytes = MAX_BYTES * 3 / 4;
    for (_, k) in by_age {
        if m.entries.len() <= keep_entries && m.bytes <= keep_bytes {
            break;
        }
        if let Some(e) = m.entries.remove(&k) {
            let size = e
                .slot
                .get()
                .and_then(|p| p.as_ref())
                .map_or(0, |p| p.bytes.len());
            m.bytes -= size.min(m.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rfb::encoding::numbers;
    use rfb::encoding::EncodeParams;
    use rfb::Rect;
    use std::sync::atomic::AtomicUsize;

    fn key(content: u64) -> Key {
        let piece = PieceKey::new(
            numbers::TIGHT,
            Rect::new(0, 0, 64, 64),
            content,
            &EncodeParams::default(),
        );
        (1, piece)
    }

    fn piece(n: usize) -> Option<Piece> {
        Some(Piece {
            bytes: vec![0; n],
            rects: 1,
            lossy: Vec::new(),
        })
    }

    #[test]
    fn same_key_hits_and_changed_content_misses() {
        let c = PieceCache::new();
        let a = c.get_or_encode(&key(1), || piece(10));
        let b = c.get_or_encode(&key(1), || panic!("must hit"));
        assert!(Arc::ptr_eq(&a.unwrap(), &b.unwrap()));
        let calls = AtomicUsize::new(0);
        c.get_or_encode(&key(2), || {
            calls.fetch_add(1, Ordering::Relaxed);
            piece(10)
        });
        assert_eq!(calls.load(Ordering::Relaxed), 1, "new content encodes");
        assert_eq!(c.stats(), (1, 2));
        // The same version of another desktop's store is other pixels.
        let other = (2, key(1).1);
        c.get_or_encode(&other, || {
            calls.fetch_add(1, Ordering::Relaxed);
            piece(10)
        });
        assert_eq!(calls.load(Ordering::Relaxed), 2, "another store encodes");
    }

    #[test]
    fn concurrent_misses_encode_once() {
        let c = Arc::new(PieceCache::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (c, calls) = (Arc::clone(&c), Arc::clone(&calls));
                std::thread::spawn(move || {
                    c.get_or_encode(&key(7), || {
                        calls.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        piece(5)
                    })
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().expect("thread").map(|p| p.bytes.len()), Some(5));
        }
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn bounded_by_entries_and_bytes() {
        let c = PieceCache::new();
        for i in 0..(MAX_ENTRIES as u64 * 3) {
            c.get_or_encode(&key(i), || piece(16));
        }
        assert!(c.size().0 <= MAX_ENTRIES);
        let c = PieceCache::new();
        for i in 0..64 {
            c.get_or_encode(&key(i), || piece(4 << 20));
        }
        assert!(c.size().1 <= MAX_BYTES);
        // The newest survive.
        c.get_or_encode(&key(63), || panic!("newest kept"));
    }
}
