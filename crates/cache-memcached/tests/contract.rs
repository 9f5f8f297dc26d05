//! The contract's checks, core and extended, on a real memcached server: each test gets a
//! cache under a key prefix of its own (see `cache_memcached::testing`).

use cache_memcached::testing::{fresh_cache, MemcachedTestCache};

async fn factory() -> MemcachedTestCache {
    fresh_cache().await
}

cache_tck::contract_tests!(factory);
cache_tck::extended_tests!(factory);
