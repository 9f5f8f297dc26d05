#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

#[cfg(feature = "containers")]
mod container;
mod kind;
mod port;
mod process;
mod runtime;
mod shared;

pub use kind::{Ready, ServerKind};
pub use port::{free_port, wait_for_port};
pub use process::LocalServer;
pub use shared::{shared_server, Origin, SharedServer, SOURCE_ENV};

/// Label (with value `1`) on every container this crate starts, so leftovers can be found and
/// removed: `docker ps -aq --filter label=cache-testserver=1 | xargs -r docker rm -f -v`.
///
/// A second label, `cache-testserver.kind`, holds the [`ServerKind::name`].
pub const CONTAINER_LABEL: &str = "cache-testserver";
