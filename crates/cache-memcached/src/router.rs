//! Which server holds a key: rendezvous hashing over a hash that never changes.
//!
//! The client library's default router hashes with the standard library's
//! `DefaultHasher`, whose algorithm may change between Rust releases: two applications
//! built with different compilers could then send one key to different servers, and one
//! would never see the other's writes or deletes. FNV-1a is fixed and simple enough to
//! reproduce in any language.

use memcache::exp::Router;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// Rendezvous (highest random weight) hashing: each server scores the key, the highest
/// score wins. Removing a server moves only its keys; the order of the list does not
/// matter, only how each server is named (`host:port`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StableRendezvous;

impl Router for StableRendezvous {
    fn route(&self, key: &[u8], servers: &[String]) -> usize {
        // Hashing every key only to pick the one server there is would cost every call.
        if servers.len() <= 1 {
            return 0;
        }
        servers
            .iter()
            .enumerate()
            .max_by_key(|(_, server)| score(server.as_bytes(), key))
            .map_or(0, |(index, _)| index)
    }
}

/// FNV-1a of `server`, a 0xff byte (never part of a UTF-8 name) and `key`, spread by the
/// SplitMix64 finalizer.
fn score(server: &[u8], key: &[u8]) -> u64 {
    let mut hash = FNV_OFFSET;
    for &byte in server.iter().chain(&[0xff]).chain(key) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(count: u16) -> Vec<String> {
        (0..count)
            .map(|i| format!("127.0.0.1:{}", 11211 + i))
            .collect()
    }

    #[test]
    fn routes_are_fixed_forever() {
        // Computed once, independently of this code; a change here moves keys between
        // servers for every deployment.
        assert_eq!(score(b"127.0.0.1:11211", b"user:42"), 0xdd15_8c12_518f_54d8);
        let four = servers(4);
        let routes: Vec<usize> = (0..8)
            .map(|i| StableRendezvous.route(format!("key:{i}").as_bytes(), &four))
            .collect();
        assert_eq!(routes, [3, 3, 2, 2, 1, 2, 1, 2]);
    }

    #[test]
    fn keys_spread_evenly_and_move_only_from_a_removed_server() {
        let four = servers(4);
        let mut three = four.clone();
        three.remove(1);
        let mut counts = [0usize; 4];
        for i in 0..4000u32 {
            let key = format!("k{i}");
            let before = StableRendezvous.route(key.as_bytes(), &four);
            counts[before] += 1;
            let after = StableRendezvous.route(key.as_bytes(), &three);
            if before != 1 {
                assert_eq!(three[after], four[before], "{key} moved without need");
            }
        }
        assert!(counts.iter().all(|&count| count > 800), "{counts:?}");
        assert_eq!(StableRendezvous.route(b"k", &servers(1)), 0);
    }
}
