//! The whole TCK over Redis inside Retry + Timeout + Tracing + Metrics. Needs a Redis
//! server (started by the fixture); fails when none can be had.

mod common;

use std::sync::Arc;

use cache_api::Cache;

async fn fresh_cache() -> Arc<dyn Cache> {
    common::full_stack(Arc::new(cache_redis::testing::fresh_cache().await))
}

mod layered_redis {
    cache_tck::contract_tests!(super::fresh_cache);
    cache_tck::extended_tests!(super::fresh_cache);
}
