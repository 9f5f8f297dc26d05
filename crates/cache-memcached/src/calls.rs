//! One exchange with the server for one key: the bound on its time, the request built
//! without copying the key, and what memcached's answer means for the contract.

use std::{future::Future, sync::atomic::Ordering};

use cache_api::{validate_value, Bytes, CacheError};
use futures::TryFutureExt;
use memcache::exp::{Error as ClientError, MutationStatus};

use crate::{
    error::{unexpected, Context},
    expiry::Expiry,
    mux::request::{Probe, Read, Remove, Write},
    MemcachedCache,
};

/// A call of the client, its error mapped. The client bounds each call by the timeout it
/// is given (the context's): a second timer here would only race it, and the client must
/// see its own timeout to drop the connection that missed it.
///
/// A combinator, not an `async fn`: an `async fn` keeps the future it is handed twice in
/// its state (the argument, and the local it awaits), which doubled every operation's
/// future, the box of the object-safe trait's call included.
pub(crate) fn call<T>(
    context: Context,
    future: impl Future<Output = Result<T, ClientError>>,
) -> impl Future<Output = Result<T, CacheError>> {
    future.map_err(move |error| context.map(error))
}

/// The value of a read: a hit's value block, as the cache's `Bytes` without a copy.
pub(crate) fn hit_value(value: Option<Vec<u8>>) -> Option<Bytes> {
    value.map(Bytes::from)
}

pub(crate) fn stored(status: MutationStatus) -> Result<(), CacheError> {
    match status {
        MutationStatus::Applied => Ok(()),
        other => Err(unexpected(format!(
            "memcached did not store the value: {other:?}"
        ))),
    }
}

pub(crate) fn added(status: MutationStatus) -> Result<bool, CacheError> {
    match status {
        MutationStatus::Applied => Ok(true),
        MutationStatus::AlreadyExists => Ok(false),
        other => Err(unexpected(format!(
            "memcached did not answer the add: {other:?}"
        ))),
    }
}

pub(crate) fn removed(status: MutationStatus) -> Result<bool, CacheError> {
    match status {
        MutationStatus::Applied => Ok(true),
        MutationStatus::NotFound => Ok(false),
        other => Err(unexpected(format!(
            "memcached did not delete the key: {other:?}"
        ))),
    }
}

impl MemcachedCache {
    pub(crate) fn context(&self, operation: &'static str) -> Context {
        Context {
            operation,
            timeout: self.inner.timeout,
            value: None,
        }
    }

    pub(crate) fn value_context(&self, operation: &'static str, size: usize) -> Context {
        Context {
            value: Some((size, self.max_value_size())),
            ..self.context(operation)
        }
    }

    pub(crate) fn check_size(&self, value: &Bytes) -> Result<(), CacheError> {
        validate_value(value, self.max_value_size())
    }

    /// The largest value `set` takes now.
    pub(crate) fn max_value_size(&self) -> usize {
        self.inner.max_value_size.load(Ordering::Relaxed)
    }

    /// The error of a write, once the server refused its value as too large although
    /// the known limit let it through (an item size lowered since the build, a proxy
    /// in front of servers with a smaller one): the servers are asked their item size
    /// again and the limit lowered, below the refused value whatever they answer, so
    /// that the error names it and later writes over it are refused before anything
    /// is sent. Any other error is returned as it is.
    pub(crate) async fn write_failed(&self, error: CacheError) -> CacheError {
        match error {
            CacheError::ValueTooLarge { size, limit } => {
                let known = self.max_value_size();
                // `map` names a limit below the known one only for such a refusal; else
                // the limit is the known one (lowered meanwhile by another write, maybe).
                if limit < known {
                    Box::pin(self.relearn_limit(size)).await
                } else {
                    CacheError::ValueTooLarge { size, limit: known }
                }
            }
            other => other,
        }
    }

    async fn relearn_limit(&self, refused: usize) -> CacheError {
        let known = self.max_value_size();
        let asked = crate::connect::effective_value_limit(
            &self.inner.transport,
            &self.inner.servers,
            known,
            self.context("set"),
        )
        .await
        .unwrap_or(known);
        let limit = asked.min(refused.saturating_sub(1));
        let previous = self
            .inner
            .max_value_size
            .fetch_min(limit, Ordering::Relaxed);
        CacheError::ValueTooLarge {
            size: refused,
            limit: previous.min(limit),
        }
    }

    pub(crate) async fn get_in(
        &self,
        generation: Option<u64>,
        key: &str,
    ) -> Result<Option<Bytes>, CacheError> {
        let server_key = self.inner.keys.server_key(generation, key);
        let context = self.context("get");
        let value = call(
            context,
            self.inner
                .client
                .run(Read::new(server_key), context.timeout),
        )
        .await?;
        Ok(hit_value(value))
    }

    pub(crate) async fn exists_in(
        &self,
        generation: Option<u64>,
        key: &str,
    ) -> Result<bool, CacheError> {
        let server_key = self.inner.keys.server_key(generation, key);
        let probe = Probe::new(server_key);
        let context = self.context("exists");
        call(context, self.inner.client.run(probe, context.timeout)).await
    }

    /// The `ms` of `value` under `key`: the value's one copy on its way to the server is
    /// made here (the command owns its bytes); encoding it moves them into the request.
    pub(crate) fn set_operation(
        &self,
        generation: Option<u64>,
        key: &str,
        value: &Bytes,
        expiry: Expiry,
    ) -> Write {
        let server_key = self.inner.keys.server_key(generation, key);
        let at = match expiry {
            Expiry::At(at) => Some(at),
            Expiry::Never | Expiry::Expired => None,
        };
        Write::new(server_key, value.clone(), at)
    }

    pub(crate) async fn set_in(
        &self,
        generation: Option<u64>,
        key: &str,
        value: &Bytes,
        expiry: Expiry,
    ) -> Result<(), CacheError> {
        let set = self.set_operation(generation, key, value, expiry);
        let context = self.value_context("set", value.len());
        match call(context, self.inner.client.run(set, context.timeout)).await {
            Ok(status) => stored(status),
            Err(error) => Err(self.write_failed(error).await),
        }
    }

    pub(crate) async fn add_in(
        &self,
        generation: Option<u64>,
        key: &str,
        value: &Bytes,
        expiry: Expiry,
    ) -> Result<bool, CacheError> {
        let add = self.set_operation(generation, key, value, expiry).add();
        let context = self.value_context("add", value.len());
        match call(context, self.inner.client.run(add, context.timeout)).await {
            Ok(status) => added(status),
            Err(error) => Err(self.write_failed(error).await),
        }
    }

    pub(crate) async fn delete_in(
        &self,
        generation: Option<u64>,
        key: &str,
    ) -> Result<bool, CacheError> {
        let server_key = self.inner.keys.server_key(generation, key);
        let context = self.context("delete");
        let status = call(
            context,
            self.inner
                .client
                .run(Remove::new(server_key), context.timeout),
        )
        .await?;
        removed(status)
    }
}
