//! ExtendedClipboard payloads (zlib inside): parse or refuse, within the inflate cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rfb::messages::clipboard::ExtClipboard;

fuzz_target!(|data: &[u8]| {
    let _ = ExtClipboard::parse(data, 1 << 20);
});
