//! What the tests share: the full stack, and caches that fail on purpose.

#![allow(dead_code, unreachable_pub)]

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use cache_api::{async_trait, Bytes, Cache, CacheError, CacheStack, Capabilities};
use cache_layers::{MetricsLayer, RetryLayer, TimeoutLayer, TracingLayer};

/// Retry, deadline, tracing and metrics around `backend`, as an application stacks
/// them. The deadline is well above any single call of the TCK.
pub fn full_stack(backend: Arc<dyn Cache>) -> Arc<dyn Cache> {
    CacheStack::new(backend)
        .layer(RetryLayer::new().max_retries(2))
        .layer(TimeoutLayer::new(Duration::from_secs(30)))
        .layer(TracingLayer::new())
        .layer(MetricsLayer::new())
        .build()
}

/// A memory cache whose first `failures` calls fail with `error()`; counts every call.
pub struct Flaky {
    pub inner: cache_memory::MemoryCache,
    pub failures: usize,
    pub calls: AtomicUsize,
    pub error: fn() -> CacheError,
}

impl Flaky {
    pub fn new(failures: usize, error: fn() -> CacheError) -> Arc<Self> {
        Arc::new(Self {
            inner: cache_memory::MemoryCache::new(),
            failures,
            calls: AtomicUsize::new(0),
            error,
        })
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn fail(&self) -> Result<(), CacheError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            Err((self.error)())
        } else {
            Ok(())
        }
    }
}

pub fn unreachable() -> CacheError {
    CacheError::Unreachable {
        backend: "flaky",
        source: "connection refused".into(),
    }
}

#[async_trait]
impl Cache for Flaky {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.fail()?;
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        self.fail()?;
        self.inner.set(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        self.fail()?;
        self.inner.delete(key).await
    }
    async fn add(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        self.fail()?;
        self.inner.add(key, value, ttl).await
    }
    fn limits(&self) -> Capabilities {
        self.inner.limits()
    }
}

/// A cache whose `get` never answers.
pub struct Hanging;

#[async_trait]
impl Cache for Hanging {
    async fn get(&self, _: &str) -> Result<Option<Bytes>, CacheError> {
        std::future::pending().await
    }
    async fn set(&self, _: &str, _: Bytes, _: Option<Duration>) -> Result<(), CacheError> {
        Ok(())
    }
    async fn delete(&self, _: &str) -> Result<bool, CacheError> {
        Ok(false)
    }
}

/// What a debugging recorder holds, named `metric{label=value,...}` with the labels
/// sorted and without `backend`, whose values are listed apart.
pub struct Recorded {
    /// Counters above zero.
    pub counters: BTreeMap<String, u64>,
    /// Every counter registered, at zero or above.
    pub registered: BTreeSet<String>,
    /// Histograms with samples, and how many.
    pub samples: BTreeMap<String, usize>,
    /// The values of the `backend` label.
    pub backends: BTreeSet<String>,
    /// How many gauges there were.
    pub gauges: usize,
}

impl Recorded {
    pub fn from(snapshotter: &metrics_util::debugging::Snapshotter) -> Self {
        use metrics_util::debugging::DebugValue;
        let mut recorded = Self {
            counters: BTreeMap::new(),
            registered: BTreeSet::new(),
            samples: BTreeMap::new(),
            backends: BTreeSet::new(),
            gauges: 0,
        };
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let key = key.key();
            let mut labels = Vec::new();
            for label in key.labels() {
                if label.key() == "backend" {
                    recorded.backends.insert(label.value().to_owned());
                } else {
                    labels.push(format!("{}={}", label.key(), label.value()));
                }
            }
            labels.sort();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            if matches!(value, DebugValue::Counter(_)) {
                recorded.registered.insert(name.clone());
            }
            match value {
                DebugValue::Counter(0) => {}
                DebugValue::Counter(count) => {
                    recorded.counters.insert(name, count);
                }
                DebugValue::Histogram(values) if values.is_empty() => {}
                DebugValue::Histogram(values) => {
                    recorded.samples.insert(name, values.len());
                }
                DebugValue::Gauge(_) => recorded.gauges += 1,
            }
        }
        recorded
    }
}
