//! The model-based property test (`cache_tck::model`) through the full stack of layers
//! (Retry, Timeout, Tracing and Metrics), over the memory backend and over Redis: a
//! layered cache gives the answers of the cache under it. `CACHE_MODEL_CASES` sets how many sequences run (32 by
//! default).

mod common;

use std::sync::Arc;

use cache_api::Cache;
use cache_tck::model::{self, Config};

fn config() -> Config {
    Config::from_env().expect("CACHE_MODEL_CASES and CACHE_MODEL_SEED are numbers")
}

/// The layers over memory keep every answer the model allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layered_memory_keeps_the_model() {
    let factory = || async {
        common::full_stack(Arc::new(cache_memory::MemoryCache::new()) as Arc<dyn Cache>)
    };
    model::assert_kept("layered memory", model::run(factory, &config()).await);
}

/// The layers over Redis keep every answer the model allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layered_redis_keeps_the_model() {
    let factory = || async {
        common::full_stack(Arc::new(cache_redis::testing::fresh_cache().await) as Arc<dyn Cache>)
    };
    model::assert_kept("layered redis", model::run(factory, &config()).await);
}
