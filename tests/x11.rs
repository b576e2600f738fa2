//! The X11 side against a real Xvfb: capture equals the server's pixels, damage regions,
//! cursor, resize, XTEST keys (US and German layouts, keysyms absent from the keymap,
//! modifier combos), pointer and buttons, clipboard with xclip, Xvfb restart, attach mode.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::xvfb::{desktop, desktop_with, require_tool, x_command, ChildGuard};
use deskd::capture::Frame;
use deskd::clipboard::Selection;
use deskd::display::{DisplayOptions, RunningDesktop, WindowManager};
use deskd::input::keymap::char_to_keysym;
use deskd::DesktopError;
use rfb::Rect;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{self, ConnectionExt as _};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

/// Wait (bounded) until `f` holds; panics with `what` otherwise.
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

fn connect(d: &RunningDesktop) -> (RustConnection, xproto::Window) {
    let (c, screen) = d.server().connect().unwrap();
    let root = c.setup().roots[screen].root;
    (c, root)
}

/// The root window's pixels as the X server has them.
fn server_pixels(c: &RustConnection, root: xproto::Window) -> Frame {
    let g = c.get_geometry(root).unwrap().reply().unwrap();
    let img = c
        .get_image(
            xproto::ImageFormat::Z_PIXMAP,
            root,
            0,
            0,
            g.width,
            g.height,
            !0,
        )
        .unwrap()
        .reply()
        .unwrap();
    Frame {
        width: g.width,
        height: g.height,
        stride: usize::from(g.width) * 4,
        data: img.data,
    }
}

fn assert_same_pixels(a: &Frame, b: &Frame) {
    assert_eq!((a.width, a.height), (b.width, b.height), "frame size");
    for y in 0..a.height {
        for x in 0..a.width {
            assert_eq!(
                a.pixel(x, y),
                b.pixel(x, y),
                "pixel ({x}, {y}) differs: captured {:06x}, server {:06x}",
                a.pixel(x, y),
                b.pixel(x, y)
            );
        }
    }
}

fn gc(c: &RustConnection, drawable: u32, rgb: u32) -> u32 {
    let gc = c.generate_id().unwrap();
    c.create_gc(
        gc,
        drawable,
        &xproto::CreateGCAux::new()
            .foreground(rgb)
            .subwindow_mode(xproto::SubwindowMode::INCLUDE_INFERIORS),
    )
    .unwrap();
    gc
}

fn fill(c: &RustConnection, drawable: u32, rgb: u32, r: Rect) {
    let g = gc(c, drawable, rgb);
    c.poly_fill_rectangle(
        drawable,
        g,
        &[xproto::Rectangle {
            x: r.x as i16,
            y: r.y as i16,
            width: r.w,
            height: r.h,
        }],
    )
    .unwrap();
    c.free_gc(g).unwrap();
}

fn window(c: &RustConnection, root: u32, r: Rect, mask: xproto::EventMask) -> u32 {
    let w = c.generate_id().unwrap();
    c.create_window(
        x11rb::COPY_DEPTH_FROM_PARENT,
        w,
        root,
        r.x as i16,
        r.y as i16,
        r.w,
        r.h,
        0,
        xproto::WindowClass::INPUT_OUTPUT,
        0,
        &xproto::CreateWindowAux::new()
            .background_pixel(0x0020_4060)
            .override_redirect(1)
            .event_mask(mask),
    )
    .unwrap();
    c.map_window(w).unwrap();
    c.sync().unwrap();
    w
}

#[test]
fn capture_equals_server_pixels_and_damage_is_tight() {
    let d = desktop(640, 480);
    let feats = d.capture().features().unwrap();
    assert!(feats.shm && feats.damage && feats.cursor, "{feats:?}");
    // Only holders of the cookie may connect.
    let wrong = deskd::display::conn::XTarget {
        display: d.display(),
        cookie: Some(vec![0; 16]),
    };
    assert!(deskd::display::conn::connect(&wrong).is_err());
    let xauth = std::fs::metadata(d.xauthority().unwrap()).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&xauth.permissions()) & 0o777,
        0o600
    );
    let (c, root) = connect(&d);
    let store = d.desktop.frames.store().clone();

    // A window, fills, and a PutImage of a known gradient.
    let w = window(
        &c,
        root,
        Rect::new(50, 40, 300, 200),
        xproto::EventMask::NO_EVENT,
    );
    fill(&c, w, 0x00ff_0000, Rect::new(10, 10, 100, 50));
    fill(&c, root, 0x0000_ff00, Rect::new(400, 300, 33, 17));
    let (pw, ph) = (70u16, 45u16);
    let mut pic = Vec::new();
    for y in 0..ph {
        for x in 0..pw {
            pic.extend_from_slice(&[(x * 3) as u8, (y * 5) as u8, (x ^ y) as u8, 0]);
        }
    }
    let g = gc(&c, w, 0);
    c.put_image(
        xproto::ImageFormat::Z_PIXMAP,
        w,
        g,
        pw,
        ph,
        120,
        70,
        0,
        24,
        &pic,
    )
    .unwrap();
    c.sync().unwrap();
    d.desktop.frames.refresh().unwrap();
    let (_, frame) = store.snapshot();
    let server = server_pixels(&c, root);
    assert_same_pixels(&frame, &server);
    assert_eq!(frame.pixel(50 + 120 + 3, 40 + 70 + 2), {
        let (x, y) = (3u32, 2u32);
        ((x ^ y) << 16) | ((y * 5) << 8) | (x * 3)
    });

    // A small change through the capture thread (DAMAGE, no refresh): the region covers it,
    // at tile granularity at most.
    let v1 = store.version();
    let rx = store.subscribe();
    let change = Rect::new(500, 100, 10, 10);
    fill(&c, root, 0x00ab_cdef, change);
    c.sync().unwrap();
    wait_until("capture of a small change", || {
        rx.has_changed().unwrap_or(false) && store.snapshot().1.pixel(505, 105) == 0x00ab_cdef
    });
    let (_, frame, region) = store.changes_since(v1);
    for y in change.y..change.y + change.h {
        for x in change.x..change.x + change.w {
            assert!(region.contains(x, y), "({x},{y}) not in {region:?}");
        }
    }
    assert!(region.area() <= 64 * 64, "region too large: {region:?}");
    assert_same_pixels(&frame, &server_pixels(&c, root));

    // Drawing the same pixels again yields no new version (unchanged tiles are dropped).
    let v2 = d.desktop.frames.refresh().unwrap();
    fill(&c, root, 0x00ab_cdef, change);
    c.sync().unwrap();
    assert_eq!(d.desktop.frames.refresh().unwrap(), v2);
}

#[test]
fn cursor_image_changes_are_seen() {
    let d = desktop(320, 240);
    let (c, root) = connect(&d);
    let store = d.desktop.frames.store().clone();
    let (serial0, img0) = store.cursor();
    let img0 = img0.expect("initial cursor");
    // A window with a crosshair cursor from the cursor font; move the pointer into it.
    let font = c.generate_id().unwrap();
    c.open_font(font, b"cursor").unwrap();
    let cursor = c.generate_id().unwrap();
    c.create_glyph_cursor(cursor, font, font, 34, 35, 0, 0, 0, 0xffff, 0xffff, 0xffff)
        .unwrap();
    let w = window(
        &c,
        root,
        Rect::new(100, 100, 100, 100),
        xproto::EventMask::NO_EVENT,
    );
    c.change_window_attributes(w, &xproto::ChangeWindowAttributesAux::new().cursor(cursor))
        .unwrap();
    c.sync().unwrap();
    d.desktop.input.pointer_move(150, 150).unwrap();
    d.desktop.input.sync().unwrap();
    wait_until("a new cursor image", || store.cursor().0 > serial0);
    let img = store.cursor().1.unwrap();
    assert_ne!(*img, *img0, "cursor image did not change");
    assert_eq!(
        img.pixels.len(),
        usize::from(img.width) * usize::from(img.height) * 4
    );
    // The crosshair has opaque white pixels, straight alpha.
    assert!(img.pixels.chunks(4).any(|p| p == [0xff, 0xff, 0xff, 0xff]));
    assert_eq!(store.pointer(), (150, 150));
}

#[test]
fn resize_is_seen_as_new_size() {
    let d = desktop_with(DisplayOptions {
        width: 800,
        height: 600,
        max_width: 1600,
        max_height: 1000,
        window_manager: WindowManager::None,
        ..DisplayOptions::default()
    });
    let (c, root) = connect(&d);
    let store = d.desktop.frames.store().clone();
    assert_eq!(
        (store.snapshot().1.width, store.snapshot().1.height),
        (800, 600)
    );
    assert_eq!(d.desktop.frames.resize(1024, 768).unwrap(), (1024, 768));
    let (_, f) = store.snapshot();
    assert_eq!((f.width, f.height), (1024, 768));
    fill(&c, root, 0x0012_3456, Rect::new(900, 700, 50, 50));
    c.sync().unwrap();
    d.desktop.frames.refresh().unwrap();
    assert_same_pixels(&store.snapshot().1, &server_pixels(&c, root));
    assert_eq!(d.desktop.frames.resize(640, 400).unwrap(), (640, 400));
    assert_eq!(store.snapshot().1.width, 640);
    // Past the maximum: a clear error, size unchanged.
    match d.desktop.frames.resize(4000, 3000) {
        Err(DesktopError::Invalid(m)) => assert!(m.contains("4000x3000"), "{m}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    // An outside RandR change (xrandr) is seen too.
    require_tool("xrandr", "x11-xserver-utils");
    let st = x_command(&d, "xrandr")
        .args(["--fb", "700x500"])
        .status()
        .unwrap();
    assert!(st.success());
    wait_until("the outside resize", || store.snapshot().1.width == 700);
    assert_eq!(store.snapshot().1.height, 500);
}

/// xev on the desktop with keyboard focus; returns the guard and a channel of
/// (state, keycode, keysym) for each KeyPress.
fn xev(d: &RunningDesktop, c: &RustConnection) -> (ChildGuard, mpsc::Receiver<(u32, u8, u32)>) {
    require_tool("xev", "x11-utils");
    require_tool("stdbuf", "coreutils");
    let mut child = x_command(d, "stdbuf")
        .args([
            "-oL",
            "xev",
            "-event",
            "keyboard",
            "-geometry",
            "200x200+0+0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let guard = ChildGuard(child);
    let (wtx, wrx) = mpsc::channel();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut press = false;
        let mut state = 0u32;
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let l = line.trim();
            if let Some(rest) = l.strip_prefix("Outer window is ") {
                let hex = rest.split(',').next().unwrap().trim_start_matches("0x");
                let _ = wtx.send(u32::from_str_radix(hex, 16).unwrap());
            } else if l.starts_with("KeyPress event") {
                press = true;
            } else if l.starts_with("KeyRelease event") {
                press = false;
            } else if press && l.starts_with("state ") {
                // state 0x4, keycode 46 (keysym 0x6c, l), same_screen YES,
                let hex = l[6..].split(',').next().unwrap().trim_start_matches("0x");
                state = u32::from_str_radix(hex, 16).unwrap();
                let kc: u8 = l
                    .split("keycode ")
                    .nth(1)
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                let ks = l
                    .split("keysym 0x")
                    .nth(1)
                    .unwrap()
                    .split(',')
                    .next()
                    .unwrap();
                let _ = tx.send((state, kc, u32::from_str_radix(ks, 16).unwrap()));
                press = false;
            }
        }
        let _ = state;
    });
    let win = wrx
        .recv_timeout(Duration::from_secs(10))
        .expect("xev window");
    wait_until("focus on the xev window", || {
        c.set_input_focus(xproto::InputFocus::PARENT, win, x11rb::CURRENT_TIME)
            .unwrap()
            .check()
            .is_ok()
    });
    (guard, rx)
}

const MODIFIER_KEYSYMS: [u32; 6] = [0xffe1, 0xffe2, 0xffe3, 0xffe4, 0xfe03, 0xff7e];

/// Type `text` and return the (state, keysym) of every non-modifier KeyPress xev saw.
fn type_and_collect(
    d: &RunningDesktop,
    rx: &mpsc::Receiver<(u32, u8, u32)>,
    keysyms: &[u32],
) -> Vec<(u32, u32)> {
    for &k in keysyms {
        d.desktop.input.key(k, true).unwrap();
        d.desktop.input.key(k, false).unwrap();
    }
    d.desktop.input.sync().unwrap();
    let mut got = Vec::new();
    while got.len() < keysyms.len() {
        let (state, _, ks) = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("xev saw only {got:x?}"));
        if !MODIFIER_KEYSYMS.contains(&ks) {
            got.push((state, ks));
        }
    }
    got
}

#[test]
fn keys_arrive_as_keysyms_us_layout() {
    let d = desktop(400, 300);
    let (c, _) = connect(&d);
    let (_xev, rx) = xev(&d, &c);

    // ASCII with shifted symbols.
    let text = "aZ1!~ ?{|";
    let ks: Vec<u32> = text.chars().map(char_to_keysym).collect();
    let got = type_and_collect(&d, &rx, &ks);
    assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), ks);
    // Shift state exactly where needed: Z ! ~ ? { | have Shift, a 1 space do not.
    let shifted: Vec<bool> = got.iter().map(|g| g.0 & 1 != 0).collect();
    assert_eq!(
        shifted,
        [false, true, false, true, true, false, true, true, true]
    );

    // Characters absent from the keymap: bound to scratch keycodes.
    let text = "éß€你好😀";
    let ks: Vec<u32> = text.chars().map(char_to_keysym).collect();
    let got = type_and_collect(&d, &rx, &ks);
    assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), ks, "{got:x?}");

    // ctrl+l: Control state, keysym l, no Shift.
    d.desktop.input.key(0xffe3, true).unwrap();
    let got = type_and_collect(&d, &rx, &[0x6c]);
    d.desktop.input.key(0xffe3, false).unwrap();
    assert_eq!(got, vec![(0x4, 0x6c)]);
    // Shift held by the client and keysym `1`: Shift is lifted around it.
    d.desktop.input.key(0xffe1, true).unwrap();
    let got = type_and_collect(&d, &rx, &[0x31, 0x41]);
    d.desktop.input.key(0xffe1, false).unwrap();
    assert_eq!(got, vec![(0, 0x31), (1, 0x41)]);
    // Escape never gets a stray Shift.
    let got = type_and_collect(&d, &rx, &[0xff1b]);
    assert_eq!(got, vec![(0, 0xff1b)]);

    // A QEMU extended key event: XT 0x1e is `a`.
    d.desktop.input.key_scancode(0x1e, 0x61, true).unwrap();
    d.desktop.input.key_scancode(0x1e, 0x61, false).unwrap();
    let (_, kc, ks) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!((kc, ks), (38, 0x61));
    // The same scancode carrying 'A' with no Shift held types 'A' (Shift added around it).
    d.desktop.input.key_scancode(0x1e, 0x41, true).unwrap();
    d.desktop.input.key_scancode(0x1e, 0x41, false).unwrap();
    let (state, kc, ks) = loop {
        let ev = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        if !MODIFIER_KEYSYMS.contains(&ev.2) {
            break ev;
        }
    };
    assert_eq!((state & 1, kc, ks), (1, 38, 0x41));
}

#[test]
fn altgr_characters_under_german_layout() {
    require_tool("setxkbmap", "x11-xkb-utils");
    let d = desktop(400, 300);
    let st = x_command(&d, "setxkbmap").arg("de").status().unwrap();
    assert!(st.success(), "setxkbmap de failed");
    let (c, _) = connect(&d);
    let (_xev, rx) = xev(&d, &c);
    let text = "@€{\\|~yz";
    let ks: Vec<u32> = text.chars().map(char_to_keysym).collect();
    let got = type_and_collect(&d, &rx, &ks);
    assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), ks, "{got:x?}");
    // The AltGr ones came with the level-3 modifier (Mod5), not from scratch bindings.
    for (i, (state, _)) in got.iter().enumerate().take(6) {
        assert!(state & 0x80 != 0, "char {i} without AltGr: {got:x?}");
    }
    assert_eq!(got[6].0 & 0x81, 0);
}

#[test]
fn pointer_positions_and_every_button() {
    let d = desktop(400, 300);
    let (c, root) = connect(&d);
    let w = window(
        &c,
        root,
        Rect::new(0, 0, 400, 300),
        xproto::EventMask::BUTTON_PRESS
            | xproto::EventMask::BUTTON_RELEASE
            | xproto::EventMask::POINTER_MOTION,
    );
    let _ = w;
    let input = &d.desktop.input;
    input.pointer_move(123, 45).unwrap();
    input.sync().unwrap();
    assert_eq!(input.pointer_position().unwrap(), (123, 45));
    for b in 1..=9u8 {
        input.button(b, true).unwrap();
        input.button(b, false).unwrap();
    }
    input.sync().unwrap();
    assert!(matches!(
        input.button(10, true),
        Err(DesktopError::Invalid(_))
    ));
    let mut presses = Vec::new();
    let mut releases = Vec::new();
    let mut motion = None;
    let end = Instant::now() + Duration::from_secs(10);
    while releases.len() < 9 && Instant::now() < end {
        match c.poll_for_event().unwrap() {
            Some(x11rb::protocol::Event::ButtonPress(e)) => {
                presses.push((e.detail, e.event_x, e.event_y))
            }
            Some(x11rb::protocol::Event::ButtonRelease(e)) => releases.push(e.detail),
            Some(x11rb::protocol::Event::MotionNotify(e)) => motion = Some((e.event_x, e.event_y)),
            Some(_) => {}
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    assert_eq!(motion, Some((123, 45)));
    assert_eq!(presses, (1..=9).map(|b| (b, 123, 45)).collect::<Vec<_>>());
    assert_eq!(releases, (1..=9).collect::<Vec<u8>>());
}

fn xclip_out(d: &RunningDesktop, sel: &str) -> String {
    let out = x_command(d, "xclip")
        .args(["-selection", sel, "-o"])
        .output()
        .unwrap();
    assert!(out.status.success(), "xclip -o failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn xclip_in(d: &RunningDesktop, sel: &str, text: &str) -> ChildGuard {
    let mut child = x_command(d, "xclip")
        .args(["-quiet", "-selection", sel, "-i"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    ChildGuard(child)
}

#[test]
fn clipboard_round_trips_with_xclip() {
    require_tool("xclip", "xclip");
    let d = desktop(320, 240);
    let cb = &d.desktop.clipboard;
    let mut sub = cb.subscribe();

    // deskd -> X application.
    cb.set_text(Selection::Clipboard, "héllo wörld €").unwrap();
    assert_eq!(xclip_out(&d, "clipboard"), "héllo wörld €");
    cb.set_text(Selection::Primary, "primary text").unwrap();
    assert_eq!(xclip_out(&d, "primary"), "primary text");
    // Large text goes through INCR.
    let big: String = (0..300_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    cb.set_text(Selection::Clipboard, &big).unwrap();
    assert_eq!(xclip_out(&d, "clipboard"), big);
    assert_eq!(
        cb.get_text(Selection::Clipboard).unwrap().as_deref(),
        Some(big.as_str())
    );

    // X application -> deskd, and subscribers hear about it.
    let _x = xclip_in(&d, "clipboard", "from xclip ✓");
    wait_until("xclip to own CLIPBOARD", || {
        cb.get_text(Selection::Clipboard).unwrap().as_deref() == Some("from xclip ✓")
    });
    let heard = sub.blocking_recv().unwrap();
    assert_eq!(&*heard, "from xclip ✓");
    let _p = xclip_in(&d, "primary", "primary from xclip");
    wait_until("xclip to own PRIMARY", || {
        cb.get_text(Selection::Primary).unwrap().as_deref() == Some("primary from xclip")
    });
    // Large text from xclip (INCR on its side).
    let big2: String = (0..2_000_000)
        .map(|i| char::from(b'A' + (i % 26) as u8))
        .collect();
    let _b = xclip_in(&d, "clipboard", &big2);
    wait_until("large xclip text", || {
        cb.get_text(Selection::Clipboard)
            .ok()
            .flatten()
            .is_some_and(|t| t == big2)
    });
    // Over the cap: refused.
    let huge = "x".repeat(deskd::clipboard::x11::MAX_TEXT + 1);
    assert!(matches!(
        cb.set_text(Selection::Clipboard, &huge),
        Err(DesktopError::Invalid(_))
    ));
}

#[test]
fn xvfb_killed_is_restarted_and_capture_resumes() {
    require_tool("openbox", "openbox");
    let d = desktop_with(DisplayOptions {
        width: 320,
        height: 240,
        window_manager: WindowManager::Auto,
        ..DisplayOptions::default()
    });
    assert_eq!(
        d.desktop.status.status().window_manager.as_deref(),
        Some("openbox")
    );
    assert_eq!(d.desktop.status.status().state, "running");
    let pid = d.xvfb_pid().unwrap();
    let store = d.desktop.frames.store().clone();
    let st = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    wait_until("the restart", || {
        let s = d.desktop.status.status();
        s.restarts == 1 && s.state == "running" && d.xvfb_pid() != Some(pid)
    });
    assert!(d.desktop.status.status().last_exit.is_some());
    // Capture and input reconnect to the new server.
    let v = store.version();
    let mut conn = None;
    wait_until("a connection to the new server", || {
        conn = d.server().connect().ok();
        conn.is_some()
    });
    let (c, screen) = conn.unwrap();
    let root = c.setup().roots[screen].root;
    wait_until("input to reconnect", || {
        d.desktop.input.pointer_move(10, 10).is_ok()
    });
    fill(&c, root, 0x00fe_dcba, Rect::new(20, 20, 30, 30));
    c.sync().unwrap();
    wait_until("capture on the new server", || {
        store.version() > v && store.snapshot().1.pixel(25, 25) == 0x00fe_dcba
    });
    d.desktop.frames.refresh().unwrap();
    assert_same_pixels(&store.snapshot().1, &server_pixels(&c, root));
    assert_eq!(d.desktop.input.pointer_position().unwrap(), (10, 10));
    // The clipboard reconnects too.
    require_tool("xclip", "xclip");
    wait_until("clipboard on the new server", || {
        d.desktop
            .clipboard
            .set_text(Selection::Clipboard, "after restart")
            .is_ok()
    });
    assert_eq!(xclip_out(&d, "clipboard"), "after restart");
}

#[test]
fn attach_mode_polls_without_damage_or_shm_and_requires_xtest() {
    let (_x, display) =
        common::xvfb::bare_xvfb(320, 240, &["-extension", "DAMAGE", "-extension", "MIT-SHM"]);
    let d = desktop_with(DisplayOptions {
        attach: Some(display.clone()),
        ..DisplayOptions::default()
    });
    assert_eq!(d.desktop.status.status().state, "attached");
    let feats = d.capture().features().unwrap();
    assert!(!feats.damage && !feats.shm && feats.cursor, "{feats:?}");
    let (c, root) = connect(&d);
    let store = d.desktop.frames.store().clone();
    fill(&c, root, 0x0011_2233, Rect::new(5, 5, 40, 40));
    c.sync().unwrap();
    wait_until("polled capture", || {
        store.snapshot().1.pixel(10, 10) == 0x0011_2233
    });
    assert_same_pixels(&store.snapshot().1, &server_pixels(&c, root));
    drop(d);

    let (_y, display) = common::xvfb::bare_xvfb(320, 240, &["-extension", "XTEST"]);
    match deskd::display::start(DisplayOptions {
        attach: Some(display),
        ..DisplayOptions::default()
    }) {
        Err(DesktopError::MissingExtension("XTEST")) => {}
        Err(e) => panic!("expected MissingExtension(XTEST), got {e}"),
        Ok(_) => panic!("expected MissingExtension(XTEST), got a desktop"),
    }
}
