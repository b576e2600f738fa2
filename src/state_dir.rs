//! Where deskd keeps state between runs: TLS material, the viewer-link secret, recordings.
//!
//! `--state-dir` wins; otherwise `$XDG_STATE_HOME/deskd`, then `$HOME/.local/state/deskd`. The
//! directory is created owner-only (0700) because it holds secrets.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The state directory deskd uses, before it exists: the flag, else the XDG default.
pub fn resolve(flag: Option<&Path>) -> Result<PathBuf, String> {
    resolve_with(flag, |k| std::env::var_os(k))
}

/// [`resolve`] with the environment passed in (for tests).
pub fn resolve_with(
    flag: Option<&Path>,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<PathBuf, String> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    // XDG says a relative XDG_STATE_HOME is invalid and must be ignored.
    if let Some(xdg) = env("XDG_STATE_HOME").map(PathBuf::from) {
        if xdg.is_absolute() {
            return Ok(xdg.join("deskd"));
        }
    }
    match env("HOME").map(PathBuf::from) {
        Some(home) if home.is_absolute() => Ok(home.join(".local/state/deskd")),
        _ => Err("no state directory: set --state-dir (or $XDG_STATE_HOME or $HOME)".into()),
    }
}

/// Create `dir` (and parents) if missing, owner-only, and check it is a directory.
pub fn ensure(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create state directory {}: {e}", dir.display()))?;
    }
    let meta =
        std::fs::metadata(dir).map_err(|e| format!("state directory {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!(
            "state directory {} is not a directory",
            dir.display()
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(dir = %dir.display(), "state directory is readable by others; it holds secrets");
    }
    Ok(())
}

/// Write a secret file readable by its owner only, replacing any old one atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn flag_then_xdg_then_home() {
        let flag = Path::new("/srv/deskd");
        assert_eq!(resolve_with(Some(flag), env(&[])), Ok(flag.to_path_buf()));
        assert_eq!(
            resolve_with(None, env(&[("XDG_STATE_HOME", "/x"), ("HOME", "/h")])),
            Ok(PathBuf::from("/x/deskd"))
        );
        assert_eq!(
            resolve_with(None, env(&[("XDG_STATE_HOME", "rel"), ("HOME", "/h")])),
            Ok(PathBuf::from("/h/.local/state/deskd"))
        );
        assert!(resolve_with(None, env(&[])).is_err());
    }

    #[test]
    fn ensure_creates_owner_only() {
        let base = std::env::temp_dir().join(format!("deskd-state-{}", std::process::id()));
        let dir = base.join("a/b");
        ensure(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        ensure(&dir).unwrap();
        std::fs::remove_dir_all(&base).unwrap();
    }
}
