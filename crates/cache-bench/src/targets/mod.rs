//! What a run drives: the adapter as applications hold it (`Arc<dyn Cache>`), and, for
//! the raw baseline, the client under each backend with the same settings.

mod memory;
mod raw;

use std::sync::Arc;

use bytes::Bytes;
use cache_api::Cache;

use crate::engine::{BoxError, Target};
pub(crate) use raw::Raw;

/// The adapter, called exactly as an application calls it: through `Arc<dyn Cache>`.
pub struct Adapter(pub Arc<dyn Cache>);

impl Target for Adapter {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BoxError> {
        Ok(self.0.get(key).await?)
    }

    async fn set(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
        Ok(self.0.set(key, value, None).await?)
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BoxError> {
        Ok(self.0.get_many(keys).await?)
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<(), BoxError> {
        self.0.delete_many(keys).await?;
        Ok(())
    }
}

/// A raw client whose keys go under a prefix, as the adapter's do under the URL's: the
/// raw side of a run on a URL with a prefix writes nothing outside the application's
/// namespace (a Redis user allowed `~app:*` only may run it), and pays for the prefix
/// as the adapter does. Without a prefix, the keys go as they are, at no cost.
pub(crate) struct UnderPrefix<T> {
    pub(crate) inner: T,
    pub(crate) prefix: String,
}

impl<T> UnderPrefix<T> {
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn keys(&self, keys: &[&str]) -> Vec<String> {
        keys.iter().map(|key| self.key(key)).collect()
    }
}

impl<T: Target> Target for UnderPrefix<T> {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BoxError> {
        if self.prefix.is_empty() {
            return self.inner.get(key).await;
        }
        self.inner.get(&self.key(key)).await
    }

    async fn set(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
        if self.prefix.is_empty() {
            return self.inner.set(key, value).await;
        }
        self.inner.set(&self.key(key), value).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BoxError> {
        if self.prefix.is_empty() {
            return self.inner.get_many(keys).await;
        }
        let owned = self.keys(keys);
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        self.inner.get_many(&refs).await
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<(), BoxError> {
        if self.prefix.is_empty() {
            return self.inner.delete_many(keys).await;
        }
        let owned = self.keys(keys);
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        self.inner.delete_many(&refs).await
    }
}
