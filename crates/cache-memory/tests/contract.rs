//! The whole contract, core and extended, against the in-memory backend.

use cache_memory::MemoryCache;

async fn fresh_cache() -> MemoryCache {
    MemoryCache::new()
}

cache_tck::contract_tests!(fresh_cache);
cache_tck::extended_tests!(fresh_cache);

/// The macros accept a factory of `Arc<dyn Cache>`, the way applications hold caches.
mod as_trait_object {
    use std::sync::Arc;

    use cache_api::Cache;
    use cache_memory::MemoryCache;

    async fn fresh_cache() -> Arc<dyn Cache> {
        Arc::new(MemoryCache::new())
    }

    cache_tck::contract_tests!(fresh_cache);
}
