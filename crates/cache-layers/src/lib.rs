//! Behaviour around any [`Cache`](cache_api::Cache), each concern a
//! [`Layer`](cache_api::Layer) of its own: [`RetryLayer`], [`TimeoutLayer`],
//! [`TracingLayer`] and [`MetricsLayer`]. A layered cache is a cache again, so layers
//! stack in a [`CacheStack`](cache_api::CacheStack) and the TCK certifies the stack.
//!
//! The usual stack, innermost first (the last layer is the outermost, the first to see
//! a call):
//!
//! ```
//! // cache-api = { git = "https://github.com/cache-contract/cache-rs" }
//! // cache-layers = { git = "https://github.com/cache-contract/cache-rs" }
//! // cache-memory = { git = "https://github.com/cache-contract/cache-rs" }
//! use std::{sync::Arc, time::Duration};
//! use cache_api::{Bytes, Cache, CacheStack};
//! use cache_layers::{MetricsLayer, RetryLayer, TimeoutLayer, TracingLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cache_api::CacheError> {
//! let backend: Arc<dyn Cache> = Arc::new(cache_memory::MemoryCache::new());
//! let cache = CacheStack::new(backend)
//!     // Each attempt on the backend: up to 3 retries of errors that say they are
//!     // temporary (unreachable, timed out), with exponential backoff.
//!     .layer(RetryLayer::new().max_retries(3))
//!     // The whole call, retries included, within 500 ms.
//!     .layer(TimeoutLayer::new(Duration::from_millis(500)))
//!     // One span per call; keys are not recorded unless asked for.
//!     .layer(TracingLayer::new())
//!     // Hits, misses, writes, errors by kind, latency per operation.
//!     .layer(MetricsLayer::new())
//!     .build();
//! cache.set("greeting", Bytes::from("hello"), None).await?;
//! assert_eq!(cache.get("greeting").await?, Some(Bytes::from("hello")));
//! # Ok(())
//! # }
//! ```
//!
//! With `cache-url`, the same stack comes from URL parameters:
//! `redis://host/?retry=3&deadline=500ms&trace=true&metrics=true`.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod around;
mod metrics;
mod retry;
mod timeout;
mod tracing;

pub use crate::metrics::MetricsLayer;
pub use crate::retry::RetryLayer;
pub use crate::timeout::TimeoutLayer;
pub use crate::tracing::TracingLayer;
