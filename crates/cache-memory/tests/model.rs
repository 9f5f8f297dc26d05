//! The model-based property test (`cache_tck::model`) on the in-memory backend: random
//! sequences of every declared operation, answer by answer against the reference model.
//! `CACHE_MODEL_CASES` sets how many sequences run (32 by default).

use cache_memory::MemoryCache;
use cache_tck::model::{self, Config};

/// Every answer of the memory backend is one the model allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_keeps_the_model() {
    let config = Config::from_env().expect("CACHE_MODEL_CASES and CACHE_MODEL_SEED are numbers");
    let result = model::run(|| async { MemoryCache::new() }, &config).await;
    model::assert_kept("memory backend", result);
}
