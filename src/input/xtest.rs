//! Input through XTEST: pointer motion, buttons and keys, with keysyms planned by
//! [`super::keymap`] and keysyms missing from the keymap bound to scratch keycodes.
//!
//! Scratch bindings: a small pool of keycodes that have no keysym. A missing keysym is bound to
//! the least recently used slot (never one that is held down) with ChangeKeyboardMapping, and
//! unbound once it has not been used for a while, so typing never exhausts free keycodes and
//! a client that reads the new mapping a little late still sees the right symbol.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{self, ConnectionExt as _, Window};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

use super::keymap::{self, Keymap, NO_SYMBOL};
use super::InputSink;
use crate::capture::FrameStore;
use crate::desktop::DesktopError;
use crate::display::conn::{require_extension, x_err, XServer};

/// How many scratch keycodes are used at most.
const SCRATCH_SLOTS: usize = 8;
/// A scratch binding unused this long is removed.
const SCRATCH_IDLE: Duration = Duration::from_secs(2);

struct Slot {
    keycode: u8,
    keysym: Option<u32>,
    last_used: Instant,
}

struct Conn {
    conn: RustConnection,
    root: Window,
    min_keycode: u8,
    max_keycode: u8,
    keymap: Keymap,
    slots: Vec<Slot>,
    /// keysym -> keycode pressed for it, so the release goes to the same key.
    pressed: HashMap<u32, u8>,
}

/// An [`InputSink`] injecting through XTEST. Reconnects by itself after the X server restarts.
pub struct XTestInput {
    server: Arc<XServer>,
    store: Option<Arc<FrameStore>>,
    conn: Mutex<Option<Conn>>,
}

impl XTestInput {
    /// Connect now (fails clearly without XTEST). `store`, when given, gets the pointer
    /// position after every move.
    pub fn new(
        server: Arc<XServer>,
        store: Option<Arc<FrameStore>>,
    ) -> Result<XTestInput, DesktopError> {
        let c = Conn::open(&server)?;
        Ok(XTestInput {
            server,
            store,
            conn: Mutex::new(Some(c)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Option<Conn>> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with<T>(&self, f: impl Fn(&mut Conn) -> Result<T, DesktopError>) -> Result<T, DesktopError> {
        let mut g = self.lock();
        for attempt in 0..2 {
            if g.is_none() {
                *g = Some(Conn::open(&self.server)?);
            }
            let Some(c) = g.as_mut() else { continue };
            match f(c) {
                Err(DesktopError::Unavailable(e)) => {
                    *g = None;
                    if attempt == 1 {
                        return Err(DesktopError::Unavailable(e));
                    }
                }
                r => return r,
            }
        }
        Err(DesktopError::Unavailable("X server not reachable".into()))
    }

    /// Remove every scratch binding now (also done on drop).
    pub fn unbind_scratch(&self) {
        if let Some(c) = self.lock().as_mut() {
            let _ = c.unbind_idle(Duration::ZERO);
            let _ = c.conn.flush();
        }
    }
}

impl Drop for XTestInput {
    fn drop(&mut self) {
        self.unbind_scratch();
    }
}

impl Conn {
    fn open(server: &XServer) -> Result<Conn, DesktopError> {
        let (conn, screen) = server.connect()?;
        require_extension(&conn, "XTEST")?;
        conn.xtest_get_version(2, 2)
            .map_err(x_err)?
            .reply()
            .map_err(x_err)?;
        let setup = conn.setup();
        let root = setup
            .roots
            .get(screen)
            .map(|s| s.root)
            .ok_or_else(|| DesktopError::Other("no such screen".into()))?;
        let (min_keycode, max_keycode) = (setup.min_keycode, setup.max_keycode);
        let keymap = load_keymap(&conn, min_keycode, max_keycode)?;
        let mut c = Conn {
            conn,
            root,
            min_keycode,
            max_keycode,
            keymap,
            slots: Vec::new(),
            pressed: HashMap::new(),
        };
        c.refill_slots();
        Ok(c)
    }

    fn refill_slots(&mut self) {
        let free = self.keymap.free_keycodes();
        // Drop slots someone else has bound meanwhile.
        let keymap = &self.keymap;
        self.slots.retain(|s| {
            let syms = keymap.keysyms(s.keycode);
            match s.keysym {
                Some(k) => syms.first() == Some(&k),
                None => syms.iter().all(|&x| x == NO_SYMBOL),
            }
        });
        for k in free.into_iter().rev() {
            if self.slots.len() >= SCRATCH_SLOTS {
                break;
            }
            if !self.slots.iter().any(|s| s.keycode == k) {
                self.slots.push(Slot {
                    keycode: k,
                    keysym: None,
                    last_used: Instant::now(),
                });
            }
        }
    }

    /// Handle MappingNotify (another client or setxkbmap changed the keymap).
    fn drain_events(&mut self) -> Result<(), DesktopError> {
        let mut reload = false;
        while let Some(ev) = self.conn.poll_for_event().map_err(x_err)? {
            match ev {
                Event::MappingNotify(m) if m.request != xproto::Mapping::POINTER => reload = true,
                Event::Error(e) => tracing::debug!("XTEST connection error event: {e:?}"),
                _ => {}
            }
        }
        if reload {
            self.keymap = load_keymap(&self.conn, self.min_keycode, self.max_keycode)?;
            self.refill_slots();
        }
        Ok(())
    }

    fn fake(&self, type_: u8, detail: u8, x: i16, y: i16) -> Result<(), DesktopError> {
        self.conn
            .xtest_fake_input(type_, detail, x11rb::CURRENT_TIME, self.root, x, y, 0)
            .map_err(x_err)?;
        Ok(())
    }

    fn key_event(&self, keycode: u8, down: bool) -> Result<(), DesktopError> {
        let t = if down {
            xproto::KEY_PRESS_EVENT
        } else {
            xproto::KEY_RELEASE_EVENT
        };
        self.fake(t, keycode, 0, 0)
    }

    fn unbind_idle(&mut self, idle: Duration) -> Result<(), DesktopError> {
        let per = self.keymap.keysyms_per_keycode();
        let held: Vec<u8> = self.pressed.values().copied().collect();
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.keysym.is_some() && s.last_used.elapsed() >= idle && !held.contains(&s.keycode) {
                let k = s.keycode;
                let none = vec![NO_SYMBOL; per];
                self.conn
                    .change_keyboard_mapping(1, k, per as u8, &none)
                    .map_err(x_err)?;
                self.keymap.set_keysyms(k, &none);
                self.slots[i].keysym = None;
            }
        }
        Ok(())
    }

    fn bind_scratch(&mut self, keysym: u32, down: &[u8; 32]) -> Result<(), DesktopError> {
        let is_down = |k: u8| down[usize::from(k / 8)] & (1 << (k % 8)) != 0;
        let held: Vec<u8> = self.pressed.values().copied().collect();
        let slot = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !is_down(s.keycode) && !held.contains(&s.keycode))
            .min_by_key(|(_, s)| (s.keysym.is_some(), s.last_used))
            .map(|(i, _)| i)
            .ok_or_else(|| {
                DesktopError::Invalid(format!(
                    "keysym {keysym:#x} is not in the keymap and no free keycode is left"
                ))
            })?;
        let per = self.keymap.keysyms_per_keycode();
        let mut syms = vec![NO_SYMBOL; per];
        // Same symbol shifted or not, so a held Shift does not matter.
        syms[0] = keysym;
        if per > 1 {
            syms[1] = keysym;
        }
        let k = self.slots[slot].keycode;
        self.conn
            .change_keyboard_mapping(1, k, per as u8, &syms)
            .map_err(x_err)?;
        self.keymap.set_keysyms(k, &syms);
        self.slots[slot].keysym = Some(keysym);
        self.slots[slot].last_used = Instant::now();
        Ok(())
    }

    fn key(&mut self, keysym: u32, down: bool) -> Result<Option<u8>, DesktopError> {
        self.drain_events()?;
        self.unbind_idle(SCRATCH_IDLE)?;
        if !down {
            // Clients may release with the other case (Shift let go first): match either.
            let (lower, upper) = keymap::convert_case(keysym);
            let kc = self
                .pressed
                .remove(&keysym)
                .or_else(|| self.pressed.remove(&lower))
                .or_else(|| self.pressed.remove(&upper))
                .or_else(|| self.keymap.find(keysym).map(|(k, _)| k));
            if let Some(kc) = kc {
                self.key_event(kc, false)?;
                // The key is up whatever keysym pressed it.
                self.pressed.retain(|_, k| *k != kc);
            }
            self.conn.flush().map_err(x_err)?;
            return Ok(kc);
        }
        let keys = self
            .conn
            .query_keymap()
            .map_err(x_err)?
            .reply()
            .map_err(x_err)?
            .keys;
        let plan = match self.keymap.plan(keysym, &keys) {
            Some(p) => p,
            None => {
                self.bind_scratch(keysym, &keys)?;
                self.keymap.plan(keysym, &keys).ok_or_else(|| {
                    DesktopError::Other(format!("keysym {keysym:#x} bound but not found"))
                })?
            }
        };
        if let Some(s) = self.slots.iter_mut().find(|s| s.keycode == plan.keycode) {
            s.last_used = Instant::now();
        }
        for &(k, d) in &plan.before {
            self.key_event(k, d)?;
        }
        self.key_event(plan.keycode, true)?;
        for &(k, d) in &plan.after {
            self.key_event(k, d)?;
        }
        self.pressed.insert(keysym, plan.keycode);
        self.conn.flush().map_err(x_err)?;
        Ok(Some(plan.keycode))
    }

    fn check_keycode(&self, keycode: u8) -> Result<(), DesktopError> {
        if keycode < self.min_keycode || keycode > self.max_keycode {
            return Err(DesktopError::Invalid(format!(
                "keycode {keycode} outside the server's range"
            )));
        }
        Ok(())
    }
}

fn load_keymap(conn: &RustConnection, min: u8, max: u8) -> Result<Keymap, DesktopError> {
    let km = conn
        .get_keyboard_mapping(min, max - min + 1)
        .map_err(x_err)?
        .reply()
        .map_err(x_err)?;
    let mm = conn
        .get_modifier_mapping()
        .map_err(x_err)?
        .reply()
        .map_err(x_err)?;
    let per_mod = u8::try_from(mm.keycodes.len() / 8).unwrap_or(0);
    Ok(Keymap::new(
        min,
        km.keysyms_per_keycode,
        km.keysyms,
        per_mod,
        &mm.keycodes,
    ))
}

impl InputSink for XTestInput {
    fn pointer_move(&self, x: u16, y: u16) -> Result<(), DesktopError> {
        let to_i16 = |v: u16| i16::try_from(v).unwrap_or(i16::MAX);
        self.with(|c| {
            c.fake(xproto::MOTION_NOTIFY_EVENT, 0, to_i16(x), to_i16(y))?;
            c.conn.flush().map_err(x_err)
        })?;
        if let Some(store) = &self.store {
            let (_, f) = store.snapshot();
            store.set_pointer(
                x.min(f.width.saturating_sub(1)),
                y.min(f.height.saturating_sub(1)),
            );
        }
        Ok(())
    }

    fn button(&self, button: u8, down: bool) -> Result<(), DesktopError> {
        if !(1..=9).contains(&button) {
            return Err(DesktopError::Invalid(format!(
                "button {button} out of range 1-9"
            )));
        }
        let t = if down {
            xproto::BUTTON_PRESS_EVENT
        } else {
            xproto::BUTTON_RELEASE_EVENT
        };
        self.with(|c| {
            c.fake(t, button, 0, 0)?;
            c.conn.flush().map_err(x_err)
        })
    }

    fn key(&self, keysym: u32, down: bool) -> Result<Option<u8>, DesktopError> {
        if keysym == NO_SYMBOL || keysym > 0x1fff_ffff {
            return Err(DesktopError::Invalid(format!("bad keysym {keysym:#x}")));
        }
        self.with(|c| c.key(keysym, down))
    }

    fn key_scancode(&self, xt_scancode: u32, down: bool) -> Result<u8, DesktopError> {
        let evdev = keymap::xt_to_evdev(xt_scancode).ok_or_else(|| {
            DesktopError::Invalid(format!("unknown XT scancode {xt_scancode:#x}"))
        })?;
        let keycode = evdev.checked_add(8).ok_or_else(|| {
            DesktopError::Invalid(format!("XT scancode {xt_scancode:#x} out of range"))
        })?;
        self.keycode(keycode, down)?;
        Ok(keycode)
    }

    fn keycode(&self, keycode: u8, down: bool) -> Result<(), DesktopError> {
        self.with(|c| {
            c.check_keycode(keycode)?;
            c.key_event(keycode, down)?;
            if !down {
                c.pressed.retain(|_, k| *k != keycode);
            }
            c.conn.flush().map_err(x_err)
        })
    }

    fn pointer_position(&self) -> Result<(u16, u16), DesktopError> {
        self.with(|c| {
            let p = c
                .conn
                .query_pointer(c.root)
                .map_err(x_err)?
                .reply()
                .map_err(x_err)?;
            Ok((
                p.root_x.clamp(0, i16::MAX) as u16,
                p.root_y.clamp(0, i16::MAX) as u16,
            ))
        })
    }

    fn sync(&self) -> Result<(), DesktopError> {
        self.with(|c| crate::display::conn::sync(&c.conn))
    }
}
