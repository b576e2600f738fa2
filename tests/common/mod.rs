//! Helpers shared by integration tests (`mod common;` in a test file).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod xvfb;
