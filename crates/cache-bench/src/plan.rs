//! What a run does (the workload, its keys and value) and when it stops.

use std::{
    str::FromStr,
    sync::atomic::{AtomicBool, AtomicU64},
    time::Duration,
};

use bytes::Bytes;

/// What each operation of a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `get` of a key that is stored (the keys are written before the run).
    Get,
    /// `get` of a key that was never written.
    GetMiss,
    /// `set` of a stored key, without TTL.
    Set,
    /// 90 % `get`, 10 % `set`, on stored keys.
    Mix,
    /// `get_many` of a batch of stored keys.
    GetMany,
}

impl Workload {
    /// Every workload, in the order reports list them.
    pub const ALL: [Workload; 5] = [
        Workload::Get,
        Workload::GetMiss,
        Workload::Set,
        Workload::Mix,
        Workload::GetMany,
    ];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Get => "get",
            Workload::GetMiss => "get-miss",
            Workload::Set => "set",
            Workload::Mix => "mix",
            Workload::GetMany => "get-many",
        }
    }

    /// Whether the keys must be stored before the run.
    pub fn needs_data(self) -> bool {
        matches!(self, Workload::Get | Workload::Mix | Workload::GetMany)
    }
}

impl FromStr for Workload {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Workload::ALL
            .into_iter()
            .find(|workload| workload.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Workload::ALL
                    .iter()
                    .map(|workload| workload.name())
                    .collect();
                format!(
                    "unknown workload {text:?}: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Everything that stays the same across the runs of one benchmark.
#[derive(Debug)]
pub struct Plan {
    /// What each operation does.
    pub workload: Workload,
    /// Keys per `get_many`.
    pub batch: usize,
    /// The stored keys, built once so that formatting them is not measured.
    pub keys: Vec<String>,
    /// Keys that are never written, for `get-miss`.
    pub miss_keys: Vec<String>,
    /// The value every `set` writes (cloning a `Bytes` copies no data).
    pub value: Bytes,
    /// Tasks running operations at once.
    pub concurrency: usize,
}

impl Plan {
    /// A plan whose keys are `{prefix}k{i}` (stored) and `{prefix}m{i}` (never stored).
    ///
    /// # Panics
    ///
    /// When `key_count`, `batch` or `concurrency` is zero: no run can be made of them.
    pub fn new(
        workload: Workload,
        batch: usize,
        prefix: &str,
        key_count: usize,
        value_size: usize,
        concurrency: usize,
    ) -> Self {
        assert!(
            key_count > 0 && batch > 0 && concurrency > 0,
            "a plan needs at least one key, one key per batch and one task"
        );
        let keys = (0..key_count).map(|i| format!("{prefix}k{i}")).collect();
        let miss_keys = (0..key_count).map(|i| format!("{prefix}m{i}")).collect();
        // Not all one byte, so that no layer can get away with run-length tricks.
        let value: Vec<u8> = (0..value_size).map(|i| b'a' + (i % 26) as u8).collect();
        Self {
            workload,
            batch,
            keys,
            miss_keys,
            value: Bytes::from(value),
            concurrency,
        }
    }
}

/// When a run stops: whichever limit is reached first.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// Wall time of the run.
    pub duration: Option<Duration>,
    /// Operations of the run, all tasks together.
    pub ops: Option<u64>,
}

/// Operations done so far, across runs, for a progress line; and the switch that
/// stops every run early (an interrupted benchmark still removes its keys).
#[derive(Debug, Default)]
pub struct Progress {
    /// Operations done.
    pub ops: AtomicU64,
    /// Operations that failed.
    pub errors: AtomicU64,
    /// Set to end the runs at the next operation.
    pub stop: AtomicBool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_parse_by_name() {
        for workload in Workload::ALL {
            assert_eq!(workload.name().parse::<Workload>().unwrap(), workload);
        }
        assert!("delete"
            .parse::<Workload>()
            .unwrap_err()
            .contains("get-many"));
    }

    #[test]
    fn plans_name_stored_and_missing_keys_apart() {
        let plan = Plan::new(Workload::Get, 1, "p:", 3, 30, 1);
        assert_eq!(plan.keys, ["p:k0", "p:k1", "p:k2"]);
        assert_eq!(plan.miss_keys, ["p:m0", "p:m1", "p:m2"]);
        assert_eq!(plan.value.len(), 30);
        assert_eq!(&plan.value[..3], b"abc");
    }
}
