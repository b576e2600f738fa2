//! Conversion of native BGRX rows into a client's pixel format.
