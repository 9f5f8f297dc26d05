//! Building a [`MemcachedCache`]: the settings checked, every server asked its item size
//! and reached once, and a prefix's generation read (never created).

use std::sync::Arc;

use cache_api::CacheError;

use crate::{
    admin, calls::call, error::Context, generation::read_generation, keys::KeySpace, mux,
    namespace::Namespace, transport::Transport, Inner, MemcachedCache, MemcachedCacheBuilder,
    DEFAULT_MAX_VALUE_SIZE, MAX_POOL_SIZE,
};

/// The per-item overhead subtracted from a server's item size to get the largest value it
/// stores whatever the key (see [`DEFAULT_MAX_VALUE_SIZE`]).
const ITEM_OVERHEAD: usize = (1 << 20) - DEFAULT_MAX_VALUE_SIZE;

/// The largest value every server stores: the configured limit, lowered to the smallest
/// server's item size (`item_size_max` of `stats settings`) less [`ITEM_OVERHEAD`]. Asks
/// every server at once.
///
/// # Errors
///
/// `Config` when a server does not answer as memcached (a TLS port included); `Unreachable`
/// or `Timeout` when one does not answer at all.
pub(crate) async fn effective_value_limit(
    transport: &Transport,
    servers: &[String],
    configured: usize,
    context: Context,
) -> Result<usize, CacheError> {
    let asks = servers.iter().map(|server| async move {
        // Dial and answer within one timeout, as any call.
        let asked = tokio::time::timeout(context.timeout, async {
            let mut admin = admin::Admin::connect(transport, server, context).await?;
            admin.item_size_max().await
        });
        match asked.await.unwrap_or_else(|_| Err(context.timeout())) {
            Err(error) => Err(transport.explain(server, error, context.timeout).await),
            answer => answer,
        }
    });
    let mut limit = configured;
    for item_size in futures::future::join_all(asks).await {
        if let Some(item_size) = item_size? {
            limit = limit.min(item_size.saturating_sub(ITEM_OVERHEAD).max(1));
        }
    }
    Ok(limit)
}

impl MemcachedCache {
    pub(crate) async fn from_builder(builder: MemcachedCacheBuilder) -> Result<Self, CacheError> {
        let servers = builder.checked_servers()?.to_vec();
        let prefix = builder.checked_prefix()?.map(str::to_owned);
        if builder.timeout.is_zero() {
            return Err(CacheError::config("the timeout must be longer than zero"));
        }
        if !(1..=MAX_POOL_SIZE).contains(&builder.pool_size) {
            return Err(CacheError::config(format!(
                "the pool size must be from 1 to {MAX_POOL_SIZE} connections per server, not {}",
                builder.pool_size
            )));
        }
        if builder.max_value_size == 0 {
            return Err(CacheError::config(
                "the largest value size must be at least 1 byte",
            ));
        }
        // No call waits without end on a server that stopped answering.
        let timeout = builder.timeout.min(crate::config::MAX_TIMEOUT);
        let connect = Context {
            operation: "connect",
            timeout,
            value: None,
        };
        // Before the meta client: a server that is no memcached (a Redis port) is told so
        // here in plain words, not by a parse error of the meta protocol.
        // Certificate and key files are read once, here: a bad one is a `Config` error
        // at build time rather than a failure of every connection.
        let transport = Transport::new(&builder.scheme)?;
        let max_value_size =
            effective_value_limit(&transport, &servers, builder.max_value_size, connect).await?;
        let client = mux::Client::new(&servers, builder.pool_size, &transport);
        // Connections are dialled when first used: a no-op on every server, all at once,
        // dials them now and finds a dead address.
        call(connect, client.noop(timeout)).await?;

        let keys = KeySpace::new(prefix.as_deref());
        let namespace = match keys.generation_key() {
            None => None,
            Some(key) => {
                // Only read: a cache that is built and read from writes nothing.
                let generation = read_generation(&client, &key, connect).await?;
                Some(Namespace::new(key, generation, builder.namespace_refresh))
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                servers,
                transport,
                key_prefix: prefix,
                keys,
                namespace,
                timeout,
                pool_size: builder.pool_size,
                max_value_size: max_value_size.into(),
                get_many_fail_open: builder.get_many_fail_open,
            }),
        })
    }
}
