//! The one integer hash used by the in-memory tables of numbers.

/// A well-mixed hash of a number's digits (splitmix64's first output for that
/// seed). Not keyed: a file crafted to collide only makes its own run slower.
pub(crate) fn mix(key: u64) -> u64 {
    crate::rng::SplitMix64::new(key).next_u64()
}
