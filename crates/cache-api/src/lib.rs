#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod error;
mod limits;

use std::{sync::Arc, time::Duration};

pub use async_trait::async_trait;
pub use bytes::Bytes;
pub use error::{BoxError, CacheError};
pub use limits::Limits;

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
///   [granularity](Limits::ttl_granularity), never down.
/// - `get` never returns an entry whose TTL has passed.
/// - The empty key is [`CacheError::InvalidKey`]; every other UTF-8 string works.
/// - A value over [`Limits::max_value_size`] is [`CacheError::ValueTooLarge`] and
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
#[async_trait]
pub trait Cache: Send + Sync {
    /// Returns the value stored under `key`, or `Ok(None)` on a miss (never
    /// stored, deleted, evicted or expired).
    ///
    /// # Errors
    ///
    /// [`CacheError::InvalidKey`] for the empty key; backend trouble otherwise.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError>;

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
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError>;

    /// Removes `key`; returns `true` when a live entry was removed and `false` when
    /// there was none. Deleting a missing key is not an error.
    ///
    /// # Errors
    ///
    /// [`CacheError::InvalidKey`] for the empty key; backend trouble otherwise.
    async fn delete(&self, key: &str) -> Result<bool, CacheError>;

    /// Returns the values of `keys`, in the same order, `None` for each miss.
    /// Duplicate keys get the same answer at each position.
    ///
    /// The default calls [`get`](Cache::get) once per key.
    ///
    /// # Errors
    ///
    /// [`CacheError::InvalidKey`] when any key is invalid (checked before anything
    /// is read); backend trouble otherwise.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        validate_keys(keys.iter().copied())?;
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(key).await?);
        }
        Ok(values)
    }

    /// Stores every entry with the same `ttl`. When a key appears twice, the last
    /// value wins.
    ///
    /// The default calls [`set`](Cache::set) once per entry, after checking every
    /// key and value, so a caller mistake anywhere in the batch writes nothing.
    ///
    /// # Errors
    ///
    /// As [`set`](Cache::set). On backend trouble some entries may have been written.
    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        validate_entries(entries, self.limits().max_value_size)?;
        for (key, value) in entries {
            self.set(key, value.clone(), ttl).await?;
        }
        Ok(())
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
    async fn delete_many(&self, keys: &[&str]) -> Result<usize, CacheError> {
        validate_keys(keys.iter().copied())?;
        let mut removed = 0;
        for key in keys {
            removed += usize::from(self.delete(key).await?);
        }
        Ok(removed)
    }

    /// Returns whether a live entry is stored under `key`; agrees with
    /// [`get`](Cache::get), expired entries included.
    ///
    /// The default calls [`get`](Cache::get) and drops the value.
    ///
    /// # Errors
    ///
    /// As [`get`](Cache::get).
    async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        Ok(self.get(key).await?.is_some())
    }

    /// Stores `value` under `key` only if no live entry is there (an expired one counts
    /// as absent); returns `true` when it stored, `false` when it changed nothing,
    /// neither value nor TTL. Atomic: of many concurrent `add`s of one key, exactly one
    /// returns `true`. With a zero TTL nothing is stored and the answer is `false`.
    ///
    /// A get-then-set cannot be atomic, so the default returns
    /// [`CacheError::Unsupported`]; a backend overrides it with its native form
    /// (Redis `SET NX`, memcached `add`, an in-memory entry API).
    ///
    /// # Errors
    ///
    /// As [`set`](Cache::set), and [`CacheError::Unsupported`] from the default.
    async fn add(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        let _ = (key, value, ttl);
        Err(CacheError::Unsupported { operation: "add" })
    }

    /// Removes every entry this cache object owns: its namespace when it has one, the
    /// whole store otherwise. Each backend documents exactly what it removes.
    ///
    /// There is no default that could be built on get, set and delete, so the default
    /// returns [`CacheError::Unsupported`].
    ///
    /// # Errors
    ///
    /// [`CacheError::Unsupported`] from the default; backend trouble otherwise.
    async fn clear(&self) -> Result<(), CacheError> {
        Err(CacheError::Unsupported { operation: "clear" })
    }

    /// The facts this backend declares about itself: TTL granularity, largest value,
    /// largest key stored as-is. Costs nothing (no round trip).
    fn limits(&self) -> Limits {
        Limits::default()
    }
}

/// The future every [`Cache`] method returns behind `async fn`: boxed, `Send`.
pub type CacheFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, CacheError>> + Send + 'a>>;

/// Implements [`Cache`] for a type that holds a cache, by handing every call to that
/// cache: each method returns the inner cache's future as it is, where a wrapper written
/// with `#[async_trait]` would box that future once more on every call.
///
/// `forward_cache!(impl[GENERICS] for TYPE, |this| INNER)`: `GENERICS` are the impl's
/// generic parameters with their bounds, and `INNER`, given `this: &TYPE`, is a
/// reference to the cache every call goes to. Doc comments before `impl` go on the impl.
/// A wrapper that does something of its own in some methods writes its impl by hand.
///
/// ```
/// // cache-api = "0.1"
/// use cache_api::{forward_cache, Cache};
///
/// /// A cache shown under a name of its own.
/// struct Named<C> {
///     name: &'static str,
///     cache: C,
/// }
///
/// forward_cache!(
///     /// Every call goes to the cache inside.
///     impl[C: Cache] for Named<C>, |this| &this.cache
/// );
///
/// fn assert_cache<T: Cache>() {}
/// assert_cache::<Named<Box<dyn Cache>>>();
/// ```
#[macro_export]
macro_rules! forward_cache {
    (
        $(#[$doc:meta])*
        impl[$($generics:tt)*] for $ty:ty, |$this:ident| $inner:expr
    ) => {
        $(#[$doc])*
        impl<$($generics)*> $crate::Cache for $ty {
            fn get<'life0, 'life1, 'async_trait>(
                &'life0 self,
                key: &'life1 str,
            ) -> $crate::CacheFuture<'async_trait, ::core::option::Option<$crate::Bytes>>
            where
                'life0: 'async_trait,
                'life1: 'async_trait,
                Self: 'async_trait,
            {
                let $this = self;
                $crate::Cache::get($inner, key)
            }

            fn set<'life0, 'life1, 'async_trait>(
                &'life0 self,
                key: &'life1 str,
                value: $crate::Bytes,
                ttl: ::core::option::Option<::core::time::Duration>,
            ) -> $crate::CacheFuture<'async_trait, ()>
            where
                'life0: 'async_trait,
                'life1: 'async_trait,
                Self: 'async_trait,
            {
                let $this = self;
                $crate::Cache::set($inner, key, value, ttl)
            }

            fn delete<'life0, 'life1, 'async_trait>(
                &'life0 self,
                key: &'life1 str,
            ) -> $crate::CacheFuture<'async_trait, bool>
            where
                'life0: 'async_trait,
                'life1: 'async_trait,
                Self: 'async_trait,
            {
                let $this = self;
                $crate::Cache::delete($inner, key)
            }

            fn get_many<'life0, 'life1, 'life2, 'async_trait>(
                &'life0 self,
                keys: &'life1 [&'life2 str],
            ) -> $crate::CacheFuture<'async_trait, ::std::vec::Vec<::core::option::Option<$crate::Bytes>>>
            where
                'life0: 'async_trait,
                'life1: 'async_trait,
                'life2: 'async_trait,
                Self: 'async_trait,
            {
                let $this = self;
                $crate::Cache::get_many($inner, keys)
            }

            fn set_many<'life0, 'life1, 'life2, 'async_trait>(
                &'life0 self,
                entries: &'life1 [(&'life2 str, $crate::Bytes)],
                ttl: ::core::option::Option<::core::time::Duration>,
            ) -> $crate::CacheFuture<'async_trait, ()>
            where
                'life0: 'async_trait,
                'life1: 'async_trait,
                'life2: 'async_trait,
                Self: 'async_trait,
            {
                let $this = self;
                $crate::Cache::set_many($inner, entries, ttl)
            }

            fn delete_many<'life0, 'life1, 'life2, 'async_trait>(
                &'life0 self,
                keys: &'life1 [&'life2 str],
            ) -> $crate::CacheFuture<'async_trait, usize>
            where
                'life0: 'async_trait,
                'life1: 'async_trait,
                'life2: 'async_trait,
                Self: 'async_trait,
            {
                let $this = self;
                $crate::Cache::delete_many($inner, keys)
            }

            fn exists<'life0, 'life1, 'async_trait>(
                &'life0 self,
                key: &'life1 str,
            ) -> $crate::CacheFuture<'async_trait, bool>
            where
                'life0: 'async_trait,
                'life1: 'async_trait,
                Self: 'async_trait,
            {
                let $this = self;
                $crate::Cache::exists($inner, key)
            }

            fn add<'life0, 'life1, 'async_trait>(
                &'life0 self,
                key: &'life1 str,
                value: $crate::Bytes,
                ttl: ::core::option::Option<::core::time::Duration>,
            ) -> $crate::CacheFuture<'async_trait, bool>
            where
                'life0: 'async_trait,
                'life1: 'async_trait,
                Self: 'async_trait,
            {
                let $this = self;
                $crate::Cache::add($inner, key, value, ttl)
            }

            fn clear<'life0, 'async_trait>(&'life0 self) -> $crate::CacheFuture<'async_trait, ()>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                let $this = self;
                $crate::Cache::clear($inner)
            }

            fn limits(&self) -> $crate::Limits {
                let $this = self;
                $crate::Cache::limits($inner)
            }
        }
    };
}

forward_cache!(
    /// A shared cache is a cache: `Arc<dyn Cache>` is what applications hold. Each call
    /// returns the future of the cache inside, with nothing added.
    impl[T: Cache + ?Sized] for Arc<T>, |this| &**this
);
forward_cache!(
    /// An owned, boxed cache is a cache.
    impl[T: Cache + ?Sized] for Box<T>, |this| &**this
);
forward_cache!(
    /// A borrowed cache is a cache.
    impl[T: Cache + ?Sized] for &T, |this| &**this
);

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn errors_are_classified() {
        assert!(CacheError::InvalidKey { reason: "x" }.is_caller_error());
        let timeout = CacheError::Timeout {
            backend: "redis",
            operation: "response",
            after: Duration::from_millis(500),
        };
        assert!(timeout.is_retryable() && timeout.is_timeout() && !timeout.is_caller_error());
        assert_eq!(timeout.to_string(), "redis response timed out after 500ms");
    }
}
