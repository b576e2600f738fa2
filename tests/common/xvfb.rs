//! A real desktop for integration tests: each call starts its own Xvfb on a free display
//! (through `deskd::display::start`, so capture, XTEST input and clipboard are live), no window
//! manager, and everything is killed when the returned value is dropped.
//!
//! ```ignore
//! mod common;
//! let d = common::xvfb::desktop(640, 480);
//! d.desktop.input.pointer_move(10, 10).unwrap();
//! let mut cmd = common::xvfb::x_command(&d, "xclip"); // DISPLAY/XAUTHORITY set
//! ```

use std::process::{Child, Command, Stdio};

use deskd::display::{self, DisplayOptions, RunningDesktop, WindowManager};

/// Fail (not skip) with an install hint when a tool is missing.
pub fn require_tool(prog: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{prog} not found: install the Debian package {package}"
    );
}

/// Start a desktop of the given size on its own Xvfb (no window manager).
pub fn desktop(width: u16, height: u16) -> RunningDesktop {
    desktop_with(DisplayOptions {
        width,
        height,
        window_manager: WindowManager::None,
        ..DisplayOptions::default()
    })
}

/// Start a desktop with explicit options.
pub fn desktop_with(opts: DisplayOptions) -> RunningDesktop {
    require_tool("Xvfb", "xvfb");
    display::start(opts).expect("starting Xvfb desktop")
}

/// A command for an X client on the desktop (DISPLAY and XAUTHORITY set).
pub fn x_command(d: &RunningDesktop, prog: &str) -> Command {
    let mut c = Command::new(prog);
    c.envs(d.client_env());
    c
}

/// A child process killed on drop.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawn an X client on the desktop, killed when the guard drops.
pub fn spawn_x(d: &RunningDesktop, prog: &str, args: &[&str]) -> ChildGuard {
    let child = x_command(d, prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("running {prog}: {e}"));
    ChildGuard(child)
}

/// A bare Xvfb (no deskd) for attach-mode tests: `(guard, ":N")`. Uses no auth so any client
/// on this machine may connect — only for tests.
pub fn bare_xvfb(width: u16, height: u16, extra: &[&str]) -> (ChildGuard, String) {
    use std::io::{BufRead, BufReader};
    require_tool("Xvfb", "xvfb");
    let mut child = Command::new("Xvfb")
        .args(["-displayfd", "1", "-nolisten", "tcp", "-screen", "0"])
        .arg(format!("{width}x{height}x24"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("running Xvfb");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .expect("display number");
    let n: u16 = line.trim().parse().expect("display number");
    (ChildGuard(child), format!(":{n}"))
}
