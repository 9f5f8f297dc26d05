//! Batches: each one pipelined exchange per server, the servers in parallel, a key named
//! twice sent once.

use std::collections::HashMap;

use cache_api::{Bytes, CacheError};

use crate::{
    calls::{call, hit_value, removed, stored},
    expiry::Expiry,
    mux::request::{Read, Remove, Write},
    MemcachedCache,
};

/// The keys of a batch without repeats, in the order first seen, and for each position of
/// the batch the index of its key in that list.
pub(crate) fn distinct<'a>(keys: impl IntoIterator<Item = &'a str>) -> (Vec<&'a str>, Vec<usize>) {
    let keys = keys.into_iter();
    let room = keys.size_hint().0;
    // aHash: this runs for every key of every batch, and SipHash was a visible part of it.
    let mut index: HashMap<&str, usize, ahash::RandomState> =
        HashMap::with_capacity_and_hasher(room, ahash::RandomState::new());
    let mut unique = Vec::with_capacity(room);
    let positions = keys
        .map(|key| {
            *index.entry(key).or_insert_with(|| {
                unique.push(key);
                unique.len() - 1
            })
        })
        .collect();
    (unique, positions)
}

impl MemcachedCache {
    pub(crate) async fn get_many_in(
        &self,
        generation: Option<u64>,
        keys: &[&str],
    ) -> Result<Vec<Option<Bytes>>, CacheError> {
        let context = self.context("get_many");
        let server_keys: Vec<Vec<u8>> = keys
            .iter()
            .map(|key| self.inner.keys.server_key(generation, key))
            .collect();
        if self.inner.get_many_fail_open {
            return self.get_many_fail_open(&server_keys, context).await;
        }
        // One pipelined exchange per server, the servers in parallel.
        let results = call(
            context,
            self.inner
                .client
                .run_many(server_keys.into_iter().map(Read::new), context.timeout),
        )
        .await?;
        results
            .into_iter()
            .map(|result| result.map(hit_value).map_err(|error| context.map(error)))
            .collect()
    }

    pub(crate) async fn set_many_in(
        &self,
        generation: Option<u64>,
        entries: &[(&str, &Bytes)],
        expiry: Expiry,
    ) -> Result<(), CacheError> {
        let writes: Vec<Write> = entries
            .iter()
            .map(|(key, value)| self.set_operation(generation, key, value, expiry))
            .collect();
        let context = self.context("set_many");
        let results = call(context, self.inner.client.run_many(writes, context.timeout)).await?;
        for (result, (_, value)) in results.into_iter().zip(entries) {
            match result {
                Ok(status) => stored(status)?,
                Err(error) => {
                    let error = self.value_context("set_many", value.len()).map(error);
                    return Err(self.write_failed(error).await);
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn delete_many_in(
        &self,
        generation: Option<u64>,
        keys: &[&str],
    ) -> Result<usize, CacheError> {
        let context = self.context("delete_many");
        let deletes = keys
            .iter()
            .map(|key| Remove::new(self.inner.keys.server_key(generation, key)));
        let results = call(
            context,
            self.inner.client.run_many(deletes, context.timeout),
        )
        .await?;
        let mut count = 0;
        for result in results {
            count += usize::from(removed(result.map_err(|error| context.map(error))?)?);
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_lose_repeats_but_keep_positions() {
        let (unique, positions) = distinct(["b", "a", "b", "c", "a"]);
        assert_eq!(unique, ["b", "a", "c"]);
        assert_eq!(positions, [0, 1, 0, 2, 1]);
    }
}
