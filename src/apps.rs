//! Applications deskd starts on its display for agents (`/v1/desktop/launch` and `open`):
//! spawned with the display's environment, tracked by an id and a process id, reaped when
//! asked about, and stopped with the display (they would die with their X server anyway).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::desktop::ProcessStatus;

/// Most applications tracked at once; finished ones are forgotten first.
pub const MAX_APPS: usize = 64;

/// Why an application did not start.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// No such program in `PATH` (or not executable).
    #[error("Application '{0}' not found in PATH")]
    NotFound(String),
    /// Too many applications are running.
    #[error("{MAX_APPS} launched applications are still running; stop some first")]
    TooMany,
    /// The spawn itself failed.
    #[error("failed to start {0}: {1}")]
    Spawn(String, std::io::Error),
}

/// A started application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launched {
    /// deskd's id for it (`proc_N`).
    pub id: String,
    /// Its process id.
    pub pid: u32,
}

struct App {
    id: String,
    name: String,
    child: Child,
    running: bool,
}

/// The launched applications.
#[derive(Default)]
pub struct Apps {
    apps: Mutex<Vec<App>>,
    next: AtomicU64,
}

/// Where `program` is: itself when it names a path, else the first executable in `PATH`.
pub fn resolve(program: &str) -> Option<PathBuf> {
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.is_empty() {
        return None;
    }
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| executable(p))
}

impl Apps {
    /// No applications yet.
    pub fn new() -> Apps {
        Apps::default()
    }

    /// Start `program` with `args` and `env` added to deskd's environment.
    pub fn launch(
        &self,
        program: &str,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<Launched, LaunchError> {
        let path = resolve(program).ok_or_else(|| LaunchError::NotFound(program.to_owned()))?;
        let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        reap(&mut apps);
        if apps.len() >= MAX_APPS {
            let Some(i) = apps.iter().position(|a| !a.running) else {
                return Err(LaunchError::TooMany);
            };
            apps.remove(i);
        }
        let child = Command::new(&path)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| LaunchError::Spawn(program.to_owned(), e))?;
        let id = format!("proc_{}", self.next.fetch_add(1, Ordering::Relaxed) + 1);
        let pid = child.id();
        let name = Path::new(program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.to_owned());
        apps.push(App {
            id: id.clone(),
            name,
            child,
            running: true,
        });
        Ok(Launched { id, pid })
    }

    /// Every tracked application, oldest first, with whether it still runs.
    pub fn list(&self) -> Vec<ProcessStatus> {
        let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        reap(&mut apps);
        apps.iter()
            .map(|a| ProcessStatus {
                name: a.name.clone(),
                pid: Some(a.child.id()),
                running: a.running,
            })
            .collect()
    }

    /// Whether the application with this id is still running.
    pub fn running(&self, id: &str) -> bool {
        let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        reap(&mut apps);
        apps.iter().any(|a| a.id == id && a.running)
    }

    /// Kill every running application (the display is going away).
    pub fn stop_all(&self) {
        let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        for a in apps.iter_mut().filter(|a| a.running) {
            let _ = a.child.kill();
            let _ = a.child.wait();
            a.running = false;
        }
    }
}

fn reap(apps: &mut [App]) {
    for a in apps.iter_mut().filter(|a| a.running) {
        if !matches!(a.child.try_wait(), Ok(None)) {
            a.running = false;
        }
    }
}

impl Drop for Apps {
    fn drop(&mut self) {
        self.stop_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_list_and_stop() {
        let apps = Apps::new();
        assert!(matches!(
            apps.launch("no-such-program-deskd", &[], &[]),
            Err(LaunchError::NotFound(_))
        ));
        let a = apps.launch("sleep", &["30".into()], &[]).unwrap();
        let b = apps.launch("true", &[], &[]).unwrap();
        assert_eq!((a.id.as_str(), b.id.as_str()), ("proc_1", "proc_2"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while apps.running(&b.id) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let list = apps.list();
        assert_eq!(list[0].name, "sleep");
        assert!(list[0].running);
        assert!(!list[1].running);
        apps.stop_all();
        assert!(!apps.running(&a.id));
    }

    #[test]
    fn resolves_paths() {
        assert!(resolve("sh").is_some());
        assert!(resolve("/bin/sh").is_some());
        assert!(resolve("/etc/passwd").is_none());
        assert!(resolve("").is_none());
    }
}
