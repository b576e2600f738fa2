//! A key-echo window for latency tests and benches: every key press repaints it in the next
//! colour, so the time until a client shows the new colour is the echo latency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ChangeGCAux, ConnectionExt as _, CreateGCAux, CreateWindowAux, EventMask, InputFocus,
    Rectangle, WindowClass,
};

/// The echo window's side; it sits at the top left of the screen.
pub const ECHO: u16 = 64;
/// The colours it cycles through, one per key press.
pub const ECHO_COLOURS: [u32; 4] = [0xff0000, 0x00ff00, 0x0000ff, 0xffff00];

/// A window at the top left that fills itself with the next of [`ECHO_COLOURS`] on every key
/// press; returns the count of presses so far.
pub fn echo_window(display: &str) -> Arc<AtomicUsize> {
    let (conn, screen) = x11rb::connect(Some(display)).expect("connect to Xvfb");
    let root = conn.setup().roots[screen].root;
    let win = conn.generate_id().unwrap();
    conn.create_window(
        0,
        win,
        root,
        0,
        0,
        ECHO,
        ECHO,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new()
            .background_pixel(0)
            .override_redirect(1)
            .event_mask(EventMask::KEY_PRESS),
    )
    .unwrap();
    let gc = conn.generate_id().unwrap();
    conn.create_gc(gc, win, &CreateGCAux::new()).unwrap();
    conn.map_window(win).unwrap();
    conn.set_input_focus(InputFocus::POINTER_ROOT, win, 0u32)
        .unwrap();
    conn.get_input_focus().unwrap().reply().unwrap();
    let presses = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&presses);
    thread::spawn(move || {
        while let Ok(ev) = conn.wait_for_event() {
            if let x11rb::protocol::Event::KeyPress(_) = ev {
                let colour = ECHO_COLOURS[count.fetch_add(1, Ordering::SeqCst) % 4];
                let _ = conn.change_gc(gc, &ChangeGCAux::new().foreground(colour));
                let r = Rectangle {
                    x: 0,
                    y: 0,
                    width: ECHO,
                    height: ECHO,
                };
                let _ = conn.poly_fill_rectangle(win, gc, &[r]);
                let _ = conn.flush();
            }
        }
    });
    presses
}
