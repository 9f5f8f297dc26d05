//! The backend proves it keeps the contract: one `#[test]` per check of the TCK.

use downstream_adapter::MapCache;

async fn fresh_cache() -> MapCache {
    MapCache::new()
}

cache_tck::contract_tests!(fresh_cache);
cache_tck::extended_tests!(fresh_cache);
