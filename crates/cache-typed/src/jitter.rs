//! Random extra time on TTLs, so that entries written together do not expire together.

use std::{
    collections::hash_map::RandomState,
    hash::{BuildHasher, Hasher},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// `ttl` plus a uniformly drawn duration in `0..=max`. Not cryptographic: the standard
/// library's randomly keyed hasher over a counter is random enough to spread
/// expiries, without a dependency.
pub(crate) fn apply(ttl: Duration, max: Duration) -> Duration {
    if max.is_zero() {
        return ttl;
    }
    let span = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
    let extra = random_u64() % span.saturating_add(1);
    ttl.saturating_add(Duration::from_micros(extra))
}

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// A token naming one lock holder, for the lock entry's value (diagnostics only).
pub(crate) fn token() -> String {
    format!("{}:{:016x}", std::process::id(), random_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let ttl = Duration::from_secs(10);
        let max = Duration::from_secs(2);
        let drawn: Vec<Duration> = (0..200).map(|_| apply(ttl, max)).collect();
        assert!(drawn.iter().all(|d| *d >= ttl && *d <= ttl + max));
        let distinct: std::collections::HashSet<_> = drawn.iter().collect();
        assert!(
            distinct.len() > 150,
            "only {} distinct ttls",
            distinct.len()
        );
        assert_eq!(apply(ttl, Duration::ZERO), ttl);
    }
}
