//! The hash map of the forwarding path: FxHash instead of std's SipHash.
//!
//! Forwarding looks up the track, each subscriber's peer and its slot for every packet it sends;
//! SipHash showed in profiles of a 100-viewer webinar. The keys hashed here are ids the server
//! made (`PeerId`, `TrackId`) or few per peer and fixed at negotiation (a peer's MIDs and
//! SSRCs), so a hash that an attacker could flood with collisions buys nothing to fear. Maps
//! keyed by what a remote sends freely (source addresses) keep SipHash.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use rustc_hash::FxHasher;

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_map_is_a_map() {
        let mut m: FastMap<u64, &str> = FastMap::default();
        m.insert(7, "seven");
        m.insert(1 << 40, "big");
        assert_eq!(m.get(&7), Some(&"seven"));
        assert_eq!(m.get(&(1 << 40)), Some(&"big"));
        assert_eq!(m.remove(&7), Some("seven"));
        assert!(!m.contains_key(&7));
    }
}
