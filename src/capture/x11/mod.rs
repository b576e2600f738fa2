//! Screen capture from an X server: MIT-SHM reads of DAMAGE-reported areas, diffed per 64x64
//! tile against the stored frame, plus the XFIXES cursor and RandR size changes.
//!
//! One capture thread blocks on X events (no polling while the screen is idle). DAMAGE is
//! created with ReportLevel NonEmpty: the server accumulates the damaged region and sends one
//! event when it becomes non-empty; at the next frame tick (at most `max_fps` per second) the
//! thread takes the whole region with DamageSubtract + XFixesFetchRegion, reads it into a
//! persistent memfd-backed SHM segment, drops unchanged tiles and writes the rest into the
//! [`FrameStore`]. [`FrameSource::refresh`] does the same synchronously, so a screenshot sees
//! every drawing the server processed before the call.
//!
//! When the connection breaks (the supervisor restarts Xvfb), the thread reconnects through the
//! shared [`XServer`] handle and replaces the stored frame with the new server's pixels.

mod shm;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rfb::{Rect, Region};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::randr::{self, ConnectionExt as _};
use x11rb::protocol::shm::{self as xshm, ConnectionExt as _};
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xkb::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{self, ConnectionExt as _, ImageFormat, Window};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

use super::{CursorImage, Frame, FrameSource, FrameStore};
use crate::desktop::DesktopError;
use crate::display::conn::{x_err, XServer};
use crate::display::randr as screen_size;

/// Tile size for change detection.
pub const TILE: u16 = 64;

/// Capture settings.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// Most frames per second read from the server (damage arriving faster is merged).
    pub max_fps: u32,
    /// Use MIT-SHM when the server offers it.
    pub use_shm: bool,
    /// Use DAMAGE when the server offers it (otherwise the screen is polled).
    pub use_damage: bool,
    /// Poll interval when DAMAGE is not used.
    pub poll_interval: Duration,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions {
            max_fps: 60,
            use_shm: true,
            use_damage: true,
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// Which fast paths the current connection uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CaptureFeatures {
    /// Pixels are read through a shared memory segment.
    pub shm: bool,
    /// Changes are reported by DAMAGE (otherwise polled).
    pub damage: bool,
    /// The cursor image comes from XFIXES.
    pub cursor: bool,
}

type ResizeHook = Box<dyn Fn(u16, u16) + Send + Sync>;

struct Shared {
    server: Arc<XServer>,
    store: Arc<FrameStore>,
    opts: CaptureOptions,
    session: Mutex<Option<Session>>,
    stop: AtomicBool,
    on_resize: Mutex<Option<ResizeHook>>,
}

/// An X11 [`FrameSource`]. Dropping it (or [`X11Capture::stop`]) ends the capture thread.
pub struct X11Capture {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl X11Capture {
    /// Connect, read the first frame and start the capture thread.
    pub fn start(
        server: Arc<XServer>,
        opts: CaptureOptions,
    ) -> Result<Arc<X11Capture>, DesktopError> {
        let session = Session::open(&server, &opts)?;
        let frame = session.read_full()?;
        let store = FrameStore::new(frame.width, frame.height);
        store.replace(frame);
        session.update_cursor(&store);
        let shared = Arc::new(Shared {
            server,
            store,
            opts,
            session: Mutex::new(Some(session)),
            stop: AtomicBool::new(false),
            on_resize: Mutex::new(None),
        });
        let s2 = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("deskd-capture".into())
            .spawn(move || run(&s2))
            .map_err(|e| DesktopError::Other(format!("spawning capture thread: {e}")))?;
        Ok(Arc::new(X11Capture {
            shared,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Called with the new size after every successful [`FrameSource::resize`] (the
    /// supervisor uses it to restore the size after restarting Xvfb).
    pub fn on_resize(&self, hook: impl Fn(u16, u16) + Send + Sync + 'static) {
        *lock(&self.shared.on_resize) = Some(Box::new(hook));
    }

    /// The fast paths in use, or `None` while disconnected.
    pub fn features(&self) -> Option<CaptureFeatures> {
        lock(&self.shared.session).as_ref().map(|s| s.features())
    }

    /// Read the whole screen now into a new frame, bypassing damage and the store (for
    /// benchmarks and for checking the store against the server).
    pub fn read_full_frame(&self) -> Result<Frame, DesktopError> {
        self.with_session(|s| s.read_full_keep_damage())
    }

    /// Like [`X11Capture::read_full_frame`] into an existing frame (reallocated only when the
    /// size differs), so repeated reads touch no new memory.
    pub fn read_full_into(&self, frame: &mut Frame) -> Result<(), DesktopError> {
        self.with_session(|s| {
            if (frame.width, frame.height) != (s.width, s.height) {
                *frame = Frame::new(s.width, s.height);
            }
            let parts = s.read_rects(&[Rect::new(0, 0, s.width, s.height)])?;
            for (r, data) in parts.iter() {
                copy_rect(frame, r, data);
            }
            Ok(())
        })
    }

    /// Stop the capture thread and wait for it.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(s) = lock(&self.shared.session).as_ref() {
            s.wake();
        }
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }

    fn with_session<T>(
        &self,
        f: impl FnOnce(&mut Session) -> Result<T, DesktopError>,
    ) -> Result<T, DesktopError> {
        let mut guard = lock(&self.shared.session);
        let Some(s) = guard.as_mut() else {
            return Err(DesktopError::Unavailable(
                "X server not connected (reconnecting)".into(),
            ));
        };
        let r = f(s);
        if let Err(DesktopError::Unavailable(_)) = &r {
            // The capture thread notices the broken connection too and reconnects.
            *guard = None;
        }
        r
    }
}

impl Drop for X11Capture {
    fn drop(&mut self) {
        self.stop();
    }
}

impl FrameSource for X11Capture {
    fn store(&self) -> &Arc<FrameStore> {
        &self.shared.store
    }

    fn refresh(&self) -> Result<u64, DesktopError> {
        let store = Arc::clone(&self.shared.store);
        self.with_session(|s| {
            s.check_size(&store)?;
            s.capture(&store)
        })
    }

    fn resize(&self, width: u16, height: u16) -> Result<(u16, u16), DesktopError> {
        let store = Arc::clone(&self.shared.store);
        let size = self.with_session(|s| {
            let size = screen_size::set_screen_size(&*s.conn, s.root, width, height)?;
            s.check_size(&store)?;
            Ok(size)
        })?;
        if let Some(hook) = lock(&self.shared.on_resize).as_ref() {
            hook(size.0, size.1);
        }
        Ok(size)
    }
}

/// The capture thread.
fn run(shared: &Shared) {
    let mut pacer = Pacer::new(shared.opts.max_fps);
    let mut backoff = Duration::from_millis(50);
    while !shared.stop.load(Ordering::SeqCst) {
        let current = lock(&shared.session)
            .as_ref()
            .map(|s| (Arc::clone(&s.conn), s.damage.is_some()));
        let Some((conn, has_damage)) = current else {
            match Session::open(&shared.server, &shared.opts)
                .and_then(|s| s.read_full().map(|f| (s, f)))
            {
                Ok((s, frame)) => {
                    tracing::info!("capture connected to {}", shared.server.display());
                    shared.store.replace(frame);
                    s.update_cursor(&shared.store);
                    *lock(&shared.session) = Some(s);
                    backoff = Duration::from_millis(50);
                }
                Err(e) => {
                    tracing::debug!("capture reconnect failed: {e}");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
            continue;
        };
        let mut todo = Todo::default();
        if has_damage {
            match conn.wait_for_event() {
                Ok(ev) => todo.note(&ev),
                Err(e) => {
                    tracing::warn!("capture connection lost: {e}");
                    drop_session(shared, &conn);
                    continue;
                }
            }
        } else {
            std::thread::sleep(shared.opts.poll_interval);
            todo.damage = true;
        }
        loop {
            match conn.poll_for_event() {
                Ok(Some(ev)) => todo.note(&ev),
                Ok(None) => break,
                Err(_) => {
                    drop_session(shared, &conn);
                    break;
                }
            }
        }
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        for _ in 0..todo.bells {
            shared.store.ring_bell();
        }
        if todo.damage {
            let wait = pacer.wait(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
        let mut guard = lock(&shared.session);
        let Some(s) = guard.as_mut().filter(|s| Arc::ptr_eq(&s.conn, &conn)) else {
            continue;
        };
        let mut result = Ok(());
        if todo.resize {
            result = s.check_size(&shared.store);
        }
        if todo.cursor && result.is_ok() {
            s.update_cursor(&shared.store);
        }
        if todo.damage && result.is_ok() {
            pacer.started(Instant::now());
            result = s.capture(&shared.store).map(|_| ());
        }
        match result {
            Err(DesktopError::Unavailable(e)) => {
                tracing::warn!("capture connection lost: {e}");
                *guard = None;
            }
            Err(e) => {
                // Usually a size race (the screen changed under a read): re-read the geometry.
                tracing::debug!("capture error: {e}");
                if let Err(DesktopError::Unavailable(_)) = s.check_size(&shared.store) {
                    *guard = None;
                }
            }
            Ok(()) => {}
        }
    }
}

/// When captures may start: at most `max_fps` a second, on a grid of start times. Timing the
/// next capture from the *end* of the previous one (as deskd once did) makes each frame last
/// the interval plus the capture plus the wake-up latency, so `--frame-rate 60` gave well
/// under 60 captures a second, and far fewer on a busy machine.
#[derive(Debug)]
struct Pacer {
    interval: Duration,
    next: Option<Instant>,
}

impl Pacer {
    fn new(max_fps: u32) -> Pacer {
        Pacer {
            interval: Duration::from_secs(1) / max_fps.clamp(1, 1000),
            next: None,
        }
    }

    /// How long to wait at `now` before the next capture may start.
    fn wait(&self, now: Instant) -> Duration {
        self.next
            .map_or(Duration::ZERO, |n| n.saturating_duration_since(now))
    }

    /// A capture started at `at`: the next may start one interval after the previous slot,
    /// or at once when captures fell behind (never more than one extra to catch up).
    fn started(&mut self, at: Instant) {
        self.next = Some(match self.next {
            Some(n) => (n + self.interval).max(at),
            None => at + self.interval,
        });
    }
}

fn drop_session(shared: &Shared, conn: &Arc<RustConnection>) {
    let mut g = lock(&shared.session);
    if g.as_ref().is_some_and(|s| Arc::ptr_eq(&s.conn, conn)) {
        *g = None;
    }
}

/// What a batch of events asks for.
#[derive(Default)]
struct Todo {
    damage: bool,
    cursor: bool,
    resize: bool,
    bells: u32,
}

impl Todo {
    fn note(&mut self, ev: &Event) {
        match ev {
            Event::DamageNotify(_) => self.damage = true,
            Event::XfixesCursorNotify(_) => self.cursor = true,
            Event::RandrScreenChangeNotify(_) | Event::ConfigureNotify(_) => self.resize = true,
            Event::XkbBellNotify(_) => self.bells += 1,
            Event::Error(e) => tracing::debug!("X error on capture connection: {e:?}"),
            _ => {}
        }
    }
}

struct Shm {
    seg: xshm::Seg,
    map: shm::ShmMapping,
}

/// One connection to the server and what capture set up on it.
struct Session {
    conn: Arc<RustConnection>,
    root: Window,
    wake_window: Window,
    width: u16,
    height: u16,
    shm: Option<Shm>,
    /// The DAMAGE object and the XFIXES region its damage is moved into.
    damage: Option<(damage::Damage, xfixes::Region)>,
    cursor: bool,
    shm_allowed: bool,
}

impl Session {
    fn open(server: &XServer, opts: &CaptureOptions) -> Result<Session, DesktopError> {
        let (conn, screen_num) = server.connect()?;
        let conn = Arc::new(conn);
        let setup = conn.setup();
        let screen = setup
            .roots
            .get(screen_num)
            .ok_or_else(|| DesktopError::Other("no such screen".into()))?;
        let root = screen.root;
        let depth = screen.root_depth;
        let bpp = setup
            .pixmap_formats
            .iter()
            .find(|f| f.depth == depth)
            .map(|f| f.bits_per_pixel);
        if !(depth == 24 || depth == 32)
            || bpp != Some(32)
            || setup.image_byte_order != xproto::ImageOrder::LSB_FIRST
        {
            return Err(DesktopError::Invalid(format!(
                "unsupported screen format: depth {depth}, {bpp:?} bits per pixel, {:?}",
                setup.image_byte_order
            )));
        }
        let has = |name: &'static str| -> Result<bool, DesktopError> {
            Ok(conn.extension_information(name).map_err(x_err)?.is_some())
        };
        let xfixes_ok = has(xfixes::X11_EXTENSION_NAME)?;
        if xfixes_ok {
            conn.xfixes_query_version(5, 0)
                .map_err(x_err)?
                .reply()
                .map_err(x_err)?;
        }
        let damage = if opts.use_damage && xfixes_ok && has(damage::X11_EXTENSION_NAME)? {
            conn.damage_query_version(1, 1)
                .map_err(x_err)?
                .reply()
                .map_err(x_err)?;
            let d = conn.generate_id().map_err(x_err)?;
            conn.damage_create(d, root, damage::ReportLevel::NON_EMPTY)
                .map_err(x_err)?;
            let r = conn.generate_id().map_err(x_err)?;
            conn.xfixes_create_region(r, &[]).map_err(x_err)?;
            Some((d, r))
        } else {
            None
        };
        if xfixes_ok {
            conn.xfixes_select_cursor_input(root, xfixes::CursorNotifyMask::DISPLAY_CURSOR)
                .map_err(x_err)?;
        }
        if has(randr::X11_EXTENSION_NAME)? {
            conn.randr_select_input(root, randr::NotifyMask::SCREEN_CHANGE)
                .map_err(x_err)?;
        }
        // The X bell (XKB BellNotify) becomes the RFB Bell.
        if has(xkb::X11_EXTENSION_NAME)? {
            let ok = conn
                .xkb_use_extension(1, 0)
                .map_err(x_err)?
                .reply()
                .map_err(x_err)?
                .supported;
            if ok {
                conn.xkb_select_events(
                    xkb::ID::USE_CORE_KBD.into(),
                    xkb::EventType::from(0u16),
                    xkb::EventType::BELL_NOTIFY,
                    xkb::MapPart::from(0u16),
                    xkb::MapPart::from(0u16),
                    &xkb::SelectEventsAux::new(),
                )
                .map_err(x_err)?;
            }
        }
        conn.change_window_attributes(
            root,
            &xproto::ChangeWindowAttributesAux::new()
                .event_mask(xproto::EventMask::STRUCTURE_NOTIFY),
        )
        .map_err(x_err)?;
        let wake_window = conn.generate_id().map_err(x_err)?;
        conn.create_window(
            0,
            wake_window,
            root,
            -1,
            -1,
            1,
            1,
            0,
            xproto::WindowClass::INPUT_ONLY,
            0,
            &xproto::CreateWindowAux::new(),
        )
        .map_err(x_err)?;
        let geom = conn
            .get_geometry(root)
            .map_err(x_err)?
            .reply()
            .map_err(x_err)?;
        let shm_allowed = opts.use_shm && has(xshm::X11_EXTENSION_NAME)?;
        let mut s = Session {
            conn,
            root,
            wake_window,
            width: geom.width,
            height: geom.height,
            shm: None,
            damage,
            cursor: xfixes_ok,
            shm_allowed,
        };
        s.alloc_shm();
        Ok(s)
    }

    fn features(&self) -> CaptureFeatures {
        CaptureFeatures {
            shm: self.shm.is_some(),
            damage: self.damage.is_some(),
            cursor: self.cursor,
        }
    }

    /// (Re)create the SHM segment for the current size; falls back to GetImage on failure.
    fn alloc_shm(&mut self) {
        let need = usize::from(self.width) * usize::from(self.height) * 4;
        if self.shm.as_ref().is_some_and(|s| s.map.len() >= need) || !self.shm_allowed {
            return;
        }
        if let Some(old) = self.shm.take() {
            let _ = self.conn.shm_detach(old.seg);
        }
        match self.attach_shm(need) {
            Ok(s) => self.shm = Some(s),
            Err(e) => {
                tracing::info!("MIT-SHM unavailable ({e}); using GetImage");
                self.shm_allowed = false;
            }
        }
    }

    fn attach_shm(&self, len: usize) -> Result<Shm, DesktopError> {
        let v = self
            .conn
            .shm_query_version()
            .map_err(x_err)?
            .reply()
            .map_err(x_err)?;
        if (v.major_version, v.minor_version) < (1, 2) {
            return Err(DesktopError::Other(
                "MIT-SHM older than 1.2 (no fd passing)".into(),
            ));
        }
        let (map, fd) =
            shm::ShmMapping::new(len).map_err(|e| DesktopError::Other(format!("memfd: {e}")))?;
        let seg = self.conn.generate_id().map_err(x_err)?;
        self.conn
            .shm_attach_fd(seg, fd, false)
            .map_err(x_err)?
            .check()
            .map_err(x_err)?;
        Ok(Shm { seg, map })
    }

    /// Wake the capture thread out of `wait_for_event`.
    fn wake(&self) {
        let ev = xproto::ClientMessageEvent::new(
            32,
            self.wake_window,
            xproto::AtomEnum::NONE,
            [0u32; 5],
        );
        let _ = self
            .conn
            .send_event(false, self.wake_window, xproto::EventMask::NO_EVENT, ev);
        let _ = self.conn.flush();
    }

    /// Re-read the root size; on a change, resize the segment and replace the stored frame.
    fn check_size(&mut self, store: &FrameStore) -> Result<(), DesktopError> {
        let g = self
            .conn
            .get_geometry(self.root)
            .map_err(x_err)?
            .reply()
            .map_err(x_err)?;
        let (_, frame) = store.snapshot();
        if (g.width, g.height) == (self.width, self.height)
            && (frame.width, frame.height) == (g.width, g.height)
        {
            return Ok(());
        }
        self.width = g.width;
        self.height = g.height;
        self.alloc_shm();
        let frame = self.read_full()?;
        store.replace(frame);
        Ok(())
    }

    /// The whole screen as a new frame (and clear pending damage).
    fn read_full(&self) -> Result<Frame, DesktopError> {
        if let Some((d, _)) = self.damage {
            self.conn
                .damage_subtract(d, x11rb::NONE, x11rb::NONE)
                .map_err(x_err)?;
        }
        self.read_full_keep_damage()
    }

    /// The whole screen as a new frame.
    fn read_full_keep_damage(&self) -> Result<Frame, DesktopError> {
        let full = Rect::new(0, 0, self.width, self.height);
        let mut frame = Frame::new(self.width, self.height);
        let parts = self.read_rects(&[full])?;
        if let Some((r, data)) = parts.iter().next() {
            copy_rect(&mut frame, r, data);
        }
        Ok(frame)
    }

    /// Pixels of `rects` (disjoint, inside the screen), each `w * 4` bytes per row.
    fn read_rects(&self, rects: &[Rect]) -> Result<Parts<'_>, DesktopError> {
        let conn = &*self.conn;
        let started = Instant::now();
        let result = match &self.shm {
            Some(shm) => {
                let mut cookies = Vec::with_capacity(rects.len());
                let mut offset = 0usize;
                for r in rects {
                    let len = r.area() as usize * 4;
                    if offset + len > shm.map.len() {
                        return Err(DesktopError::Other("damage larger than the screen".into()));
                    }
                    let c = conn
                        .shm_get_image(
                            self.root,
                            r.x as i16,
                            r.y as i16,
                            r.w,
                            r.h,
                            !0,
                            ImageFormat::Z_PIXMAP.into(),
                            shm.seg,
                            offset as u32,
                        )
                        .map_err(x_err)?;
                    cookies.push((c, *r, offset, len));
                    offset += len;
                }
                let mut ranges = Vec::with_capacity(cookies.len());
                for (c, r, off, len) in cookies {
                    c.reply().map_err(x_err)?;
                    ranges.push((r, off..off + len));
                }
                Parts::Shm(shm.map.bytes(), ranges)
            }
            None => {
                let mut cookies = Vec::with_capacity(rects.len());
                for r in rects {
                    let c = conn
                        .get_image(
                            ImageFormat::Z_PIXMAP,
                            self.root,
                            r.x as i16,
                            r.y as i16,
                            r.w,
                            r.h,
                            !0,
                        )
                        .map_err(x_err)?;
                    cookies.push((c, *r));
                }
                let mut out = Vec::with_capacity(cookies.len());
                for (c, r) in cookies {
                    let reply = c.reply().map_err(x_err)?;
                    if reply.data.len() < r.area() as usize * 4 {
                        return Err(DesktopError::Other("short GetImage reply".into()));
                    }
                    out.push((r, reply.data));
                }
                Parts::Owned(out)
            }
        };
        crate::metrics::global()
            .capture_micros
            .add(started.elapsed().as_micros() as u64);
        Ok(result)
    }

    /// Read what changed since the last capture into the store; returns the version.
    fn capture(&mut self, store: &FrameStore) -> Result<u64, DesktopError> {
        let conn = Arc::clone(&self.conn);
        let pointer = conn.query_pointer(self.root).map_err(x_err)?;
        let damaged: Region = match self.damage {
            Some((d, region)) => {
                conn.damage_subtract(d, x11rb::NONE, region)
                    .map_err(x_err)?;
                let reply = conn
                    .xfixes_fetch_region(region)
                    .map_err(x_err)?
                    .reply()
                    .map_err(x_err)?;
                let mut r = Region::new();
                for x in reply.rectangles {
                    if let Some(rect) = clip_rect(x, self.width, self.height) {
                        r.add_rect(rect);
                    }
                }
                r
            }
            None => Region::from_rect(Rect::new(0, 0, self.width, self.height)),
        };
        if let Ok(p) = pointer.reply() {
            store.set_pointer(
                p.root_x.clamp(0, i16::MAX) as u16,
                p.root_y.clamp(0, i16::MAX) as u16,
            );
        }
        if damaged.is_empty() {
            return Ok(store.version());
        }
        let rects = plan_reads(&damaged);
        let parts = self.read_rects(&rects)?;
        Ok(apply_parts(store, &parts))
    }

    fn update_cursor(&self, store: &FrameStore) {
        if !self.cursor {
            return;
        }
        let reply = self
            .conn
            .xfixes_get_cursor_image()
            .map_err(x_err)
            .and_then(|c| c.reply().map_err(x_err));
        match reply {
            Ok(r) => store.set_cursor(cursor_from_argb(
                r.width,
                r.height,
                r.xhot,
                r.yhot,
                &r.cursor_image,
            )),
            Err(e) => tracing::debug!("cursor image: {e}"),
        }
    }
}

/// Read rectangles plus where their pixels are.
enum Parts<'a> {
    Shm(&'a [u8], Vec<(Rect, std::ops::Range<usize>)>),
    Owned(Vec<(Rect, Vec<u8>)>),
}

impl Parts<'_> {
    fn iter(&self) -> Box<dyn Iterator<Item = (Rect, &[u8])> + '_> {
        match self {
            Parts::Shm(bytes, ranges) => Box::new(
                ranges
                    .iter()
                    .filter_map(|(r, range)| bytes.get(range.clone()).map(|d| (*r, d))),
            ),
            Parts::Owned(v) => Box::new(v.iter().map(|(r, d)| (*r, d.as_slice()))),
        }
    }
}

fn clip_rect(r: xproto::Rectangle, width: u16, height: u16) -> Option<Rect> {
    let x0 = i32::from(r.x).max(0);
    let y0 = i32::from(r.y).max(0);
    let x1 = (i32::from(r.x) + i32::from(r.width)).min(i32::from(width));
    let y1 = (i32::from(r.y) + i32::from(r.height)).min(i32::from(height));
    (x1 > x0 && y1 > y0)
        .then(|| Rect::new(x0 as u16, y0 as u16, (x1 - x0) as u16, (y1 - y0) as u16))
}

/// Read the damaged rectangles one by one when they cover much less than their bounding box,
/// the bounding box otherwise (fewer round trips, and one request is cheaper than many small
/// ones).
pub fn plan_reads(damaged: &Region) -> Vec<Rect> {
    let bounds = damaged.bounds();
    let rects = damaged.rects();
    if rects.len() <= 1 || rects.len() > 32 || damaged.area() * 2 > bounds.area() {
        vec![bounds]
    } else {
        rects.to_vec()
    }
}

/// Compare each 64x64 tile (on the screen-wide grid) of the read rectangles with the stored
/// frame and write the ones that differ. Returns the new (or unchanged) version.
fn apply_parts(store: &FrameStore, parts: &Parts<'_>) -> u64 {
    let (_, frame) = store.snapshot();
    let mut changed = Region::new();
    for (r, data) in parts.iter() {
        for run in changed_tiles(&frame, r, data) {
            changed.add_rect(run);
        }
    }
    // Release our reference first, or the write below would copy the whole frame.
    drop(frame);
    if changed.is_empty() {
        return store.version();
    }
    crate::metrics::global().frames_captured.add(1);
    let changed_rects: Vec<Rect> = changed.rects().to_vec();
    store.write(&changed, |f| {
        for (r, data) in parts.iter() {
            for c in &changed_rects {
                let i = c.intersect(&r);
                if !i.is_empty() {
                    copy_sub(f, &r, data, &i);
                }
            }
        }
    })
}

/// The tiles of `r` whose pixels in `data` differ from `frame`, merged into horizontal runs.
pub fn changed_tiles(frame: &Frame, r: Rect, data: &[u8]) -> Vec<Rect> {
    let mut out = Vec::new();
    let frame_rect = frame.bounds();
    if !frame_rect.contains_rect(&r) {
        return vec![r.intersect(&frame_rect)];
    }
    let src_stride = usize::from(r.w) * 4;
    let t = u32::from(TILE);
    let mut ty = u32::from(r.y) / t * t;
    while ty < r.bottom() {
        let mut run: Option<Rect> = None;
        let mut tx = u32::from(r.x) / t * t;
        while tx < r.right() {
            let tile = Rect::new(tx as u16, ty as u16, TILE, TILE).intersect(&r);
            let differs = (tile.y..tile.y + tile.h).any(|y| {
                let s = usize::from(y - r.y) * src_stride + usize::from(tile.x - r.x) * 4;
                let d = usize::from(y) * frame.stride + usize::from(tile.x) * 4;
                let n = usize::from(tile.w) * 4;
                match (data.get(s..s + n), frame.data.get(d..d + n)) {
                    (Some(a), Some(b)) => a != b,
                    _ => true,
                }
            });
            if differs {
                run = Some(match run {
                    Some(prev) => prev.union_bounds(&tile),
                    None => tile,
                });
            } else if let Some(prev) = run.take() {
                out.push(prev);
            }
            tx += t;
        }
        out.extend(run);
        ty += t;
    }
    out
}

/// Copy all of `data` (the pixels of `r`) into the frame.
fn copy_rect(frame: &mut Frame, r: Rect, data: &[u8]) {
    copy_sub(frame, &r, data, &r);
}

/// Copy the part `sub` of `data` (the pixels of `r`) into the frame.
fn copy_sub(frame: &mut Frame, r: &Rect, data: &[u8], sub: &Rect) {
    let sub = sub.intersect(r).intersect(&frame.bounds());
    let src_stride = usize::from(r.w) * 4;
    let n = usize::from(sub.w) * 4;
    for y in sub.y..sub.y + sub.h {
        let s = usize::from(y - r.y) * src_stride + usize::from(sub.x - r.x) * 4;
        let d = usize::from(y) * frame.stride + usize::from(sub.x) * 4;
        if let (Some(src), Some(dst)) = (data.get(s..s + n), frame.data.get_mut(d..d + n)) {
            dst.copy_from_slice(src);
        }
    }
}

/// XFIXES cursor pixels (premultiplied ARGB, one u32 each) as straight-alpha BGRA.
pub fn cursor_from_argb(
    width: u16,
    height: u16,
    hot_x: u16,
    hot_y: u16,
    argb: &[u32],
) -> CursorImage {
    let n = usize::from(width) * usize::from(height);
    let mut pixels = Vec::with_capacity(n * 4);
    for i in 0..n {
        let p = argb.get(i).copied().unwrap_or(0);
        let a = (p >> 24) & 0xff;
        let un = |c: u32| -> u8 {
            (c * 255 + a / 2)
                .checked_div(a)
                .map_or(0, |v| v.min(255) as u8)
        };
        pixels.extend_from_slice(&[
            un(p & 0xff),
            un((p >> 8) & 0xff),
            un((p >> 16) & 0xff),
            a as u8,
        ]);
    }
    CursorImage {
        width,
        height,
        hot_x: hot_x.min(width.saturating_sub(1)),
        hot_y: hot_y.min(height.saturating_sub(1)),
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_keeps_the_rate_whatever_a_capture_costs() {
        let t0 = Instant::now();
        let mut p = Pacer::new(60);
        let interval = Duration::from_secs(1) / 60;
        assert_eq!(p.wait(t0), Duration::ZERO);
        // Damage arrives every 10 ms and each capture takes 6 ms: starts stay on the grid.
        let mut now = t0;
        let mut starts = 0;
        while now < t0 + Duration::from_secs(1) {
            now += p.wait(now);
            p.started(now);
            starts += 1;
            now += Duration::from_millis(6);
            now = now.max(t0 + Duration::from_millis(10 * starts));
        }
        assert!((59..=61).contains(&starts), "{starts} captures in a second");
        // After a pause the next capture is immediate, and the one after waits again.
        let later = now + Duration::from_secs(5);
        assert_eq!(p.wait(later), Duration::ZERO);
        p.started(later);
        p.started(later);
        assert_eq!(p.wait(later), interval);
    }

    #[test]
    fn unpremultiplies_cursor() {
        let c = cursor_from_argb(2, 1, 0, 0, &[0x8040_2010, 0x0000_0000]);
        assert_eq!(&c.pixels[..4], &[0x20, 0x40, 0x80, 0x80]);
        assert_eq!(&c.pixels[4..], &[0, 0, 0, 0]);
    }

    #[test]
    fn only_changed_tiles_are_reported() {
        let frame = Frame::new(200, 130);
        let r = Rect::new(10, 10, 150, 100);
        let mut data = vec![0u8; r.area() as usize * 4];
        // Change the pixel at screen (70, 70): tile (64..128, 64..128).
        let i = (60 * 150 + 60) * 4;
        data[i] = 1;
        let tiles = changed_tiles(&frame, r, &data);
        assert_eq!(tiles, vec![Rect::new(64, 64, 64, 46)]);
        // Two adjacent changed tiles merge into one run.
        data[(60 * 150 + 120) * 4] = 1;
        let tiles = changed_tiles(&frame, r, &data);
        assert_eq!(tiles, vec![Rect::new(64, 64, 96, 46)]);
    }

    #[test]
    fn sparse_damage_is_read_per_rect() {
        let mut d = Region::new();
        d.add_rect(Rect::new(0, 0, 10, 10));
        d.add_rect(Rect::new(500, 500, 10, 10));
        assert_eq!(plan_reads(&d).len(), 2);
        d.add_rect(Rect::new(0, 0, 510, 510));
        assert_eq!(plan_reads(&d), vec![Rect::new(0, 0, 510, 510)]);
    }
}
