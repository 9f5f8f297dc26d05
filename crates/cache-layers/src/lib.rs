#![doc = include_str!("../README.md")]
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
