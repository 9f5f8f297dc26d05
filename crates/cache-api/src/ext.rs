//! Conveniences every cache has, kept out of the trait that backends implement.

use std::{future::Future, time::Duration};

use bytes::Bytes;

use crate::{Cache, CacheError, Capabilities};

mod sealed {
    pub trait Sealed {}
    impl<C: crate::Cache + ?Sized> Sealed for C {}
}

/// Conveniences built on [`Cache`], for every cache (`dyn Cache` included). Sealed:
/// it is implemented once, here, so a method added to it breaks no one and no
/// backend has to think about it.
///
/// ```
/// # async fn demo(cache: &dyn cache_api::Cache) -> Result<(), cache_api::CacheError> {
/// use cache_api::CacheExt;
///
/// cache.set_with("greeting", "hello", None).await?;
/// assert_eq!(cache.get_or_default("greeting").await?, "hello");
/// assert_eq!(cache.get_or_default("missing").await?, "");
/// assert!(cache.capabilities().max_value_size > 0);
/// # Ok(())
/// # }
/// ```
pub trait CacheExt: Cache + sealed::Sealed {
    /// The value under `key`, or an empty value on a miss. One `get`.
    ///
    /// # Errors
    ///
    /// As [`Cache::get`].
    fn get_or_default<'a>(
        &'a self,
        key: &'a str,
    ) -> impl Future<Output = Result<Bytes, CacheError>> + Send + 'a {
        async move { Ok(self.get(key).await?.unwrap_or_default()) }
    }

    /// [`Cache::set`] of anything that converts into [`Bytes`] (`&'static str`,
    /// `String`, `Vec<u8>`...) without a copy where the conversion needs none.
    ///
    /// # Errors
    ///
    /// As [`Cache::set`].
    fn set_with<'a>(
        &'a self,
        key: &'a str,
        value: impl Into<Bytes>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), CacheError>> + Send + 'a {
        let value = value.into();
        async move { self.set(key, value, ttl).await }
    }

    /// What the cache declares ([`Cache::limits`] under the name of its type).
    fn capabilities(&self) -> Capabilities {
        self.limits()
    }
}

impl<C: Cache + ?Sized> CacheExt for C {}
