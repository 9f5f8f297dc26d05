//! The one wrapper behind every layer of this crate: each call becomes "an operation on
//! some keys", handed to the layer's policy with a way to start it (again).

use std::{sync::Arc, time::Duration};

use cache_api::{BackendInfo, Bytes, Cache, CacheFuture, Capabilities};

/// The operations of the contract, as layers name them in errors, spans and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Get,
    Set,
    Delete,
    GetMany,
    SetMany,
    DeleteMany,
    Exists,
    Add,
    Clear,
}

impl Op {
    pub(crate) const ALL: [Op; 9] = [
        Op::Get,
        Op::Set,
        Op::Delete,
        Op::GetMany,
        Op::SetMany,
        Op::DeleteMany,
        Op::Exists,
        Op::Add,
        Op::Clear,
    ];

    pub(crate) const fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Delete => "delete",
            Op::GetMany => "get_many",
            Op::SetMany => "set_many",
            Op::DeleteMany => "delete_many",
            Op::Exists => "exists",
            Op::Add => "add",
            Op::Clear => "clear",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    /// Whether the answer says hit or miss.
    pub(crate) const fn reads(self) -> bool {
        matches!(self, Op::Get | Op::GetMany | Op::Exists)
    }
}

/// The keys of a call, borrowed, for the layers that may show them.
#[derive(Clone, Copy)]
pub(crate) enum Keys<'a> {
    None,
    One(&'a str),
    Many(&'a [&'a str]),
    Entries(&'a [(&'a str, Bytes)]),
}

impl Keys<'_> {
    pub(crate) fn count(&self) -> usize {
        match self {
            Keys::None => 0,
            Keys::One(_) => 1,
            Keys::Many(keys) => keys.len(),
            Keys::Entries(entries) => entries.len(),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many, entries): (&[&str], &[&str], &[(&str, Bytes)]) = match self {
            Keys::None => (&[], &[], &[]),
            Keys::One(key) => (std::slice::from_ref(key), &[], &[]),
            Keys::Many(keys) => (&[], keys, &[]),
            Keys::Entries(entries) => (&[], &[], entries),
        };
        one.iter()
            .chain(many)
            .copied()
            .chain(entries.iter().map(|(key, _)| *key))
    }
}

/// What an answer says: hits and misses `(found, missing)` for a read, and how many
/// entries an `add` stored or a delete removed.
pub(crate) trait Answer {
    fn found(&self) -> (usize, usize) {
        (0, 0)
    }
    fn affected(&self) -> usize {
        0
    }
}

impl Answer for Option<Bytes> {
    fn found(&self) -> (usize, usize) {
        if self.is_some() {
            (1, 0)
        } else {
            (0, 1)
        }
    }
}

impl Answer for Vec<Option<Bytes>> {
    fn found(&self) -> (usize, usize) {
        let hits = self.iter().filter(|value| value.is_some()).count();
        (hits, self.len() - hits)
    }
}

impl Answer for bool {
    fn found(&self) -> (usize, usize) {
        if *self {
            (1, 0)
        } else {
            (0, 1)
        }
    }
    fn affected(&self) -> usize {
        usize::from(*self)
    }
}

impl Answer for () {}

impl Answer for usize {
    fn affected(&self) -> usize {
        *self
    }
}

/// A layer's behaviour around one call. `call` starts the inner cache's operation and
/// may be called again (a retry); a policy with nothing to do returns `call()` as it
/// is, which costs no allocation.
pub(crate) trait Around: Send + Sync + 'static {
    fn around<'f, T, F>(&'f self, op: Op, keys: Keys<'f>, call: F) -> CacheFuture<'f, T>
    where
        T: Answer + Send + 'f,
        F: Fn() -> CacheFuture<'f, T> + Send + Sync + 'f;
}

/// A cache whose every call goes through `policy` to `inner`.
pub(crate) struct Layered<P> {
    pub(crate) inner: Arc<dyn Cache>,
    pub(crate) policy: P,
}

impl<P: Around> Layered<P> {
    pub(crate) fn wrap(inner: Arc<dyn Cache>, policy: P) -> Arc<dyn Cache> {
        Arc::new(Self { inner, policy })
    }
}

// Every method listed, so that an operation added to the contract cannot bypass a layer.
#[deny(clippy::missing_trait_methods)]
impl<P: Around> Cache for Layered<P> {
    fn get<'s, 'k, 'f>(&'s self, key: &'k str) -> CacheFuture<'f, Option<Bytes>>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        let inner = &self.inner;
        self.policy
            .around(Op::Get, Keys::One(key), move || inner.get(key))
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
        let inner = &self.inner;
        self.policy.around(Op::Set, Keys::One(key), move || {
            inner.set(key, value.clone(), ttl)
        })
    }

    fn delete<'s, 'k, 'f>(&'s self, key: &'k str) -> CacheFuture<'f, bool>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        let inner = &self.inner;
        self.policy
            .around(Op::Delete, Keys::One(key), move || inner.delete(key))
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
        let inner = &self.inner;
        // One value per key, or the call fails: a layer counts hits from the answer,
        // and a caller pairs its values with the keys it asked.
        let backend = inner.describe().label;
        self.policy.around(Op::GetMany, Keys::Many(keys), move || {
            Box::pin(async move {
                cache_api::check_get_many_answer(inner.get_many(keys).await?, keys.len(), backend)
            })
        })
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
        let inner = &self.inner;
        self.policy
            .around(Op::SetMany, Keys::Entries(entries), move || {
                inner.set_many(entries, ttl)
            })
    }

    fn delete_many<'s, 'k, 'e, 'f>(&'s self, keys: &'k [&'e str]) -> CacheFuture<'f, usize>
    where
        's: 'f,
        'k: 'f,
        'e: 'f,
        Self: 'f,
    {
        let inner = &self.inner;
        self.policy
            .around(Op::DeleteMany, Keys::Many(keys), move || {
                inner.delete_many(keys)
            })
    }

    fn exists<'s, 'k, 'f>(&'s self, key: &'k str) -> CacheFuture<'f, bool>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        let inner = &self.inner;
        self.policy
            .around(Op::Exists, Keys::One(key), move || inner.exists(key))
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
        let inner = &self.inner;
        self.policy.around(Op::Add, Keys::One(key), move || {
            inner.add(key, value.clone(), ttl)
        })
    }

    fn clear<'s, 'f>(&'s self) -> CacheFuture<'f, ()>
    where
        's: 'f,
        Self: 'f,
    {
        let inner = &self.inner;
        self.policy
            .around(Op::Clear, Keys::None, move || inner.clear())
    }

    fn limits(&self) -> Capabilities {
        self.inner.limits()
    }

    fn describe(&self) -> BackendInfo {
        self.inner.describe()
    }
}

/// A short, stable name for the kind of an error, for span fields and metric labels.
pub(crate) fn error_kind(error: &cache_api::CacheError) -> &'static str {
    use cache_api::CacheError as E;
    match error {
        E::InvalidKey { .. } => "invalid_key",
        E::ValueTooLarge { .. } => "value_too_large",
        E::InvalidTtl { .. } => "invalid_ttl",
        E::Unsupported { .. } => "unsupported",
        E::Config { .. } => "config",
        E::Unreachable { .. } => "unreachable",
        E::Timeout { .. } => "timeout",
        E::Auth { .. } => "auth",
        E::PermissionDenied { .. } => "permission_denied",
        E::Backend { .. } => "backend",
        _ => "other",
    }
}
