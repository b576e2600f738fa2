//! The X11 [`Clipboard`]: deskd owns CLIPBOARD / PRIMARY on its own window to serve text set
//! by clients (UTF8_STRING, STRING, TEXT, TARGETS; INCR for large text), reads other owners'
//! text with ConvertSelection, and watches CLIPBOARD owner changes through XFIXES to tell
//! subscribers about text copied in X applications. Text is capped at [`MAX_TEXT`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{self, Atom, AtomEnum, ConnectionExt as _, PropMode, Window};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

use super::{Clipboard, Selection};
use crate::desktop::DesktopError;
use crate::display::conn::{x_err, XServer};

/// Largest clipboard text served or read.
pub const MAX_TEXT: usize = 10 << 20;
/// Text larger than this is sent with INCR, in chunks of this size.
const INCR_CHUNK: usize = 64 << 10;
/// How long `get_text` waits for the owner.
const GET_TIMEOUT: Duration = Duration::from_secs(2);

x11rb::atom_manager! {
    Atoms: AtomsCookie {
        CLIPBOARD,
        UTF8_STRING,
        TEXT,
        TARGETS,
        INCR,
        DESKD_GET,
        DESKD_WATCH,
    }
}

type GetResult = Result<Option<String>, DesktopError>;

enum Waiter {
    Get(mpsc::Sender<GetResult>),
    Watch,
}

struct Pending {
    waiter: Waiter,
    selection: Atom,
    target: Atom,
}

struct Live {
    conn: RustConnection,
    window: Window,
    atoms: Atoms,
}

impl Live {
    fn selection_atom(&self, s: Selection) -> Atom {
        match s {
            Selection::Clipboard => self.atoms.CLIPBOARD,
            Selection::Primary => AtomEnum::PRIMARY.into(),
        }
    }

    fn selection_of(&self, atom: Atom) -> Option<Selection> {
        if atom == self.atoms.CLIPBOARD {
            Some(Selection::Clipboard)
        } else if atom == Atom::from(AtomEnum::PRIMARY) {
            Some(Selection::Primary)
        } else {
            None
        }
    }
}

struct Shared {
    server: Arc<XServer>,
    live: Mutex<Option<Arc<Live>>>,
    owned: Mutex<HashMap<Selection, Arc<str>>>,
    pending: Mutex<HashMap<Atom, Pending>>,
    tx: tokio::sync::broadcast::Sender<Arc<str>>,
    stop: AtomicBool,
    get_lock: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Clipboard through the X server; reconnects after a restart and re-owns its selections.
pub struct X11Clipboard {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl X11Clipboard {
    /// Connect and start the clipboard thread.
    pub fn start(server: Arc<XServer>) -> Result<Arc<X11Clipboard>, DesktopError> {
        let live = Arc::new(open(&server)?);
        let shared = Arc::new(Shared {
            server,
            live: Mutex::new(Some(live)),
            owned: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            tx: tokio::sync::broadcast::channel(16).0,
            stop: AtomicBool::new(false),
            get_lock: Mutex::new(()),
        });
        let s2 = Arc::clone(&shared);
        let t = std::thread::Builder::new()
            .name("deskd-clipboard".into())
            .spawn(move || run(&s2))
            .map_err(|e| DesktopError::Other(format!("spawning clipboard thread: {e}")))?;
        Ok(Arc::new(X11Clipboard {
            shared,
            thread: Mutex::new(Some(t)),
        }))
    }

    /// Stop the clipboard thread.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(live) = lock(&self.shared.live).clone() {
            let ev = xproto::ClientMessageEvent::new(32, live.window, AtomEnum::NONE, [0u32; 5]);
            let _ = live
                .conn
                .send_event(false, live.window, xproto::EventMask::NO_EVENT, ev);
            let _ = live.conn.flush();
        }
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }

    fn live(&self) -> Result<Arc<Live>, DesktopError> {
        lock(&self.shared.live).clone().ok_or_else(|| {
            DesktopError::Unavailable("X server not connected (reconnecting)".into())
        })
    }
}

impl Drop for X11Clipboard {
    fn drop(&mut self) {
        self.stop();
    }
}

fn open(server: &XServer) -> Result<Live, DesktopError> {
    let (conn, screen) = server.connect()?;
    let root = conn
        .setup()
        .roots
        .get(screen)
        .map(|s| s.root)
        .ok_or_else(|| DesktopError::Other("no such screen".into()))?;
    let atoms = Atoms::new(&conn).map_err(x_err)?.reply().map_err(x_err)?;
    let window = conn.generate_id().map_err(x_err)?;
    conn.create_window(
        0,
        window,
        root,
        -10,
        -10,
        1,
        1,
        0,
        xproto::WindowClass::INPUT_ONLY,
        0,
        &xproto::CreateWindowAux::new().event_mask(xproto::EventMask::PROPERTY_CHANGE),
    )
    .map_err(x_err)?;
    if conn
        .extension_information(xfixes::X11_EXTENSION_NAME)
        .map_err(x_err)?
        .is_some()
    {
        conn.xfixes_query_version(5, 0)
            .map_err(x_err)?
            .reply()
            .map_err(x_err)?;
        conn.xfixes_select_selection_input(
            window,
            atoms.CLIPBOARD,
            xfixes::SelectionEventMask::SET_SELECTION_OWNER,
        )
        .map_err(x_err)?;
    }
    conn.flush().map_err(x_err)?;
    Ok(Live {
        conn,
        window,
        atoms,
    })
}

impl Clipboard for X11Clipboard {
    fn set_text(&self, selection: Selection, text: &str) -> Result<(), DesktopError> {
        if text.len() > MAX_TEXT {
            return Err(DesktopError::Invalid(format!(
                "clipboard text of {} bytes is over the {MAX_TEXT}-byte limit",
                text.len()
            )));
        }
        let live = self.live()?;
        lock(&self.shared.owned).insert(selection, Arc::from(text));
        take_ownership(&live, selection)
    }

    fn get_text(&self, selection: Selection) -> Result<Option<String>, DesktopError> {
        let live = self.live()?;
        let atom = live.selection_atom(selection);
        let owner = live
            .conn
            .get_selection_owner(atom)
            .map_err(x_err)?
            .reply()
            .map_err(x_err)?
            .owner;
        if owner == x11rb::NONE {
            return Ok(None);
        }
        if owner == live.window {
            return Ok(lock(&self.shared.owned)
                .get(&selection)
                .map(|t| t.to_string()));
        }
        let _serial = lock(&self.shared.get_lock);
        let (tx, rx) = mpsc::channel();
        let prop = live.atoms.DESKD_GET;
        lock(&self.shared.pending).insert(
            prop,
            Pending {
                waiter: Waiter::Get(tx),
                selection: atom,
                target: live.atoms.UTF8_STRING,
            },
        );
        live.conn
            .convert_selection(
                live.window,
                atom,
                live.atoms.UTF8_STRING,
                prop,
                x11rb::CURRENT_TIME,
            )
            .map_err(x_err)?;
        live.conn.flush().map_err(x_err)?;
        match rx.recv_timeout(GET_TIMEOUT) {
            Ok(r) => r,
            Err(_) => {
                lock(&self.shared.pending).remove(&prop);
                Err(DesktopError::Timeout(
                    "the selection owner did not answer".into(),
                ))
            }
        }
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<str>> {
        self.shared.tx.subscribe()
    }
}

fn take_ownership(live: &Live, selection: Selection) -> Result<(), DesktopError> {
    let atom = live.selection_atom(selection);
    live.conn
        .set_selection_owner(live.window, atom, x11rb::CURRENT_TIME)
        .map_err(x_err)?;
    let owner = live
        .conn
        .get_selection_owner(atom)
        .map_err(x_err)?
        .reply()
        .map_err(x_err)?
        .owner;
    if owner != live.window {
        return Err(DesktopError::Other("could not take the selection".into()));
    }
    Ok(())
}

/// An INCR transfer we are sending.
struct Outgoing {
    data: OutData,
    offset: usize,
    kind: Atom,
    /// When the requestor last took a chunk: a transfer that stalls longer than
    /// [`INCR_TIMEOUT`] is dropped.
    progress: Instant,
}

/// The bytes of an outgoing transfer: UTF-8 shares the owned text, Latin-1 is converted.
enum OutData {
    Utf8(Arc<str>),
    Latin1(Vec<u8>),
}

impl OutData {
    fn bytes(&self) -> &[u8] {
        match self {
            OutData::Utf8(t) => t.as_bytes(),
            OutData::Latin1(b) => b,
        }
    }
}

/// An INCR requestor that takes no chunk for this long is given up on (ICCCM leaves the
/// timeout to the owner).
const INCR_TIMEOUT: Duration = Duration::from_secs(5);

/// INCR transfers served at once; further large requests are refused until one finishes.
const MAX_OUTGOING: usize = 8;

/// Drop INCR transfers whose requestor stopped taking chunks.
fn expire(outgoing: &mut HashMap<(Window, Atom), Outgoing>, now: Instant) {
    outgoing.retain(|_, o| now.saturating_duration_since(o.progress) < INCR_TIMEOUT);
}

/// The clipboard thread: serves requests, finishes reads, reconnects.
fn run(shared: &Shared) {
    let mut incoming: HashMap<Atom, Vec<u8>> = HashMap::new();
    let mut outgoing: HashMap<(Window, Atom), Outgoing> = HashMap::new();
    while !shared.stop.load(Ordering::SeqCst) {
        let Some(live) = lock(&shared.live).clone() else {
            match open(&shared.server) {
                Ok(l) => {
                    let l = Arc::new(l);
                    let owned: Vec<Selection> = lock(&shared.owned).keys().copied().collect();
                    for s in owned {
                        let _ = take_ownership(&l, s);
                    }
                    *lock(&shared.live) = Some(l);
                    incoming.clear();
                    outgoing.clear();
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
            continue;
        };
        expire(&mut outgoing, Instant::now());
        crate::metrics::global()
            .clipboard_incr_transfers
            .set(outgoing.len() as u64);
        // While INCR transfers are open, wake up now and then to expire stalled ones.
        let ev = if outgoing.is_empty() {
            live.conn.wait_for_event().map(Some)
        } else {
            live.conn.poll_for_event()
        };
        let ev = match ev {
            Ok(Some(ev)) => ev,
            Ok(None) => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => {
                tracing::warn!("clipboard connection lost: {e}");
                let mut g = lock(&shared.live);
                if g.as_ref().is_some_and(|l| Arc::ptr_eq(l, &live)) {
                    *g = None;
                }
                // Fail waiting readers now rather than at their timeout.
                for (_, p) in lock(&shared.pending).drain() {
                    if let Waiter::Get(tx) = p.waiter {
                        let _ = tx.send(Err(DesktopError::Unavailable(e.to_string())));
                    }
                }
                continue;
            }
        };
        if let Err(e) = handle(shared, &live, ev, &mut incoming, &mut outgoing) {
            tracing::debug!("clipboard: {e}");
        }
    }
}

fn handle(
    shared: &Shared,
    live: &Live,
    ev: Event,
    incoming: &mut HashMap<Atom, Vec<u8>>,
    outgoing: &mut HashMap<(Window, Atom), Outgoing>,
) -> Result<(), DesktopError> {
    let conn = &live.conn;
    match ev {
        Event::SelectionRequest(e) => serve(shared, live, &e, outgoing)?,
        // A requestor that went away mid-transfer takes its transfers with it.
        Event::DestroyNotify(e) => outgoing.retain(|(w, _), _| *w != e.window),
        Event::SelectionClear(e) => {
            if let Some(s) = live.selection_of(e.selection) {
                lock(&shared.owned).remove(&s);
            }
        }
        Event::XfixesSelectionNotify(e)
            if e.owner != live.window
                && e.owner != x11rb::NONE
                && e.selection == live.atoms.CLIPBOARD =>
        {
            lock(&shared.pending).insert(
                live.atoms.DESKD_WATCH,
                Pending {
                    waiter: Waiter::Watch,
                    selection: e.selection,
                    target: live.atoms.UTF8_STRING,
                },
            );
            conn.convert_selection(
                live.window,
                e.selection,
                live.atoms.UTF8_STRING,
                live.atoms.DESKD_WATCH,
                e.timestamp,
            )
            .map_err(x_err)?;
            conn.flush().map_err(x_err)?;
        }
        Event::SelectionNotify(e) if e.requestor == live.window => {
            let prop_expected = [live.atoms.DESKD_GET, live.atoms.DESKD_WATCH];
            if e.property == x11rb::NONE {
                // Refused: retry once as STRING for owners without UTF8_STRING.
                let key = prop_expected.into_iter().find(|p| {
                    lock(&shared.pending)
                        .get(p)
                        .is_some_and(|q| q.selection == e.selection && q.target == e.target)
                });
                let Some(prop) = key else { return Ok(()) };
                if e.target == live.atoms.UTF8_STRING {
                    if let Some(p) = lock(&shared.pending).get_mut(&prop) {
                        p.target = AtomEnum::STRING.into();
                    }
                    conn.convert_selection(
                        live.window,
                        e.selection,
                        Atom::from(AtomEnum::STRING),
                        prop,
                        e.time,
                    )
                    .map_err(x_err)?;
                    conn.flush().map_err(x_err)?;
                } else {
                    deliver(shared, prop, Ok(None));
                }
                return Ok(());
            }
            if !prop_expected.contains(&e.property) {
                return Ok(());
            }
            let reply = conn
                .get_property(
                    true,
                    live.window,
                    e.property,
                    AtomEnum::ANY,
                    0,
                    (MAX_TEXT / 4 + 1) as u32,
                )
                .map_err(x_err)?
                .reply()
                .map_err(x_err)?;
            if reply.type_ == live.atoms.INCR {
                // Deleting the property (done above) starts the transfer.
                incoming.insert(e.property, Vec::new());
            } else if reply.bytes_after > 0 || reply.value.len() > MAX_TEXT {
                deliver(shared, e.property, Err(too_big()));
            } else {
                let text = decode(reply.type_, &reply.value);
                deliver(shared, e.property, Ok(Some(text)));
            }
            conn.flush().map_err(x_err)?;
        }
        Event::PropertyNotify(e) => {
            if e.window == live.window && e.state == xproto::Property::NEW_VALUE {
                if let Some(buf) = incoming.get_mut(&e.atom) {
                    let reply = conn
                        .get_property(
                            true,
                            live.window,
                            e.atom,
                            AtomEnum::ANY,
                            0,
                            (MAX_TEXT / 4 + 1) as u32,
                        )
                        .map_err(x_err)?
                        .reply()
                        .map_err(x_err)?;
                    conn.flush().map_err(x_err)?;
                    if reply.value.is_empty() {
                        let data = incoming.remove(&e.atom).unwrap_or_default();
                        let text = decode(reply.type_, &data);
                        deliver(shared, e.atom, Ok(Some(text)));
                    } else if buf.len() + reply.value.len() > MAX_TEXT {
                        incoming.remove(&e.atom);
                        deliver(shared, e.atom, Err(too_big()));
                    } else {
                        buf.extend_from_slice(&reply.value);
                    }
                }
            } else if e.state == xproto::Property::DELETE {
                let key = (e.window, e.atom);
                if let Some(out) = outgoing.get_mut(&key) {
                    out.progress = Instant::now();
                    let data = out.data.bytes();
                    let end = (out.offset + INCR_CHUNK).min(data.len());
                    let chunk = data.get(out.offset..end).unwrap_or(&[]);
                    conn.change_property8(PropMode::REPLACE, e.window, e.atom, out.kind, chunk)
                        .map_err(x_err)?;
                    if chunk.is_empty() {
                        outgoing.remove(&key);
                    } else {
                        out.offset = end;
                    }
                    conn.flush().map_err(x_err)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn too_big() -> DesktopError {
    DesktopError::Invalid(format!("clipboard text over the {MAX_TEXT}-byte limit"))
}

fn decode(kind: Atom, bytes: &[u8]) -> String {
    if kind == Atom::from(AtomEnum::STRING) {
        bytes.iter().map(|&b| char::from(b)).collect()
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

fn deliver(shared: &Shared, prop: Atom, result: GetResult) {
    let Some(p) = lock(&shared.pending).remove(&prop) else {
        return;
    };
    match p.waiter {
        Waiter::Get(tx) => {
            let _ = tx.send(result);
        }
        Waiter::Watch => {
            if let Ok(Some(text)) = result {
                let _ = shared.tx.send(Arc::from(text));
            }
        }
    }
}

/// Answer a SelectionRequest for text we own.
fn serve(
    shared: &Shared,
    live: &Live,
    e: &xproto::SelectionRequestEvent,
    outgoing: &mut HashMap<(Window, Atom), Outgoing>,
) -> Result<(), DesktopError> {
    let conn = &live.conn;
    let a = &live.atoms;
    let property = if e.property == x11rb::NONE {
        e.target
    } else {
        e.property
    };
    let text = live
        .selection_of(e.selection)
        .and_then(|s| lock(&shared.owned).get(&s).cloned());
    let string: Atom = AtomEnum::STRING.into();
    let mut answered = property;
    match text {
        None => answered = x11rb::NONE,
        Some(_) if e.target == a.TARGETS => {
            conn.change_property32(
                PropMode::REPLACE,
                e.requestor,
                property,
                AtomEnum::ATOM,
                &[a.TARGETS, a.UTF8_STRING, string, a.TEXT],
            )
            .map_err(x_err)?;
        }
        Some(t) if e.target == a.UTF8_STRING || e.target == a.TEXT || e.target == string => {
            let (kind, data) = if e.target == string {
                let latin1 = t
                    .chars()
                    .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                    .collect();
                (string, OutData::Latin1(latin1))
            } else {
                (a.UTF8_STRING, OutData::Utf8(t))
            };
            let len = data.bytes().len();
            let key = (e.requestor, property);
            if len > INCR_CHUNK * 4 {
                if outgoing.len() >= MAX_OUTGOING && !outgoing.contains_key(&key) {
                    tracing::debug!("clipboard: too many INCR transfers open, request refused");
                    answered = x11rb::NONE;
                } else {
                    // Property changes drive the transfer; DestroyNotify ends it early.
                    conn.change_window_attributes(
                        e.requestor,
                        &xproto::ChangeWindowAttributesAux::new().event_mask(
                            xproto::EventMask::PROPERTY_CHANGE
                                | xproto::EventMask::STRUCTURE_NOTIFY,
                        ),
                    )
                    .map_err(x_err)?;
                    conn.change_property32(
                        PropMode::REPLACE,
                        e.requestor,
                        property,
                        a.INCR,
                        &[u32::try_from(len).unwrap_or(u32::MAX)],
                    )
                    .map_err(x_err)?;
                    outgoing.insert(
                        key,
                        Outgoing {
                            data,
                            offset: 0,
                            kind,
                            progress: Instant::now(),
                        },
                    );
                }
            } else {
                conn.change_property8(PropMode::REPLACE, e.requestor, property, kind, data.bytes())
                    .map_err(x_err)?;
            }
        }
        Some(_) => answered = x11rb::NONE,
    }
    let notify = xproto::SelectionNotifyEvent {
        response_type: xproto::SELECTION_NOTIFY_EVENT,
        sequence: 0,
        time: e.time,
        requestor: e.requestor,
        selection: e.selection,
        target: e.target,
        property: answered,
    };
    conn.send_event(false, e.requestor, xproto::EventMask::NO_EVENT, notify)
        .map_err(x_err)?;
    conn.flush().map_err(x_err)?;
    Ok(())
}
