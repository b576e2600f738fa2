//! The X server: spawn and supervise Xvfb (and a window manager), or attach to a display.
