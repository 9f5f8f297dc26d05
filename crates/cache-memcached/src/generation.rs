//! The generation counter of a key prefix on the server: read, created (memcached `add`,
//! so racing instances agree) and checked again now and then, and every operation of a
//! prefixed cache run in the generation it names. The in-memory side is `namespace.rs`.

use std::future::Future;

use cache_api::{Bytes, CacheError};
use memcache::exp::MutationStatus;

use crate::{
    calls::call,
    error::{unexpected, Context},
    mux::{
        request::{Read, Write},
        Client,
    },
    namespace::{fresh_generation, Namespace, Snapshot},
    MemcachedCache,
};

/// The generation counter of a prefix, as found on the server.
pub(crate) enum Counter {
    Missing,
    Value(u64),
    /// Something that is no number: overwritten by another client.
    Garbage,
}

pub(crate) async fn read_counter(
    client: &Client,
    key: &[u8],
    context: Context,
) -> Result<Counter, CacheError> {
    let read = Read::new(key.to_vec());
    let Some(value) = call(context, client.run(read, context.timeout)).await? else {
        return Ok(Counter::Missing);
    };
    Ok(std::str::from_utf8(&value)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .map_or(Counter::Garbage, Counter::Value))
}

/// Creates a missing generation counter with `fresh`: `Some(fresh)` when this call created
/// it, `None` when another instance did first (read or increment theirs instead).
pub(crate) async fn create_counter(
    client: &Client,
    key: &[u8],
    fresh: u64,
    context: Context,
) -> Result<Option<u64>, CacheError> {
    let added = call(
        context,
        client.run(counter_write(key, fresh).add(), context.timeout),
    )
    .await?;
    match added {
        MutationStatus::Applied => Ok(Some(fresh)),
        MutationStatus::AlreadyExists => Ok(None),
        other => Err(unexpected(format!(
            "creating the generation counter: {other:?}"
        ))),
    }
}

/// The write of the counter `key` with `generation`, in decimal and without expiry.
fn counter_write(key: &[u8], generation: u64) -> Write {
    Write::new(key.to_vec(), Bytes::from(generation.to_string()), None)
}

/// The generation of a prefix as the server holds it: `None` when the counter is absent,
/// or garbled (then the next write replaces it). Never writes.
pub(crate) async fn read_generation(
    client: &Client,
    key: &[u8],
    context: Context,
) -> Result<Option<u64>, CacheError> {
    Ok(match read_counter(client, key, context).await? {
        Counter::Value(generation) => Some(generation),
        Counter::Missing | Counter::Garbage => None,
    })
}

/// What an operation does in a namespace whose generation counter is absent.
pub(crate) enum Absent<T> {
    /// A read (or a delete): nothing is reachable, so this is the answer once the counter
    /// is confirmed absent; nothing is written.
    Empty(T),
    /// A write: the counter is created first.
    Create,
}

impl MemcachedCache {
    /// Runs `run` in the current generation of the prefix (`None` without a prefix). When
    /// the counter is absent, `absent` says what to do. When a check of the generation is
    /// due it runs alongside, and `run` is repeated once in the new generation if the
    /// number moved or vanished.
    pub(crate) async fn in_namespace<T, F, Fut>(
        &self,
        operation: &'static str,
        absent: Absent<T>,
        run: F,
    ) -> Result<T, CacheError>
    where
        T: Clone,
        F: Fn(Option<u64>) -> Fut,
        Fut: Future<Output = Result<T, CacheError>>,
    {
        let Some(namespace) = &self.inner.namespace else {
            return run(None).await;
        };
        let seen = namespace.snapshot();
        if !namespace.claim_check() {
            return self
                .run_in(operation, namespace, seen.generation, &absent, &run)
                .await
                .1;
        }
        // Boxed: a check is due once per refresh interval, and its state would otherwise
        // make every operation's future several times larger.
        Box::pin(self.run_with_check(operation, namespace, seen, absent, run)).await
    }

    /// Runs `run` in `generation`, or does what `absent` says when there is none. Returns
    /// the generation used with the result.
    pub(crate) async fn run_in<T, F, Fut>(
        &self,
        operation: &'static str,
        namespace: &Namespace,
        generation: Option<u64>,
        absent: &Absent<T>,
        run: &F,
    ) -> (Option<u64>, Result<T, CacheError>)
    where
        T: Clone,
        F: Fn(Option<u64>) -> Fut,
        Fut: Future<Output = Result<T, CacheError>>,
    {
        let generation = match (generation, absent) {
            (Some(generation), _) => generation,
            // Looked up every time while absent: the read costs the round trip a data
            // read would, and another instance's first write is seen at once.
            // The counter's read and creation are boxed: they run while the counter is
            // absent, and their state would otherwise enlarge every operation's future.
            (None, Absent::Empty(empty)) => {
                let before = namespace.snapshot();
                let found = Box::pin(read_generation(
                    &self.inner.client,
                    &namespace.key,
                    self.context(operation),
                ))
                .await;
                match found
                    .map(|found| found.and_then(|found| namespace.adopt(before, Some(found))))
                {
                    Err(error) => return (None, Err(error)),
                    Ok(None) => return (None, Ok(empty.clone())),
                    Ok(Some(generation)) => generation,
                }
            }
            (None, Absent::Create) => {
                match Box::pin(self.create_generation(operation, namespace)).await {
                    Ok(generation) => generation,
                    Err(error) => return (None, Err(error)),
                }
            }
        };
        (Some(generation), run(Some(generation)).await)
    }

    pub(crate) async fn run_with_check<T, F, Fut>(
        &self,
        operation: &'static str,
        namespace: &Namespace,
        seen: Snapshot,
        absent: Absent<T>,
        run: F,
    ) -> Result<T, CacheError>
    where
        T: Clone,
        F: Fn(Option<u64>) -> Fut,
        Fut: Future<Output = Result<T, CacheError>>,
    {
        let (latest, (used, result)) = tokio::join!(
            self.check_generation(namespace, seen),
            self.run_in(operation, namespace, seen.generation, &absent, &run)
        );
        match latest {
            // `run_in` went to the server itself (it created the counter, or looked it up
            // while it was absent here): what it used is at least as fresh as the check
            // that ran alongside, which may have read the counter before it existed.
            // Running again would repeat an `add` or a `delete` that already happened.
            _ if used != seen.generation => result,
            Some(latest) if latest != used => {
                self.run_in(operation, namespace, latest, &absent, &run)
                    .await
                    .1
            }
            _ => result,
        }
    }

    /// The generation to use from now on (`Some(None)`: the counter is absent), or `None`
    /// when the server could not tell (the known one stays in use, so keys on other
    /// servers keep working).
    pub(crate) async fn check_generation(
        &self,
        namespace: &Namespace,
        seen: Snapshot,
    ) -> Option<Option<u64>> {
        let context = self.context("generation check");
        match read_generation(&self.inner.client, &namespace.key, context).await {
            Ok(generation) => Some(namespace.adopt(seen, generation)),
            Err(error) => {
                tracing::warn!(%error, "memcached: could not check the generation of the key prefix, keeping the known one");
                None
            }
        }
    }

    /// Creates the absent generation counter (memcached `add`: of racing instances one
    /// creates it, the others read its number), above every generation this instance knew.
    pub(crate) async fn create_generation(
        &self,
        operation: &'static str,
        namespace: &Namespace,
    ) -> Result<u64, CacheError> {
        let context = self.context(operation);
        let client = &self.inner.client;
        let key = &namespace.key;
        for _ in 0..3 {
            let known = namespace.snapshot().highest;
            let fresh = fresh_generation(known);
            if let Some(created) = create_counter(client, key, fresh, context).await? {
                namespace.set(Some(created), created);
                return Ok(created);
            }
            match read_counter(client, key, context).await? {
                Counter::Value(theirs) => {
                    namespace.set(Some(theirs), theirs);
                    return Ok(theirs);
                }
                // Deleted again in between (a `clear`): try once more.
                Counter::Missing => {}
                // Overwritten by another client with something that is no number.
                Counter::Garbage => {
                    call(
                        context,
                        client.run(counter_write(key, fresh), context.timeout),
                    )
                    .await?;
                    namespace.set(Some(fresh), fresh);
                    return Ok(fresh);
                }
            }
        }
        Err(unexpected(
            "the generation counter kept changing while it was created",
        ))
    }
}
