//! Action API round trips through HTTP on 127.0.0.1 against the xdotool + ImageMagick `import`
//! pipeline agents use without deskd, both on the same Xvfb in the same run.
//!
//! `cargo bench --bench actions` prints medians, the ratio pipeline/deskd, and the targets
//! (left_click p50 <= 1 ms, 1280x800 PNG <= 20 ms, JPEG <= 6 ms, >= 10x faster).
//!
//! A second table compares deskd's `/v1/desktop/*` (sandbox-agent's API) with sandbox-agent's
//! own server (npm `@sandbox-agent/cli-linux-x64`, from `web/node_modules`) on its own Xvfb of
//! the same size and content, both through plain HTTP keep-alive (targets: screenshot >= 20x,
//! click >= 100x, type "hello" >= 20x, window list >= 20x).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deskd::display::{DisplayOptions, RunningDesktop, WindowManager};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{self, ConnectionExt as _, CreateWindowAux};

/// A minimal keep-alive HTTP/1.1 client (no client library in the measurement).
struct Http {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Http {
    fn connect(port: u16) -> Http {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_nodelay(true).unwrap();
        Http {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        }
    }

    fn call(&mut self, method: &str, path: &str, body: &str) -> (u16, Vec<u8>) {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.w.write_all(req.as_bytes()).unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut len = 0usize;
        loop {
            line.clear();
            self.r.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; len];
        self.r.read_exact(&mut body).unwrap();
        (status, body)
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(n: usize, mut f: impl FnMut(usize)) -> Duration {
    for i in 0..n.min(5) {
        f(i);
    }
    let mut t = Vec::with_capacity(n);
    for i in 0..n {
        let s = Instant::now();
        f(i);
        t.push(s.elapsed());
    }
    median(t)
}

struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(d: &RunningDesktop, prog: &str, args: &[&str]) -> usize {
    let out = Command::new(prog)
        .envs(d.client_env())
        .args(args)
        .stderr(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e} (install xdotool and imagemagick)"));
    assert!(out.status.success(), "{prog} {args:?} failed");
    out.stdout.len()
}

/// Realistic content: a gradient background and two terminals full of text.
fn content(d: &RunningDesktop) -> (Vec<Guard>, x11rb::rust_connection::RustConnection) {
    let (c, screen) = d.server().connect().unwrap();
    content_on(c, screen, &d.client_env())
}

/// [`content`] through any connection; the terminals get `env`.
fn content_on(
    c: x11rb::rust_connection::RustConnection,
    screen: usize,
    env: &[(String, String)],
) -> (Vec<Guard>, x11rb::rust_connection::RustConnection) {
    let s = &c.setup().roots[screen];
    let (root, depth, w, h) = (s.root, s.root_depth, s.width_in_pixels, s.height_in_pixels);
    let win = c.generate_id().unwrap();
    c.create_window(
        0,
        win,
        root,
        0,
        0,
        w,
        h,
        0,
        xproto::WindowClass::INPUT_OUTPUT,
        0,
        // Not managed: the window manager lists only the terminals.
        &CreateWindowAux::new().override_redirect(1),
    )
    .unwrap();
    c.map_window(win).unwrap();
    let gc = c.generate_id().unwrap();
    c.create_gc(gc, win, &Default::default()).unwrap();
    for band in 0..h / 16 {
        let mut data = Vec::with_capacity(usize::from(w) * 16 * 4);
        for y in 0..16u32 {
            for x in 0..u32::from(w) {
                let yy = u32::from(band) * 16 + y;
                data.extend_from_slice(&[(x / 5) as u8, (yy / 4) as u8, ((x + yy) / 8) as u8, 0]);
            }
        }
        c.put_image(
            xproto::ImageFormat::Z_PIXMAP,
            win,
            gc,
            w,
            16,
            0,
            (band * 16) as i16,
            0,
            depth,
            &data,
        )
        .unwrap();
    }
    c.flush().unwrap();
    let mut kids = Vec::new();
    for (geo, dir) in [("100x30+0+0", "/usr/bin"), ("90x25+500+350", "/usr/lib")] {
        let child = Command::new("xterm")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["-geometry", geo, "-hold", "-e", "ls", "-l", dir])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("xterm (install xterm)");
        kids.push(Guard(child));
    }
    std::thread::sleep(Duration::from_secs(2));
    (kids, c)
}

fn main() {
    // `cargo test --benches` runs benches with no arguments beyond --bench; keep that quick.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let running = deskd::display::start(DisplayOptions {
        width: 1280,
        height: 800,
        // openbox, as sandbox-agent runs: the window list is the window manager's.
        window_manager: WindowManager::Auto,
        ..DisplayOptions::default()
    })
    .expect("Xvfb");
    let (_kids, _conn) = content(&running);

    let app = deskd::api::router_with_server(
        running.desktop.clone(),
        running.display(),
        Arc::clone(running.server()),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move { axum::serve(listener, app).await });
    let mut http = Http::connect(port);

    let action = |http: &mut Http, body: &str| {
        let (s, b) = http.call("POST", "/api/v0/desktop/action", body);
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    };
    let shot = |http: &mut Http, q: &str| {
        let (s, b) = http.call("GET", &format!("/api/v0/desktop/screenshot{q}"), "");
        assert_eq!(s, 200);
        b.len()
    };

    let mut rows: Vec<(&str, Duration, Duration, Option<Duration>)> = Vec::new();
    let d = time(300, |_| {
        action(
            &mut http,
            r#"{"action":"left_click","coordinate":[1200,780]}"#,
        )
    });
    let p = time(30, |_| {
        run(
            &running,
            "xdotool",
            &["mousemove", "1200", "780", "click", "1"],
        );
    });
    rows.push(("left_click", d, p, Some(Duration::from_millis(1))));
    let d = time(300, |_| {
        action(&mut http, r#"{"action":"key","text":"shift"}"#)
    });
    let p = time(30, |_| {
        run(&running, "xdotool", &["key", "shift"]);
    });
    rows.push(("key", d, p, None));
    let d = time(300, |i| {
        let x = 100 + (i % 500);
        action(
            &mut http,
            &format!(r#"{{"action":"mouse_move","coordinate":[{x},400]}}"#),
        )
    });
    let p = time(30, |i| {
        let x = (100 + (i % 500)).to_string();
        run(&running, "xdotool", &["mousemove", &x, "400"]);
    });
    rows.push(("mouse_move", d, p, None));

    let png_size = shot(&mut http, "");
    let d = time(40, |_| {
        shot(&mut http, "");
    });
    let p = time(10, |_| {
        run(&running, "import", &["-window", "root", "png:-"]);
    });
    rows.push((
        "screenshot 1280x800 PNG",
        d,
        p,
        Some(Duration::from_millis(20)),
    ));
    let jpeg_size = shot(&mut http, "?format=jpeg");
    let d = time(60, |_| {
        shot(&mut http, "?format=jpeg");
    });
    let p = time(10, |_| {
        run(
            &running,
            "import",
            &["-window", "root", "-quality", "80", "jpeg:-"],
        );
    });
    rows.push((
        "screenshot 1280x800 JPEG q80",
        d,
        p,
        Some(Duration::from_millis(6)),
    ));
    let d = time(40, |_| {
        shot(&mut http, "?width=1280&height=720");
    });
    let p = time(10, |_| {
        run(
            &running,
            "import",
            &["-window", "root", "-resize", "1280x720!", "png:-"],
        );
    });
    rows.push(("screenshot scaled 1280x720 PNG", d, p, None));
    let d = time(40, |_| {
        action(
            &mut http,
            r#"{"action":"screenshot","scaled_width":1280,"scaled_height":720}"#,
        )
    });
    rows.push(("action screenshot 1280x720 (base64 JSON)", d, p, None));

    println!("\naction API vs xdotool + ImageMagick import, same Xvfb (1280x800), medians");
    println!("PNG {png_size} bytes, JPEG {jpeg_size} bytes");
    println!(
        "{:<42} {:>11} {:>13} {:>8}  target",
        "operation", "deskd", "pipeline", "ratio"
    );
    let mut all_ok = true;
    for (name, d, p, target) in rows {
        let ratio = p.as_secs_f64() / d.as_secs_f64();
        let t = match target {
            Some(t) => {
                let ok = d <= t && ratio >= 10.0;
                all_ok &= ok;
                format!(
                    "<= {:.0} ms and >= 10x: {}",
                    t.as_secs_f64() * 1e3,
                    if ok { "met" } else { "MISSED" }
                )
            }
            None => {
                let ok = ratio >= 10.0;
                all_ok &= ok;
                format!(">= 10x: {}", if ok { "met" } else { "MISSED" })
            }
        };
        println!(
            "{name:<42} {:>8.3} ms {:>10.2} ms {:>7.1}x  {t}",
            d.as_secs_f64() * 1e3,
            p.as_secs_f64() * 1e3,
            ratio
        );
    }
    println!("all targets {}", if all_ok { "met" } else { "NOT met" });

    versus_sandbox_agent(&mut http);
    drop(rt);
}

/// sandbox-agent's server (the npm package's binary) with its own desktop; stopped on drop.
struct SandboxAgent {
    _proc: Guard,
    port: u16,
    home: std::path::PathBuf,
}

impl SandboxAgent {
    fn start(width: u16, height: u16) -> (SandboxAgent, String) {
        let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("web/node_modules/@sandbox-agent/cli-linux-x64/bin/sandbox-agent");
        assert!(
            bin.is_file(),
            "{} missing: run `npm install` in web/",
            bin.display()
        );
        // npm does not run the package's chmod postinstall unless allowed.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let home = std::env::temp_dir().join(format!("deskd-bench-sa-{}", std::process::id()));
        std::fs::create_dir_all(&home).unwrap();
        let proc = Command::new(&bin)
            .args([
                "server",
                "--no-token",
                "--no-telemetry",
                "-p",
                &port.to_string(),
            ])
            .env("HOME", &home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sandbox-agent server");
        let sa = SandboxAgent {
            _proc: Guard(proc),
            port,
            home,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
                drop(s);
                let (code, _) = Http::connect(port).call("GET", "/v1/health", "");
                if code == 200 {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "sandbox-agent did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        let number = (0..100u16)
            .map(|i| 470 + i)
            .find(|n| !std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
            .unwrap();
        let (code, body) = Http::connect(port).call(
            "POST",
            "/v1/desktop/start",
            &format!(r#"{{"width":{width},"height":{height},"displayNum":{number}}}"#),
        );
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
        (sa, format!(":{number}"))
    }
}

impl Drop for SandboxAgent {
    fn drop(&mut self) {
        // Its Xvfb outlives the server when the server is just killed.
        let _ = Http::connect(self.port).call("POST", "/v1/desktop/stop", "");
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// deskd's `/v1` against sandbox-agent's server, same size and content, plain HTTP.
fn versus_sandbox_agent(deskd: &mut Http) {
    let (sa, display) = SandboxAgent::start(1280, 800);
    let (c, screen) = x11rb::connect(Some(&display)).expect("sandbox-agent's Xvfb");
    let (_kids, _conn) = content_on(c, screen, &[("DISPLAY".into(), display.clone())]);
    let mut peer = Http::connect(sa.port);
    let call = |http: &mut Http, method: &str, path: &str, body: &str| {
        let (s, b) = http.call(method, path, body);
        assert_eq!(s, 200, "{path}: {}", String::from_utf8_lossy(&b));
        b.len()
    };
    let png = (
        call(deskd, "GET", "/v1/desktop/screenshot", ""),
        call(&mut peer, "GET", "/v1/desktop/screenshot", ""),
    );
    let cases: [(&str, &str, &str, &str, usize, f64); 4] = [
        (
            "screenshot PNG 1280x800",
            "GET",
            "/v1/desktop/screenshot",
            "",
            40,
            20.0,
        ),
        (
            "click",
            "POST",
            "/v1/desktop/mouse/click",
            r#"{"x":1200,"y":780}"#,
            300,
            100.0,
        ),
        (
            "type \"hello\"",
            "POST",
            "/v1/desktop/keyboard/type",
            r#"{"text":"hello"}"#,
            200,
            20.0,
        ),
        ("window list", "GET", "/v1/desktop/windows", "", 200, 20.0),
    ];
    println!("\n/v1 desktop API: deskd vs sandbox-agent 0.4.2 (same machine, 1280x800, medians)");
    println!("PNG bytes: deskd {} / sandbox-agent {}", png.0, png.1);
    println!(
        "{:<28} {:>11} {:>15} {:>9}  target",
        "operation", "deskd", "sandbox-agent", "ratio"
    );
    let mut all_ok = true;
    for (name, method, path, body, n, target) in cases {
        let d = time(n, |_| {
            call(deskd, method, path, body);
        });
        let p = time(12, |_| {
            call(&mut peer, method, path, body);
        });
        let ratio = p.as_secs_f64() / d.as_secs_f64();
        let ok = ratio >= target;
        all_ok &= ok;
        println!(
            "{name:<28} {:>8.3} ms {:>12.2} ms {:>8.1}x  >= {target:.0}x: {}",
            d.as_secs_f64() * 1e3,
            p.as_secs_f64() * 1e3,
            ratio,
            if ok { "met" } else { "MISSED" }
        );
    }
    println!(
        "sandbox-agent targets {}",
        if all_ok { "met" } else { "NOT met" }
    );
}
