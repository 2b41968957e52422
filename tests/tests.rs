//! Integration tests: the real binary on files written by the tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod columns_safety;
mod config;
mod differential;
mod docs;
mod html;
mod mirror;
mod normalize_rules;
mod props;
mod robust;
mod safety;
mod sandbox;
mod security;
mod spreadsheets;
mod state;
mod sync;
mod util;
mod validate;
