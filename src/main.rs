//! The `contact-sync` command line.

fn main() {}
