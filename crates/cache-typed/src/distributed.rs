//! Single-flight across processes: a lock entry taken with the backend's atomic `add`.

use std::{
    panic::AssertUnwindSafe,
    sync::Arc,
    time::{Duration, Instant},
};

use cache_api::Bytes;
use futures::FutureExt;

use crate::{
    codec::Codec, options::DistributedLock, stored::Stored, telemetry, typed::Inner, Value,
};

/// Appended to a key to name its lock entry: `user:42` is locked by
/// `user:42\u{1f}lock` (a unit separator, which no printable key contains).
pub const LOCK_SUFFIX: &str = "\u{1f}lock";

const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// What taking the lock came to.
pub(crate) enum Lock<V> {
    /// This process holds the lock and computes.
    Held {
        key: String,
        since: Instant,
        ttl: Duration,
    },
    /// Another process computed the value meanwhile.
    Found(Arc<Stored<V>>),
    /// No lock (the backend cannot take one, or the wait ran out): compute anyway.
    NotHeld,
}

/// Takes the lock of `key`, or waits for the value another process is computing.
///
/// Every round tries `add` (atomic on the backend: of two processes, one wins), and the
/// loser reads the value, with a backoff from 5 ms doubling to 100 ms, until `lock`'s
/// wait runs out. A holder that disappears lets its entry expire after the lock's TTL;
/// the next `add` then wins. The winner reads the value once more before computing, as
/// the previous holder may have stored it just before releasing.
pub(crate) async fn acquire<V: Value, C: Codec>(
    inner: &Inner<V, C>,
    key: &str,
    lock: DistributedLock,
    seen: Option<u64>,
) -> Lock<V> {
    if !inner.atomic_add() {
        telemetry::lock(inner.label, "unavailable");
        return Lock::NotHeld;
    }
    let lock_key = format!("{key}{LOCK_SUFFIX}");
    // A wait too long for the clock to add has no end: the loop ends when the holder's
    // value appears or its lock entry expires.
    let deadline = Instant::now().checked_add(lock.max_wait());
    let mut backoff = FIRST_BACKOFF;
    loop {
        let token = Bytes::from(crate::jitter::token());
        // Taken before the `add`, so the lock is never thought held past its expiry.
        let attempt = Instant::now();
        match inner.cache.add(&lock_key, token, Some(lock.ttl())).await {
            Ok(true) => {
                let held = Lock::Held {
                    key: lock_key,
                    since: attempt,
                    ttl: lock.ttl(),
                };
                // A panicking `Deserialize` must not leave the lock held for its TTL.
                let newer = match AssertUnwindSafe(inner.read_newer(key, seen))
                    .catch_unwind()
                    .await
                {
                    Ok(newer) => newer,
                    Err(panic) => {
                        release(inner, held).await;
                        std::panic::resume_unwind(panic);
                    }
                };
                if let Some(stored) = newer {
                    release(inner, held).await;
                    telemetry::lock(inner.label, "found_value");
                    return Lock::Found(Arc::new(stored));
                }
                telemetry::lock(inner.label, "acquired");
                return held;
            }
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(backend = inner.label, error = %err, "cache-typed could not take the distributed lock: computing without it");
                telemetry::lock(inner.label, "unavailable");
                return Lock::NotHeld;
            }
        }
        let now = Instant::now();
        if deadline.is_some_and(|deadline| now >= deadline) {
            telemetry::lock(inner.label, "wait_expired");
            return Lock::NotHeld;
        }
        let left = deadline.map_or(backoff, |deadline| deadline - now);
        tokio::time::sleep(backoff.min(left)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        if let Some(stored) = inner.read_newer(key, seen).await {
            telemetry::lock(inner.label, "found_value");
            return Lock::Found(Arc::new(stored));
        }
    }
}

/// Removes the lock entry, unless its TTL has passed: then it has expired, and the
/// entry under that name may be another holder's (the contract has no compare-and-
/// delete), so it is left alone.
pub(crate) async fn release<V: Value, C: Codec>(inner: &Inner<V, C>, lock: Lock<V>) {
    if let Lock::Held { key, since, ttl } = lock {
        if since.elapsed() < ttl {
            if let Err(err) = inner.cache.delete(&key).await {
                tracing::warn!(backend = inner.label, error = %err, "cache-typed could not release the distributed lock: it expires by itself");
            }
        }
    }
}
