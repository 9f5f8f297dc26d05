//! memcached peer: Shopify's `async-memcached` (OpenDAL's is in `open_dal.rs`).

use bytes::Bytes;
use cache_bench::{BoxError, Target};

/// Shopify's client takes `&mut self`: each call borrows a connection from a queue.
pub(crate) struct AsyncMemcached {
    idle: tokio::sync::Mutex<tokio::sync::mpsc::Receiver<async_memcached::Client>>,
    give_back: tokio::sync::mpsc::Sender<async_memcached::Client>,
}

impl AsyncMemcached {
    pub(crate) async fn connect(url: &str, connections: usize) -> Result<Self, BoxError> {
        let address = url.split_once("://").map_or(url, |(_, rest)| rest);
        // The adapter's own parameters (`?pool_size=4`) are not this client's.
        let address = address
            .split('?')
            .next()
            .unwrap_or(address)
            .trim_end_matches('/');
        let (give_back, idle) = tokio::sync::mpsc::channel(connections);
        for _ in 0..connections {
            let client = async_memcached::Client::new(format!("tcp://{address}")).await?;
            give_back.send(client).await?;
        }
        Ok(Self {
            idle: tokio::sync::Mutex::new(idle),
            give_back,
        })
    }

    async fn with<T>(
        &self,
        run: impl AsyncFnOnce(&mut async_memcached::Client) -> Result<T, async_memcached::Error>,
    ) -> Result<T, BoxError> {
        let mut client = self
            .idle
            .lock()
            .await
            .recv()
            .await
            .ok_or("the connection queue closed")?;
        let result = run(&mut client).await;
        self.give_back.send(client).await?;
        Ok(result?)
    }
}

impl Target for AsyncMemcached {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BoxError> {
        use async_memcached::AsciiProtocol;
        let value = self.with(async |client| client.get(key).await).await?;
        Ok(value.map(|value| Bytes::from(value.data.unwrap_or_default())))
    }
    async fn set(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
        use async_memcached::AsciiProtocol;
        self.with(async |client| client.set(key, value.as_ref(), None, None).await)
            .await
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BoxError> {
        use async_memcached::AsciiProtocol;
        let found = self
            .with(async |client| client.get_multi(keys).await)
            .await?;
        // Only hits come back, each with its key: put them in the order asked.
        let mut by_key: std::collections::HashMap<Vec<u8>, Bytes> = found
            .into_iter()
            .map(|value| (value.key, Bytes::from(value.data.unwrap_or_default())))
            .collect();
        Ok(keys
            .iter()
            .map(|key| by_key.remove(key.as_bytes()))
            .collect())
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<(), BoxError> {
        use async_memcached::AsciiProtocol;
        for key in keys {
            match self.with(async |client| client.delete(key).await).await {
                Ok(()) => {}
                // Deleting a missing key is an error to this client.
                Err(err) if err.to_string().to_lowercase().contains("not found") => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}
