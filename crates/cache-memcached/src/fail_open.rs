//! `get_many` that reads the keys of a failed server as misses (the builder's
//! `get_many_fail_open`): each server's part of the batch under a timeout of its own.

use cache_api::{Bytes, CacheError};
use memcache::exp::Router;

use crate::{
    calls::{call, hit_value},
    error::Context,
    mux::request::Read,
    router, MemcachedCache,
};

impl MemcachedCache {
    /// `get_many` where a server that is unreachable or too slow costs only its own keys,
    /// read as misses. Each server's part is a batch of its own under its own timeout: one
    /// timeout over the whole batch would let a hung server throw away the answers of the
    /// others.
    pub(crate) async fn get_many_fail_open(
        &self,
        server_keys: &[Vec<u8>],
        context: Context,
    ) -> Result<Vec<Option<Bytes>>, CacheError> {
        let servers = &self.inner.servers;
        let mut parts: Vec<Vec<usize>> = vec![Vec::new(); servers.len()];
        for (position, key) in server_keys.iter().enumerate() {
            // The client clamps a route the same way, so both agree on the server.
            let server = router::StableRendezvous
                .route(key, servers)
                .min(servers.len() - 1);
            parts[server].push(position);
        }
        let exchanges = parts
            .iter()
            .enumerate()
            .filter(|(_, positions)| !positions.is_empty())
            .map(|(server, positions)| async move {
                let reads = positions
                    .iter()
                    .map(|&position| Read::new(server_keys[position].clone()));
                let answers =
                    call(context, self.inner.client.run_many(reads, context.timeout)).await;
                (server, positions, answers)
            });
        let mut values = vec![None; server_keys.len()];
        for (server, positions, answers) in futures::future::join_all(exchanges).await {
            let failed = |error: CacheError| -> Result<(), CacheError> {
                if !error.is_retryable() {
                    return Err(error);
                }
                tracing::warn!(
                    server = %servers[server],
                    %error,
                    keys = positions.len(),
                    "memcached: get_many reads the keys of a failed server as misses"
                );
                Ok(())
            };
            let answers = match answers {
                Ok(answers) => answers,
                Err(error) => {
                    failed(error)?;
                    continue;
                }
            };
            for (&position, answer) in positions.iter().zip(answers) {
                match answer {
                    Ok(result) => values[position] = hit_value(result),
                    // A server failing mid-batch fails every answer it still owed: say so once.
                    Err(error) => {
                        failed(context.map(error))?;
                        break;
                    }
                }
            }
        }
        Ok(values)
    }
}
