//! `get_or_set` at its edges: called outside a runtime, a runtime that shuts down under
//! a run, a factory asking for its own key (or for one whose run waits for it), a write
//! that hangs, throttles too long for the clock, a failed eager refresh, a `set` or
//! `set_many` during a throttle, TTLs the backend cannot keep and TTLs under a
//! millisecond.

mod common;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use cache_api::{async_trait, Bytes, Cache, CacheError, CacheWrapper, Capabilities, Wrapped};
use cache_typed::{EntryOptions, Error, JsonCodec, TypedCache};
use common::memory;

/// Fails the test instead of hanging it.
async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not end within 5 s"))
}

fn numbers(cache: Arc<dyn Cache>) -> TypedCache<u64, JsonCodec> {
    TypedCache::new(cache, JsonCodec)
}

/// A factory that counts its runs and fails each time.
fn failing(
    runs: &Arc<AtomicUsize>,
) -> impl FnOnce() -> futures::future::BoxFuture<'static, Result<u64, std::io::Error>> {
    let runs = Arc::clone(runs);
    move || {
        Box::pin(async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Err(std::io::Error::other("database down"))
        })
    }
}

/// Outside a runtime, a miss is an error saying a runtime is needed (not a hang), and
/// the cache keeps working for calls made inside one.
#[test]
fn outside_a_runtime_a_miss_is_an_error_and_the_cache_stays_usable() {
    let cache = numbers(memory());
    let (sender, receiver) = std::sync::mpsc::channel();
    let outside = cache.clone();
    std::thread::spawn(move || {
        let answer =
            futures::executor::block_on(outside.get_or_set("k", outside.options(), || async { 1 }));
        sender.send(answer).unwrap();
    });
    let answer = receiver
        .recv_timeout(Duration::from_secs(5))
        .expect("the call outside a runtime hung");
    assert!(matches!(answer, Err(Error::NoRuntime)), "{answer:?}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let value = runtime.block_on(within(
        "a call inside a runtime",
        cache.get_or_set("k", cache.options(), || async { 2 }),
    ));
    assert_eq!(value.unwrap(), 2);
}

/// A run whose runtime shuts down before it ends is reported as cancelled, not as a
/// panic, to a caller waiting from another runtime; the key is free afterwards.
#[test]
fn a_run_dropped_with_its_runtime_is_cancelled_not_panicked() {
    let cache = numbers(memory());
    let doomed = tokio::runtime::Runtime::new().unwrap();
    let (started, wait_started) = std::sync::mpsc::channel();
    let leader = cache.clone();
    doomed.spawn(async move {
        leader
            .get_or_set("k", leader.options(), move || async move {
                started.send(()).unwrap();
                std::future::pending::<u64>().await
            })
            .await
    });
    wait_started
        .recv_timeout(Duration::from_secs(5))
        .expect("the factory did not start");
    let other = tokio::runtime::Runtime::new().unwrap();
    let waiter = cache.clone();
    let waiting = other.spawn(async move {
        waiter
            .get_or_set("k", waiter.options(), || async { 7 })
            .await
    });
    std::thread::sleep(Duration::from_millis(100));
    doomed.shutdown_timeout(Duration::from_secs(1));
    let answer = other.block_on(within("the waiter", waiting)).unwrap();
    assert!(matches!(answer, Err(Error::Cancelled)), "{answer:?}");
    let again = other.block_on(within(
        "a new run",
        cache.get_or_set("k", cache.options(), || async { 8 }),
    ));
    assert_eq!(again.unwrap(), 8);
}

/// A factory that asks for its own key gets an error instead of waiting for itself.
#[tokio::test]
async fn a_factory_asking_for_its_own_key_is_refused() {
    let cache = numbers(memory());
    let inner = cache.clone();
    let answer = within(
        "a recursive get_or_set",
        cache.try_get_or_set("k", cache.options(), move || async move {
            match inner.get_or_set("k", inner.options(), || async { 1 }).await {
                Err(Error::Recursive { key }) => Ok::<_, std::io::Error>(key.len() as u64),
                other => panic!("expected Recursive, got {other:?}"),
            }
        }),
    )
    .await;
    assert_eq!(answer.unwrap(), 1);
    // Another key from a factory is fine.
    let inner = cache.clone();
    let nested = cache
        .get_or_set("outer", cache.options(), move || async move {
            inner
                .get_or_set("inner", inner.options(), || async { 5 })
                .await
                .unwrap()
                + 1
        })
        .await;
    assert_eq!(nested.unwrap(), 6);
}

/// Two factories that ask for each other's key: the second ask gets `Recursive` instead
/// of the two runs waiting for each other for good, and both keys stay usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factories_asking_for_each_others_key_are_refused() {
    let cache = numbers(memory());
    let (for_a, for_b) = (cache.clone(), cache.clone());
    let a = within(
        "a cycle through two keys",
        cache.try_get_or_set("a", cache.options(), move || async move {
            let b = for_a
                .try_get_or_set("b", for_a.options(), move || async move {
                    match for_b.get_or_set("a", for_b.options(), || async { 1 }).await {
                        Err(Error::Recursive { key }) => {
                            Ok::<_, std::io::Error>(key.len() as u64 + 10)
                        }
                        other => panic!("expected Recursive, got {other:?}"),
                    }
                })
                .await
                .unwrap();
            Ok::<_, std::io::Error>(b + 100)
        }),
    )
    .await;
    assert_eq!(a.unwrap(), 111);
    assert_eq!(cache.get("b").await.unwrap(), Some(11));
    let again = within(
        "a fresh run of a key of the cycle",
        cache.get_or_set("c", cache.options(), || async { 3 }),
    )
    .await;
    assert_eq!(again.unwrap(), 3);
}

/// A backend whose writes hang until told otherwise.
struct WritesHang {
    inner: Arc<dyn Cache>,
    hang: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl cache_api::CacheWrapper for WritesHang {
    fn inner(&self) -> &dyn Cache {
        &*self.inner
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.set(key, value, ttl).await
    }
}

/// A write that hangs neither holds the caller (no timeout given) beyond a short wait
/// for the write, nor holds the key: once the value's TTL is over, the next call runs
/// its factory again instead of being handed the old value as fresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_hangs_holds_neither_the_caller_nor_the_key() {
    let backend = Arc::new(cache_api::Wrapped(WritesHang {
        inner: memory(),
        hang: std::sync::atomic::AtomicBool::new(true),
    }));
    let cache = numbers(backend.clone());
    let options = cache.options().ttl(Duration::from_millis(100));
    let first = within(
        "a call whose write hangs",
        cache.get_or_set_entry("k", options, || async { 1 }),
    )
    .await
    .unwrap();
    assert_eq!((first.value, first.stale), (1, false));
    tokio::time::sleep(Duration::from_millis(300)).await;
    backend.0.hang.store(false, Ordering::SeqCst);
    let second = within(
        "a call past the value's ttl",
        cache.get_or_set_entry("k", options, || async { 2 }),
    )
    .await
    .unwrap();
    assert_eq!(
        (second.value, second.stale),
        (2, false),
        "the value of a run whose write never ended was served past its ttl"
    );
}

/// The entries a run of failing calls gets, `between` apart, and how many times their
/// factory ran: on `cache`, where `options` stored 1 under `k`, `age` ago.
async fn failing_calls(
    cache: &TypedCache<u64, JsonCodec>,
    options: EntryOptions,
    age: Duration,
    calls: usize,
    between: Duration,
) -> (Vec<(u64, bool)>, usize) {
    cache
        .get_or_set("k", options, || async { 1 })
        .await
        .unwrap();
    tokio::time::sleep(age).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let mut served = Vec::new();
    for _ in 0..calls {
        let entry = cache
            .try_get_or_set_entry("k", options, failing(&runs))
            .await
            .unwrap();
        served.push((entry.value, entry.stale));
        tokio::time::sleep(between).await;
    }
    (served, runs.load(Ordering::SeqCst))
}

/// A throttle too long for the clock holds as long as the clock can, not at all.
#[tokio::test]
async fn a_throttle_of_any_length_throttles() {
    let cache = numbers(memory());
    let options = cache
        .options()
        .ttl(Duration::from_millis(50))
        .fail_safe(Duration::from_secs(60), Duration::MAX);
    let age = Duration::from_millis(80);
    let (served, runs) = failing_calls(&cache, options, age, 5, Duration::ZERO).await;
    assert_eq!(served, [(1, true); 5]);
    assert_eq!(runs, 1, "the factory ran again during the throttle");
}

/// An eager refresh that fails under fail-safe starts the throttle: the hits after it
/// do not each run the failing factory again, and they still get the value (flagged
/// stale after the failure, as any value served because the factory failed).
#[tokio::test]
async fn a_failed_eager_refresh_is_throttled() {
    let cache = numbers(memory());
    let options = cache
        .options()
        .ttl(Duration::from_secs(2))
        .eager_refresh(0.1)
        .fail_safe(Duration::from_secs(60), Duration::from_secs(30));
    let (age, between) = (Duration::from_millis(300), Duration::from_millis(20));
    let (served, runs) = failing_calls(&cache, options, age, 10, between).await;
    assert!(served.iter().all(|(value, _)| *value == 1), "{served:?}");
    assert_eq!(runs, 1);
}

/// A value written during a throttle, by `set_with` or by `set_many_with`, is what
/// `get_or_set` serves next: each drops the value fail-safe kept for the key, and its
/// throttle.
#[tokio::test]
async fn a_set_during_a_throttle_is_served() {
    for by_set_many in [false, true] {
        let cache = numbers(memory());
        let options = cache
            .options()
            .ttl(Duration::from_millis(50))
            .fail_safe(Duration::from_secs(60), Duration::from_secs(30));
        let age = Duration::from_millis(80);
        let (served, runs) = failing_calls(&cache, options, age, 1, Duration::ZERO).await;
        assert_eq!((served, runs), (vec![(1, true)], 1));
        let fresh = options.ttl(Duration::from_secs(60));
        if by_set_many {
            cache.set_many_with(&[("k", 2)], &fresh).await.unwrap();
        } else {
            cache.set_with("k", &2, &fresh).await.unwrap();
        }
        let entry = cache
            .try_get_or_set_entry("k", options, || async {
                Err::<u64, _>(std::io::Error::other("not called: the value is fresh"))
            })
            .await
            .unwrap();
        assert_eq!(
            (entry.value, entry.stale),
            (2, false),
            "written by set_many: {by_set_many}"
        );
    }
}

/// A memory cache that refuses TTLs over a year, as a backend with a shorter clock than
/// the TTLs asked of it may.
struct ShortLived(cache_memory::MemoryCache);

#[async_trait]
impl Cache for ShortLived {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.0.get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        if let Some(ttl) = ttl.filter(|ttl| *ttl > Duration::from_secs(365 * 24 * 3600)) {
            return Err(CacheError::InvalidTtl {
                ttl,
                reason: "past this backend's last expiry",
            });
        }
        self.0.set(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        self.0.delete(key).await
    }
    fn limits(&self) -> Capabilities {
        self.0.limits()
    }
}

/// A TTL longer than the backend keeps is stored without expiry, not dropped: the
/// factory runs once, and the value is fresh for its own TTL.
#[tokio::test]
async fn a_ttl_longer_than_the_backend_keeps_is_still_cached() {
    let cache = numbers(Arc::new(ShortLived(cache_memory::MemoryCache::new())));
    let runs = Arc::new(AtomicUsize::new(0));
    let decade = cache
        .options()
        .ttl(Duration::from_secs(10 * 365 * 24 * 3600));
    for _ in 0..3 {
        let runs = Arc::clone(&runs);
        let value = cache
            .get_or_set("k", decade, move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                3
            })
            .await
            .unwrap();
        assert_eq!(value, 3);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    cache.set_with("k2", &4, &decade).await.unwrap();
    assert_eq!(cache.get("k2").await.unwrap(), Some(4));
    let entry = cache.get_entry("k").await.unwrap().expect("stored");
    assert!(!entry.stale);
}

/// A TTL under a millisecond is one millisecond in the envelope, not zero: the value
/// is fresh when read at once.
#[tokio::test]
async fn a_ttl_under_a_millisecond_is_not_zero() {
    let cache = numbers(memory());
    let options = cache.options().ttl(Duration::from_micros(600));
    let entry = cache
        .get_or_set_entry("k", options, || async { 9 })
        .await
        .unwrap();
    assert_eq!((entry.value, entry.stale), (9, false));
    let expires = entry.expires_at.expect("a TTL");
    assert!(expires > entry.written_at, "{entry:?}");
}

/// A memory cache that declares a clock of whole seconds and notes every TTL it is
/// given.
struct WholeSeconds {
    cache: cache_memory::MemoryCache,
    ttls: std::sync::Mutex<Vec<Option<Duration>>>,
}

#[async_trait]
impl Cache for WholeSeconds {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.cache.get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        self.ttls.lock().unwrap().push(ttl);
        self.cache.set(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        self.cache.delete(key).await
    }
    fn limits(&self) -> Capabilities {
        Capabilities::new(Duration::from_secs(1), 1 << 20)
    }
}

/// A backend whose clock ticks in whole seconds drops an entry of n seconds after
/// n - 1 to n of them: every write gives it one tick more than the value's life, so
/// that the value is there until its logical expiry (an eager refresh reads it then).
#[tokio::test]
async fn the_backend_ttl_covers_a_clock_of_whole_seconds() {
    let backend = Arc::new(WholeSeconds {
        cache: cache_memory::MemoryCache::new(),
        ttls: std::sync::Mutex::new(Vec::new()),
    });
    let cache = numbers(backend.clone());
    let two = cache.options().ttl(Duration::from_secs(2));
    cache.get_or_set("a", two, || async { 1 }).await.unwrap();
    cache.set_with("b", &2, &two).await.unwrap();
    cache.set_many_with(&[("c", 3)], &two).await.unwrap();
    let safe = two.fail_safe(Duration::from_secs(60), Duration::from_secs(1));
    cache.get_or_set("d", safe, || async { 4 }).await.unwrap();
    let three = Some(Duration::from_secs(3));
    assert_eq!(
        *backend.ttls.lock().unwrap(),
        [three, three, three, Some(Duration::from_secs(63))]
    );
    // The envelope still says when the value stops being fresh.
    let entry = cache.get_entry("a").await.unwrap().expect("stored");
    let life = entry
        .expires_at
        .expect("a TTL was given")
        .duration_since(entry.written_at)
        .unwrap();
    assert_eq!(life, Duration::from_secs(2));
}

/// A memory cache whose every call fails as unreachable while `down` is set.
#[derive(Default)]
struct Switchable {
    cache: cache_memory::MemoryCache,
    down: std::sync::atomic::AtomicBool,
}

impl Switchable {
    fn check(&self) -> Result<(), CacheError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(CacheError::Unreachable {
                backend: "switchable",
                source: "down".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Cache for Switchable {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.check()?;
        self.cache.get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        self.check()?;
        self.cache.set(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        self.check()?;
        self.cache.delete(key).await
    }
    fn limits(&self) -> Capabilities {
        self.cache.limits()
    }
}

/// A value written with fail-safe options is kept in the process as one read would be:
/// with the backend down past its TTL, `get_or_set` serves it stale. Written without
/// fail-safe, nothing is kept, and the factory's error is the answer.
#[tokio::test]
async fn a_value_written_with_fail_safe_is_served_while_the_backend_is_down() {
    let backend = Arc::new(Switchable::default());
    let cache = numbers(backend.clone());
    let short = cache.options().ttl(Duration::from_millis(50));
    let safe = short.fail_safe(Duration::from_secs(60), Duration::from_secs(1));
    cache.set_with("kept", &5, &safe).await.unwrap();
    cache.set_with("not-kept", &6, &short).await.unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    backend.down.store(true, Ordering::SeqCst);

    let runs = Arc::new(AtomicUsize::new(0));
    let entry = cache
        .try_get_or_set_entry("kept", safe, failing(&runs))
        .await
        .unwrap();
    assert_eq!((entry.value, entry.stale), (5, true));
    assert_eq!(runs.load(Ordering::SeqCst), 0, "served without the factory");
    let unkept = cache
        .try_get_or_set_entry("not-kept", safe, failing(&runs))
        .await;
    assert!(matches!(unkept, Err(Error::Factory(_))), "{unkept:?}");
}

/// `result` is `FactoryPanicked` with `message`, and the distributed lock of `key` is
/// gone from `store`.
async fn assert_panicked_and_unlocked<V: std::fmt::Debug>(
    result: &Result<V, Error>,
    message: &str,
    store: &dyn Cache,
    key: &str,
) {
    assert!(
        matches!(result, Err(Error::FactoryPanicked { message: shown }) if shown.contains(message)),
        "{result:?}"
    );
    let lock = format!("{key}{}", cache_typed::LOCK_SUFFIX);
    assert_eq!(store.get(&lock).await.unwrap(), None, "the lock is held");
}

/// A value whose `Serialize` panics while `PANICS` is set.
#[derive(Clone, Debug, serde::Deserialize)]
struct Bomb(u64);

static PANICS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl serde::Serialize for Bomb {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        assert!(!PANICS.load(Ordering::SeqCst), "serialize bomb");
        serializer.serialize_u64(self.0)
    }
}

/// A value that panics while it is encoded, under a distributed lock: the caller gets
/// `FactoryPanicked`, and the lock is released as after any failure, not left to expire
/// (the next call would wait out its TTL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_while_encoding_releases_the_distributed_lock() {
    let backend = memory();
    let cache = TypedCache::<Bomb, JsonCodec>::new(Arc::clone(&backend), JsonCodec);
    let options = cache
        .options()
        .distributed_lock(cache_typed::DistributedLock::new(Duration::from_secs(30)));
    PANICS.store(true, Ordering::SeqCst);
    let result = within("a panicking encode", async {
        cache.get_or_set("b", options, || async { Bomb(1) }).await
    })
    .await;
    PANICS.store(false, Ordering::SeqCst);
    assert_panicked_and_unlocked(&result, "serialize bomb", &*backend, "b").await;
    let entry = within("the next call", async {
        cache.get_or_set("b", options, || async { Bomb(2) }).await
    })
    .await
    .unwrap();
    assert_eq!(entry.0, 2);
}

/// A value whose `Deserialize` panics while `DECODE_PANICS` is set.
#[derive(Clone, Debug, serde::Serialize)]
struct DecodeBomb(u64);

static DECODE_PANICS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl<'de> serde::Deserialize<'de> for DecodeBomb {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        assert!(!DECODE_PANICS.load(Ordering::SeqCst), "deserialize bomb");
        u64::deserialize(deserializer).map(DecodeBomb)
    }
}

/// Misses the first read of every key, then reads through: the caller's own read misses,
/// and the read the lock's holder makes right after taking the lock finds the value.
struct FirstReadMisses {
    inner: Arc<dyn Cache>,
    missed: std::sync::Mutex<std::collections::HashSet<String>>,
}

#[async_trait]
impl cache_api::CacheWrapper for FirstReadMisses {
    fn inner(&self) -> &dyn Cache {
        &*self.inner
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        if self.missed.lock().unwrap().insert(key.to_owned()) {
            return Ok(None);
        }
        self.inner.get(key).await
    }
}

/// A value that panics while it is decoded by the lock's holder, in its read right after
/// taking the lock: the lock is released, not left to expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_while_decoding_under_the_lock_releases_it() {
    let store = memory();
    let backend: Arc<dyn Cache> = Arc::new(cache_api::Wrapped(FirstReadMisses {
        inner: Arc::clone(&store),
        missed: std::sync::Mutex::default(),
    }));
    let cache = TypedCache::<DecodeBomb, JsonCodec>::new(backend, JsonCodec);
    let options = cache
        .options()
        .distributed_lock(cache_typed::DistributedLock::new(Duration::from_secs(30)));
    cache.set("d", &DecodeBomb(1)).await.unwrap();
    DECODE_PANICS.store(true, Ordering::SeqCst);
    let result = within("a panicking decode", async {
        cache
            .get_or_set("d", options, || async { DecodeBomb(2) })
            .await
    })
    .await;
    DECODE_PANICS.store(false, Ordering::SeqCst);
    assert_panicked_and_unlocked(&result, "deserialize bomb", &*store, "d").await;
}

/// A memory cache whose `get_many` answers one value fewer than keys asked; every
/// other call goes straight through.
struct OneShort(cache_memory::MemoryCache);

#[async_trait]
impl CacheWrapper for OneShort {
    fn inner(&self) -> &dyn Cache {
        &self.0
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        let mut answer = self.0.get_many(keys).await?;
        answer.pop();
        Ok(answer)
    }
}

/// A backend's `get_many` answer with fewer values than keys is an error of the call,
/// never values paired with the wrong keys.
#[tokio::test]
async fn a_get_many_answer_one_short_is_an_error() {
    let typed = numbers(Arc::new(Wrapped(
        OneShort(cache_memory::MemoryCache::new()),
    )));
    typed.set("a", &1).await.unwrap();
    typed.set("b", &2).await.unwrap();
    let answer = typed.get_many(&["a", "b"]).await;
    assert!(
        matches!(&answer, Err(Error::Cache(CacheError::Backend { .. }))),
        "{answer:?}"
    );
    assert_eq!(typed.get("b").await.unwrap(), Some(2));
}
