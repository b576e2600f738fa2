//! Any byte stream, in any chunking, must parse to messages or a typed error: never a panic,
//! and never a buffer larger than the caps allow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rfb::messages::{ClientMessageReader, Limits};

fuzz_target!(|data: &[u8]| {
    let (split, rest) = match data.split_first() {
        Some((s, r)) => (usize::from(*s).max(1), r),
        None => return,
    };
    let mut reader = ClientMessageReader::new(Limits {
        extended_mouse_buttons: split % 2 == 0,
        ..Limits::default()
    });
    for chunk in rest.chunks(split) {
        reader.feed(chunk);
        loop {
            match reader.next_message() {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
