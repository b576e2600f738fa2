//! The MIT-SHM segment capture reads into: a memfd mapped here and passed to the X server.
//!
//! This is the one place deskd uses `unsafe`: creating and mapping the memory.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// A shared, writable mapping of a memfd.
pub struct ShmMapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; access goes through `&self`
// (read-only slices) and the capture code only reads it while no X request writing into it is
// in flight (it waits for the GetImage reply first, under the capture lock).
unsafe impl Send for ShmMapping {}
// SAFETY: as above; shared references only hand out read-only slices.
unsafe impl Sync for ShmMapping {}

impl ShmMapping {
    /// Create a memfd of `len` bytes, map it, and return the mapping with the fd to pass to the
    /// server (`shm::attach_fd`).
    pub fn new(len: usize) -> io::Result<(ShmMapping, OwnedFd)> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty segment"));
        }
        let name = c"deskd-capture";
        // SAFETY: `name` is a valid NUL-terminated string; memfd_create has no other inputs.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let off = libc::off_t::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment too large"))?;
        // SAFETY: ftruncate on an fd we own.
        if unsafe { libc::ftruncate(std::os::fd::AsRawFd::as_raw_fd(&fd), off) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: mapping `len` bytes of a file that is `len` bytes long; a null hint lets the
        // kernel choose the address; the result is checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok((
            ShmMapping {
                ptr: ptr.cast(),
                len,
            },
            fd,
        ))
    }

    /// The segment size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The bytes. Callers must not hold the slice across an X request that writes into the
    /// segment.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is a live mapping of `len` bytes (unmapped only in Drop), readable, and
        // aligned for u8. The X server writes into it only while a ShmGetImage request is
        // outstanding, and capture does not read then.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for ShmMapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe the mapping made in `new`, unmapped exactly once here.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}
