//! Integration tests: the real binary on files written by the tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sandbox;
mod sync;
mod util;
mod validate;
