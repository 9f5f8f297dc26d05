//! Apache OpenDAL's key-value services for Redis and memcached: one operator type,
//! whichever service is under it.

use bytes::Bytes;
use cache_bench::{BoxError, Target};

/// Apache OpenDAL's operator over one of its key-value services (redis or memcached):
/// a path per key, `read` / `write` / `delete`, a miss is a `NotFound` error.
pub(crate) struct OpenDal {
    operator: opendal::Operator,
    /// Whether the keys written expire by themselves instead of being deleted.
    expiring: bool,
}

impl OpenDal {
    /// The redis service, with its own pool of connection managers (16, as the pooled
    /// mode of the redis backend and the memcached backend's pool).
    pub(crate) fn redis(url: &str, connections: usize) -> Result<Self, BoxError> {
        let builder = opendal::services::Redis::default()
            .endpoint(&endpoint_of(url))
            .connection_pool_max_size(connections.max(1));
        Ok(Self {
            operator: opendal::Operator::new(builder)?,
            expiring: false,
        })
    }

    /// The memcached service, with a pool of `connections`. Its keys are written with
    /// a TTL of `MEMCACHED_TTL` and left to expire: at the 15 or so requests per second
    /// and connection this service makes here (see the README), deleting the 10,000
    /// keys of a row one by one would take ten minutes.
    pub(crate) fn memcached(url: &str, connections: usize) -> Result<Self, BoxError> {
        let builder = opendal::services::Memcached::default()
            .endpoint(&endpoint_of(url))
            .connection_pool_max_size(connections.max(1))
            .default_ttl(MEMCACHED_TTL);
        Ok(Self {
            operator: opendal::Operator::new(builder)?,
            expiring: true,
        })
    }
}

/// How long the keys written through the memcached service live.
const MEMCACHED_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// `redis://host:port` or `memcache://host:port` as OpenDAL's `tcp://host:port`.
fn endpoint_of(url: &str) -> String {
    let address = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .trim_end_matches('/');
    format!("tcp://{address}")
}

impl Target for OpenDal {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BoxError> {
        match self.operator.read(key).await {
            Ok(buffer) => Ok(Some(buffer.to_bytes())),
            Err(err) if err.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }
    async fn set(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
        self.operator.write(key, value).await?;
        Ok(())
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BoxError> {
        // No bulk read in its API: one read per key.
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(key).await?);
        }
        Ok(values)
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<(), BoxError> {
        if self.expiring {
            return Ok(());
        }
        for key in keys {
            self.operator.delete(key).await?;
        }
        Ok(())
    }
}
