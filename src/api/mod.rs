//! The HTTP API for agents and tools: Coder's action endpoint (plus extensions), an Anthropic
//! computer-use adapter, screenshots, windows, clipboard, status, Prometheus metrics and the
//! OpenAPI document. Input and pixels go through the same [`Desktop`] traits as RFB clients.

pub mod action;
pub mod clipboard;
pub mod computer_use;
pub mod error;
pub mod keys;
pub mod link;
pub mod model;
pub mod openapi;
pub mod routes;
pub mod scale;
pub mod screenshot;
pub mod screenshot_options;
pub mod status;
pub mod v1;
pub mod windows;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;

use crate::desktop::Desktop;
use crate::display::conn::XServer;
use routes::{route, Route, Verb};

/// Bodies above this are refused (413) before parsing; below it, oversized fields such as a
/// 1 MB `type` text get a 400 that names them.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The desktop.
    pub desktop: Desktop,
    /// The X display name, e.g. ":7".
    pub display: String,
    /// The EWMH window helper (its own X connection, opened on first use).
    pub windows: Arc<windows::Windows>,
    /// Applications launched through `/v1/desktop/launch` and `open`.
    pub apps: Arc<crate::apps::Apps>,
    /// When the API started (the `startedAt` of a display deskd only attached to).
    pub started: std::time::SystemTime,
    /// Screen recordings (`None` for a router built without deskd's server).
    pub recorder: Option<crate::record::Recorder>,
}

/// Every API route: `/api/v0/desktop/...`, `/api/v0/openapi.json` and `/metrics`. The window
/// endpoints connect to `display` with `$XAUTHORITY`; for a display deskd started, use
/// [`router_with_server`] so they get its cookie and follow restarts.
pub fn router(desktop: Desktop, display: String) -> Router {
    router_with(desktop, display, None, None)
}

/// [`router`] whose window endpoints connect through `server` (e.g.
/// `RunningDesktop::server()`).
pub fn router_with_server(desktop: Desktop, display: String, server: Arc<XServer>) -> Router {
    router_with(desktop, display, Some(server), None)
}

/// [`router`] with an optional X server handle and the recorder behind `/v1`'s recording
/// endpoints.
pub fn router_with(
    desktop: Desktop,
    display: String,
    server: Option<Arc<XServer>>,
    recorder: Option<crate::record::Recorder>,
) -> Router {
    let state = ApiState {
        recorder,
        windows: Arc::new(windows::Windows::new(display.clone(), server)),
        apps: Arc::new(crate::apps::Apps::new()),
        started: std::time::SystemTime::now(),
        desktop,
        display,
    };
    routes::router(v0_routes())
        .merge(routes::router(v1::routes()))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The `/api/v0` routes, `/metrics` and the OpenAPI document.
fn v0_routes() -> Vec<Route<ApiState>> {
    use Verb::{Get, Post, Put};
    vec![
        route(Post, "/api/v0/desktop/action", action::handle),
        route(Post, "/api/v0/desktop/computer-use", computer_use::handle),
        route(Get, "/api/v0/desktop/screenshot", screenshot::handle_get),
        route(Get, "/api/v0/desktop/windows", windows::list),
        route(Post, "/api/v0/desktop/windows/{id}/focus", windows::focus),
        route(Post, "/api/v0/desktop/windows/{id}/close", windows::close),
        route(Post, "/api/v0/desktop/windows/{id}/move", windows::move_to),
        route(Post, "/api/v0/desktop/windows/{id}/resize", windows::resize),
        route(Get, "/api/v0/desktop/clipboard", clipboard::get_text),
        route(Put, "/api/v0/desktop/clipboard", clipboard::put_text),
        route(Get, "/api/v0/desktop/status", status::status),
        route(Get, "/metrics", status::metrics),
        route(Get, "/api/v0/openapi.json", openapi::document),
    ]
}

/// Every (method, path) the API serves: [`router_with`]'s routes and [`link::router`]'s. The
/// OpenAPI document must describe each.
pub fn registered_routes() -> Vec<(Verb, &'static str)> {
    let mut all = routes::listed(v0_routes());
    all.extend(routes::listed(v1::routes()));
    all.extend(routes::listed(link::routes()));
    all
}

#[cfg(test)]
mod tests {
    //! The router against fakes: desktop failures, settling and concurrency without X.
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use rfb::Rect;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    use crate::capture::synthetic::SyntheticSource;
    use crate::clipboard::{Clipboard, Selection};
    use crate::desktop::{Desktop, DesktopError, DisplayStatus, StatusSource};
    use crate::input::fake::{FakeInput, InputEvent};

    struct NoClipboard;
    impl Clipboard for NoClipboard {
        fn set_text(&self, _: Selection, _: &str) -> Result<(), DesktopError> {
            Err(DesktopError::Unavailable("no clipboard".into()))
        }
        fn get_text(&self, _: Selection) -> Result<Option<String>, DesktopError> {
            Ok(None)
        }
        fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<str>> {
            tokio::sync::broadcast::channel(1).1
        }
    }
    struct Status;
    impl StatusSource for Status {
        fn status(&self) -> DisplayStatus {
            DisplayStatus {
                state: "running".into(),
                ..Default::default()
            }
        }
    }

    fn fake() -> (Arc<SyntheticSource>, Arc<FakeInput>, axum::Router) {
        let frames = Arc::new(SyntheticSource::new(64, 48));
        let input = Arc::new(FakeInput::new());
        let desktop = Desktop {
            frames: frames.clone(),
            input: input.clone(),
            clipboard: Arc::new(NoClipboard),
            status: Arc::new(Status),
            action_lock: Arc::new(tokio::sync::Mutex::new(())),
        };
        (frames, input, super::router(desktop, ":none".into()))
    }

    async fn post(app: &axum::Router, body: Value) -> (StatusCode, Value) {
        let req = Request::post("/api/v0/desktop/action")
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let b = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&b).unwrap())
    }

    #[tokio::test]
    async fn desktop_failure_is_503_with_coders_message() {
        let (_, input, app) = fake();
        input.set_failure(Some("X server gone"));
        let (s, v) = post(&app, json!({"action": "left_click", "coordinate": [1, 1]})).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(v["message"], "Left click failed.");
        assert!(v["detail"].as_str().unwrap().contains("X server gone"));
        let (s, v) = post(&app, json!({"action": "type", "text": "x"})).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(v["message"], "Type action failed.");
        input.set_failure(None);
        let (s, _) = post(&app, json!({"action": "mouse_move", "coordinate": [2, 2]})).await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = post(&app, json!({"action": "cursor_position"})).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["output"], "x=2,y=2");
    }

    async fn call(
        app: &axum::Router,
        method: &str,
        path: &str,
        body: &str,
    ) -> (StatusCode, String, Vec<u8>) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::from(body.to_owned()))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let b = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, ct, b.to_vec())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn v1_on_a_display_deskd_did_not_start() {
        let (_, input, app) = fake();
        let (s, _, b) = call(&app, "GET", "/v1/health", "").await;
        assert_eq!(
            (s, b.as_slice()),
            (StatusCode::OK, &br#"{"status":"ok"}"#[..])
        );
        let (s, _, b) = call(&app, "GET", "/v1/desktop/status", "").await;
        assert_eq!(s, StatusCode::OK);
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["state"], "active");
        // Attached: stop refuses, start only confirms what runs.
        let (s, ct, b) = call(&app, "POST", "/v1/desktop/stop", "").await;
        assert_eq!(
            (s, ct.as_str()),
            (StatusCode::CONFLICT, "application/problem+json")
        );
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["code"], "desktop_not_managed");
        assert_eq!(
            call(&app, "POST", "/v1/desktop/start", "{}").await.0,
            StatusCode::OK
        );
        let (s, _, _) = call(&app, "POST", "/v1/desktop/start", r#"{"width":99}"#).await;
        assert_eq!(s, StatusCode::CONFLICT);
        // Input reaches the desktop; malformed bodies are problems, not plain text.
        let (s, _, b) = call(
            &app,
            "POST",
            "/v1/desktop/keyboard/type",
            r#"{"text":"hi"}"#,
        )
        .await;
        assert_eq!((s, b.as_slice()), (StatusCode::OK, &br#"{"ok":true}"#[..]));
        let keys = input
            .take()
            .into_iter()
            .filter(|e| matches!(e, InputEvent::Key(_, true)))
            .count();
        assert_eq!(keys, 2);
        for (body, want) in [
            ("{}", StatusCode::UNPROCESSABLE_ENTITY),
            ("nope", StatusCode::BAD_REQUEST),
        ] {
            let (s, ct, _) = call(&app, "POST", "/v1/desktop/keyboard/type", body).await;
            assert_eq!((s, ct.as_str()), (want, "application/problem+json"));
        }
        let (s, ct, b) = call(
            &app,
            "GET",
            "/v1/desktop/screenshot/region?x=0&y=0&width=8&height=4",
            "",
        )
        .await;
        assert_eq!((s, ct.as_str()), (StatusCode::OK, "image/png"));
        assert_eq!(&b[1..4], b"PNG");
        let (s, _, b) = call(&app, "POST", "/v1/desktop/stream/start", "").await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert!(String::from_utf8_lossy(&b).contains("/websockify"));
    }

    #[tokio::test]
    async fn hold_key_presses_then_releases() {
        let (_, input, app) = fake();
        let (s, _) = post(
            &app,
            json!({"action": "hold_key", "text": "ctrl+a", "duration": 1}),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let keys: Vec<InputEvent> = input
            .take()
            .into_iter()
            .filter(|e| matches!(e, InputEvent::Key(..)))
            .collect();
        assert_eq!(
            keys,
            vec![
                InputEvent::Key(0xffe3, true),
                InputEvent::Key(0x61, true),
                InputEvent::Key(0x61, false),
                InputEvent::Key(0xffe3, false)
            ]
        );
    }

    /// Issue 13 item 4: a hold or a drag whose third key fails releases what went through.
    #[tokio::test]
    async fn a_failed_hold_or_drag_releases_what_it_pressed() {
        let (_, input, app) = fake();
        input.fail_keysym(Some(0xffe9));
        for body in [
            json!({"action": "hold_key", "text": "ctrl+shift+alt", "duration": 1}),
            json!({"action": "left_click_drag", "start_coordinate": [1, 1],
                   "coordinate": [9, 9], "text": "ctrl+shift+alt"}),
        ] {
            let (s, _) = post(&app, body).await;
            assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
            assert!(input.events().contains(&InputEvent::Key(0xffe1, true)));
            assert!(input.down().is_empty(), "still down: {:?}", input.down());
            input.take();
        }
    }

    /// Issue 13 item 10: another caller runs while a hold_key sleeps (it does not hold the
    /// desktop for the hold's duration).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_callers_run_during_a_hold() {
        let (_, input, app) = fake();
        let app2 = app.clone();
        let hold = tokio::spawn(async move {
            post(
                &app2,
                json!({"action": "hold_key", "text": "shift", "duration": 3000}),
            )
            .await
        });
        // Wait until shift is down, then move the mouse: it finishes before shift is up.
        while !input.events().contains(&InputEvent::Key(0xffe1, true)) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (s, _) = post(&app, json!({"action": "mouse_move", "coordinate": [3, 3]})).await;
        assert_eq!(s, StatusCode::OK);
        let events = input.events();
        assert!(
            !events.contains(&InputEvent::Key(0xffe1, false)),
            "the move waited for the hold: {events:?}"
        );
        assert_eq!(hold.await.unwrap().0, StatusCode::OK);
        assert!(input.events().contains(&InputEvent::Key(0xffe1, false)));
        assert!(input.down().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn settle_waits_for_a_quiet_screen() {
        let (frames, _, app) = fake();
        // A screen that keeps changing never settles; the timeout bounds the wait.
        let busy = frames.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let t = std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                busy.fill(Rect::new(0, 0, 4, 4), i);
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let (s, v) = post(
            &app,
            json!({"action": "screenshot", "settle": 100, "settle_timeout": 300}),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["settled"], false);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        t.join().unwrap();
        let (_, v) = post(&app, json!({"action": "screenshot", "settle": 30})).await;
        assert_eq!(v["settled"], true);
    }
}
