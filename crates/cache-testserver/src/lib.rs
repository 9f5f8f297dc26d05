#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod chaos;
#[cfg(feature = "containers")]
mod container;
pub mod hostile;
mod kind;
mod kinds;
mod memcached_text;
mod port;
mod process;
pub mod redis_cluster;
mod runtime;
pub mod sentinel;
mod shared;
mod test_cache;
mod test_dir;
pub mod tls;
pub mod unix;

pub use kind::{Ready, ServerKind};
pub use kinds::{MEMCACHED, REDIS};
pub use memcached_text::{memcached_exchange, memcached_items};
pub use port::{answering_port, free_port, wait_for_port};
pub use process::{run_at_exit, LocalServer};
pub use shared::{shared_server, Origin, SharedServer, Source, SOURCE_ENV};
pub use test_cache::{unique_prefix, CleanUp, TestCache};
pub use test_dir::TestDir;

/// Label (with value `1`) on every container this crate starts, so leftovers can be found and
/// removed: `docker ps -aq --filter label=cache-testserver=1 | xargs -r docker rm -f -v`.
///
/// A second label, `cache-testserver.kind`, holds the [`ServerKind::name`].
pub const CONTAINER_LABEL: &str = "cache-testserver";
