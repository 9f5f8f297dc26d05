//! The whole TCK over memcached inside Retry + Timeout + Tracing + Metrics. Needs a
//! memcached server (started by the fixture); fails when none can be had.

mod common;

use std::sync::Arc;

use cache_api::Cache;

async fn fresh_cache() -> Arc<dyn Cache> {
    common::full_stack(Arc::new(cache_memcached::testing::fresh_cache().await))
}

mod layered_memcached {
    cache_tck::contract_tests!(super::fresh_cache);
    cache_tck::extended_tests!(super::fresh_cache);
}
