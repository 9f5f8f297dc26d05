//! Redis peers: `cached`'s async Redis store and `fred` (OpenDAL's is in `open_dal.rs`).

use bytes::Bytes;
use cache_bench::{BoxError, Target};
use cached::{AsyncRedisCache, ConcurrentCachedAsync};
use fred::prelude::{ClientLike, KeysInterface};
use serde_bytes::ByteBuf;

/// `cached`'s async Redis store: one multiplexed connection, MessagePack values.
pub(crate) struct CachedRedis(AsyncRedisCache<String, ByteBuf>);

impl CachedRedis {
    pub(crate) async fn connect(url: &str) -> Result<Self, BoxError> {
        let cache = AsyncRedisCache::builder(format!("bench-peers-{}", std::process::id()))
            .connection_string(url)
            .build()
            .await?;
        Ok(Self(cache))
    }
}

impl Target for CachedRedis {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BoxError> {
        let value = self.0.async_cache_get(&key.to_owned()).await?;
        Ok(value.map(|value| Bytes::from(value.into_vec())))
    }
    async fn set(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
        let _previous = self
            .0
            .async_cache_set(key.to_owned(), ByteBuf::from(value.to_vec()))
            .await?;
        Ok(())
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BoxError> {
        // No bulk read in its API: one round trip per key.
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(key).await?);
        }
        Ok(values)
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<(), BoxError> {
        for key in keys {
            let _previous = self.0.async_cache_remove(&(*key).to_owned()).await?;
        }
        Ok(())
    }
}

/// `fred`'s client: one connection that pipelines the commands of concurrent callers,
/// as the redis backend's default mode does.
pub(crate) struct Fred(fred::prelude::Client);

impl Fred {
    pub(crate) async fn connect(url: &str) -> Result<Self, BoxError> {
        let config = fred::prelude::Config::from_url(url)?;
        let client = fred::prelude::Builder::from_config(config).build()?;
        client.init().await?;
        Ok(Self(client))
    }
}

impl Target for Fred {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BoxError> {
        Ok(self.0.get::<Option<Bytes>, _>(key).await?)
    }
    async fn set(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
        self.0
            .set::<(), _, _>(key, value, None, None, false)
            .await?;
        Ok(())
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BoxError> {
        let keys: Vec<&str> = keys.to_vec();
        Ok(self.0.mget::<Vec<Option<Bytes>>, _>(keys).await?)
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<(), BoxError> {
        let keys: Vec<&str> = keys.to_vec();
        self.0.del::<i64, _>(keys).await?;
        Ok(())
    }
}
