//! `forward_cache!`, and the forwarding impls it gives `Arc`, `Box` and `&`: a type that
//! holds a cache is a cache, each call returning the inner cache's own future.

use std::sync::Arc;

use crate::Cache;

/// Implements [`Cache`] for a type that holds a cache, by handing every call to that
/// cache: each method returns the inner cache's future as it is, where a wrapper written
/// with `#[async_trait]` would box that future once more on every call.
///
/// `forward_cache!(impl[GENERICS] for TYPE, |this| INNER)`: `GENERICS` are the impl's
/// generic parameters with their bounds, and `INNER`, given `this: &TYPE`, is a
/// reference to the cache every call goes to. Doc comments before `impl` go on the impl.
/// A wrapper that changes some of the calls implements [`CacheWrapper`](crate::CacheWrapper) instead.
///
/// The generated impl carries `#[deny(clippy::missing_trait_methods)]`: a method added to
/// [`Cache`] and not to this macro fails the workspace's clippy run instead of silently
/// falling back to the trait's default (which would skip the inner cache's own form).
///
/// ```
/// // cache-api = { git = "https://github.com/cache-contract/cache-rs" }
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
        #[deny(clippy::missing_trait_methods)]
        impl<$($generics)*> $crate::Cache for $ty {
            fn get<'s, 'k, 'f>(
                &'s self,
                key: &'k str,
            ) -> $crate::CacheFuture<'f, ::core::option::Option<$crate::Bytes>>
            where
                's: 'f,
                'k: 'f,
                Self: 'f,
            {
                let $this = self;
                $crate::Cache::get($inner, key)
            }

            fn set<'s, 'k, 'f>(
                &'s self,
                key: &'k str,
                value: $crate::Bytes,
                ttl: ::core::option::Option<::core::time::Duration>,
            ) -> $crate::CacheFuture<'f, ()>
            where
                's: 'f,
                'k: 'f,
                Self: 'f,
            {
                let $this = self;
                $crate::Cache::set($inner, key, value, ttl)
            }

            fn delete<'s, 'k, 'f>(&'s self, key: &'k str) -> $crate::CacheFuture<'f, bool>
            where
                's: 'f,
                'k: 'f,
                Self: 'f,
            {
                let $this = self;
                $crate::Cache::delete($inner, key)
            }

            fn get_many<'s, 'k, 'e, 'f>(
                &'s self,
                keys: &'k [&'e str],
            ) -> $crate::CacheFuture<'f, ::std::vec::Vec<::core::option::Option<$crate::Bytes>>>
            where
                's: 'f,
                'k: 'f,
                'e: 'f,
                Self: 'f,
            {
                let $this = self;
                $crate::Cache::get_many($inner, keys)
            }

            fn set_many<'s, 'k, 'e, 'f>(
                &'s self,
                entries: &'k [(&'e str, $crate::Bytes)],
                ttl: ::core::option::Option<::core::time::Duration>,
            ) -> $crate::CacheFuture<'f, ()>
            where
                's: 'f,
                'k: 'f,
                'e: 'f,
                Self: 'f,
            {
                let $this = self;
                $crate::Cache::set_many($inner, entries, ttl)
            }

            fn delete_many<'s, 'k, 'e, 'f>(
                &'s self,
                keys: &'k [&'e str],
            ) -> $crate::CacheFuture<'f, usize>
            where
                's: 'f,
                'k: 'f,
                'e: 'f,
                Self: 'f,
            {
                let $this = self;
                $crate::Cache::delete_many($inner, keys)
            }

            fn exists<'s, 'k, 'f>(&'s self, key: &'k str) -> $crate::CacheFuture<'f, bool>
            where
                's: 'f,
                'k: 'f,
                Self: 'f,
            {
                let $this = self;
                $crate::Cache::exists($inner, key)
            }

            fn add<'s, 'k, 'f>(
                &'s self,
                key: &'k str,
                value: $crate::Bytes,
                ttl: ::core::option::Option<::core::time::Duration>,
            ) -> $crate::CacheFuture<'f, bool>
            where
                's: 'f,
                'k: 'f,
                Self: 'f,
            {
                let $this = self;
                $crate::Cache::add($inner, key, value, ttl)
            }

            fn clear<'s, 'f>(&'s self) -> $crate::CacheFuture<'f, ()>
            where
                's: 'f,
                Self: 'f,
            {
                let $this = self;
                $crate::Cache::clear($inner)
            }

            fn limits(&self) -> $crate::Capabilities {
                let $this = self;
                $crate::Cache::limits($inner)
            }

            fn describe(&self) -> $crate::BackendInfo {
                let $this = self;
                $crate::Cache::describe($inner)
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
