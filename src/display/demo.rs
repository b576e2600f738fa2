//! The demo desktop shown by the embedded default: a background and a terminal, so that a
//! person opening the viewer sees a usable desktop rather than a black screen.

use std::process::{Child, Command, Stdio};

/// X clients started for the demo; killed on drop.
pub struct Demo {
    children: Vec<Child>,
}

impl Demo {
    /// Set the root background and open a terminal on the display described by `env`
    /// (`DISPLAY`, `XAUTHORITY`). Missing programs are logged and skipped: the desktop works
    /// without them.
    pub fn start(env: &[(String, String)]) -> Demo {
        let spawn = |prog: &str, args: &[&str]| {
            let child = Command::new(prog)
                .args(args)
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            child
                .map_err(|e| tracing::warn!("demo desktop: {prog} did not start: {e}"))
                .ok()
        };
        let mut children = Vec::new();
        // xsetroot exits at once; wait so it is not left a zombie.
        if let Some(mut c) = spawn("xsetroot", &["-solid", "#2b3a4a"]) {
            let _ = c.wait();
        }
        let banner = "printf 'deskd demo desktop\\n\\nThis terminal runs on the X display that deskd serves over VNC,\\n\
                      WebSocket (noVNC) and the action API.\\n\\n'; exec \"${SHELL:-/bin/sh}\"";
        children.extend(spawn(
            "xterm",
            &[
                "-geometry",
                "100x30+80+60",
                "-fa",
                "DejaVu Sans Mono",
                "-fs",
                "11",
                "-title",
                "deskd demo terminal",
                "-e",
                "/bin/sh",
                "-c",
                banner,
            ],
        ));
        Demo { children }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
