//! Looking into a Redis Cluster from tests: its masters and their slots, and removing a
//! test cache's keys from every master. The clusters themselves are started by
//! [`cache_testserver::redis_cluster`].

use std::{fmt, ops::RangeInclusive, time::Duration};

use crate::{cluster::key_slot as slot_of, endpoint};

/// Timeout of the plain connections the fixture opens to look into a cluster.
const LOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// A master of a cluster, as `CLUSTER NODES` on one of its nodes describes it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterMaster {
    /// Its `redis://` URL, with the cluster's credentials.
    pub url: String,
    /// Its host, as the cluster announces it.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Its node id.
    pub id: String,
    /// The slots it serves.
    pub slots: Vec<RangeInclusive<u16>>,
    /// Host and port of each of its replicas not known to have failed.
    pub replicas: Vec<(String, u16)>,
}

impl ClusterMaster {
    /// Whether it serves `slot`.
    #[must_use]
    pub fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|range| range.contains(&slot))
    }
}

impl fmt::Debug for ClusterMaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterMaster")
            .field("url", &endpoint::redact_url(&self.url))
            .field("id", &self.id)
            .field("slots", &self.slots)
            .field("replicas", &self.replicas)
            .finish_non_exhaustive()
    }
}

/// The slot of `key` (CRC16 of the key or of its `{hash tag}`, modulo 16384), as
/// `CLUSTER KEYSLOT` computes it.
#[must_use]
pub fn key_slot(key: &[u8]) -> u16 {
    slot_of(key)
}

/// The masters of the cluster at `url` (a `redis+cluster://` URL, or the `redis://`
/// URL of one node) that serve slots, in slot order, read with `CLUSTER NODES` from the
/// first seed that answers, over a blocking connection.
///
/// # Errors
///
/// A message when the URL is not valid or no seed answered.
pub fn cluster_masters(url: &str) -> Result<Vec<ClusterMaster>, String> {
    let seeds = if url.starts_with(endpoint::CLUSTER_SCHEME) {
        endpoint::split_cluster_url(url).map_err(|err| err.to_string())?
    } else {
        vec![url.to_owned()]
    };
    let mut failures = Vec::new();
    for seed in &seeds {
        match masters_from(seed) {
            Ok(masters) => return Ok(masters),
            Err(err) => failures.push(format!("{}: {err}", endpoint::redact_url(seed))),
        }
    }
    Err(format!(
        "no seed of the cluster answered cluster slots: {}",
        failures.join("; ")
    ))
}

fn masters_from(seed: &str) -> Result<Vec<ClusterMaster>, String> {
    let target = endpoint::parse_url(seed, None).map_err(|err| err.to_string())?;
    let scrub = |err: redis::RedisError| endpoint::scrub(&err.to_string(), &target.secrets);
    let seed_host = match target.info.addr() {
        redis::ConnectionAddr::Tcp(host, _) => host.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let client = redis::Client::open(target.info.clone()).map_err(scrub)?;
    let mut connection = client
        .get_connection_with_timeout(LOOK_TIMEOUT)
        .map_err(scrub)?;
    connection
        .set_read_timeout(Some(LOOK_TIMEOUT))
        .map_err(scrub)?;
    // CLUSTER NODES, not CLUSTER SLOTS: the latter leaves out a replica until it has
    // replicated something and the other nodes have heard of it.
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut connection)
        .map_err(scrub)?;
    let settings = target.info.redis_settings();
    let user_info = match (settings.username(), settings.password()) {
        (None, None) => String::new(),
        (user, password) => {
            let encode = |text: &str| {
                percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            };
            format!(
                "{}:{}@",
                user.map(encode).unwrap_or_default(),
                password.map(encode).unwrap_or_default()
            )
        }
    };
    parse_cluster_nodes(&nodes, &seed_host, &user_info)
}

/// Reads `CLUSTER NODES`: every master serving slots, with its live replicas.
fn parse_cluster_nodes(
    nodes: &str,
    seed_host: &str,
    user_info: &str,
) -> Result<Vec<ClusterMaster>, String> {
    let mut masters = Vec::new();
    let mut replicas = Vec::new();
    for line in nodes.lines().filter(|line| !line.trim().is_empty()) {
        let fields: Vec<&str> = line.split(' ').collect();
        let [id, address, flags, master_id, ..] = fields[..] else {
            return Err(format!("unexpected cluster nodes line {line:?}"));
        };
        let address = address.split(['@', ',']).next().unwrap_or_default();
        let (host, port) = address
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
            .ok_or_else(|| format!("unexpected address in cluster nodes line {line:?}"))?;
        let host = if host.is_empty() { seed_host } else { host };
        if flags.split(',').any(|flag| flag == "fail") {
            continue;
        }
        if flags.contains("master") {
            let slots: Vec<RangeInclusive<u16>> = fields[8.min(fields.len())..]
                .iter()
                .filter(|range| !range.starts_with('['))
                .filter_map(|range| match range.split_once('-') {
                    Some((start, end)) => Some(start.parse().ok()?..=end.parse().ok()?),
                    None => range.parse().ok().map(|slot| slot..=slot),
                })
                .collect();
            if !slots.is_empty() {
                masters.push(ClusterMaster {
                    url: format!("redis://{user_info}{host}:{port}"),
                    host: host.to_owned(),
                    port,
                    id: id.to_owned(),
                    slots,
                    replicas: Vec::new(),
                });
            }
        } else if flags.contains("slave") {
            replicas.push((master_id.to_owned(), (host.to_owned(), port)));
        }
    }
    for (master_id, replica) in replicas {
        if let Some(master) = masters.iter_mut().find(|master| master.id == master_id) {
            master.replicas.push(replica);
        }
    }
    masters.sort_by_key(|master| master.slots.first().map(|range| *range.start()));
    Ok(masters)
}

/// Removes every key under `prefix` on every master of the cluster at `url`, over
/// blocking connections; returns how many were removed.
pub(super) fn remove_keys_under_cluster(url: &str, prefix: &str) -> Result<usize, String> {
    let mut removed = 0;
    for master in cluster_masters(url)? {
        removed += super::remove_keys_under(&master.url, prefix, true)
            .map_err(|err| format!("on {}: {err}", endpoint::redact_url(&master.url)))?;
    }
    Ok(removed)
}
