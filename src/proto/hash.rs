//! A keyed hasher for maps whose keys peers choose (ids): deterministic for a given seed, so
//! the simulator replays exactly, and unpredictable to peers when the seed is random.

use std::hash::BuildHasher;

use siphasher::sip::SipHasher13;

/// Builds SipHash-1-3 hashers under one 128-bit key.
#[derive(Clone, Copy, Debug)]
pub struct SeededState {
    k0: u64,
    k1: u64,
}

impl SeededState {
    /// A state keyed with `k0`, `k1`.
    pub fn new(k0: u64, k1: u64) -> Self {
        SeededState { k0, k1 }
    }
}

impl BuildHasher for SeededState {
    type Hasher = SipHasher13;

    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.k0, self.k1)
    }
}
