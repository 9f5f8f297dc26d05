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
