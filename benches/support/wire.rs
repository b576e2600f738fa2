//! RFB client wire helpers shared by the benches' hand-written clients (latency, viewers).
#![allow(dead_code)]

use std::io::{Read, Write};

/// Send a FramebufferUpdateRequest for (0, 0, `w`, `h`).
pub fn request(s: &mut impl Write, incremental: bool, w: u16, h: u16) -> std::io::Result<()> {
    let mut m = vec![3u8, u8::from(incremental), 0, 0, 0, 0];
    m.extend_from_slice(&w.to_be_bytes());
    m.extend_from_slice(&h.to_be_bytes());
    s.write_all(&m)
}

/// One byte; panics when the connection ends (benches only).
pub fn read_u8(s: &mut impl Read) -> u8 {
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    b[0]
}

/// Read and drop `n` bytes.
pub fn skip(s: &mut impl Read, n: u64) -> std::io::Result<()> {
    if std::io::copy(&mut s.take(n), &mut std::io::sink())? == n {
        Ok(())
    } else {
        Err(std::io::ErrorKind::UnexpectedEof.into())
    }
}

/// One byte.
pub fn byte(s: &mut impl Read) -> std::io::Result<u8> {
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    Ok(b[0])
}

/// Tight's compact length (1 to 3 bytes, 7 bits each) and its size.
pub fn compact(s: &mut impl Read) -> std::io::Result<(u64, u64)> {
    let mut len = 0u64;
    for i in 0..3 {
        let b = byte(s)?;
        let bits = if i == 2 { b } else { b & 0x7f };
        len |= u64::from(bits) << (7 * i);
        if i == 2 || b & 0x80 == 0 {
            return Ok((len, i as u64 + 1));
        }
    }
    Ok((len, 3))
}

/// Skip one Tight or TightPNG rect of `w`x`h` at 32 bpp (3-byte pixels); its size.
pub fn skip_tight(s: &mut impl Read, w: u64, h: u64) -> std::io::Result<u64> {
    let control = byte(s)?;
    let (len, head) = match control >> 4 {
        8 => (3, 0),
        9 | 10 => compact(s)?,
        0..=7 => {
            let explicit = control & 0x40 != 0;
            let filter = if explicit { byte(s)? } else { 0 };
            let (row, palette) = if filter == 1 {
                let colours = u64::from(byte(s)?) + 1;
                skip(s, colours * 3)?;
                (
                    if colours == 2 { w.div_ceil(8) } else { w },
                    1 + colours * 3,
                )
            } else {
                (w * 3, 0)
            };
            let raw = row * h;
            let (len, n) = if raw < 12 { (raw, 0) } else { compact(s)? };
            (len, n + palette + u64::from(explicit))
        }
        other => {
            return Err(std::io::Error::other(format!(
                "unexpected Tight compression {other}"
            )))
        }
    };
    skip(s, len)?;
    Ok(1 + head + len)
}
