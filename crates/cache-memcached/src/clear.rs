//! `clear`: a prefixed cache deletes its generation counter, then lists each server's keys
//! and deletes those of its generations; a cache without a prefix flushes every server.

use std::sync::Arc;

use cache_api::CacheError;

use crate::{
    admin,
    calls::{call, removed},
    generation::read_generation,
    keys,
    mux::request::Remove,
    namespace::{now_micros, Namespace},
    MemcachedCache,
};

/// How many timeouts a `clear` waits for memcached's crawler while another listing runs.
const CRAWLER_BUSY_TIMEOUTS: u32 = 10;

/// How many times a `clear` lists a server's keys at most, stopping at the first listing
/// after the first with none of its entries left.
const LISTING_PASSES: usize = 3;

/// The generation tag of a data key of `prefix`: the digits between `{` and `}` right
/// after the prefix. `None` for any other key, the counter `<prefix>{gen}` included.
fn generation_of(prefix: &[u8], server_key: &[u8]) -> Option<u64> {
    let rest = server_key.strip_prefix(prefix)?.strip_prefix(b"{")?;
    let end = rest.iter().position(|&byte| byte == b'}')?;
    let digits = &rest[..end];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

impl MemcachedCache {
    /// Deletes the namespace's generation counter (it reads empty at once here), then the
    /// entries of every generation up to the highest known.
    pub(crate) async fn clear_namespace(&self, namespace: &Namespace) -> Result<(), CacheError> {
        let context = self.context("clear");
        let client = &self.inner.client;
        // Every generation used so far is at most this: the counter's number, what this
        // instance knew, and the clock, from which any counter created later starts.
        let current = read_generation(client, &namespace.key, context).await?;
        let cutoff = now_micros()
            .max(namespace.snapshot().highest)
            .max(current.unwrap_or_default());
        // Once the delete is sent, this instance takes its answer whatever becomes of this
        // call: a caller that stops waiting (a timeout around `clear`) must not leave it
        // on a generation the server no longer has, reading entries cleared there and
        // acknowledging writes that the next check of the counter would lose.
        let inner = Arc::clone(&self.inner);
        let deleting = tokio::spawn(async move {
            let Some(namespace) = inner.namespace.as_ref() else {
                return Ok(());
            };
            let delete = Remove::new(namespace.key.clone());
            removed(call(context, inner.client.run(delete, context.timeout)).await?)?;
            namespace.set(None, cutoff);
            Ok(())
        });
        match deleting.await {
            Ok(deleted) => deleted?,
            Err(failed) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
            // The runtime is shutting down.
            Err(cancelled) => {
                return Err(CacheError::Unreachable {
                    backend: "memcached",
                    source: Box::new(cancelled),
                })
            }
        }
        self.remove_entries(cutoff).await
    }

    /// Deletes, on every server at once, each entry of the prefix in a generation up to
    /// `cutoff`. Entries of a later generation were written after the counter was deleted
    /// (by another instance that created it again) and are kept.
    async fn remove_entries(&self, cutoff: u64) -> Result<(), CacheError> {
        let Some(prefix) = self.inner.key_prefix.as_deref() else {
            return Ok(());
        };
        let context = self.context("clear");
        let wanted = |key: &[u8]| {
            // Sent back as they are: a key the text protocol cannot carry is not ours.
            generation_of(prefix.as_bytes(), key).is_some_and(|generation| generation <= cutoff)
                && key.iter().copied().all(keys::is_native_byte)
        };
        let removals = self.inner.servers.iter().map(|server| async move {
            let mut admin = match admin::Admin::connect(&self.inner.transport, server, context).await {
                Ok(admin) => admin,
                // A server that refuses connections is not running, and memcached keeps
                // nothing across a restart: there is nothing to remove.
                Err(CacheError::Unreachable { source, .. })
                    if source
                        .downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) =>
                {
                    return Ok(());
                }
                Err(error) => return Err(error),
            };
            // memcached runs one crawler at a time; other clears may be listing too.
            let busy_for = self.inner.timeout.saturating_mul(CRAWLER_BUSY_TIMEOUTS);
            // A listing is no snapshot: memcached's crawler passes over an item locked at
            // that moment, and a walk of the LRUs (servers without a hash walk) misses
            // items moved between them. Listing again until a pass after the first finds
            // nothing of ours closes that gap: the first is never trusted to be complete.
            for pass in 0..LISTING_PASSES {
                match admin.metadump(&wanted, busy_for).await? {
                    admin::Dump::Keys(keys) if keys.is_empty() && pass > 0 => break,
                    admin::Dump::Keys(keys) if keys.is_empty() => {}
                    admin::Dump::Keys(keys) => admin.delete(&keys).await?,
                    admin::Dump::Refused(answer) => {
                        tracing::warn!(
                            %server,
                            %answer,
                            "memcached: the server does not list its keys; the cleared entries stay until they age out"
                        );
                        break;
                    }
                }
            }
            Ok(())
        });
        futures::future::join_all(removals)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, CacheError>>()
            .map(drop)
    }

    /// `flush_all` on every server at once, each on a text protocol connection of its
    /// own (the meta protocol has no flush), dialled like every other connection.
    pub(crate) async fn flush_all(&self) -> Result<(), CacheError> {
        let context = self.context("clear");
        let transport = &self.inner.transport;
        let flushes = self.inner.servers.iter().map(|server| async move {
            admin::Admin::connect(transport, server, context)
                .await?
                .flush_all()
                .await
        });
        futures::future::join_all(flushes)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, CacheError>>()
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_data_keys_of_the_exact_prefix_have_a_generation() {
        let prefix = b"app:";
        assert_eq!(generation_of(prefix, b"app:{17}k"), Some(17));
        assert_eq!(generation_of(prefix, b"app:{17}"), Some(17));
        assert_eq!(generation_of(prefix, b"app:{17}~#x#hash"), Some(17));
        for other in [
            &b"app:{gen}"[..],
            b"app:{}k",
            b"app:{1a}k",
            b"app:{17k",
            b"app:17}k",
            b"app:k",
            b"apple:{17}k",
            b"ap:{17}k",
            b"xapp:{17}k",
            b"app:app:{17}k",
            b"app:{99999999999999999999999}k",
        ] {
            assert_eq!(
                generation_of(prefix, other),
                None,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }
}
