//! ExtendedClipboard payloads (zlib inside): parse or refuse, within the inflate cap the
//! server uses (equal to the clipboard cap, issue 13 item 11): no item ever exceeds it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rfb::messages::clipboard::ExtClipboard;
use rfb::messages::Limits;

fuzz_target!(|data: &[u8]| {
    let cap = Limits::default().max_clipboard_inflated;
    if let Ok(ExtClipboard::Provide { items }) = ExtClipboard::parse(data, cap) {
        assert!(items.iter().all(|(_, d)| d.len() <= cap));
    }
});
