//! The action API against a real Xvfb: every action and option, screenshots against the X root
//! window, scaling, Unicode typing, key-combo regressions, bad input, concurrency, windows,
//! clipboard, status/metrics and the OpenAPI document. The router is driven in-process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};
use tower::ServiceExt;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{self, ConnectionExt as _, CreateWindowAux, EventMask};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

use deskd::display::RunningDesktop;

const W: u16 = 640;
const H: u16 = 400;

struct Env {
    running: RunningDesktop,
    app: Router,
}

impl Env {
    fn new() -> Env {
        Env::with(common::xvfb::desktop(W, H))
    }

    fn with(running: RunningDesktop) -> Env {
        let app = deskd::api::router_with_server(
            running.desktop.clone(),
            running.display(),
            Arc::clone(running.server()),
        );
        Env { running, app }
    }

    fn x(&self) -> RustConnection {
        self.running.server().connect().unwrap().0
    }

    async fn request(&self, req: Request<Body>) -> (StatusCode, HashMap<String, String>, Vec<u8>) {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, body.to_vec())
    }

    async fn post_raw(&self, path: &str, body: impl Into<Body>) -> (StatusCode, Value) {
        let req = Request::post(path)
            .header("content-type", "application/json")
            .body(body.into())
            .unwrap();
        let (s, _, b) = self.request(req).await;
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    async fn act(&self, body: Value) -> (StatusCode, Value) {
        self.post_raw("/api/v0/desktop/action", body.to_string())
            .await
    }

    async fn ok(&self, body: Value) -> Value {
        let (s, v) = self.act(body.clone()).await;
        assert_eq!(s, StatusCode::OK, "{body} -> {v}");
        v
    }

    async fn get(&self, path: &str) -> (StatusCode, HashMap<String, String>, Vec<u8>) {
        self.request(Request::get(path).body(Body::empty()).unwrap())
            .await
    }
}

/// The root window's pixels as 0xRRGGBB.
fn root_pixels(c: &RustConnection) -> (u16, u16, Vec<u32>) {
    let screen = &c.setup().roots[0];
    let (w, h) = (screen.width_in_pixels, screen.height_in_pixels);
    let img = c
        .get_image(xproto::ImageFormat::Z_PIXMAP, screen.root, 0, 0, w, h, !0)
        .unwrap()
        .reply()
        .unwrap();
    let px = img
        .data
        .chunks_exact(4)
        .map(|p| u32::from_le_bytes([p[0], p[1], p[2], 0]))
        .collect();
    (w, h, px)
}

fn decode_png(data: &[u8]) -> (u32, u32, Vec<u32>) {
    let mut r = png::Decoder::new(data).read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let px = buf[..info.buffer_size()]
        .chunks_exact(3)
        .map(|p| (u32::from(p[0]) << 16) | (u32::from(p[1]) << 8) | u32::from(p[2]))
        .collect();
    (info.width, info.height, px)
}

fn b64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap())
        .unwrap()
}

/// Colourful content: a few solid windows so screenshots are not uniform.
fn paint(c: &RustConnection) -> Vec<u32> {
    let root = c.setup().roots[0].root;
    let mut ids = Vec::new();
    for (i, (x, y, w, h, rgb)) in [
        (0, 0, W, H, 0x20_40_60u32),
        (10, 10, 200, 100, 0xff_00_00),
        (300, 50, 120, 300, 0x00_ff_80),
        (500, 350, 140, 50, 0xfe_dc_ba),
    ]
    .into_iter()
    .enumerate()
    {
        let id = c.generate_id().unwrap();
        c.create_window(
            0,
            id,
            root,
            x,
            y,
            w,
            h,
            0,
            xproto::WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new()
                .background_pixel(rgb)
                .override_redirect(u32::from(i > 0)),
        )
        .unwrap();
        c.map_window(id).unwrap();
        ids.push(id);
    }
    c.sync().unwrap();
    ids
}

/// A round trip, so everything sent before has been processed.
trait XSync {
    fn sync(&self) -> Result<(), x11rb::errors::ReplyError>;
}
impl XSync for RustConnection {
    fn sync(&self) -> Result<(), x11rb::errors::ReplyError> {
        self.get_input_focus()?.reply().map(|_| ())
    }
}

/// Poll `f` until it returns Some, or fail after `secs` (waiting for X, not timing it).
async fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_match_the_root_window() {
    let env = Env::new();
    let c = env.x();
    let _wins = paint(&c);
    // Wait for the capture to have the painted content.
    let want = root_pixels(&c);
    let v = env.ok(json!({"action": "screenshot"})).await;
    assert_eq!(v["output"], "screenshot");
    assert_eq!(v["screenshot_width"], W);
    assert_eq!(v["screenshot_height"], H);
    let (w, h, px) = decode_png(&b64(&v["screenshot_data"]));
    assert_eq!((w, h), (u32::from(W), u32::from(H)));
    assert!(
        px == want.2,
        "PNG screenshot differs from the X root window"
    );

    // Scaled: exactly the requested size; Coder's width/height.
    let v = env
        .ok(json!({"action": "screenshot", "scaled_width": 320, "scaled_height": 180}))
        .await;
    assert_eq!(
        (
            v["screenshot_width"].clone(),
            v["screenshot_height"].clone()
        ),
        (json!(320), json!(180))
    );
    let (w, h, _) = decode_png(&b64(&v["screenshot_data"]));
    assert_eq!((w, h), (320, 180));
    // scaled_width equal to native is "no scaling".
    let v = env
        .ok(json!({"action": "screenshot", "scaled_width": 640, "scaled_height": 0}))
        .await;
    assert_eq!(
        (
            v["screenshot_width"].clone(),
            v["screenshot_height"].clone()
        ),
        (json!(640), json!(400))
    );

    // Formats.
    let v = env
        .ok(json!({"action": "screenshot", "format": "jpeg", "quality": 60}))
        .await;
    assert_eq!(v["screenshot_media_type"], "image/jpeg");
    assert_eq!(&b64(&v["screenshot_data"])[..3], &[0xff, 0xd8, 0xff]);
    let v = env
        .ok(json!({"action": "screenshot", "format": "webp"}))
        .await;
    let d = b64(&v["screenshot_data"]);
    assert_eq!((&d[..4], &d[8..12]), (&b"RIFF"[..], &b"WEBP"[..]));

    // Zoom: a region at native resolution equals that part of the root window.
    let v = env
        .ok(json!({"action": "zoom", "region": [300, 40, 460, 140]}))
        .await;
    let (w, h, px) = decode_png(&b64(&v["screenshot_data"]));
    assert_eq!((w, h), (160, 100));
    for y in 0..100usize {
        for x in 0..160usize {
            assert_eq!(px[y * 160 + x], want.2[(40 + y) * usize::from(W) + 300 + x]);
        }
    }
    let v = env
        .ok(json!({"action": "zoom", "region": [0, 0, 320, 200], "width": 64, "height": 40}))
        .await;
    assert_eq!(
        (
            v["screenshot_width"].clone(),
            v["screenshot_height"].clone()
        ),
        (json!(64), json!(40))
    );

    // GET /screenshot.
    let (s, hd, body) = env.get("/api/v0/desktop/screenshot").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(hd["content-type"], "image/png");
    assert!(decode_png(&body).2 == want.2);
    let (_, hd, body) = env
        .get("/api/v0/desktop/screenshot?format=jpeg&quality=50")
        .await;
    assert_eq!(hd["content-type"], "image/jpeg");
    assert_eq!(&body[..2], &[0xff, 0xd8]);
    let (_, hd, _) = env.get("/api/v0/desktop/screenshot?format=webp").await;
    assert_eq!(hd["content-type"], "image/webp");
    let (_, _, body) = env.get("/api/v0/desktop/screenshot?scale=0.5").await;
    assert_eq!(decode_png(&body).0, 320);
    let (_, _, body) = env.get("/api/v0/desktop/screenshot?width=100").await;
    let (w, h, _) = decode_png(&body);
    assert_eq!((w, h), (100, 63));
    let (_, _, body) = env
        .get("/api/v0/desktop/screenshot?region=10,10,210,110")
        .await;
    let (w, h, px) = decode_png(&body);
    assert_eq!((w, h), (200, 100));
    assert!(px.iter().all(|p| *p == 0xff0000));
    let (s, _, body) = env
        .get("/api/v0/desktop/screenshot?region=0,0,9999,10")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("region"));
    let (s, _, _) = env.get("/api/v0/desktop/screenshot?format=gif").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Settle: a still screen settles.
    let v = env.ok(json!({"action": "screenshot", "settle": 50})).await;
    assert_eq!(v["settled"], true);
    let (_, hd, _) = env.get("/api/v0/desktop/screenshot?settle=50").await;
    assert_eq!(hd["x-screenshot-settled"], "true");

    // Cursor: drawn near the pointer, nowhere else.
    env.ok(json!({"action": "mouse_move", "coordinate": [100, 200]}))
        .await;
    let plain = env.ok(json!({"action": "screenshot"})).await;
    let with = env
        .ok(json!({"action": "screenshot", "cursor": true}))
        .await;
    let (_, _, a) = decode_png(&b64(&plain["screenshot_data"]));
    let (_, _, b) = decode_png(&b64(&with["screenshot_data"]));
    let differs: Vec<usize> = (0..a.len()).filter(|i| a[*i] != b[*i]).collect();
    assert!(!differs.is_empty(), "cursor was not drawn");
    let (_, _, g) = env.get("/api/v0/desktop/screenshot?cursor=true").await;
    assert!(
        decode_png(&g).2 == b,
        "GET ?cursor=true draws the same pointer"
    );
    for i in differs {
        let (x, y) = (i % usize::from(W), i / usize::from(W));
        assert!(
            x.abs_diff(100) < 40 && y.abs_diff(200) < 40,
            "cursor pixel at {x},{y}"
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    KeyDown,
    KeyUp,
    ButtonDown,
    ButtonUp,
    Motion,
}

#[derive(Debug, Clone, Copy)]
struct Ev {
    kind: Kind,
    detail: u8,
    keysym: u32,
    state: u16,
    x: i16,
    y: i16,
}

const SHIFT: u16 = 1;
const CTRL: u16 = 4;

/// A full-screen window that records the input it gets, resolving keycodes to keysyms with the
/// keymap current when each event arrives (refreshed on MappingNotify, so temporarily bound
/// keysyms resolve too).
struct Recorder {
    events: Arc<Mutex<Vec<Ev>>>,
    _conn: Arc<RustConnection>,
}

impl Recorder {
    fn new(env: &Env) -> Recorder {
        let conn = Arc::new(env.x());
        let c = &conn;
        let root = c.setup().roots[0].root;
        let win = c.generate_id().unwrap();
        c.create_window(
            0,
            win,
            root,
            0,
            0,
            W,
            H,
            0,
            xproto::WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new()
                .background_pixel(0x404040)
                .event_mask(
                    EventMask::KEY_PRESS
                        | EventMask::KEY_RELEASE
                        | EventMask::BUTTON_PRESS
                        | EventMask::BUTTON_RELEASE
                        | EventMask::POINTER_MOTION
                        | EventMask::EXPOSURE,
                ),
        )
        .unwrap();
        c.map_window(win).unwrap();
        c.sync().unwrap();
        // Wait until it is viewable, then take the keyboard focus.
        loop {
            if let Event::Expose(_) = c.wait_for_event().unwrap() {
                break;
            }
        }
        c.set_input_focus(xproto::InputFocus::POINTER_ROOT, win, x11rb::CURRENT_TIME)
            .unwrap();
        c.sync().unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let ev2 = Arc::clone(&events);
        let c2 = Arc::clone(&conn);
        std::thread::spawn(move || {
            let setup = c2.setup();
            let (min, max) = (setup.min_keycode, setup.max_keycode);
            let fetch = || {
                c2.get_keyboard_mapping(min, max - min + 1)
                    .ok()
                    .and_then(|r| r.reply().ok())
            };
            let mut map = fetch();
            while let Ok(e) = c2.wait_for_event() {
                let sym = |map: &Option<xproto::GetKeyboardMappingReply>, kc: u8, state: u16| {
                    let Some(m) = map else { return 0 };
                    let per = usize::from(m.keysyms_per_keycode);
                    let base = usize::from(kc - min) * per;
                    let col = usize::from(state & SHIFT != 0);
                    let s = m.keysyms.get(base + col).copied().unwrap_or(0);
                    if s == 0 {
                        m.keysyms.get(base).copied().unwrap_or(0)
                    } else {
                        s
                    }
                };
                let rec = match e {
                    Event::MappingNotify(_) => {
                        map = fetch();
                        None
                    }
                    Event::KeyPress(k) => Some(Ev {
                        kind: Kind::KeyDown,
                        detail: k.detail,
                        keysym: sym(&map, k.detail, u16::from(k.state)),
                        state: u16::from(k.state),
                        x: k.event_x,
                        y: k.event_y,
                    }),
                    Event::KeyRelease(k) => Some(Ev {
                        kind: Kind::KeyUp,
                        detail: k.detail,
                        keysym: sym(&map, k.detail, u16::from(k.state)),
                        state: u16::from(k.state),
                        x: k.event_x,
                        y: k.event_y,
                    }),
                    Event::ButtonPress(b) | Event::ButtonRelease(b) => Some(Ev {
                        kind: if b.response_type & 0x7f == xproto::BUTTON_PRESS_EVENT {
                            Kind::ButtonDown
                        } else {
                            Kind::ButtonUp
                        },
                        detail: b.detail,
                        keysym: 0,
                        state: u16::from(b.state),
                        x: b.event_x,
                        y: b.event_y,
                    }),
                    Event::MotionNotify(m) => Some(Ev {
                        kind: Kind::Motion,
                        detail: 0,
                        keysym: 0,
                        state: u16::from(m.state),
                        x: m.event_x,
                        y: m.event_y,
                    }),
                    _ => None,
                };
                if let Some(r) = rec {
                    ev2.lock().unwrap().push(r);
                }
            }
        });
        Recorder {
            events,
            _conn: conn,
        }
    }

    /// Wait until the events recorded so far satisfy `done`, then take them.
    async fn take_when(&self, what: &str, done: impl Fn(&[Ev]) -> bool) -> Vec<Ev> {
        let evs = eventually(10, what, || {
            let e = self.events.lock().unwrap();
            done(&e).then(|| e.clone())
        })
        .await;
        self.events.lock().unwrap().clear();
        evs
    }

    fn clear(&self) {
        self.events.lock().unwrap().clear();
    }

    fn count(evs: &[Ev], kind: Kind) -> usize {
        evs.iter().filter(|e| e.kind == kind).count()
    }

    /// Text typed: KeyDown keysyms as characters (Return as '\n').
    fn typed(evs: &[Ev]) -> String {
        evs.iter()
            .filter(|e| e.kind == Kind::KeyDown)
            .filter_map(|e| match e.keysym {
                0xff0d => Some('\n'),
                0xff09 => Some('\t'),
                s => deskd::input::keymap::keysym_to_char(s),
            })
            .collect()
    }
}

fn ups(evs: &[Ev], kind: Kind) -> Vec<Ev> {
    evs.iter().filter(|e| e.kind == kind).copied().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mouse_actions_and_scaling() {
    let env = Env::new();
    let rec = Recorder::new(&env);

    let v = env
        .ok(json!({"action": "left_click", "coordinate": [10, 20]}))
        .await;
    assert_eq!(v, json!({"output": "left_click action performed"}));
    let e = rec
        .take_when("left click", |e| Recorder::count(e, Kind::ButtonUp) == 1)
        .await;
    let down = ups(&e, Kind::ButtonDown);
    assert_eq!((down[0].detail, down[0].x, down[0].y), (1, 10, 20));

    // Scaled coordinates: agent space 320x200 over 640x400 native.
    // (160 + 0.5) * 640 / 320 - 0.5 = 320.5 -> 320; (50 + 0.5) * 2 - 0.5 = 100.5 -> 100.
    env.ok(json!({"action": "right_click", "coordinate": [160, 50], "scaled_width": 320, "scaled_height": 200}))
        .await;
    let e = rec
        .take_when("right click", |e| Recorder::count(e, Kind::ButtonUp) == 1)
        .await;
    let d = ups(&e, Kind::ButtonDown)[0];
    assert_eq!((d.detail, d.x, d.y), (3, 320, 100));
    // Back the other way: cursor_position in the agent's space.
    let v = env
        .ok(json!({"action": "cursor_position", "scaled_width": 320, "scaled_height": 200}))
        .await;
    assert_eq!(v["output"], "x=160,y=50");
    let v = env.ok(json!({"action": "cursor_position"})).await;
    assert_eq!(v["output"], "x=320,y=100");
    // Out-of-range scaled points clamp (Coder's rule).
    env.ok(json!({"action": "mouse_move", "coordinate": [319, 199], "scaled_width": 320, "scaled_height": 200}))
        .await;
    let v = env.ok(json!({"action": "cursor_position"})).await;
    assert_eq!(v["output"], "x=638,y=398");
    rec.clear();

    env.ok(json!({"action": "middle_click", "coordinate": [5, 5]}))
        .await;
    let e = rec
        .take_when("middle", |e| Recorder::count(e, Kind::ButtonUp) == 1)
        .await;
    assert_eq!(ups(&e, Kind::ButtonDown)[0].detail, 2);
    env.ok(json!({"action": "double_click", "coordinate": [5, 5]}))
        .await;
    rec.take_when("double", |e| Recorder::count(e, Kind::ButtonUp) == 2)
        .await;
    env.ok(json!({"action": "triple_click", "coordinate": [5, 5]}))
        .await;
    let e = rec
        .take_when("triple", |e| Recorder::count(e, Kind::ButtonUp) == 3)
        .await;
    assert!(ups(&e, Kind::ButtonDown).iter().all(|b| b.detail == 1));

    // Modifiers held during a click.
    env.ok(json!({"action": "left_click", "coordinate": [30, 30], "text": "ctrl+shift"}))
        .await;
    let e = rec
        .take_when("modified click", |e| Recorder::count(e, Kind::KeyUp) == 2)
        .await;
    let b = ups(&e, Kind::ButtonDown)[0];
    assert_eq!(b.state & (SHIFT | CTRL), SHIFT | CTRL);
    assert_eq!(
        ups(&e, Kind::KeyUp).last().unwrap().state & (SHIFT | CTRL),
        CTRL,
        "released in reverse order"
    );

    // Scroll: 3 notches down by default; direction and modifiers.
    let v = env
        .ok(json!({"action": "scroll", "coordinate": [50, 60]}))
        .await;
    assert_eq!(v["output"], "scroll action performed");
    let e = rec
        .take_when("scroll", |e| Recorder::count(e, Kind::ButtonUp) == 3)
        .await;
    assert!(ups(&e, Kind::ButtonDown)
        .iter()
        .all(|b| b.detail == 5 && b.x == 50 && b.y == 60));
    env.ok(json!({"action": "scroll", "coordinate": [50, 60], "scroll_direction": "left", "scroll_amount": 2, "text": "shift"}))
        .await;
    let e = rec
        .take_when("scroll left", |e| Recorder::count(e, Kind::KeyUp) == 1)
        .await;
    let b = ups(&e, Kind::ButtonDown);
    assert_eq!(b.len(), 2);
    assert!(b.iter().all(|b| b.detail == 6 && b.state & SHIFT != 0));

    // Drag: press at the start, motion, release at the end.
    env.ok(json!({"action": "left_click_drag", "start_coordinate": [100, 100], "coordinate": [200, 150]}))
        .await;
    let e = rec
        .take_when("drag", |e| Recorder::count(e, Kind::ButtonUp) == 1)
        .await;
    let d = ups(&e, Kind::ButtonDown)[0];
    let u = ups(&e, Kind::ButtonUp)[0];
    assert_eq!((d.x, d.y, u.x, u.y), (100, 100, 200, 150));
    assert!(
        e.iter()
            .any(|m| m.kind == Kind::Motion && m.state & 0x100 != 0),
        "motion with button 1 held"
    );

    // Low-level buttons.
    env.ok(json!({"action": "left_mouse_down"})).await;
    env.ok(json!({"action": "mouse_move", "coordinate": [220, 160]}))
        .await;
    env.ok(json!({"action": "left_mouse_up"})).await;
    let e = rec
        .take_when("down/up", |e| Recorder::count(e, Kind::ButtonUp) == 1)
        .await;
    assert_eq!(ups(&e, Kind::ButtonUp)[0].x, 220);
    env.ok(json!({"action": "mouse_down", "button": "right", "coordinate": [7, 8]}))
        .await;
    env.ok(json!({"action": "mouse_up", "button": 3})).await;
    let e = rec
        .take_when("right down/up", |e| Recorder::count(e, Kind::ButtonUp) == 1)
        .await;
    assert_eq!(ups(&e, Kind::ButtonDown)[0].detail, 3);
    env.ok(json!({"action": "click", "button": "back", "count": 2, "coordinate": [9, 9]}))
        .await;
    let e = rec
        .take_when("back x2", |e| Recorder::count(e, Kind::ButtonUp) == 2)
        .await;
    assert!(ups(&e, Kind::ButtonDown).iter().all(|b| b.detail == 8));

    // Extras: wait, screenshot_after.
    let v = env.ok(json!({"action": "wait", "duration": 10})).await;
    assert_eq!(v["output"], "wait action performed");
    let v = env
        .ok(json!({"action": "left_click", "coordinate": [1, 1], "screenshot_after": true, "scaled_width": 320, "scaled_height": 200}))
        .await;
    assert_eq!(v["output"], "left_click action performed");
    assert_eq!(decode_png(&b64(&v["screenshot_data"])).0, 320);
    assert!(v["settled"].is_boolean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_typing() {
    let env = Env::new();
    let rec = Recorder::new(&env);

    // ctrl+l must arrive as Control + l, without Shift.
    let v = env.ok(json!({"action": "key", "text": "ctrl+l"})).await;
    assert_eq!(v["output"], "key action performed");
    let e = rec
        .take_when("ctrl+l", |e| Recorder::count(e, Kind::KeyUp) == 2)
        .await;
    let l = e
        .iter()
        .find(|e| e.kind == Kind::KeyDown && e.keysym == u32::from(b'l'))
        .expect("l pressed");
    assert_eq!(
        l.state & (CTRL | SHIFT),
        CTRL,
        "ctrl+l arrived with state {:#x}",
        l.state
    );

    // Escape must not arrive with Shift.
    env.ok(json!({"action": "key", "text": "Escape"})).await;
    let e = rec
        .take_when("Escape", |e| Recorder::count(e, Kind::KeyUp) == 1)
        .await;
    assert_eq!(e[0].keysym, 0xff1b);
    assert_eq!(e[0].state & SHIFT, 0);

    // Aliases and sequences.
    env.ok(json!({"action": "key", "text": "Enter esc PageDown KP_Enter ctrl+shift+t"}))
        .await;
    let e = rec
        .take_when("sequence", |e| Recorder::count(e, Kind::KeyUp) == 7)
        .await;
    let downs: Vec<u32> = ups(&e, Kind::KeyDown).iter().map(|e| e.keysym).collect();
    assert_eq!(downs[..4], [0xff0d, 0xff1b, 0xff56, 0xff8d]);
    let t = ups(&e, Kind::KeyDown)[6];
    assert_eq!(t.state & (CTRL | SHIFT), CTRL | SHIFT);

    // hold_key, key_down/key_up.
    env.ok(json!({"action": "hold_key", "text": "shift", "duration": 30}))
        .await;
    let e = rec
        .take_when("hold", |e| Recorder::count(e, Kind::KeyUp) == 1)
        .await;
    assert_eq!(e[0].keysym, 0xffe1);
    env.ok(json!({"action": "key_down", "text": "ctrl"})).await;
    env.ok(json!({"action": "left_click", "coordinate": [3, 3]}))
        .await;
    env.ok(json!({"action": "key_up", "text": "ctrl"})).await;
    let e = rec
        .take_when("key_down click", |e| Recorder::count(e, Kind::KeyUp) == 1)
        .await;
    assert_ne!(ups(&e, Kind::ButtonDown)[0].state & CTRL, 0);

    // Unicode typing, newline and tab.
    let text = "Hello, wörld! €ßΩ日本😀\tx\n";
    let v = env.ok(json!({"action": "type", "text": text})).await;
    assert_eq!(v["output"], "type action performed");
    let n = text.chars().count();
    let e = rec
        .take_when("typed text", |e| Recorder::count(e, Kind::KeyUp) >= n)
        .await;
    assert_eq!(Recorder::typed(&e), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let env = Env::new();
    env.ok(json!({"action": "mouse_move", "coordinate": [33, 44]}))
        .await;
    let rec = Recorder::new(&env);
    rec.clear();
    let before = root_pixels(&env.x());
    let check = |(s, v): (StatusCode, Value), needle: &str| {
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        let m = v["message"].as_str().unwrap().to_string();
        assert!(m.contains(needle), "message {m:?} should name {needle:?}");
    };
    check(
        env.post_raw("/api/v0/desktop/action", "{not json").await,
        "Failed to decode request body.",
    );
    let (_, v) = env.post_raw("/api/v0/desktop/action", "{not json").await;
    assert!(v["detail"].is_string());
    check(
        env.act(json!({"action": "teleport"})).await,
        "Unknown action: teleport",
    );
    check(
        env.act(json!({"action": "left_click"})).await,
        "Missing \"coordinate\" for left_click action.",
    );
    let (_, v) = env.act(json!({"action": "left_click"})).await;
    assert_eq!(
        v,
        json!({"message": "Missing \"coordinate\" for left_click action."})
    );
    check(
        env.act(json!({"action": "left_click", "coordinate": [640, 5]}))
            .await,
        "x=640",
    );
    check(
        env.act(json!({"action": "mouse_move", "coordinate": [5, -1]}))
            .await,
        "y=-1",
    );
    check(
        env.act(
            json!({"action": "left_click_drag", "start_coordinate": [-5, 0], "coordinate": [1, 1]}),
        )
        .await,
        "start_coordinate",
    );
    check(
        env.act(json!({"action": "key", "text": "ctrl+Frobnicate"}))
            .await,
        "Frobnicate",
    );
    check(
        env.act(json!({"action": "key", "text": "a Frobnicate"}))
            .await,
        "Frobnicate",
    );
    let big = "a".repeat(1024 * 1024);
    check(
        env.act(json!({"action": "type", "text": big})).await,
        "\"text\"",
    );
    check(
        env.act(json!({"action": "scroll", "coordinate": [1, 1], "scroll_direction": "inward"}))
            .await,
        "inward",
    );
    check(
        env.act(json!({"action": "screenshot", "format": "bmp"}))
            .await,
        "format",
    );
    check(
        env.act(json!({"action": "zoom", "region": [0, 0, 9999, 10]}))
            .await,
        "region",
    );
    check(
        env.act(json!({"action": "hold_key", "text": "a", "duration": -5}))
            .await,
        "duration",
    );

    // Nothing happened: no input events, pointer where it was, screen unchanged.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        rec.events.lock().unwrap().is_empty(),
        "bad requests produced input"
    );
    let v = env.ok(json!({"action": "cursor_position"})).await;
    assert_eq!(v["output"], "x=33,y=44");
    assert!(root_pixels(&env.x()).2 == before.2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_agents_do_not_interleave() {
    let env = Arc::new(Env::new());
    let rec = Recorder::new(&env);
    let mut tasks = Vec::new();
    for agent in 0..2i64 {
        let env = Arc::clone(&env);
        tasks.push(tokio::spawn(async move {
            for i in 0..10i64 {
                let y = 50 + agent * 200 + i;
                env.ok(json!({"action": "left_click_drag", "start_coordinate": [10, y], "coordinate": [300, y]}))
                    .await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let e = rec
        .take_when("20 drags", |e| Recorder::count(e, Kind::ButtonUp) == 20)
        .await;
    let buttons: Vec<Ev> = e
        .iter()
        .filter(|e| matches!(e.kind, Kind::ButtonDown | Kind::ButtonUp))
        .copied()
        .collect();
    for pair in buttons.chunks(2) {
        assert_eq!(
            (pair[0].kind, pair[1].kind),
            (Kind::ButtonDown, Kind::ButtonUp)
        );
        assert_eq!((pair[0].x, pair[1].x), (10, 300));
        assert_eq!(pair[0].y, pair[1].y, "a drag ended on another agent's row");
    }
    // Every motion during a drag stays on its own row.
    let mut row = None;
    for ev in &e {
        match ev.kind {
            Kind::ButtonDown => row = Some(ev.y),
            Kind::ButtonUp => row = None,
            Kind::Motion => {
                if let Some(r) = row {
                    assert_eq!(ev.y, r, "motion from another agent inside a drag");
                }
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn computer_use_adapter() {
    let env = Env::new();
    let rec = Recorder::new(&env);
    let cu = |body: Value| {
        let env = &env;
        async move {
            env.post_raw("/api/v0/desktop/computer-use", body.to_string())
                .await
        }
    };
    let (s, v) = cu(json!({"input": {"action": "screenshot"}, "display_width_px": 320, "display_height_px": 200})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let blocks = v.as_array().unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0]["type"], "image");
    assert_eq!(blocks[0]["source"]["type"], "base64");
    assert_eq!(blocks[0]["source"]["media_type"], "image/png");
    let (w, h, _) = decode_png(&b64(&blocks[0]["source"]["data"]));
    assert_eq!((w, h), (320, 200));

    // Inline form, modifiers on a click, answered with text + screenshot.
    let (s, v) = cu(json!({"action": "left_click", "coordinate": [160, 50], "text": "shift", "display_width_px": 320, "display_height_px": 200})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v[0],
        json!({"type": "text", "text": "left_click action performed"})
    );
    assert_eq!(v[1]["type"], "image");
    let e = rec
        .take_when("cu click", |e| Recorder::count(e, Kind::ButtonUp) == 1)
        .await;
    let b = ups(&e, Kind::ButtonDown)[0];
    assert_eq!((b.x, b.y, b.state & SHIFT), (320, 100, SHIFT));

    let (_, v) =
        cu(json!({"action": "cursor_position", "display_width_px": 320, "display_height_px": 200}))
            .await;
    assert_eq!(v, json!([{"type": "text", "text": "X=160,Y=50"}]));

    let (s, _) = cu(json!({"action": "scroll", "coordinate": [10, 10], "scroll_direction": "up", "scroll_amount": 2})).await;
    assert_eq!(s, StatusCode::OK);
    let e = rec
        .take_when("cu scroll", |e| Recorder::count(e, Kind::ButtonUp) == 2)
        .await;
    assert!(ups(&e, Kind::ButtonDown).iter().all(|b| b.detail == 4));

    let (s, _) = cu(json!({"action": "left_click_drag", "start_coordinate": [10, 10], "coordinate": [100, 60], "display_width_px": 320, "display_height_px": 200})).await;
    assert_eq!(s, StatusCode::OK);
    let e = rec
        .take_when("cu drag", |e| Recorder::count(e, Kind::ButtonUp) == 1)
        .await;
    let (d, u) = (ups(&e, Kind::ButtonDown)[0], ups(&e, Kind::ButtonUp)[0]);
    assert_eq!((d.x, d.y, u.x, u.y), (20, 20, 200, 120));
    let (s, _) = env
        .post_raw(
            "/api/v0/desktop/computer-use?screenshot=false",
            json!({"action": "hold_key", "text": "shift", "duration": 0.05}).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    rec.take_when("cu hold", |e| Recorder::count(e, Kind::KeyUp) == 1)
        .await;
    let (s, v) = cu(json!({"action": "type", "text": "hi"})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v[0]["text"], "type action performed");
    let (_, v) = cu(json!({"action": "zoom", "region": [0, 0, 160, 100], "display_width_px": 320, "display_height_px": 200})).await;
    let (w, h, _) = decode_png(&b64(&v[0]["source"]["data"]));
    assert_eq!(
        (w, h),
        (320, 200),
        "zoom returns the region at native resolution"
    );
    let (s, v) = cu(json!({"action": "wait", "duration": 0.01})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v[1]["type"], "image");
    let (s, v) = cu(json!({"action": "key", "text": "NoSuchKey"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().contains("NoSuchKey"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clipboard_round_trip() {
    common::xvfb::require_tool("xclip", "xclip");
    let env = Env::new();
    for sel in ["clipboard", "primary"] {
        let text = format!("deskd {sel} ✓");
        let req = Request::put(format!("/api/v0/desktop/clipboard?selection={sel}"))
            .header("content-type", "application/json")
            .body(Body::from(json!({"text": text}).to_string()))
            .unwrap();
        let (s, _, _) = env.request(req).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _, body) = env
            .get(&format!("/api/v0/desktop/clipboard?selection={sel}"))
            .await;
        assert_eq!(s, StatusCode::OK);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["text"], text.as_str());
        // Another X client sees it.
        let mut cmd = common::xvfb::x_command(&env.running, "xclip");
        cmd.args(["-o", "-selection", sel]);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), text);
    }
    let (s, _, _) = env
        .get("/api/v0/desktop/clipboard?selection=secondary")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_list_focus_move_resize_close() {
    common::xvfb::require_tool("openbox", "openbox");
    common::xvfb::require_tool("xterm", "xterm");
    let env = Env::with(common::xvfb::desktop_with(deskd::display::DisplayOptions {
        width: W,
        height: H,
        window_manager: deskd::display::WindowManager::Command("openbox --sm-disable".into()),
        ..Default::default()
    }));
    let _a = common::xvfb::spawn_x(
        &env.running,
        "xterm",
        &["-title", "deskd-a", "-geometry", "40x10+0+0"],
    );
    let _b = common::xvfb::spawn_x(
        &env.running,
        "xterm",
        &["-title", "deskd-b", "-geometry", "40x10+200+200"],
    );
    let list = || async {
        let (s, _, body) = env.get("/api/v0/desktop/windows").await;
        assert_eq!(s, StatusCode::OK);
        let v: Value = serde_json::from_slice(&body).unwrap();
        v["windows"].as_array().unwrap().clone()
    };
    let find = |ws: &[Value], title: &str| ws.iter().find(|w| w["title"] == title).cloned();
    let end = Instant::now() + Duration::from_secs(15);
    let (a, b) = loop {
        let ws = list().await;
        if let (Some(a), Some(b)) = (find(&ws, "deskd-a"), find(&ws, "deskd-b")) {
            break (a, b);
        }
        assert!(Instant::now() < end, "xterms never listed: {ws:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(a["class"], "XTerm");
    assert!(a["pid"].as_u64().unwrap() > 0);
    assert!(a["geometry"]["width"].as_u64().unwrap() > 50);
    let (ida, idb) = (a["id"].as_u64().unwrap(), b["id"].as_u64().unwrap());

    for id in [ida, idb, ida] {
        let (s, v) = env
            .post_raw(&format!("/api/v0/desktop/windows/{id}/focus"), "")
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let ws = list().await;
            let w = ws.iter().find(|w| w["id"] == id).unwrap();
            if w["focused"] == true {
                break;
            }
            assert!(Instant::now() < end, "window {id} never focused");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let (s, _) = env
        .post_raw(
            &format!("/api/v0/desktop/windows/{idb}/move"),
            json!({"x": 50, "y": 60}).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = env
        .post_raw(
            &format!("/api/v0/desktop/windows/{idb}/resize"),
            json!({"width": 300, "height": 150}).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let ws = list().await;
        let w = ws.iter().find(|w| w["id"] == idb).unwrap();
        let (f, g) = (&w["frame"], &w["geometry"]);
        if f["x"] == 50
            && f["y"] == 60
            && g["width"].as_u64().unwrap().abs_diff(300) < 12
            && g["height"].as_u64().unwrap().abs_diff(150) < 20
        {
            break;
        }
        assert!(Instant::now() < end, "window never moved/resized: {w}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (s, v) = env
        .post_raw(
            &format!("/api/v0/desktop/windows/{idb}/move"),
            json!({"x": 5}).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().contains("\"y\""));
    let (s, _) = env
        .post_raw("/api/v0/desktop/windows/12345/focus", "")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = env.post_raw("/api/v0/desktop/windows/zzz/focus", "").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (s, _) = env
        .post_raw(&format!("/api/v0/desktop/windows/{ida}/close"), "")
        .await;
    assert_eq!(s, StatusCode::OK);
    let end = Instant::now() + Duration::from_secs(10);
    while list().await.iter().any(|w| w["id"] == ida) {
        assert!(Instant::now() < end, "window never closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_metrics_and_openapi() {
    let env = Env::new();
    env.ok(json!({"action": "mouse_move", "coordinate": [1, 1]}))
        .await;
    let (s, _, body) = env.get("/api/v0/desktop/status").await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["display"], env.running.display());
    assert_eq!(
        (v["width"].clone(), v["height"].clone()),
        (json!(W), json!(H))
    );
    assert_eq!(v["x_server"]["state"], "running");
    assert!(v["x_server"]["restarts"].is_u64());
    assert!(v["frames_captured"].is_u64());
    assert!(v["actions"].as_u64().unwrap() >= 1);
    assert!(v["capture"]["avg_ms"].is_number());

    let (s, hd, body) = env.get("/metrics").await;
    assert_eq!(s, StatusCode::OK);
    assert!(hd["content-type"].starts_with("text/plain"));
    let text = String::from_utf8(body).unwrap();
    for name in [
        "deskd_frames_captured_total",
        "deskd_actions_total",
        "deskd_x_server_up 1",
        "deskd_screen_width_pixels 640",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}:\n{text}");
    }
    // Every sample line is `name value` with a number.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, val) = line.rsplit_once(' ').unwrap();
        assert!(val.parse::<f64>().is_ok(), "bad sample {line}");
    }

    let (s, _, body) = env.get("/api/v0/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["openapi"].as_str().unwrap().get(..3), Some("3.1"));
    // Every route the routers register is documented with its method, from the same tables
    // the routers are built from (a route added without docs fails here); /v1 errors are
    // problem+json, /api/v0 errors Coder's shape.
    let routes = deskd::api::registered_routes();
    assert!(routes.len() > 45, "{} routes", routes.len());
    for (verb, path) in &routes {
        let op = &doc["paths"][*path][verb.name()];
        assert!(op.is_object(), "OpenAPI lacks {} {path}", verb.name());
        let errors = &op["responses"]["4XX"]["content"];
        if path.starts_with("/v1/") {
            assert_eq!(
                errors["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/ProblemBody",
                "{path}"
            );
        } else if errors.is_object() {
            assert_eq!(
                errors["application/json"]["schema"]["$ref"], "#/components/schemas/Error",
                "{path}"
            );
        }
    }
    // And nothing else: the document describes no route that is not served.
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, routes.len());
    // Request and response bodies come from the types.
    let schemas = &doc["components"]["schemas"];
    for name in [
        "DesktopActionResponse",
        "ComputerUseRequest",
        "ContentBlock",
        "Window",
        "Status",
        "DesktopStatusResponse",
        "DesktopMouseClickRequest",
        "DesktopKeyModifiers",
        "DesktopRecordingInfo",
    ] {
        assert!(schemas[name].is_object(), "OpenAPI lacks schema {name}");
    }
    assert_eq!(
        schemas["DesktopStatusResponse"]["properties"]["startedAt"]["type"],
        json!(["string", "null"])
    );
    // Every action the endpoint accepts is documented.
    let actions = doc["components"]["schemas"]["DesktopAction"]["properties"]["action"]["enum"]
        .as_array()
        .unwrap()
        .clone();
    for a in [
        "key",
        "type",
        "cursor_position",
        "mouse_move",
        "left_click",
        "left_click_drag",
        "left_mouse_down",
        "left_mouse_up",
        "right_click",
        "middle_click",
        "double_click",
        "triple_click",
        "scroll",
        "hold_key",
        "screenshot",
        "key_down",
        "key_up",
        "mouse_down",
        "mouse_up",
        "click",
        "zoom",
        "wait",
    ] {
        assert!(actions.contains(&json!(a)), "OpenAPI lacks action {a}");
    }
    // Validate with openapi-spec-validator (PyPI).
    let dir = std::env::temp_dir().join(format!("deskd-openapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("openapi.json");
    std::fs::write(&file, body_string(&doc)).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python3 missing: install python3");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "openapi-spec-validator failed (pip install openapi-spec-validator):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn body_string(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap()
}
