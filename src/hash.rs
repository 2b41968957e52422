//! The one integer hash used by the in-memory tables of numbers.

/// A well-mixed hash of a number's digits (splitmix64's finaliser). Not keyed:
/// a file crafted to collide only makes its own run slower.
pub(crate) fn mix(key: u64) -> u64 {
    let mut z = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
