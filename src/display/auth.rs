//! A private Xauthority file for a server deskd starts, so no other local user can connect.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::desktop::DesktopError;

/// A 0700 directory holding a 0600 Xauthority file; removed on drop.
#[derive(Debug)]
pub struct AuthDir {
    dir: PathBuf,
    file: PathBuf,
    cookie: Vec<u8>,
}

impl AuthDir {
    /// Create the directory and the file with a fresh random cookie.
    pub fn create() -> Result<AuthDir, DesktopError> {
        static N: AtomicU32 = AtomicU32::new(0);
        let err = |what: &str, e: std::io::Error| DesktopError::Other(format!("{what}: {e}"));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "deskd-{}-{}-{nanos:x}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| err("creating auth directory", e))?;
        let mut cookie = vec![0u8; 16];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut cookie))
            .map_err(|e| err("reading /dev/urandom", e))?;
        let file = dir.join("Xauthority");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .map_err(|e| err("creating Xauthority", e))?;
        f.write_all(&xauth_entry(&cookie))
            .map_err(|e| err("writing Xauthority", e))?;
        Ok(AuthDir { dir, file, cookie })
    }

    /// The Xauthority file (pass as `XAUTHORITY` to X clients, and `-auth` to the server).
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The directory (for other private files such as logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cookie.
    pub fn cookie(&self) -> &[u8] {
        &self.cookie
    }
}

impl Drop for AuthDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One Xauthority entry: FamilyWild with empty address and display number, so it matches any
/// display of this host (the display number is not known before Xvfb picks one).
fn xauth_entry(cookie: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xffffu16.to_be_bytes());
    for field in [&b""[..], b"", b"MIT-MAGIC-COOKIE-1", cookie] {
        out.extend_from_slice(&(field.len() as u16).to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_layout() {
        let e = xauth_entry(&[1, 2]);
        assert_eq!(&e[..6], &[0xff, 0xff, 0, 0, 0, 0]);
        assert_eq!(&e[6..8], &[0, 18]);
        assert_eq!(&e[8..26], b"MIT-MAGIC-COOKIE-1");
        assert_eq!(&e[26..], &[0, 2, 1, 2]);
    }
}
