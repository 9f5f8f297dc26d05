//! Arbitrary bytes as a sequence of operations on the in-memory backend (keys and values
//! from the bytes, TTLs up to `Duration::MAX`): nothing may panic, and a refusal is a
//! caller error (`InvalidKey`, `ValueTooLarge`, `InvalidTtl`).

#![no_main]

use std::time::Duration;

use cache_api::{Bytes, Cache};
use cache_memory::MemoryCache;
use libfuzzer_sys::fuzz_target;

fn ttl(byte: u8, data: &[u8]) -> Option<Duration> {
    match byte % 5 {
        0 => None,
        1 => Some(Duration::ZERO),
        2 => Some(Duration::MAX),
        3 => Some(Duration::from_nanos(u64::from(
            data.first().copied().unwrap_or(1),
        ))),
        _ => Some(Duration::from_secs(u64::from_le_bytes(
            data.iter()
                .copied()
                .chain([0; 8])
                .take(8)
                .collect::<Vec<_>>()
                .try_into()
                .unwrap(),
        ))),
    }
}

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let cache = MemoryCache::builder()
        .max_capacity_bytes(1 << 20)
        .max_value_size(1 << 10)
        .build()
        .expect("a memory cache");
    runtime.block_on(async {
        for chunk in data.chunks(6) {
            let (op, rest) = chunk.split_first().unwrap_or((&0, &[]));
            let key = String::from_utf8_lossy(&rest[..rest.len().min(2)]).into_owned();
            let value = Bytes::from(rest.repeat(usize::from(*op) * 8));
            let result = match op % 7 {
                0 => cache.get(&key).await.map(drop),
                1 => cache.set(&key, value, ttl(*op, rest)).await,
                2 => cache.delete(&key).await.map(drop),
                3 => cache.add(&key, value, ttl(*op, rest)).await.map(drop),
                4 => cache.get_many(&[key.as_str(), "k"]).await.map(drop),
                5 => {
                    cache
                        .set_many(&[(key.as_str(), value)], ttl(*op, rest))
                        .await
                }
                _ => cache
                    .delete_many(&[key.as_str(), key.as_str()])
                    .await
                    .map(drop),
            };
            if let Err(err) = result {
                assert!(err.is_caller_error(), "{err:?}");
            }
        }
    });
});
