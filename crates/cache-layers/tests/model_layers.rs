//! The model-based property test (`cache_tck::model`) through the full stack of layers
//! (Retry, Timeout, Tracing and Metrics), over the memory backend and over Redis: a
//! layered cache gives the answers of the cache under it. `CACHE_MODEL_CASES` sets how many sequences run (32 by
//! default).

mod common;

use std::sync::Arc;

use cache_api::Cache;
use cache_tck::model::{self, Config, Report};

fn config() -> Config {
    Config::from_env().expect("CACHE_MODEL_CASES and CACHE_MODEL_SEED are numbers")
}

fn passed(stack: &str, result: Result<Report, model::ModelFailure>) {
    match result {
        Ok(report) => {
            eprintln!("{stack} model: {report}");
            assert!(report.cases > 0, "no sequence ran: {report}");
            assert!(report.drawn.contains(&"add") && report.drawn.contains(&"clear"));
        }
        Err(failure) => panic!("{stack}:\n{failure}"),
    }
}

/// The layers over memory keep every answer the model allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layered_memory_keeps_the_model() {
    let factory = || async {
        common::full_stack(Arc::new(cache_memory::MemoryCache::new()) as Arc<dyn Cache>)
    };
    passed("layered memory", model::run(factory, &config()).await);
}

/// The layers over Redis keep every answer the model allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layered_redis_keeps_the_model() {
    let factory = || async {
        common::full_stack(Arc::new(cache_redis::testing::fresh_cache().await) as Arc<dyn Cache>)
    };
    passed("layered redis", model::run(factory, &config()).await);
}
