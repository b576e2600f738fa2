//! The versioned framebuffer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rfb::{FrameView, Rect, Region};
use tokio::sync::watch;

/// How many versions of change history are kept; a reader further behind gets the full frame.
const HISTORY: usize = 256;

/// Older frames kept for reuse. When a reader (an update being encoded, a screenshot, a
/// recording) still holds the newest frame, the next write goes into a spare nobody holds,
/// brought up to date by copying only what changed since it was newest, instead of copying the
/// whole framebuffer.
const SPARES: usize = 3;

/// Native pixels: 32 bpp little-endian `0x00RRGGBB` (bytes B, G, R, X).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Bytes per row.
    pub stride: usize,
    /// Pixel bytes.
    pub data: Vec<u8>,
}

impl Frame {
    /// A black frame.
    pub fn new(width: u16, height: u16) -> Frame {
        let stride = usize::from(width) * 4;
        Frame {
            width,
            height,
            stride,
            data: vec![0; stride * usize::from(height)],
        }
    }

    /// Borrow as an encoder input.
    pub fn view(&self) -> FrameView<'_> {
        FrameView {
            data: &self.data,
            width: self.width,
            height: self.height,
            stride: self.stride,
        }
    }

    /// The whole frame as a rectangle.
    pub fn bounds(&self) -> Rect {
        Rect::new(0, 0, self.width, self.height)
    }

    /// The pixel at (x, y) as `0x00RRGGBB`.
    pub fn pixel(&self, x: u16, y: u16) -> u32 {
        let i = usize::from(y) * self.stride + usize::from(x) * 4;
        u32::from_le_bytes([
            self.data[i],
            self.data[i + 1],
            self.data[i + 2],
            self.data[i + 3],
        ]) & 0x00ff_ffff
    }
}

/// A cursor image with straight (not premultiplied) alpha.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorImage {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Hotspot x.
    pub hot_x: u16,
    /// Hotspot y.
    pub hot_y: u16,
    /// BGRA bytes, row after row, `width * 4` per row.
    pub pixels: Vec<u8>,
}

struct State {
    version: u64,
    frame: Arc<Frame>,
    /// When the newest version was written (its capture time).
    captured_at: Instant,
    /// (version, region changed to reach that version from the one before).
    history: VecDeque<(u64, Region)>,
    cursor: Option<Arc<CursorImage>>,
    cursor_serial: u64,
    pointer: (u16, u16),
    /// (version it was newest at, frame): see [`SPARES`].
    spares: Vec<(u64, Arc<Frame>)>,
    /// Writes that had to copy the whole frame (no spare was free).
    full_copies: u64,
}

impl State {
    /// The newest frame, writable: in place when no reader holds it, else a spare brought up
    /// to date, else (no spare free) a copy.
    fn writable(&mut self) -> &mut Frame {
        if Arc::get_mut(&mut self.frame).is_none() {
            let next = self.take_spare().unwrap_or_else(|| {
                self.full_copies += 1;
                Arc::new((*self.frame).clone())
            });
            // The frame readers hold becomes a spare once they let go.
            let old = std::mem::replace(&mut self.frame, next);
            self.spares.push((self.version, old));
            if self.spares.len() > SPARES {
                self.spares.remove(0);
            }
        }
        Arc::make_mut(&mut self.frame)
    }

    /// A spare no reader holds, updated to the newest version.
    fn take_spare(&mut self) -> Option<Arc<Frame>> {
        // Changes are known from the version before the oldest history entry on.
        let known = self.history.front().map_or(self.version, |(v, _)| v - 1);
        let (w, h) = (self.frame.width, self.frame.height);
        self.spares
            .retain(|(v, f)| *v >= known && f.width == w && f.height == h);
        let i = self
            .spares
            .iter()
            .position(|(_, f)| Arc::strong_count(f) == 1)?;
        let (since, mut spare) = self.spares.swap_remove(i);
        let mut changed = Region::new();
        for (_, r) in self.history.iter().filter(|(v, _)| *v > since) {
            changed.union(r);
        }
        let dst = Arc::get_mut(&mut spare)?;
        let src = &self.frame;
        for r in changed.rects() {
            let r = r.clamp_to(w, h);
            let (x, n) = (usize::from(r.x) * 4, usize::from(r.w) * 4);
            for y in usize::from(r.y)..usize::from(r.y) + usize::from(r.h) {
                let (a, b) = (y * src.stride + x, y * dst.stride + x);
                dst.data[b..b + n].copy_from_slice(&src.data[a..a + n]);
            }
        }
        Some(spare)
    }
}

/// The newest frame, its version and the recent change history.
pub struct FrameStore {
    /// Unique in the process: caches keyed by version must tell stores apart.
    id: u64,
    state: Mutex<State>,
    version_tx: watch::Sender<u64>,
    cursor_tx: watch::Sender<u64>,
    bell_tx: watch::Sender<u64>,
}

impl FrameStore {
    /// A store holding a black frame of the given size, at version 1.
    pub fn new(width: u16, height: u16) -> Arc<FrameStore> {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Arc::new(FrameStore {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            state: Mutex::new(State {
                version: 1,
                frame: Arc::new(Frame::new(width, height)),
                captured_at: Instant::now(),
                history: VecDeque::new(),
                cursor: None,
                cursor_serial: 0,
                pointer: (0, 0),
                spares: Vec::new(),
                full_copies: 0,
            }),
            version_tx: watch::channel(1).0,
            cursor_tx: watch::channel(0).0,
            bell_tx: watch::channel(0).0,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state inconsistent in a way readers
        // care about (every write is a whole assignment), so recover from poisoning.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This store's process-wide unique id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The newest version number.
    pub fn version(&self) -> u64 {
        self.lock().version
    }

    /// The newest frame and its version.
    pub fn snapshot(&self) -> (u64, Arc<Frame>) {
        let s = self.lock();
        (s.version, Arc::clone(&s.frame))
    }

    /// The newest frame, its version and its capture time.
    pub fn snapshot_timed(&self) -> (u64, Arc<Frame>, Instant) {
        let s = self.lock();
        (s.version, Arc::clone(&s.frame), s.captured_at)
    }

    /// The newest frame, its version, and the region changed after version `since` (the whole
    /// frame when `since` is older than the history kept or predates a resize).
    pub fn changes_since(&self, since: u64) -> (u64, Arc<Frame>, Region) {
        let s = self.lock();
        let full = || Region::from_rect(s.frame.bounds());
        let region = if since >= s.version {
            Region::new()
        } else if s.history.front().is_none_or(|(v, _)| *v > since + 1) {
            full()
        } else {
            let mut r = Region::new();
            for (_, g) in s.history.iter().filter(|(v, _)| *v > since) {
                r.union(g);
            }
            r
        };
        (s.version, Arc::clone(&s.frame), region)
    }

    /// For each rect, a version whose pixels in it equal those of version `at`: the last
    /// version up to `at` that changed it, as far as the history tells (else `at` itself). The
    /// same number for the same rect always means the same pixels, so it can key shared
    /// encodes across frame versions.
    pub fn content_versions(&self, rects: &[Rect], at: u64) -> Vec<u64> {
        let s = self.lock();
        // Versions front..=at are all in the history: unchanged through it means unchanged
        // since the version before it.
        let unchanged = match s.history.front() {
            Some((front, _)) if *front <= at => front - 1,
            _ => at,
        };
        rects
            .iter()
            .map(|r| {
                s.history
                    .iter()
                    .rev()
                    .filter(|(v, _)| *v <= at)
                    .find(|(_, g)| g.rects().iter().any(|c| c.overlaps(r)))
                    .map_or(unchanged, |(v, _)| *v)
            })
            .collect()
    }

    /// How many writes had to copy the whole frame because readers held every buffer.
    pub fn full_copies(&self) -> u64 {
        self.lock().full_copies
    }

    /// Woken with the new version number whenever pixels change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version_tx.subscribe()
    }

    /// Change pixels: `write` mutates the frame (a readers' snapshot is never changed: see
    /// [`SPARES`]); `region` must cover every pixel `write` changes. An empty region does
    /// nothing.
    pub fn write(&self, region: &Region, write: impl FnOnce(&mut Frame)) -> u64 {
        if region.is_empty() {
            return self.version();
        }
        let mut s = self.lock();
        write(s.writable());
        let mut region = region.clone();
        region.clamp_to(s.frame.width, s.frame.height);
        self.bump(&mut s, region)
    }

    /// Replace the whole frame (a resize, or a reconnect to a new X server).
    pub fn replace(&self, frame: Frame) -> u64 {
        let mut s = self.lock();
        let full = Region::from_rect(frame.bounds());
        s.frame = Arc::new(frame);
        // History before a resize is meaningless for the new size.
        s.history.clear();
        s.spares.clear();
        self.bump(&mut s, full)
    }

    fn bump(&self, s: &mut State, region: Region) -> u64 {
        s.version += 1;
        s.captured_at = Instant::now();
        s.history.push_back((s.version, region));
        while s.history.len() > HISTORY {
            s.history.pop_front();
        }
        let v = s.version;
        self.version_tx.send_replace(v);
        v
    }

    /// Set the cursor image; readers of [`FrameStore::cursor`] see a new serial.
    pub fn set_cursor(&self, cursor: CursorImage) {
        let mut s = self.lock();
        s.cursor = Some(Arc::new(cursor));
        s.cursor_serial += 1;
        self.cursor_tx.send_replace(s.cursor_serial);
    }

    /// The cursor image and its serial.
    pub fn cursor(&self) -> (u64, Option<Arc<CursorImage>>) {
        let s = self.lock();
        (s.cursor_serial, s.cursor.clone())
    }

    /// Woken with the new serial whenever the cursor image changes.
    pub fn subscribe_cursor(&self) -> watch::Receiver<u64> {
        self.cursor_tx.subscribe()
    }

    /// The X bell rang (sessions forward it as the RFB Bell).
    pub fn ring_bell(&self) {
        self.bell_tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Woken whenever the bell rings.
    pub fn subscribe_bell(&self) -> watch::Receiver<u64> {
        self.bell_tx.subscribe()
    }

    /// Record the pointer position (for screenshots that draw the cursor).
    pub fn set_pointer(&self, x: u16, y: u16) {
        self.lock().pointer = (x, y);
    }

    /// The last recorded pointer position.
    pub fn pointer(&self) -> (u16, u16) {
        self.lock().pointer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_accumulate_and_old_readers_get_everything() {
        let store = FrameStore::new(100, 100);
        let (v0, _) = store.snapshot();
        store.write(&Region::from_rect(Rect::new(0, 0, 10, 10)), |f| {
            f.data[0] = 1
        });
        let v1 = store.version();
        store.write(&Region::from_rect(Rect::new(50, 50, 10, 10)), |f| {
            f.data[4] = 1
        });
        let (_, _, since0) = store.changes_since(v0);
        assert_eq!(since0.area(), 200);
        let (_, _, since1) = store.changes_since(v1);
        assert_eq!(since1.area(), 100);
        let (v, _, none) = store.changes_since(store.version());
        assert!(none.is_empty());
        assert_eq!(v, store.version());
    }

    #[test]
    fn readers_keep_their_snapshot_while_writer_moves_on() {
        let store = FrameStore::new(4, 4);
        let (_, old) = store.snapshot();
        store.write(&Region::from_rect(Rect::new(0, 0, 1, 1)), |f| f.data[0] = 9);
        assert_eq!(old.data[0], 0);
        assert_eq!(store.snapshot().1.data[0], 9);
    }

    #[test]
    fn writes_under_readers_reuse_spares_and_stay_exact() {
        // A reader always holds the newest frame (like a session encoding it): writes go to
        // spares, caught up by copying only what changed, and every snapshot stays exact.
        let store = FrameStore::new(64, 32);
        let mut model = Frame::new(64, 32);
        let mut held = Vec::new();
        for i in 0..40u16 {
            let r = Rect::new((i * 7) % 60, (i * 3) % 30, 4, 2);
            let c = (i as u8).wrapping_mul(37).wrapping_add(1);
            let paint = |f: &mut Frame| {
                for y in r.y..r.y + r.h {
                    for x in r.x..r.x + r.w {
                        let p = usize::from(y) * f.stride + usize::from(x) * 4;
                        f.data[p..p + 4].copy_from_slice(&[c, c, c, 0]);
                    }
                }
            };
            paint(&mut model);
            store.write(&Region::from_rect(r), paint);
            let (_, snap) = store.snapshot();
            assert_eq!(snap.data, model.data, "after write {i}");
            // Hold the newest and release the one before, as a reader moving on does.
            held.push(snap);
            if held.len() > 1 {
                held.remove(0);
            }
        }
        // Only the first write under a reader, before any spare existed, copied everything.
        assert_eq!(store.full_copies(), 1);
        assert!(store.lock().spares.len() <= SPARES);
    }

    #[test]
    fn content_versions_name_pixels_exactly() {
        let store = FrameStore::new(128, 64);
        let (a, b) = (Rect::new(0, 0, 64, 64), Rect::new(64, 0, 64, 64));
        let v1 = store.version();
        assert_eq!(store.content_versions(&[a, b], v1), [v1, v1]);
        let v2 = store.write(&Region::from_rect(Rect::new(70, 5, 2, 2)), |f| {
            f.data[0] = 1
        });
        let v3 = store.write(&Region::from_rect(Rect::new(1, 1, 1, 1)), |f| f.data[4] = 1);
        // b changed at v2 only, a at v3 only; at v2, a is still as at v1.
        assert_eq!(store.content_versions(&[a, b], v3), [v3, v2]);
        assert_eq!(store.content_versions(&[a, b], v2), [v1, v2]);
        // A resize changes everything.
        let v4 = store.replace(Frame::new(128, 64));
        assert_eq!(store.content_versions(&[a, b], v4), [v4, v4]);
        // Versions older than the history name themselves.
        assert_eq!(store.content_versions(&[a], v3), [v3]);
    }

    #[test]
    fn resize_invalidates_history() {
        let store = FrameStore::new(4, 4);
        let v = store.version();
        store.replace(Frame::new(8, 8));
        let (_, f, r) = store.changes_since(v);
        assert_eq!((f.width, f.height), (8, 8));
        assert_eq!(r.area(), 64);
    }
}
