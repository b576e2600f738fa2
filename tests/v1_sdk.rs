//! sandbox-agent's SDK (npm `sandbox-agent`, the client agents use) against deskd's `/v1`
//! desktop API: one Node script (`tests/sdk/v1_surface.mjs`) exercises the whole surface on a
//! deskd running its own Xvfb and checks every outcome against X with xdpyinfo, xwininfo,
//! xdotool, xev, xclip and ImageMagick.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod e2e_support;

use std::process::Command;

use e2e_support::{require_tool, root, Deskd};

/// A display number nobody holds now (the test restarts deskd's X server on it).
fn free_display() -> u16 {
    let pid = std::process::id();
    (0..200u16)
        .map(|i| 300 + ((pid as u16).wrapping_add(i * 7)) % 600)
        .find(|n| {
            !std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists()
                && !std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
        })
        .expect("a free X display number")
}

#[test]
fn sdk_drives_the_whole_desktop_surface() {
    for (tool, package) in [
        ("node", "nodejs"),
        ("xterm", "xterm"),
        ("xev", "x11-utils"),
        ("xwininfo", "x11-utils"),
        ("xdpyinfo", "x11-utils"),
        ("xdotool", "xdotool"),
        ("xclip", "xclip"),
        ("import", "imagemagick"),
        ("xdg-open", "xdg-utils"),
        ("openbox", "openbox"),
    ] {
        require_tool(tool, package);
    }
    assert!(
        root().join("web/node_modules/sandbox-agent").is_dir(),
        "web/node_modules/sandbox-agent missing: run `npm install` in web/"
    );
    let token = "v1-sdk-test-token";
    let d = Deskd::start_managed(&["--api-token", token]);
    let work = std::env::temp_dir().join(format!("deskd-v1-sdk-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let out = Command::new("node")
        .arg(root().join("tests/sdk/v1_surface.mjs"))
        .env("DESKD_URL", format!("http://{}", d.http))
        .env("DESKD_TOKEN", token)
        .env(
            "XAUTHORITY",
            d.xauthority.as_deref().expect("deskd logs its Xauthority"),
        )
        .env("DISPLAY_NUM", free_display().to_string())
        .env("WORK_DIR", &work)
        .output()
        .expect("node");
    let _ = std::fs::remove_dir_all(&work);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "SDK script failed:\n{stdout}\n{stderr}\ndeskd log:\n{}",
        d.log_text()
    );
}

/// Attach mode (`--display`, an Xvfb deskd did not start) through the SDK: status says active,
/// stop refuses with a problem and leaves X running, screenshots and input still work; the
/// 401 without the token is sandbox-agent's own.
#[test]
fn sdk_on_an_attached_display() {
    for (tool, package) in [
        ("node", "nodejs"),
        ("xev", "x11-utils"),
        ("xdpyinfo", "x11-utils"),
        ("xdotool", "xdotool"),
        ("stdbuf", "coreutils"),
        ("import", "imagemagick"),
    ] {
        require_tool(tool, package);
    }
    let token = "v1-attach-test-token";
    let d = Deskd::start(1024, 768, &["--api-token", token]);
    // An orange rectangle the screenshots must show.
    let x = e2e_support::X::connect(&d.display);
    x.fill(100, 80, 200, 120, 0xff8000);
    let out = Command::new("node")
        .arg(root().join("tests/sdk/v1_attach.mjs"))
        .env("DESKD_URL", format!("http://{}", d.http))
        .env("DESKD_TOKEN", token)
        .env("DISPLAY_NUM", d.display.trim_start_matches(':'))
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "SDK script failed:\n{stdout}\n{stderr}\ndeskd log:\n{}",
        d.log_text()
    );
    drop(x);
}
