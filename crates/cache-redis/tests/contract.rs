//! The cache contract, run on Redis: the five core checks and every extended one, each
//! on a fresh cache with a prefix of its own on the shared test server.

use cache_redis::testing::{fresh_cache, RedisTestCache};

async fn factory() -> RedisTestCache {
    fresh_cache().await
}

cache_tck::contract_tests!(factory);
cache_tck::extended_tests!(factory);
