//! Integration tests: the real binary on files written by the tests.

mod util;
mod validate;
