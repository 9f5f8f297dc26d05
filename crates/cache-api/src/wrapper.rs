//! The forwarding base of a wrapper: override what changes, forward the rest.

use std::time::Duration;

use bytes::Bytes;

use crate::{BackendInfo, Cache, CacheFuture, Capabilities};

/// A cache that wraps another and hands it every call it does not override: the
/// base of a wrapper that changes one or two operations (a key namespace, a read-only
/// view, a counter of `get`s). Wrap the value in [`Wrapped`] to get the [`Cache`].
///
/// Each default returns the inner cache's future as it is, so a forwarded call costs
/// one virtual call and no allocation. An override may be written as an `async fn`
/// under `#[async_trait]`, as for [`Cache`] itself.
///
/// `impl Cache for Wrapped<W>` carries `#[deny(clippy::missing_trait_methods)]`, so a
/// method added to [`Cache`] cannot be left out of this trait: it is forwarded, never
/// silently answered by the trait's default.
///
/// ```
/// // cache-api = { git = "https://github.com/cache-contract/cache-rs" }
/// use std::sync::{atomic::{AtomicUsize, Ordering}, Arc};
/// use cache_api::{async_trait, Bytes, Cache, CacheError, CacheWrapper, Wrapped};
///
/// /// Counts reads; everything else goes straight through.
/// struct CountReads {
///     inner: Arc<dyn Cache>,
///     reads: AtomicUsize,
/// }
///
/// #[async_trait]
/// impl CacheWrapper for CountReads {
///     fn inner(&self) -> &dyn Cache {
///         &*self.inner
///     }
///     async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
///         self.reads.fetch_add(1, Ordering::Relaxed);
///         self.inner.get(key).await
///     }
/// }
///
/// fn count_reads(inner: Arc<dyn Cache>) -> Arc<dyn Cache> {
///     Arc::new(Wrapped(CountReads { inner, reads: AtomicUsize::new(0) }))
/// }
/// ```
pub trait CacheWrapper: Send + Sync {
    /// The cache every call that is not overridden goes to.
    fn inner(&self) -> &dyn Cache;

    /// [`Cache::get`], forwarded by default.
    fn get<'s, 'k, 'f>(&'s self, key: &'k str) -> CacheFuture<'f, Option<Bytes>>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.inner().get(key)
    }

    /// [`Cache::set`], forwarded by default.
    fn set<'s, 'k, 'f>(
        &'s self,
        key: &'k str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> CacheFuture<'f, ()>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.inner().set(key, value, ttl)
    }

    /// [`Cache::delete`], forwarded by default.
    fn delete<'s, 'k, 'f>(&'s self, key: &'k str) -> CacheFuture<'f, bool>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.inner().delete(key)
    }

    /// [`Cache::get_many`], forwarded by default.
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
        self.inner().get_many(keys)
    }

    /// [`Cache::set_many`], forwarded by default.
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
        self.inner().set_many(entries, ttl)
    }

    /// [`Cache::delete_many`], forwarded by default.
    fn delete_many<'s, 'k, 'e, 'f>(&'s self, keys: &'k [&'e str]) -> CacheFuture<'f, usize>
    where
        's: 'f,
        'k: 'f,
        'e: 'f,
        Self: 'f,
    {
        self.inner().delete_many(keys)
    }

    /// [`Cache::exists`], forwarded by default.
    fn exists<'s, 'k, 'f>(&'s self, key: &'k str) -> CacheFuture<'f, bool>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.inner().exists(key)
    }

    /// [`Cache::add`], forwarded by default.
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
        self.inner().add(key, value, ttl)
    }

    /// [`Cache::clear`], forwarded by default.
    fn clear<'s, 'f>(&'s self) -> CacheFuture<'f, ()>
    where
        's: 'f,
        Self: 'f,
    {
        self.inner().clear()
    }

    /// [`Cache::limits`], forwarded by default. A wrapper that changes what the
    /// cache can do (a namespace shortens the native key length) says so here.
    fn limits(&self) -> Capabilities {
        self.inner().limits()
    }

    /// [`Cache::describe`], forwarded by default: a wrapper is named after the
    /// backend it wraps.
    fn describe(&self) -> BackendInfo {
        self.inner().describe()
    }
}

/// A [`CacheWrapper`] as a [`Cache`].
#[derive(Debug, Clone, Default)]
pub struct Wrapped<W>(pub W);

#[deny(clippy::missing_trait_methods)]
impl<W: CacheWrapper> Cache for Wrapped<W> {
    fn get<'s, 'k, 'f>(&'s self, key: &'k str) -> CacheFuture<'f, Option<Bytes>>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.0.get(key)
    }

    fn set<'s, 'k, 'f>(
        &'s self,
        key: &'k str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> CacheFuture<'f, ()>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.0.set(key, value, ttl)
    }

    fn delete<'s, 'k, 'f>(&'s self, key: &'k str) -> CacheFuture<'f, bool>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.0.delete(key)
    }

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
        self.0.get_many(keys)
    }

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
        self.0.set_many(entries, ttl)
    }

    fn delete_many<'s, 'k, 'e, 'f>(&'s self, keys: &'k [&'e str]) -> CacheFuture<'f, usize>
    where
        's: 'f,
        'k: 'f,
        'e: 'f,
        Self: 'f,
    {
        self.0.delete_many(keys)
    }

    fn exists<'s, 'k, 'f>(&'s self, key: &'k str) -> CacheFuture<'f, bool>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.0.exists(key)
    }

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
        self.0.add(key, value, ttl)
    }

    fn clear<'s, 'f>(&'s self) -> CacheFuture<'f, ()>
    where
        's: 'f,
        Self: 'f,
    {
        self.0.clear()
    }

    fn limits(&self) -> Capabilities {
        self.0.limits()
    }

    fn describe(&self) -> BackendInfo {
        self.0.describe()
    }
}
