//! [`TypedCache`]: values of one type over any [`Cache`], through a codec and the
//! envelope; its builder and its plain operations (`get`, `set`, `delete`, bulk).

use std::{marker::PhantomData, sync::Arc, time::SystemTime};

use cache_api::{Bytes, Cache, CacheError, CacheExt};
use serde::{de::DeserializeOwned, Serialize};

use crate::{
    codec::{decompress, Codec, Compression},
    envelope::{self, EnvelopeError, Header, FLAG_COMPRESSED, HEADER_LEN},
    error::{CodecError, Error},
    fallback::Fallback,
    flight::Flights,
    options::EntryOptions,
    stored::{now_ms, to_system_time, Stored},
    telemetry,
};

/// The bounds every cached value type meets: serde both ways, cheap enough to clone to
/// each caller, and sendable to the task that runs a factory.
pub trait Value: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Value for T {}

/// A value with what the cache knows about it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Entry<V> {
    /// The value.
    pub value: V,
    /// True when the value is served in place of a fresh one: its TTL has passed, or
    /// it was served because the factory or the backend failed, or the factory ran
    /// past the soft timeout (fail-safe). A value the factory computed for the call is
    /// never stale, even with a zero TTL (it is then already past `expires_at`).
    pub stale: bool,
    /// When the value was written.
    pub written_at: SystemTime,
    /// When the value turns (or turned) stale; `None` for never.
    pub expires_at: Option<SystemTime>,
}

impl<V> Entry<V> {
    pub(crate) fn from_owned(stored: Stored<V>, stale: bool) -> Self {
        Self {
            written_at: to_system_time(stored.written_at_ms),
            expires_at: stored.logical_expiry_ms.map(to_system_time),
            value: stored.value,
            stale,
        }
    }
}

impl<V: Clone> Entry<V> {
    pub(crate) fn from_stored(stored: &Stored<V>, stale: bool) -> Self {
        Self {
            value: stored.value.clone(),
            stale,
            written_at: to_system_time(stored.written_at_ms),
            expires_at: stored.logical_expiry_ms.map(to_system_time),
        }
    }
}

/// Why stored bytes do not decode to a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not an envelope this version reads.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The payload is not an encoding of the value type.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

pub(crate) struct Inner<V, C> {
    pub(crate) cache: Arc<dyn Cache>,
    pub(crate) codec: C,
    pub(crate) compression: Compression,
    pub(crate) defaults: EntryOptions,
    pub(crate) label: &'static str,
    pub(crate) fallback: Fallback<V>,
    pub(crate) flights: Flights<V>,
}

/// Values of type `V` in any [`Cache`] (a backend or a layered stack), encoded by the
/// codec `C` inside a versioned [envelope](crate::envelope). Cloning is cheap: clones
/// share the backend, the in-flight factory runs and the fail-safe values.
///
/// ```
/// // cache-typed = { git = "https://github.com/cache-contract/cache-rs" }; cache-memory = { git = "https://github.com/cache-contract/cache-rs" }
/// use std::{sync::Arc, time::Duration};
/// use cache_typed::{EntryOptions, JsonCodec, TypedCache};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_typed::Error> {
/// let users: TypedCache<Vec<String>, JsonCodec> =
///     TypedCache::new(Arc::new(cache_memory::MemoryCache::new()), JsonCodec);
/// users.set("team:1", &vec!["ada".to_owned()]).await?;
/// assert_eq!(users.get("team:1").await?, Some(vec!["ada".to_owned()]));
/// assert!(users.delete("team:1").await?);
/// # Ok(()) }
/// ```
pub struct TypedCache<V, C> {
    pub(crate) inner: Arc<Inner<V, C>>,
}

impl<V, C> Clone for TypedCache<V, C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<V, C> std::fmt::Debug for TypedCache<V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedCache")
            .field("backend", &self.inner.label)
            .field("defaults", &self.inner.defaults)
            .finish_non_exhaustive()
    }
}

/// Builds a [`TypedCache`]; see [`TypedCache::builder`].
#[must_use]
pub struct TypedCacheBuilder<V, C> {
    cache: Arc<dyn Cache>,
    codec: C,
    compression: Compression,
    defaults: EntryOptions,
    label: Option<&'static str>,
    fail_safe_capacity: u64,
    value: PhantomData<fn() -> V>,
}

impl<V: Value, C: Codec> TypedCacheBuilder<V, C> {
    /// Compresses payloads as `compression` says (none by default).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// The options of every call that does not give its own.
    pub fn defaults(mut self, defaults: EntryOptions) -> Self {
        self.defaults = defaults;
        self
    }

    /// The `backend` label of this cache's metrics (by default the backend's own label).
    pub fn label(mut self, label: &'static str) -> Self {
        self.label = Some(label);
        self
    }

    /// How many values fail-safe keeps in the process to serve while the backend is
    /// down (default 10,000; 0 keeps none, so only stale values the backend still
    /// returns are served, and no throttle holds after a failure, as it is kept with
    /// the value: the factory is tried by every call that finds the value stale).
    pub fn fail_safe_capacity(mut self, entries: u64) -> Self {
        self.fail_safe_capacity = entries;
        self
    }

    /// The cache.
    pub fn build(self) -> TypedCache<V, C> {
        let label = self.label.unwrap_or_else(|| self.cache.describe().label);
        TypedCache {
            inner: Arc::new(Inner {
                cache: self.cache,
                codec: self.codec,
                compression: self.compression,
                defaults: self.defaults,
                label,
                fallback: Fallback::new(self.fail_safe_capacity),
                flights: Flights::new(),
            }),
        }
    }
}

impl<V: Value, C: Codec> TypedCache<V, C> {
    /// A typed cache over `cache` with the codec `codec` and default options.
    pub fn new(cache: Arc<dyn Cache>, codec: C) -> Self {
        Self::builder(cache, codec).build()
    }

    /// A builder, for compression, default options, a metrics label.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use cache_typed::{EntryOptions, JsonCodec, TypedCache};
    ///
    /// let cache: TypedCache<u64, JsonCodec> =
    ///     TypedCache::builder(Arc::new(cache_memory::MemoryCache::new()), JsonCodec)
    ///         .defaults(EntryOptions::default().ttl(Duration::from_secs(30)))
    ///         .label("counters")
    ///         .build();
    /// assert_eq!(cache.options().ttl_value(), Duration::from_secs(30));
    /// ```
    pub fn builder(cache: Arc<dyn Cache>, codec: C) -> TypedCacheBuilder<V, C> {
        TypedCacheBuilder {
            cache,
            codec,
            compression: Compression::none(),
            defaults: EntryOptions::default(),
            label: None,
            fail_safe_capacity: 10_000,
            value: PhantomData,
        }
    }

    /// A copy of the default options, to change for one call.
    pub fn options(&self) -> EntryOptions {
        self.inner.defaults
    }

    /// The cache underneath.
    #[must_use]
    pub fn backend(&self) -> &Arc<dyn Cache> {
        &self.inner.cache
    }

    /// The fresh value under `key`, or `None` on a miss, for a stale value (past its
    /// TTL) and for a value that does not decode (logged as a warning). One backend
    /// `get` and one decode.
    ///
    /// # Errors
    ///
    /// [`Error::Cache`] when the backend fails or the key is invalid.
    pub async fn get(&self, key: &str) -> Result<Option<V>, Error> {
        let Some(bytes) = self.inner.cache.get(key).await? else {
            return Ok(None);
        };
        Ok(self
            .inner
            .decode_logged(&bytes)
            .filter(|stored| stored.is_fresh(now_ms()))
            .map(|stored| stored.value))
    }

    /// The value under `key` with its times, stale ones included (flagged), as long as
    /// the backend keeps them (fail-safe keeps them past their TTL).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn get_entry(&self, key: &str) -> Result<Option<Entry<V>>, Error> {
        let Some(bytes) = self.inner.cache.get(key).await? else {
            return Ok(None);
        };
        let now = now_ms();
        Ok(self.inner.decode_logged(&bytes).map(|stored| {
            let stale = !stored.is_fresh(now);
            Entry::from_owned(stored, stale)
        }))
    }

    /// Stores `value` under `key` with the default options.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when the value does not encode (nothing is written);
    /// [`Error::Cache`] when the backend fails.
    pub async fn set(&self, key: &str, value: &V) -> Result<(), Error> {
        self.set_with(key, value, &self.inner.defaults).await
    }

    /// Stores `value` under `key`: stale after `options`' TTL (plus jitter), kept in
    /// the backend for the fail-safe duration past it when fail-safe is on. A TTL
    /// longer than the backend can keep (one it refuses with `InvalidTtl`) is written
    /// without expiry: the value's own TTL, in its envelope, still says when it is stale. The
    /// value fail-safe kept for `key` in the process, and its throttle, are dropped;
    /// with fail-safe in `options`, this value is kept in their place, so that a
    /// `get_or_set` can serve it while the backend is down (as one it read itself). A
    /// `get_or_set` run under way for `key` does not write its value over this one.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub async fn set_with(
        &self,
        key: &str,
        value: &V,
        options: &EntryOptions,
    ) -> Result<(), Error> {
        let logical = crate::jitter::apply(options.ttl, options.jitter);
        let (bytes, times) = self.inner.encode(value, logical)?;
        self.inner.flights.supersede(key);
        self.inner
            .write(key, bytes, self.inner.physical_ttl(options, logical))
            .await?;
        self.written(key, value, &times, options);
        Ok(())
    }

    /// After a write of `value` under `key`: the value fail-safe kept for the key, and
    /// its throttle, are dropped; with fail-safe in `options`, this value is kept in
    /// their place.
    fn written(&self, key: &str, value: &V, times: &Stored<()>, options: &EntryOptions) {
        self.inner.fallback.forget(key);
        if options.fail_safe {
            let stored = Arc::new(Stored {
                value: value.clone(),
                written_at_ms: times.written_at_ms,
                logical_expiry_ms: times.logical_expiry_ms,
            });
            self.inner
                .fallback
                .remember(key, &stored, options.fail_safe_max_duration);
        }
    }

    /// Removes `key` (and the value fail-safe kept for it in the process); `true` when
    /// a live entry was removed. A `get_or_set` run under way for `key` still hands its
    /// value to the callers waiting for it, but does not write it back.
    ///
    /// # Errors
    ///
    /// [`Error::Cache`] when the backend fails or the key is invalid.
    pub async fn delete(&self, key: &str) -> Result<bool, Error> {
        self.inner.flights.supersede(key);
        self.inner.fallback.forget(key);
        Ok(self.inner.cache.delete(key).await?)
    }

    /// The fresh values of `keys`, in order, `None` for each miss, stale or undecodable
    /// value. One backend `get_many`.
    ///
    /// # Errors
    ///
    /// [`Error::Cache`] when the backend fails or a key is invalid.
    pub async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<V>>, Error> {
        let now = now_ms();
        let found = self.inner.cache.get_many(keys).await?;
        let found =
            cache_api::check_get_many_answer(found, keys.len(), self.inner.cache.describe().label)?;
        Ok(found
            .into_iter()
            .map(|bytes| {
                bytes
                    .and_then(|bytes| self.inner.decode_logged(&bytes))
                    .filter(|stored| stored.is_fresh(now))
                    .map(|stored| stored.value)
            })
            .collect())
    }

    /// Stores every entry with the default options, in one backend `set_many`. The
    /// batch shares one jittered TTL.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set); nothing is written when a value does not encode.
    pub async fn set_many(&self, entries: &[(&str, V)]) -> Result<(), Error> {
        self.set_many_with(entries, &self.inner.defaults).await
    }

    /// As [`set_many`](Self::set_many), with `options`. As after
    /// [`set_with`](Self::set_with), the value fail-safe kept for each key, and its
    /// throttle, are dropped; with fail-safe in `options`, the new value is kept instead.
    ///
    /// # Errors
    ///
    /// As [`set_many`](Self::set_many).
    pub async fn set_many_with(
        &self,
        entries: &[(&str, V)],
        options: &EntryOptions,
    ) -> Result<(), Error> {
        let logical = crate::jitter::apply(options.ttl, options.jitter);
        let mut times = Vec::with_capacity(entries.len());
        let encoded = entries
            .iter()
            .map(|(key, value)| {
                let (bytes, written) = self.inner.encode(value, logical)?;
                times.push(written);
                Ok((*key, bytes))
            })
            .collect::<Result<Vec<(&str, Bytes)>, Error>>()?;
        for (key, _) in entries {
            self.inner.flights.supersede(key);
        }
        self.inner
            .cache
            .set_many(&encoded, Some(self.inner.physical_ttl(options, logical)))
            .await?;
        for ((key, value), written) in entries.iter().zip(&times) {
            self.written(key, value, written, options);
        }
        Ok(())
    }

    /// The envelope `set` would store for `value` with `options`, without storing it.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when the value does not encode.
    pub fn encode(&self, value: &V, options: &EntryOptions) -> Result<Bytes, Error> {
        Ok(self.inner.encode(value, options.ttl)?.0)
    }

    /// Reads stored bytes as this cache does: the envelope, the codec id, the
    /// compression, the value. Never panics, whatever the bytes.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] saying why the bytes are not a value of this cache.
    pub fn decode(&self, bytes: &[u8]) -> Result<Entry<V>, DecodeError> {
        let stored = self.inner.decode(bytes)?;
        let stale = !stored.is_fresh(now_ms());
        Ok(Entry::from_owned(stored, stale))
    }
}

impl<V: Value, C: Codec> Inner<V, C> {
    /// The envelope of `value`, written now and stale after `ttl`.
    pub(crate) fn encode(
        &self,
        value: &V,
        ttl: std::time::Duration,
    ) -> Result<(Bytes, Stored<()>), Error> {
        let times = Stored::new((), ttl);
        let mut out = Vec::with_capacity(HEADER_LEN + 64);
        Header {
            codec: C::ID,
            flags: 0,
            written_at_ms: times.written_at_ms,
            logical_expiry_ms: times.logical_expiry_ms,
            tags: &[],
        }
        .write(&mut out);
        self.codec.encode(value, &mut out).map_err(Error::Encode)?;
        if let Some(compressed) = self.compression.compress(&out[HEADER_LEN..]) {
            out.truncate(HEADER_LEN);
            out.extend_from_slice(&compressed);
            out[4] |= FLAG_COMPRESSED;
        }
        Ok((Bytes::from(out), times))
    }

    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<Stored<V>, DecodeError> {
        let (header, payload) = envelope::decode(bytes)?;
        if header.codec != C::ID {
            return Err(EnvelopeError::CodecMismatch {
                expected: C::ID,
                found: header.codec,
            }
            .into());
        }
        let value = if header.compressed() {
            self.codec.decode(&decompress(payload)?)?
        } else {
            self.codec.decode(payload)?
        };
        Ok(Stored {
            value,
            written_at_ms: header.written_at_ms,
            logical_expiry_ms: header.logical_expiry_ms,
        })
    }

    /// [`decode`](Self::decode), with a failure logged and counted, and read as a miss.
    /// A codec's own message is left out of the log: it may quote the stored value
    /// (serde_json's `invalid type: string "…"`), and values are the application's data.
    pub(crate) fn decode_logged(&self, bytes: &[u8]) -> Option<Stored<V>> {
        self.decode(bytes)
            .map_err(|err| match err {
                DecodeError::Codec(err) => telemetry::decode_failed(
                    self.label,
                    &format_args!(
                        "{} codec: the payload is not an encoding of the value type",
                        err.codec()
                    ),
                ),
                other => telemetry::decode_failed(self.label, &other),
            })
            .ok()
    }

    /// The value under `key`, decoded (fresh or stale).
    pub(crate) async fn read(&self, key: &str) -> Result<Option<Stored<V>>, CacheError> {
        Ok(self
            .cache
            .get(key)
            .await?
            .and_then(|bytes| self.decode_logged(&bytes)))
    }

    /// A fresh value under `key` written after `seen`, if the backend has one now;
    /// backend errors read as none.
    pub(crate) async fn read_newer(&self, key: &str, seen: Option<u64>) -> Option<Stored<V>> {
        let stored = self.read(key).await.ok().flatten()?;
        (stored.is_fresh(now_ms()) && stored.newer_than(seen)).then_some(stored)
    }

    /// Whether the backend declares an atomic `add` (the distributed lock needs one).
    pub(crate) fn atomic_add(&self) -> bool {
        self.cache.capabilities().atomic_add
    }
}
