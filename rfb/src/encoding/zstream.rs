//! A persistent zlib stream, flushed (Z_SYNC_FLUSH) at the end of every rectangle so the client
//! can decode each rectangle as it arrives while keeping the dictionary across updates.

use flate2::{Compress, Compression, FlushCompress};

/// One deflate stream that lives as long as the client connection.
pub(crate) struct ZStream {
    c: Compress,
    level: u32,
}

impl std::fmt::Debug for ZStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZStream")
            .field("level", &self.level)
            .field("total_in", &self.c.total_in())
            .finish()
    }
}

impl ZStream {
    /// A new stream at zlib level `level` (0..=9).
    pub(crate) fn new(level: u32) -> Self {
        let level = level.min(9);
        ZStream {
            c: Compress::new(Compression::new(level), true),
            level,
        }
    }

    /// The level new data is compressed at.
    pub(crate) fn level(&self) -> u32 {
        self.level
    }

    /// Change the level for data compressed from now on, keeping the stream (the client's
    /// inflater never notices). A stream that refuses keeps its old level.
    pub(crate) fn set_level(&mut self, level: u32) {
        let level = level.min(9);
        if level != self.level && self.c.set_level(Compression::new(level)).is_ok() {
            self.level = level;
        }
    }

    /// Compress `input` and append it, followed by a sync flush, to `out`.
    pub(crate) fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        // deflateBound-like headroom so one call normally finishes.
        out.reserve(input.len() + input.len() / 1000 + 64);
        let mut consumed = 0usize;
        loop {
            let before = self.c.total_in();
            let res = self
                .c
                .compress_vec(&input[consumed..], out, FlushCompress::Sync);
            consumed += (self.c.total_in() - before) as usize;
            if res.is_err() {
                // Cannot happen with valid streams; stop rather than loop forever.
                return;
            }
            // The flush is complete when deflate stopped with output space to spare.
            if consumed >= input.len() && out.len() < out.capacity() {
                return;
            }
            out.reserve(out.capacity().max(1024));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};

    #[test]
    fn sync_flushed_chunks_decode_in_order() {
        let mut z = ZStream::new(6);
        let a: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let b = vec![42u8; 5000];
        let (mut ca, mut cb) = (Vec::new(), Vec::new());
        z.compress(&a, &mut ca);
        z.set_level(1);
        z.compress(&b, &mut cb);
        let mut d = Decompress::new(true);
        let mut out = Vec::with_capacity(200_000);
        d.decompress_vec(&ca, &mut out, FlushDecompress::Sync).unwrap();
        assert_eq!(out, a);
        out.clear();
        d.decompress_vec(&cb, &mut out, FlushDecompress::Sync).unwrap();
        assert_eq!(out, b);
        assert_eq!(z.level(), 1);
    }
}
