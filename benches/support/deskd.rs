//! deskd as a child process on ephemeral ports, for the end-to-end benches (included with
//! `#[path]`; the bench must also include `tests/common/xvfb.rs` as `mod xvfb`).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::thread;

use crate::xvfb::ChildGuard;

/// A running deskd and the ports it listens on.
pub struct Spawned {
    pub proc: ChildGuard,
    pub rfb: u16,
    pub http: u16,
}

/// Start `bin` on `display` with `extra` flags on ephemeral ports, read from its one stdout
/// line `deskd: listening http=A rfb=B display=:N`.
pub fn spawn(bin: &OsStr, display: &str, extra: &[&OsStr]) -> Spawned {
    let mut child = Command::new(bin)
        .args(["--display", display])
        .args(extra)
        .args([
            "--listen-http",
            "127.0.0.1:0",
            "--listen-rfb",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn deskd");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let proc = ChildGuard(child);
    let mut line = String::new();
    stdout.read_line(&mut line).expect("deskd stdout");
    // Keep draining so a later write to stdout never fails.
    thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let port = |name: &str| -> u16 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
            .unwrap_or_else(|| panic!("no {name} address in deskd's line {line:?}"))
            .port()
    };
    Spawned {
        rfb: port("rfb="),
        http: port("http="),
        proc,
    }
}
