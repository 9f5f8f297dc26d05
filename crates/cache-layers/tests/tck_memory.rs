//! The whole TCK over the memory backend inside Retry + Timeout + Tracing + Metrics.

mod common;

use std::sync::Arc;

use cache_api::Cache;

async fn fresh_cache() -> Arc<dyn Cache> {
    common::full_stack(Arc::new(cache_memory::MemoryCache::new()))
}

mod layered_memory {
    cache_tck::contract_tests!(super::fresh_cache);
    cache_tck::extended_tests!(super::fresh_cache);
}
