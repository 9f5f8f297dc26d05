//! A third-party backend of the cache contract, in the smallest honest form: a map
//! behind a mutex, with deadlines. A real adapter keeps the same shape and talks to
//! its server instead.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use cache_api::{async_trait, validate_key, Bytes, Cache, CacheError, Limits};

/// The largest value this backend accepts.
const MAX_VALUE_SIZE: usize = 1 << 20;

/// An in-process cache kept in a `HashMap`.
#[derive(Debug, Default)]
pub struct MapCache {
    entries: Mutex<HashMap<String, (Bytes, Option<Instant>)>>,
}

impl MapCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn live(deadline: &Option<Instant>) -> bool {
        deadline.is_none_or(|deadline| Instant::now() < deadline)
    }
}

#[async_trait]
impl Cache for MapCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        validate_key(key)?;
        let entries = self.entries.lock().unwrap();
        Ok(entries
            .get(key)
            .filter(|(_, deadline)| Self::live(deadline))
            .map(|(value, _)| value.clone()))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        validate_key(key)?;
        if value.len() > MAX_VALUE_SIZE {
            return Err(CacheError::ValueTooLarge {
                size: value.len(),
                limit: MAX_VALUE_SIZE,
            });
        }
        let mut entries = self.entries.lock().unwrap();
        let deadline = match ttl {
            Some(ttl) if ttl.is_zero() => {
                entries.remove(key);
                return Ok(());
            }
            // A deadline past what `Instant` can hold is as good as none.
            Some(ttl) => Instant::now().checked_add(self.limits().round_up_ttl(ttl)),
            None => None,
        };
        entries.insert(key.to_owned(), (value, deadline));
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        validate_key(key)?;
        let removed = self.entries.lock().unwrap().remove(key);
        Ok(removed.is_some_and(|(_, deadline)| Self::live(&deadline)))
    }

    /// Checks for a live entry and stores under one lock, so that of racing adds
    /// exactly one stores: an add built from a `get` and then a `set` would not be.
    async fn add(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        validate_key(key)?;
        if value.len() > MAX_VALUE_SIZE {
            return Err(CacheError::ValueTooLarge {
                size: value.len(),
                limit: MAX_VALUE_SIZE,
            });
        }
        let deadline = match ttl {
            Some(ttl) if ttl.is_zero() => return Ok(false),
            Some(ttl) => Instant::now().checked_add(self.limits().round_up_ttl(ttl)),
            None => None,
        };
        let mut entries = self.entries.lock().unwrap();
        if entries
            .get(key)
            .is_some_and(|(_, deadline)| Self::live(deadline))
        {
            return Ok(false);
        }
        entries.insert(key.to_owned(), (value, deadline));
        Ok(true)
    }

    async fn clear(&self) -> Result<(), CacheError> {
        self.entries.lock().unwrap().clear();
        Ok(())
    }

    fn limits(&self) -> Limits {
        Limits::new(Duration::from_millis(1), MAX_VALUE_SIZE)
            .with_clear()
            .with_atomic_add()
    }
}
