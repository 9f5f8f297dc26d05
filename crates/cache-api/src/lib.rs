#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod capabilities;
mod error;
mod ext;
mod forward;
mod layer;
mod wrapper;

use std::time::Duration;

pub use async_trait::async_trait;
pub use bytes::Bytes;
pub use capabilities::{BackendInfo, Capabilities, Limits};
pub use error::{BoxError, CacheError};
pub use ext::CacheExt;
pub use layer::{CacheStack, Layer};
pub use wrapper::{CacheWrapper, Wrapped};

/// `dyn Cache`, the type an application holds when the backend is chosen at run time.
pub type DynCache = dyn Cache;

/// Checks a key against the rules every backend shares: the empty key is refused.
///
/// Backends call this first in every operation; any other UTF-8 string is a valid key
/// (a backend with narrower native rules encodes it).
///
/// # Errors
///
/// [`CacheError::InvalidKey`] for the empty key.
///
/// ```
/// assert!(cache_api::validate_key("user:42").is_ok());
/// assert!(cache_api::validate_key("").is_err());
/// ```
pub fn validate_key(key: &str) -> Result<(), CacheError> {
    if key.is_empty() {
        return Err(CacheError::InvalidKey {
            reason: "the empty key is not a key",
        });
    }
    Ok(())
}

/// Checks a [`Cache::get_many`] answer against the keys asked: one value per key. A
/// wrapper hands on an answer it relies on through this, so that a backend that answers
/// with fewer or more values than keys (which would pair values with the wrong keys, or
/// count hits that never were) fails the call instead.
///
/// # Errors
///
/// [`CacheError::Backend`] naming `backend` and both counts when they differ.
///
/// ```
/// use cache_api::{check_get_many_answer, Bytes, CacheError};
///
/// let answer = vec![Some(Bytes::from("a")), None];
/// assert!(check_get_many_answer(answer.clone(), 2, "custom").is_ok());
/// let error = check_get_many_answer(answer, 3, "custom").unwrap_err();
/// assert!(matches!(error, CacheError::Backend { .. }));
/// assert_eq!(error.to_string(), "custom error: get_many answered 2 values for 3 keys");
/// ```
pub fn check_get_many_answer(
    answer: Vec<Option<Bytes>>,
    keys: usize,
    backend: &'static str,
) -> Result<Vec<Option<Bytes>>, CacheError> {
    if answer.len() == keys {
        return Ok(answer);
    }
    Err(CacheError::Backend {
        backend,
        source: format!("get_many answered {} values for {keys} keys", answer.len()).into(),
    })
}

/// Checks every key of a bulk operation before anything is sent, so that a bad key
/// in the middle of a batch leaves the cache untouched.
///
/// # Errors
///
/// [`CacheError::InvalidKey`] when any key is invalid.
pub fn validate_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<(), CacheError> {
    keys.into_iter().try_for_each(validate_key)
}

/// Checks a value against the largest size a backend stores, before anything is sent.
///
/// # Errors
///
/// [`CacheError::ValueTooLarge`], naming the value's size and the limit, when the value
/// is longer than `limit`.
///
/// ```
/// assert!(cache_api::validate_value(b"hello", 5).is_ok());
/// let err = cache_api::validate_value(b"hello!", 5).unwrap_err();
/// assert_eq!(err.to_string(), "value of 6 bytes exceeds the limit of 5 bytes");
/// ```
pub fn validate_value(value: &[u8], limit: usize) -> Result<(), CacheError> {
    if value.len() > limit {
        return Err(CacheError::ValueTooLarge {
            size: value.len(),
            limit,
        });
    }
    Ok(())
}

/// Checks every key and value of a `set_many` batch before anything is written, so that a
/// caller mistake anywhere in the batch writes nothing.
///
/// # Errors
///
/// [`CacheError::InvalidKey`] or [`CacheError::ValueTooLarge`] for the first entry that
/// is one.
///
/// ```
/// use cache_api::Bytes;
///
/// let entries = [("a", Bytes::from("1")), ("b", Bytes::from("22"))];
/// assert!(cache_api::validate_entries(&entries, 2).is_ok());
/// assert!(cache_api::validate_entries(&entries, 1).is_err());
/// ```
pub fn validate_entries(
    entries: &[(&str, Bytes)],
    max_value_size: usize,
) -> Result<(), CacheError> {
    entries.iter().try_for_each(|(key, value)| {
        validate_key(key)?;
        validate_value(value, max_value_size)
    })
}

/// An async cache: bytes in, bytes out, with an optional time to live per entry.
///
/// Implementors write [`get`](Cache::get), [`set`](Cache::set) and
/// [`delete`](Cache::delete); every other method has a default body built on those
/// three (one round trip per key) that a backend overrides when it can do better.
///
/// The trait is object safe: `Arc<dyn Cache>`, `Box<dyn Cache>` and `&dyn Cache` are
/// caches themselves.
///
/// # The rules every implementation keeps
///
/// - `set` replaces both value and TTL. `None` means "until deleted or evicted", and
///   removes a TTL the key had. `Some(Duration::ZERO)` stores nothing and removes the
///   previous value. A TTL is rounded *up* to the backend's
///   [granularity](Capabilities::ttl_granularity), never down.
/// - `get` never returns an entry whose TTL has passed.
/// - The empty key is [`CacheError::InvalidKey`]; every other UTF-8 string works.
/// - A value over [`Capabilities::max_value_size`] is [`CacheError::ValueTooLarge`] and
///   changes nothing.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use cache_api::{Bytes, Cache};
///
/// async fn greet(cache: Arc<dyn Cache>) -> Result<(), cache_api::CacheError> {
///     cache.set("greeting", Bytes::from("hello"), Some(Duration::from_secs(60))).await?;
///     let hit = cache.get("greeting").await?;
///     assert_eq!(hit.as_deref(), Some(&b"hello"[..]));
///     assert!(cache.delete("greeting").await?);
///     Ok(())
/// }
/// ```
///
/// # Writing an implementation
///
/// Write the impl with `#[async_trait]` (re-exported here) and plain `async fn`s: the
/// methods below are declared in exactly the form that attribute produces (each returns
/// a boxed, `Send` [`CacheFuture`] that may borrow `self` and the arguments). A wrapper
/// that only hands a call on can instead return the inner cache's future as it is, with
/// no box of its own: see [`forward_cache!`] and [`CacheWrapper`].
pub trait Cache: Send + Sync {
    /// Returns the value stored under `key`, or `Ok(None)` on a miss (never
    /// stored, deleted, evicted or expired).
    ///
    /// # Errors
    ///
    /// [`CacheError::InvalidKey`] for the empty key; backend trouble otherwise.
    fn get<'s, 'k, 'f>(&'s self, key: &'k str) -> CacheFuture<'f, Option<Bytes>>
    where
        's: 'f,
        'k: 'f,
        Self: 'f;

    /// Stores `value` under `key`, replacing any previous value and TTL.
    ///
    /// `ttl` of `None` keeps the entry until it is deleted or evicted;
    /// `Some(Duration::ZERO)` stores nothing and removes the previous value.
    ///
    /// # Errors
    ///
    /// [`CacheError::InvalidKey`], [`CacheError::ValueTooLarge`] or
    /// [`CacheError::InvalidTtl`] for caller mistakes (nothing is written); backend
    /// trouble otherwise.
    fn set<'s, 'k, 'f>(
        &'s self,
        key: &'k str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> CacheFuture<'f, ()>
    where
        's: 'f,
        'k: 'f,
        Self: 'f;

    /// Removes `key`; returns `true` when a live entry was removed and `false` when
    /// there was none. Deleting a missing key is not an error.
    ///
    /// # Errors
    ///
    /// [`CacheError::InvalidKey`] for the empty key; backend trouble otherwise.
    fn delete<'s, 'k, 'f>(&'s self, key: &'k str) -> CacheFuture<'f, bool>
    where
        's: 'f,
        'k: 'f,
        Self: 'f;

    /// Returns the values of `keys`, in the same order, `None` for each miss.
    /// Duplicate keys get the same answer at each position.
    ///
    /// The default calls [`get`](Cache::get) once per key.
    ///
    /// # Errors
    ///
    /// [`CacheError::InvalidKey`] when any key is invalid (checked before anything
    /// is read); backend trouble otherwise.
    fn get_many<'s, 'k, 'e, 'f>(
        &'s self,
        keys: &'k [&'e str],
    ) -> CacheFuture<'f, Vec<Option<Bytes>>>
    where
        's: 'f,
        'k: 'f,
        'e: 'f,
        Self: 'f,
    {
        Box::pin(async move {
            validate_keys(keys.iter().copied())?;
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                values.push(self.get(key).await?);
            }
            Ok(values)
        })
    }

    /// Stores every entry with the same `ttl`. When a key appears twice, the last
    /// value wins.
    ///
    /// The default calls [`set`](Cache::set) once per entry, after checking every
    /// key (not empty) and value (within [`limits`](Cache::limits)`().max_value_size`),
    /// so a caller mistake anywhere in the batch writes nothing. A backend whose `set`
    /// refuses entries for any other reason (a key it cannot encode, a limit on key
    /// and value together) must override `set_many` to check them all first: the
    /// default would have written the entries before the refused one.
    ///
    /// # Errors
    ///
    /// As [`set`](Cache::set). On backend trouble some entries may have been written.
    fn set_many<'s, 'k, 'e, 'f>(
        &'s self,
        entries: &'k [(&'e str, Bytes)],
        ttl: Option<Duration>,
    ) -> CacheFuture<'f, ()>
    where
        's: 'f,
        'k: 'f,
        'e: 'f,
        Self: 'f,
    {
        Box::pin(async move {
            validate_entries(entries, self.limits().max_value_size)?;
            for (key, value) in entries {
                self.set(key, value.clone(), ttl).await?;
            }
            Ok(())
        })
    }

    /// Removes every key and returns how many live entries were removed (a key
    /// named twice counts once).
    ///
    /// The default calls [`delete`](Cache::delete) once per key.
    ///
    /// # Errors
    ///
    /// [`CacheError::InvalidKey`] when any key is invalid (checked before anything
    /// is removed); backend trouble otherwise.
    fn delete_many<'s, 'k, 'e, 'f>(&'s self, keys: &'k [&'e str]) -> CacheFuture<'f, usize>
    where
        's: 'f,
        'k: 'f,
        'e: 'f,
        Self: 'f,
    {
        Box::pin(async move {
            validate_keys(keys.iter().copied())?;
            let mut removed = 0;
            for key in keys {
                removed += usize::from(self.delete(key).await?);
            }
            Ok(removed)
        })
    }

    /// Returns whether a live entry is stored under `key`; agrees with
    /// [`get`](Cache::get), expired entries included.
    ///
    /// The default calls [`get`](Cache::get) and drops the value.
    ///
    /// # Errors
    ///
    /// As [`get`](Cache::get).
    fn exists<'s, 'k, 'f>(&'s self, key: &'k str) -> CacheFuture<'f, bool>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        Box::pin(async move { Ok(self.get(key).await?.is_some()) })
    }

    /// Stores `value` under `key` only if no live entry is there (an expired one counts
    /// as absent); returns `true` when it stored, `false` when it changed nothing,
    /// neither value nor TTL. Atomic: of many concurrent `add`s of one key, exactly one
    /// returns `true`. With a zero TTL nothing is stored and the answer is `false`.
    ///
    /// A get-then-set cannot be atomic, so the default returns
    /// [`CacheError::Unsupported`]; a backend overrides it with its native form
    /// (Redis `SET NX`, memcached `add`, an in-memory entry API) and declares
    /// [`Capabilities::atomic_add`].
    ///
    /// # Errors
    ///
    /// As [`set`](Cache::set), and [`CacheError::Unsupported`] from the default.
    fn add<'s, 'k, 'f>(
        &'s self,
        key: &'k str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> CacheFuture<'f, bool>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        let _ = (key, value, ttl);
        Box::pin(std::future::ready(Err(CacheError::Unsupported {
            operation: "add",
        })))
    }

    /// Removes every entry this cache object owns: its namespace when it has one, the
    /// whole store otherwise. Each backend documents exactly what it removes, and
    /// declares [`Capabilities::clear`].
    ///
    /// There is no default that could be built on get, set and delete, so the default
    /// returns [`CacheError::Unsupported`].
    ///
    /// # Errors
    ///
    /// [`CacheError::Unsupported`] from the default; backend trouble otherwise.
    fn clear<'s, 'f>(&'s self) -> CacheFuture<'f, ()>
    where
        's: 'f,
        Self: 'f,
    {
        Box::pin(std::future::ready(Err(CacheError::Unsupported {
            operation: "clear",
        })))
    }

    /// The [`Capabilities`] this backend declares: TTL granularity, largest value,
    /// largest key stored as-is, and what it does natively (`clear`, bulk, atomic
    /// `add`). Costs nothing (no round trip). The name is kept from when it held only
    /// limits; [`Limits`] is the same type.
    fn limits(&self) -> Capabilities {
        Capabilities::default()
    }

    /// How this backend names itself (its scheme and a label for metrics). Costs
    /// nothing (no round trip). The default is [`BackendInfo::default`], `custom`.
    fn describe(&self) -> BackendInfo {
        BackendInfo::default()
    }
}

/// So that an application's state that holds an `Arc<dyn Cache>` can derive `Debug`:
/// the backend's label ([`Cache::describe`]) and its [`Cache::limits`], never a host, key
/// prefix or secret.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use cache_api::{async_trait, Bytes, Cache, CacheError};
///
/// #[derive(Debug)]
/// struct AppState {
///     cache: Arc<dyn Cache>,
/// }
///
/// /// A cache that keeps nothing, for the shape.
/// struct Nothing;
///
/// #[async_trait]
/// impl Cache for Nothing {
///     async fn get(&self, _: &str) -> Result<Option<Bytes>, CacheError> {
///         Ok(None)
///     }
///     async fn set(&self, _: &str, _: Bytes, _: Option<Duration>) -> Result<(), CacheError> {
///         Ok(())
///     }
///     async fn delete(&self, _: &str) -> Result<bool, CacheError> {
///         Ok(false)
///     }
/// }
///
/// let state = AppState { cache: Arc::new(Nothing) };
/// let shown = format!("{state:?}");
/// assert!(shown.starts_with("AppState { cache: Cache { backend: \"custom\", limits: "), "{shown}");
/// ```
impl std::fmt::Debug for dyn Cache + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.describe().label)
            .field("limits", &self.limits())
            .finish()
    }
}

/// The future every [`Cache`] method returns: boxed, `Send`, borrowing at most what the
/// call borrowed.
pub type CacheFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, CacheError>> + Send + 'a>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::{collections::HashMap, sync::Mutex};

    #[derive(Default)]
    struct MapCache(Mutex<HashMap<String, Bytes>>);

    #[async_trait]
    impl Cache for MapCache {
        async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
            validate_key(key)?;
            Ok(self.0.lock().unwrap().get(key).cloned())
        }
        async fn set(
            &self,
            key: &str,
            value: Bytes,
            _ttl: Option<Duration>,
        ) -> Result<(), CacheError> {
            validate_key(key)?;
            self.0.lock().unwrap().insert(key.to_owned(), value);
            Ok(())
        }
        async fn delete(&self, key: &str) -> Result<bool, CacheError> {
            validate_key(key)?;
            Ok(self.0.lock().unwrap().remove(key).is_some())
        }
    }

    /// The default bulk operations keep order, report misses and count duplicates once.
    #[tokio::test]
    async fn default_bulk_operations_follow_the_contract() {
        let cache: Arc<dyn Cache> = Arc::new(MapCache::default());
        cache
            .set_many(&[("a", Bytes::from("1")), ("b", Bytes::from("2"))], None)
            .await
            .unwrap();
        let got = cache.get_many(&["b", "missing", "a", "b"]).await.unwrap();
        assert_eq!(
            got,
            vec![
                Some(Bytes::from("2")),
                None,
                Some(Bytes::from("1")),
                Some(Bytes::from("2"))
            ]
        );
        assert!(cache.exists("a").await.unwrap());
        assert_eq!(cache.delete_many(&["a", "a", "missing"]).await.unwrap(), 1);
        assert!(!cache.exists("a").await.unwrap());
        assert!(matches!(
            cache.clear().await,
            Err(CacheError::Unsupported { .. })
        ));
    }

    /// A bad key anywhere in a batch writes nothing.
    #[tokio::test]
    async fn default_set_many_checks_the_whole_batch_first() {
        let cache = Box::new(MapCache::default());
        let err = cache
            .set_many(&[("a", Bytes::from("1")), ("", Bytes::from("2"))], None)
            .await
            .unwrap_err();
        assert!(matches!(err, CacheError::InvalidKey { .. }));
        assert_eq!(cache.get("a").await.unwrap(), None);

        let too_big = Bytes::from(vec![0; cache.limits().max_value_size + 1]);
        let err = cache
            .set_many(&[("a", Bytes::from("1")), ("b", too_big)], None)
            .await
            .unwrap_err();
        assert!(matches!(err, CacheError::ValueTooLarge { .. }));
        assert_eq!(cache.get("a").await.unwrap(), None);
    }

    /// Records the order in which wrappers see a call, then hands it on.
    struct Trace {
        inner: Arc<dyn Cache>,
        name: &'static str,
        seen: Arc<Mutex<Vec<&'static str>>>,
    }

    #[async_trait]
    impl CacheWrapper for Trace {
        fn inner(&self) -> &dyn Cache {
            &*self.inner
        }
        async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
            self.seen.lock().unwrap().push(self.name);
            self.inner.get(key).await
        }
    }

    struct TraceLayer(&'static str, Arc<Mutex<Vec<&'static str>>>);

    impl Layer for TraceLayer {
        fn layer(&self, inner: Arc<dyn Cache>) -> Arc<dyn Cache> {
            Arc::new(Wrapped(Trace {
                inner,
                name: self.0,
                seen: self.1.clone(),
            }))
        }
    }

    /// The last layer of a stack is the outermost; `None` adds nothing; a wrapper
    /// forwards what it does not override, declarations included.
    #[tokio::test]
    async fn stacks_read_from_the_inside_out_and_wrappers_forward_the_rest() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let backend: Arc<dyn Cache> = Arc::new(MapCache::default());
        let cache = CacheStack::new(backend.clone())
            .layer(TraceLayer("inner", seen.clone()))
            .layer(None::<TraceLayer>)
            .layer(TraceLayer("outer", seen.clone()))
            .build();
        cache.set("k", Bytes::from("v"), None).await.unwrap();
        assert_eq!(backend.get("k").await.unwrap(), Some(Bytes::from("v")));
        assert!(seen.lock().unwrap().is_empty(), "set is not overridden");
        assert_eq!(cache.get("k").await.unwrap(), Some(Bytes::from("v")));
        assert_eq!(*seen.lock().unwrap(), ["outer", "inner"]);
        assert_eq!(cache.delete_many(&["k", "x"]).await.unwrap(), 1);
        assert_eq!(cache.limits(), backend.limits());
        assert_eq!(cache.describe(), BackendInfo::default());
        assert!(matches!(
            cache.add("k", Bytes::new(), None).await,
            Err(CacheError::Unsupported { operation: "add" })
        ));
    }

    /// The conveniences work on `dyn Cache`.
    #[tokio::test]
    async fn ext_conveniences_work_on_dyn_cache() {
        let cache: &dyn Cache = &MapCache::default();
        cache
            .set_with("s", String::from("text"), None)
            .await
            .unwrap();
        assert_eq!(cache.get_or_default("s").await.unwrap(), "text");
        assert_eq!(cache.get_or_default("missing").await.unwrap(), "");
        assert_eq!(cache.capabilities(), Capabilities::default());
    }

    #[test]
    fn errors_are_classified() {
        assert!(CacheError::InvalidKey { reason: "x" }.is_caller_error());
        let timeout = CacheError::Timeout {
            backend: "redis",
            operation: "get",
            phase: "response",
            after: Duration::from_millis(500),
        };
        assert!(timeout.is_retryable() && timeout.is_timeout() && !timeout.is_caller_error());
        assert_eq!(
            timeout.to_string(),
            "redis get timed out after 500ms (response)"
        );
    }
}
