//! Attack class of issue 13 item 3: a client floods FramebufferUpdateRequests (tiny,
//! scattered, non-incremental) without reading. Every request goes into a capped region, as
//! the server's scheduler does: the region never exceeds the cap (so no request costs more
//! than a union with that many rectangles) and always covers every requested pixel.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rfb::messages::{ClientMessage, ClientMessageReader, Limits};
use rfb::Region;

const CAP: usize = 256;

fuzz_target!(|data: &[u8]| {
    let mut reader = ClientMessageReader::new(Limits::default());
    reader.feed(data);
    let mut forced = Region::new();
    while let Ok(Some(m)) = reader.next_message() {
        if let ClientMessage::FramebufferUpdateRequest { rect, .. } = m {
            forced.union_capped(&Region::from_rect(rect), CAP);
            assert!(forced.rects().len() <= CAP);
            if !rect.is_empty() {
                assert!(forced.contains(rect.x, rect.y));
            }
        }
    }
});
