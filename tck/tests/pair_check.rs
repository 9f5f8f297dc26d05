//! The check of two caches (`run_pair_check`): caches that each hold a namespace of one
//! shared store pass it when `clear` removes only their own namespace, and fail it when
//! `clear` wipes the store, when the factory hands out one namespace twice, or when a
//! cache reads, writes or deletes outside its namespace; and, made by a factory
//! (`run_pair_check_from`), fail it when the factory hands out a dropped cache's
//! namespace uncleaned or wipes the store as it makes a cache.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use cache_api::{async_trait, Bytes, Cache, CacheError, Limits};
use cache_tck::{run_pair_check, run_pair_check_from, Verdict};

/// What is wrong with a [`Namespaced`] cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    None,
    /// `clear` removes every entry of the store, whatever its namespace.
    ClearWipesTheStore,
    /// `clear` removes the entries whose key starts like this cache's namespace, without
    /// the separator: `ns1` also takes `ns10`'s.
    ClearMatchesPrefixLoosely,
    /// `get` falls back to the key's entry in any namespace.
    ReadsOutsideItsNamespace,
    /// `set` ignores the namespace.
    WritesOutsideItsNamespace,
    /// `delete` removes the key from every namespace.
    DeletesInEveryNamespace,
    /// `delete_many` removes the keys from every namespace.
    DeleteManyInEveryNamespace,
    /// `clear` also removes the entries of other namespaces written without TTL.
    ClearTakesEveryEntryWithoutTtl,
    /// Keys outside ASCII are kept outside the namespace, shared by every cache.
    NonAsciiKeysOutsideItsNamespace,
    /// `clear` also removes the keys over 250 bytes of every namespace.
    ClearTakesLongKeysOfEveryNamespace,
    /// `delete` of a key its namespace does not hold removes it from the others.
    DeleteOfAnAbsentKeyReachesOtherNamespaces,
    /// `set_many` writes each entry into every namespace of the store.
    SetManyWritesEveryNamespace,
    /// `add` answers false when any namespace holds the key.
    AddSeesOtherNamespaces,
    /// `get_many` falls back to the key's entry in any namespace (`get` does not).
    GetManyReadsOutsideItsNamespace,
    /// `delete_many` of a key its namespace does not hold removes it from the others,
    /// without counting it.
    DeleteManyOfAnAbsentKeyReachesOtherNamespaces,
    /// `delete_many` counts a key any namespace holds, removing only its own.
    DeleteManyCountsOtherNamespaces,
    /// `set_many` overwrites the key's entry in whichever namespace holds it.
    SetManyOverwritesWhereverTheKeyIs,
    /// Declares no `clear`: the check does not apply.
    NoClear,
    /// A dropped cache's namespace goes back to the factory with its entries, and the
    /// next cache the factory makes gets it.
    DroppedNamespaceHandedOutUncleaned,
    /// The factory empties the whole store each time it makes a cache.
    FactoryWipesTheStore,
}

/// One namespace of a store shared by every cache of a factory.
struct Namespaced {
    /// Every entry of every namespace, with whether it was written with a TTL.
    store: Arc<Mutex<HashMap<String, (Bytes, bool)>>>,
    namespace: String,
    defect: Defect,
    /// Namespaces of dropped caches, which the factory hands out again.
    recycled: Arc<Mutex<Vec<String>>>,
}

impl Drop for Namespaced {
    fn drop(&mut self) {
        if self.defect == Defect::DroppedNamespaceHandedOutUncleaned {
            self.recycled
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(self.namespace.clone());
        }
    }
}

impl Namespaced {
    fn full(&self, key: &str) -> String {
        if self.defect == Defect::NonAsciiKeysOutsideItsNamespace && !key.is_ascii() {
            return format!("shared:{key}");
        }
        format!("{}:{key}", self.namespace)
    }

    fn store(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Bytes, bool)>> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Cache for Namespaced {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        let store = self.store();
        let found = store.get(&self.full(key)).map(|(value, _)| value.clone());
        Ok(match (found, self.defect) {
            (None, Defect::ReadsOutsideItsNamespace) => {
                let suffix = format!(":{key}");
                store
                    .iter()
                    .find(|(stored, _)| stored.ends_with(&suffix))
                    .map(|(_, (value, _))| value.clone())
            }
            (found, _) => found,
        })
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        let key = match self.defect {
            Defect::WritesOutsideItsNamespace => key.to_owned(),
            _ => self.full(key),
        };
        self.store().insert(key, (value, ttl.is_some()));
        Ok(())
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            let mut value = self.get(key).await?;
            if value.is_none() && self.defect == Defect::GetManyReadsOutsideItsNamespace {
                let suffix = format!(":{key}");
                value = self
                    .store()
                    .iter()
                    .find(|(stored, _)| stored.ends_with(&suffix))
                    .map(|(_, (value, _))| value.clone());
            }
            values.push(value);
        }
        Ok(values)
    }

    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        for (key, value) in entries {
            if self.defect == Defect::SetManyOverwritesWhereverTheKeyIs {
                let suffix = format!(":{key}");
                let mut store = self.store();
                if let Some(found) = store.keys().find(|stored| stored.ends_with(&suffix)) {
                    let found = found.clone();
                    store.insert(found, (value.clone(), ttl.is_some()));
                    continue;
                }
            }
            self.set(key, value.clone(), ttl).await?;
            if self.defect == Defect::SetManyWritesEveryNamespace {
                let mut store = self.store();
                let namespaces: Vec<String> = store
                    .keys()
                    .filter_map(|stored| stored.split_once(':').map(|(ns, _)| ns.to_owned()))
                    .collect();
                for namespace in namespaces {
                    store.insert(format!("{namespace}:{key}"), (value.clone(), ttl.is_some()));
                }
            }
        }
        Ok(())
    }

    async fn add(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        let mut store = self.store();
        let suffix = format!(":{key}");
        let taken = match self.defect {
            Defect::AddSeesOtherNamespaces => store.keys().any(|stored| stored.ends_with(&suffix)),
            _ => store.contains_key(&self.full(key)),
        };
        if taken {
            return Ok(false);
        }
        store.insert(self.full(key), (value, ttl.is_some()));
        Ok(true)
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let mut store = self.store();
        let removed = store.remove(&self.full(key)).is_some();
        if self.defect == Defect::DeletesInEveryNamespace
            || (self.defect == Defect::DeleteOfAnAbsentKeyReachesOtherNamespaces && !removed)
        {
            let suffix = format!(":{key}");
            store.retain(|stored, _| !stored.ends_with(&suffix));
        }
        Ok(removed)
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<usize, CacheError> {
        let mut removed = 0;
        for key in keys {
            let own = self.delete(key).await?;
            removed += usize::from(own);
            let suffix = format!(":{key}");
            if !own && self.defect == Defect::DeleteManyOfAnAbsentKeyReachesOtherNamespaces {
                self.store().retain(|stored, _| !stored.ends_with(&suffix));
            }
            if !own && self.defect == Defect::DeleteManyCountsOtherNamespaces {
                removed += usize::from(self.store().keys().any(|stored| stored.ends_with(&suffix)));
            }
            if self.defect == Defect::DeleteManyInEveryNamespace {
                let suffix = format!(":{key}");
                self.store().retain(|stored, _| !stored.ends_with(&suffix));
            }
        }
        Ok(removed)
    }

    async fn clear(&self) -> Result<(), CacheError> {
        let mut store = self.store();
        match self.defect {
            Defect::ClearWipesTheStore => store.clear(),
            Defect::ClearTakesEveryEntryWithoutTtl => {
                let own = format!("{}:", self.namespace);
                store.retain(|key, (_, timed)| *timed && !key.starts_with(&own));
            }
            Defect::ClearMatchesPrefixLoosely => {
                store.retain(|key, _| !key.starts_with(&self.namespace));
            }
            Defect::ClearTakesLongKeysOfEveryNamespace => {
                let own = format!("{}:", self.namespace);
                store.retain(|key, _| !key.starts_with(&own) && key.len() <= 250);
            }
            _ => {
                let own = format!("{}:", self.namespace);
                store.retain(|key, _| !key.starts_with(&own));
            }
        }
        Ok(())
    }

    fn limits(&self) -> Limits {
        let limits = Limits::new(Duration::from_millis(1), 1 << 20).with_atomic_add();
        if self.defect == Defect::NoClear {
            limits
        } else {
            limits.with_clear()
        }
    }
}

/// Two caches as a factory would hand them out: on one store, in namespaces `first` and
/// `second`.
async fn run_on(defect: Defect, first: &str, second: &str) -> Result<Verdict, String> {
    let store = Arc::new(Mutex::new(HashMap::new()));
    let cache = |namespace: &str| Namespaced {
        store: Arc::clone(&store),
        namespace: namespace.to_owned(),
        defect,
        recycled: Arc::default(),
    };
    run_pair_check(&cache(first), &cache(second))
        .await
        .result
        .map_err(|failure| failure.to_string())
}

/// The check run on caches a factory makes, each in a namespace of its own (`ns1`,
/// `ns2`, ...) on one store, unless `defect` says otherwise.
async fn run_from_factory(defect: Defect) -> Result<Verdict, String> {
    let store = Arc::new(Mutex::new(HashMap::new()));
    let recycled: Arc<Mutex<Vec<String>>> = Arc::default();
    let made = AtomicUsize::new(0);
    let factory = || {
        let store = Arc::clone(&store);
        let recycled = Arc::clone(&recycled);
        let number = made.fetch_add(1, Ordering::Relaxed) + 1;
        async move {
            if defect == Defect::FactoryWipesTheStore {
                store.lock().unwrap_or_else(PoisonError::into_inner).clear();
            }
            let again = recycled
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            Namespaced {
                store,
                namespace: again.unwrap_or_else(|| format!("ns{number}")),
                defect,
                recycled,
            }
        }
    };
    run_pair_check_from(factory)
        .await
        .result
        .map_err(|failure| failure.to_string())
}

#[tokio::test]
async fn a_factory_of_clean_caches_that_leave_each_other_alone_passes() {
    assert_eq!(run_from_factory(Defect::None).await, Ok(Verdict::Passed));
    match run_from_factory(Defect::NoClear).await {
        Ok(Verdict::NotApplicable(reason)) => assert!(reason.contains("clear"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_factory_that_reuses_or_wipes_fails() {
    for (defect, named) in [
        (
            Defect::DroppedNamespaceHandedOutUncleaned,
            "in a cache from the factory made after another one wrote it and was dropped",
        ),
        (
            Defect::FactoryWipesTheStore,
            "after the factory made a second cache",
        ),
    ] {
        match run_from_factory(defect).await {
            Err(failure) => assert!(failure.contains(named), "{defect:?}: {failure}"),
            Ok(verdict) => panic!("{defect:?}: {verdict:?}"),
        }
    }
}

#[tokio::test]
async fn caches_that_keep_to_their_namespace_pass() {
    assert_eq!(
        run_on(Defect::None, "ns1", "ns2").await,
        Ok(Verdict::Passed)
    );
    assert_eq!(
        run_on(Defect::None, "ns1", "ns10").await,
        Ok(Verdict::Passed)
    );
}

#[tokio::test]
async fn every_way_of_reaching_another_namespace_fails() {
    for (defect, second, named) in [
        (
            Defect::ClearWipesTheStore,
            "ns2",
            "after the first was cleared",
        ),
        (
            Defect::ClearMatchesPrefixLoosely,
            "ns10",
            "after the first was cleared",
        ),
        (
            Defect::ReadsOutsideItsNamespace,
            "ns2",
            "after the first wrote it",
        ),
        (
            Defect::WritesOutsideItsNamespace,
            "ns2",
            "wrote the same key",
        ),
        (
            Defect::DeletesInEveryNamespace,
            "ns2",
            "after the first deleted the same key",
        ),
        (
            Defect::DeleteManyInEveryNamespace,
            "ns2",
            "after the first deleted the same key with delete_many",
        ),
        (
            Defect::ClearTakesEveryEntryWithoutTtl,
            "ns2",
            "get(\"tck:neighbour-theirs-without-ttl\")",
        ),
        (
            Defect::NonAsciiKeysOutsideItsNamespace,
            "ns2",
            "get(\"tck:neighbour-ünïcödé\") in a second cache from the factory",
        ),
        (
            Defect::ClearTakesLongKeysOfEveryNamespace,
            "ns2",
            "after the first was cleared",
        ),
        (
            Defect::DeleteOfAnAbsentKeyReachesOtherNamespaces,
            "ns2",
            "of a key only the second holds",
        ),
        (
            Defect::SetManyWritesEveryNamespace,
            "ns2",
            "get(\"tck:neighbour-batched\") in a second cache from the factory",
        ),
        (
            Defect::AddSeesOtherNamespaces,
            "ns2",
            "add(\"tck:neighbour-mine\"",
        ),
        (
            Defect::GetManyReadsOutsideItsNamespace,
            "ns2",
            "get_many([\"tck:neighbour-batched\", \"tck:neighbour-absent\"]) in a second cache",
        ),
        (
            Defect::DeleteManyOfAnAbsentKeyReachesOtherNamespaces,
            "ns2",
            "get(\"tck:neighbour-batched\") after a delete_many by a second cache",
        ),
        (
            Defect::DeleteManyCountsOtherNamespaces,
            "ns2",
            "delete_many([\"tck:neighbour-batched\"]) in a second cache",
        ),
        (
            Defect::SetManyOverwritesWhereverTheKeyIs,
            "ns2",
            "after a set_many of the same key by a second cache",
        ),
        // A factory that hands out the same namespace twice.
        (Defect::None, "ns1", "after the first wrote it"),
    ] {
        match run_on(defect, "ns1", second).await {
            Err(failure) => assert!(failure.contains(named), "{defect:?}: {failure}"),
            Ok(verdict) => panic!("{defect:?} with {second}: {verdict:?}"),
        }
    }
}

#[tokio::test]
async fn a_cache_without_clear_is_not_applicable() {
    match run_on(Defect::NoClear, "ns1", "ns2").await {
        Ok(Verdict::NotApplicable(reason)) => assert!(reason.contains("clear"), "{reason}"),
        other => panic!("{other:?}"),
    }
}
