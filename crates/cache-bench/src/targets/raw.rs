//! The client under each backend, used the way its own documentation shows, with the
//! settings the backend gives it: the raw baseline the adapter is measured against.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use bytes::Bytes;
use memcache::exp::{AsyncMetaClient, Delete, Get, Set};
use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
    AsyncConnectionConfig,
};

use crate::engine::{BoxError, Target};

/// The client under a backend, used the way its own documentation shows.
pub(crate) enum Raw {
    /// quick_cache's table of `String` to a value with its deadline, weighed and
    /// expired like the in-memory backend.
    Memory(super::memory::Table),
    /// redis's `ConnectionManager`s, used round robin (the redis backend's default mode).
    Redis {
        connections: Vec<ConnectionManager>,
        next: AtomicUsize,
    },
    /// A deadpool-redis pool (the redis backend's pooled mode).
    RedisPool(deadpool_redis::Pool),
    /// redis's async cluster connection (the redis backend on a Redis Cluster).
    RedisCluster(ClusterConnection),
    /// memcache's meta-protocol client with its connection pool.
    Memcached(AsyncMetaClient),
}

/// Shortest and longest wait, in milliseconds, of the cluster client between two tries
/// of a request: those the redis backend gives it on a cluster (private to that crate).
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 10;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 250;

impl Raw {
    /// quick_cache with the in-memory backend's byte budget, weigher, deadline per
    /// entry and hasher.
    pub(crate) fn memory(capacity_bytes: u64) -> Self {
        Raw::Memory(super::memory::Table::new(capacity_bytes))
    }

    /// `connections` connection managers with the redis backend's timeouts and no
    /// retries inside the manager.
    pub(crate) async fn redis(
        node: &redis::ConnectionInfo,
        connections: usize,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Self, BoxError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(response_timeout))
            .set_number_of_retries(0);
        let mut managers = Vec::with_capacity(connections);
        for _ in 0..connections {
            let client = redis::Client::open(node.clone())?;
            managers.push(ConnectionManager::new_with_config(client, config.clone()).await?);
        }
        Ok(Raw::Redis {
            connections: managers,
            next: AtomicUsize::new(0),
        })
    }

    /// A deadpool-redis pool of `max_size` connections with the redis backend's
    /// timeouts.
    pub(crate) fn redis_pool(
        node: &redis::ConnectionInfo,
        max_size: usize,
        connect_timeout: Duration,
        response_timeout: Duration,
        wait_timeout: Duration,
    ) -> Result<Self, BoxError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(response_timeout));
        let manager = deadpool_redis::Manager::new_with_config(node.clone(), config)?;
        let pool = deadpool_redis::Pool::builder(manager)
            .max_size(max_size)
            .runtime(deadpool_redis::Runtime::Tokio1)
            .wait_timeout(Some(wait_timeout))
            .create_timeout(Some(connect_timeout))
            .recycle_timeout(Some(response_timeout))
            .build()?;
        Ok(Raw::RedisPool(pool))
    }

    /// The cluster client reached through `seeds`, with the settings
    /// of the redis backend on a cluster: its connect and response timeouts, its waits
    /// between tries, the default number of tries, every command to a master.
    pub(crate) async fn redis_cluster(
        seeds: &[redis::ConnectionInfo],
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Self, BoxError> {
        let client = ClusterClient::builder(seeds.iter().cloned())
            .connection_timeout(connect_timeout)
            .response_timeout(response_timeout)
            // The backend bounds each operation, tries and redirects included, by the
            // connect plus the response timeout; this is the client's own way to do so.
            .overall_response_timeout(Some(connect_timeout.saturating_add(response_timeout)))
            .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
            .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
            .build()?;
        Ok(Raw::RedisCluster(client.get_async_connection().await?))
    }

    /// The meta client with the memcached backend's pool size and timeouts.
    pub(crate) async fn memcached(
        servers: &[String],
        pool_size: usize,
        timeout: Duration,
    ) -> Result<Self, BoxError> {
        let client = AsyncMetaClient::builder()
            .connect_timeout(Some(timeout))
            .io_timeout(Some(timeout))
            .max_idle(pool_size)
            .max_connections(Some(pool_size))
            .connect_multiple_async(servers.iter().map(String::as_str))
            .await?;
        client.noop().await?;
        Ok(Raw::Memcached(client))
    }

    fn redis_connection(
        connections: &[ConnectionManager],
        next: &AtomicUsize,
    ) -> ConnectionManager {
        connections[next.fetch_add(1, Ordering::Relaxed) % connections.len()].clone()
    }

    async fn redis_query<T: redis::FromRedisValue + Send>(
        &self,
        command: &redis::Cmd,
    ) -> Result<T, BoxError> {
        match self {
            Raw::Redis { connections, next } => {
                let mut connection = Self::redis_connection(connections, next);
                Ok(command.query_async(&mut connection).await?)
            }
            Raw::RedisPool(pool) => {
                let mut connection = pool.get().await?;
                Ok(command.query_async(&mut connection).await?)
            }
            Raw::RedisCluster(connection) => {
                // A handle on the one connection task: cloning it is cheap.
                let mut connection = connection.clone();
                Ok(command.query_async(&mut connection).await?)
            }
            Raw::Memory(_) | Raw::Memcached(_) => unreachable!("not a redis client"),
        }
    }
}

fn memcached_value(result: memcache::exp::GetResult) -> Option<Bytes> {
    result
        .hit()
        .then(|| Bytes::from(result.value.unwrap_or_default()))
}

impl Target for Raw {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BoxError> {
        match self {
            Raw::Memory(table) => Ok(table.get(key)),
            Raw::Redis { .. } | Raw::RedisPool(_) | Raw::RedisCluster(_) => {
                self.redis_query(redis::cmd("GET").arg(key)).await
            }
            Raw::Memcached(client) => Ok(memcached_value(client.run(Get::new(key)).await?)),
        }
    }

    async fn set(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
        match self {
            Raw::Memory(table) => {
                table.insert(key, value);
                Ok(())
            }
            Raw::Redis { .. } | Raw::RedisPool(_) | Raw::RedisCluster(_) => {
                self.redis_query(redis::cmd("SET").arg(key).arg(value.as_ref()))
                    .await
            }
            Raw::Memcached(client) => {
                client.run(Set::new(key, &value)).await?;
                Ok(())
            }
        }
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BoxError> {
        match self {
            Raw::Memory(table) => Ok(keys.iter().map(|key| table.get(key)).collect()),
            Raw::Redis { .. } | Raw::RedisPool(_) | Raw::RedisCluster(_) => {
                // On a cluster the client splits an MGET whose keys lie in several slots
                // into one MGET per slot, sends them all at once and puts the answers
                // back in order. Those are the backend's commands too; it pipelines them
                // per master, from a map of the slots, which this client keeps to itself
                // (its pipelines may not cross slots).
                self.redis_query(redis::cmd("MGET").arg(keys)).await
            }
            Raw::Memcached(client) => client
                .run_many(keys.iter().map(Get::new))
                .await?
                .into_iter()
                .map(|result| Ok(memcached_value(result?)))
                .collect(),
        }
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<(), BoxError> {
        match self {
            Raw::Memory(table) => {
                for key in keys {
                    table.remove(key);
                }
                Ok(())
            }
            Raw::Redis { .. } | Raw::RedisPool(_) | Raw::RedisCluster(_) => {
                // Split per slot by the cluster client, like MGET.
                self.redis_query(redis::cmd("UNLINK").arg(keys)).await
            }
            Raw::Memcached(client) => {
                for result in client.run_many(keys.iter().map(Delete::new)).await? {
                    result?;
                }
                Ok(())
            }
        }
    }
}
