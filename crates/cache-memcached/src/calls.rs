//! One exchange with the server for one key: the bound on its time, the request built
//! without copying the key, and what memcached's answer means for the contract.

use std::future::Future;

use cache_api::{validate_value, Bytes, CacheError};
use memcache::exp::{Delete, Error as ClientError, Get, GetResult, MutationStatus, Set};

use crate::{
    error::{unexpected, Context},
    expiry::Expiry,
    MemcachedCache,
};

/// Awaits a call of the client, mapping its error. The client bounds each call by the
/// timeout it is given (the context's): a second timer here would only race it, and the
/// client must see its own timeout to drop the connection that missed it.
pub(crate) async fn call<T>(
    context: Context,
    future: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, CacheError> {
    future.await.map_err(|error| context.map(error))
}

/// A `mg` of `key`, which it takes over (`Get::new` would copy it).
pub(crate) fn get_of(key: Vec<u8>) -> Get {
    let mut get = Get::new([]);
    get.key = key;
    get
}

/// A `md` of `key`, which it takes over.
pub(crate) fn delete_of(key: Vec<u8>) -> Delete {
    let mut delete = Delete::new([]);
    delete.key = key;
    delete
}

pub(crate) fn hit_value(result: GetResult) -> Option<Bytes> {
    result
        .hit()
        .then(|| Bytes::from(result.value.unwrap_or_default()))
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
            value: Some((size, self.inner.max_value_size)),
            ..self.context(operation)
        }
    }

    pub(crate) fn check_size(&self, value: &Bytes) -> Result<(), CacheError> {
        validate_value(value, self.inner.max_value_size)
    }

    pub(crate) async fn get_in(
        &self,
        generation: Option<u64>,
        key: &str,
    ) -> Result<Option<Bytes>, CacheError> {
        let server_key = self.inner.keys.server_key(generation, key);
        let context = self.context("get");
        let result = call(
            context,
            self.inner.client.run(get_of(server_key), context.timeout),
        )
        .await?;
        Ok(hit_value(result))
    }

    pub(crate) async fn exists_in(
        &self,
        generation: Option<u64>,
        key: &str,
    ) -> Result<bool, CacheError> {
        let server_key = self.inner.keys.server_key(generation, key);
        let probe = get_of(server_key).without_value();
        let context = self.context("exists");
        Ok(call(context, self.inner.client.run(probe, context.timeout))
            .await?
            .hit())
    }

    pub(crate) fn set_operation(
        &self,
        generation: Option<u64>,
        key: &str,
        value: &Bytes,
        expiry: Expiry,
    ) -> Set {
        let server_key = self.inner.keys.server_key(generation, key);
        let mut set = Set::new([], []);
        set.key = server_key;
        set.value = value.to_vec();
        match expiry {
            Expiry::At(at) => set.ttl_raw(at),
            Expiry::Never | Expiry::Expired => set,
        }
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
        let result = call(context, self.inner.client.run(set, context.timeout)).await?;
        stored(result.status)
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
        let result = call(context, self.inner.client.run(add, context.timeout)).await?;
        added(result.status)
    }

    pub(crate) async fn delete_in(
        &self,
        generation: Option<u64>,
        key: &str,
    ) -> Result<bool, CacheError> {
        let server_key = self.inner.keys.server_key(generation, key);
        let context = self.context("delete");
        let result = call(
            context,
            self.inner
                .client
                .run(delete_of(server_key), context.timeout),
        )
        .await?;
        removed(result.status)
    }
}
