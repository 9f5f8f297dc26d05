//! The model-based property test (`cache_tck::model`) on Redis: random sequences of
//! every declared operation, answer by answer against the reference model, each on a
//! fresh prefixed cache of the fixture, on one server and on the shared 3-master
//! cluster. A bystander cache of the same fixture checks that `clear` stays within its
//! prefix. `CACHE_MODEL_CASES` sets how many sequences run (32 by default).

use cache_redis::testing::{fresh_cache, fresh_cluster_cache};
use cache_tck::model::{self, Config};

fn config() -> Config {
    Config::from_env().expect("CACHE_MODEL_CASES and CACHE_MODEL_SEED are numbers")
}

/// Every answer of a single Redis server is one the model allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keeps_the_model() {
    model::assert_kept("redis", model::run(fresh_cache, &config()).await);
}

/// Every answer of a Redis Cluster (keys spread over 3 masters) is one the model allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_keeps_the_model() {
    model::assert_kept(
        "redis cluster",
        model::run(fresh_cluster_cache, &config()).await,
    );
}
