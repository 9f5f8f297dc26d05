//! What the test files share: a realistic value type and a factory that counts its runs.
#![allow(dead_code, unreachable_pub)]

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use cache_api::Cache;
use cache_typed::{JsonCodec, TypedCache};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub roles: Vec<String>,
    pub manager: Option<u64>,
    pub prefs: BTreeMap<String, String>,
}

pub fn user(id: u64, name: &str) -> User {
    User {
        id,
        name: name.to_owned(),
        email: format!("{name}@example.com"),
        roles: vec!["member".to_owned()],
        manager: (id > 1).then_some(1),
        prefs: BTreeMap::from([("lang".to_owned(), "en".to_owned())]),
    }
}

pub fn memory() -> Arc<dyn Cache> {
    Arc::new(cache_memory::MemoryCache::new())
}

pub fn users(cache: Arc<dyn Cache>) -> TypedCache<User, JsonCodec> {
    TypedCache::new(cache, JsonCodec)
}

/// Counts factory runs.
#[derive(Clone, Default)]
pub struct Runs(Arc<AtomicUsize>);

impl Runs {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// A factory that counts its run, sleeps `delay` (the database's time) and
    /// returns `value`.
    pub fn factory(
        &self,
        delay: Duration,
        value: User,
    ) -> impl FnOnce() -> futures::future::BoxFuture<'static, User> + Send + 'static {
        let runs = Arc::clone(&self.0);
        move || {
            Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                value
            })
        }
    }
}
