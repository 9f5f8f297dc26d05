#![cfg_attr(feature = "runner", doc = include_str!("../README.md"))]
#![cfg_attr(
    not(feature = "runner"),
    doc = "The load loop of `cachectl bench`: [`measure`] a [`Target`] with a [`Plan`]."
)]
#![forbid(unsafe_code)]

mod engine;
mod measurement;
mod plan;

#[cfg(feature = "runner")]
mod backend;
#[cfg(feature = "runner")]
pub mod cleanup;
#[cfg(feature = "runner")]
pub mod footprint;
#[cfg(feature = "runner")]
mod probe;
#[cfg(feature = "runner")]
mod report;
#[cfg(feature = "runner")]
mod room;
#[cfg(feature = "runner")]
mod run;
#[cfg(feature = "runner")]
mod settings;
#[cfg(feature = "runner")]
mod status_line;
#[cfg(feature = "runner")]
mod targets;

pub use engine::{measure, populate, remove_keys, runtime, BoxError, Target};
pub use measurement::{Measurement, SideReport};
pub use plan::{Bound, Plan, Progress, Workload};

#[cfg(feature = "runner")]
pub use cleanup::Cleanup;
#[cfg(feature = "runner")]
pub use probe::Sample;
#[cfg(feature = "runner")]
pub use report::{Ratio, Report};
#[cfg(feature = "runner")]
pub use run::run;
#[cfg(feature = "runner")]
pub use settings::Settings;
#[cfg(feature = "runner")]
pub use targets::Adapter;

/// Why a run could not be made. Errors of single operations during a run are not this:
/// they are counted in its [`Report`].
#[cfg(feature = "runner")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// Settings no run can be made of: an unknown URL scheme, contradictory options.
    #[error("{0}")]
    Settings(String),
    /// The adapter, the raw client or the server probe could not connect.
    #[error("{0}")]
    Connect(String),
    /// The run could not go on: writing the keys failed, a footprint process failed.
    #[error("{0}")]
    Run(String),
    /// Stopped through [`Progress::stop`] before any key was written: while connecting
    /// or asking a server how much memory it has free. Nothing is left to remove.
    #[error("interrupted before any key was written")]
    Interrupted,
}
