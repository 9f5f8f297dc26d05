//! Redis Cluster: the cluster client of the `redis` crate sends every single-key
//! command to the master of its key's slot and follows `MOVED` and `ASK` by itself.
//! Bulk operations are split by slot here and sent as one pipeline per master, all
//! masters at once; `clear` walks every master.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, PoisonError, RwLock,
    },
    time::Duration,
};

use cache_api::{Bytes, CacheError};
use futures::future::join_all;
use redis::{
    cluster::ClusterClientBuilder,
    cluster_async::ClusterConnection,
    cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr},
    Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, FromRedisValue, RedisError, RedisResult,
    ServerErrorKind, Value,
};

use crate::{
    config::scrub,
    error::{ErrorContext, BACKEND},
    escape_glob, Expiry,
};

/// Number of hash slots of a Redis Cluster.
pub(crate) const SLOT_COUNT: u16 = 16384;

/// Shortest and longest wait, in milliseconds, of the cluster client between two tries
/// of a request that met a node being down or a cluster being reconfigured. Short, so
/// that a request still waiting when a replica has been promoted gets through within
/// its deadline; the deadline, not the number of tries, bounds the whole.
const MIN_RETRY_WAIT_MS: u64 = 10;
const MAX_RETRY_WAIT_MS: u64 = 250;

/// The slot of `key`, as Redis Cluster computes it: CRC16 (XMODEM) of the key, or of its
/// hash tag (the text between the first `{` and the next `}`, when not empty), modulo
/// 16384.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOT_COUNT
}

fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&byte| byte == b'{') {
        let rest = &key[open + 1..];
        if let Some(close) = rest.iter().position(|&byte| byte == b'}') {
            if close > 0 {
                return &rest[..close];
            }
        }
    }
    key
}

fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0_u16, |crc, &byte| {
        let mut crc = crc ^ (u16::from(byte) << 8);
        for _ in 0..8 {
            crc = if crc & 0x8000 == 0 {
                crc << 1
            } else {
                (crc << 1) ^ 0x1021
            };
        }
        crc
    })
}

/// A master of the cluster, as `CLUSTER SLOTS` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Master {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The node id (empty when the server did not send one).
    pub(crate) id: String,
    /// The slot ranges it serves, both ends included.
    pub(crate) slots: Vec<(u16, u16)>,
    /// Host and port of each of its replicas.
    pub(crate) replicas: Vec<(String, u16)>,
}

/// Which master serves which slot.
#[derive(Debug, Default)]
pub(crate) struct Topology {
    pub(crate) masters: Vec<Master>,
    /// For each slot, the index of its master in `masters`, or [`UNASSIGNED`].
    owners: Vec<u16>,
}

const UNASSIGNED: u16 = u16::MAX;

fn unexpected(what: &'static str) -> RedisError {
    RedisError::from((ErrorKind::UnexpectedReturnType, what))
}

impl Topology {
    /// Reads the answer to `CLUSTER SLOTS`. A node whose host is unknown to the server
    /// (an empty host or `?`) gets `fallback_host`.
    pub(crate) fn parse(value: Value, fallback_host: &str) -> RedisResult<Self> {
        let Value::Array(ranges) = value else {
            return Err(unexpected("cluster slots did not answer an array"));
        };
        let mut masters: Vec<Master> = Vec::new();
        let mut owners = vec![UNASSIGNED; usize::from(SLOT_COUNT)];
        for range in ranges {
            let Value::Array(items) = range else {
                return Err(unexpected("a cluster slots range is not an array"));
            };
            let mut items = items.into_iter();
            let start = slot_number(items.next())?;
            let end = slot_number(items.next())?;
            if start > end {
                return Err(unexpected("a cluster slots range ends before it starts"));
            }
            let (host, port, id) = node(items.next(), fallback_host)?;
            let replicas = items
                .map(|item| node(Some(item), fallback_host).map(|(host, port, _)| (host, port)))
                .collect::<RedisResult<Vec<_>>>()?;
            let index = match masters.iter().position(|master| {
                if id.is_empty() {
                    master.host == host && master.port == port
                } else {
                    master.id == id
                }
            }) {
                Some(index) => index,
                None => {
                    masters.push(Master {
                        host,
                        port,
                        id,
                        slots: Vec::new(),
                        replicas: Vec::new(),
                    });
                    masters.len() - 1
                }
            };
            let master = &mut masters[index];
            master.slots.push((start, end));
            for replica in replicas {
                if !master.replicas.contains(&replica) {
                    master.replicas.push(replica);
                }
            }
            // At most 16384 masters, so the index fits a u16 below UNASSIGNED.
            let owner = u16::try_from(index).unwrap_or(UNASSIGNED);
            for slot in &mut owners[usize::from(start)..=usize::from(end)] {
                *slot = owner;
            }
        }
        Ok(Self { masters, owners })
    }

    /// The index in `masters` of the master serving `slot`.
    pub(crate) fn owner(&self, slot: u16) -> Option<usize> {
        self.owners
            .get(usize::from(slot))
            .filter(|owner| **owner != UNASSIGNED)
            .map(|owner| usize::from(*owner))
    }
}

fn slot_number(value: Option<Value>) -> RedisResult<u16> {
    match value {
        Some(Value::Int(number)) => u16::try_from(number)
            .ok()
            .filter(|slot| *slot < SLOT_COUNT)
            .ok_or_else(|| unexpected("a cluster slots range names a slot out of range")),
        _ => Err(unexpected(
            "a cluster slots range does not start with two slot numbers",
        )),
    }
}

fn text(value: Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Value::SimpleString(text) => Some(text),
        _ => None,
    }
}

fn node(value: Option<Value>, fallback_host: &str) -> RedisResult<(String, u16, String)> {
    let Some(Value::Array(fields)) = value else {
        return Err(unexpected("a cluster slots node is not an array"));
    };
    let mut fields = fields.into_iter();
    let host = fields
        .next()
        .and_then(text)
        .ok_or_else(|| unexpected("a cluster slots node has no host"))?;
    let host = if host.is_empty() || host == "?" {
        fallback_host.to_owned()
    } else {
        host
    };
    let port = match fields.next() {
        Some(Value::Int(port)) => u16::try_from(port)
            .map_err(|_| unexpected("a cluster slots node has a port out of range"))?,
        _ => return Err(unexpected("a cluster slots node has no port")),
    };
    let id = fields.next().and_then(text).unwrap_or_default();
    Ok((host, port, id))
}

/// One command of a bulk operation: the slot of its keys, and the positions (in the
/// caller's list) it answers for.
struct SlotCommand {
    slot: u16,
    command: Cmd,
    positions: Vec<usize>,
}

/// The positions of `keys` grouped by slot, slots in ascending order.
fn by_slot<'a>(keys: impl Iterator<Item = &'a [u8]>) -> BTreeMap<u16, Vec<usize>> {
    let mut slots: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for (position, key) in keys.enumerate() {
        slots.entry(key_slot(key)).or_default().push(position);
    }
    slots
}

/// One `name` command per slot of `keys`, its arguments added by `args` for each
/// position of the slot, in order.
fn per_slot<'a>(
    name: &str,
    keys: impl Iterator<Item = &'a [u8]>,
    mut args: impl FnMut(&mut Cmd, usize),
) -> Vec<SlotCommand> {
    by_slot(keys)
        .into_iter()
        .map(|(slot, positions)| {
            let mut command = redis::cmd(name);
            for &position in &positions {
                args(&mut command, position);
            }
            SlotCommand {
                slot,
                command,
                positions,
            }
        })
        .collect()
}

/// Whether the node that answered does not serve the slot: the cache's view of the
/// slots is out of date, or a slot is being migrated.
fn is_redirect(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask)
    )
}

/// The cluster side of a [`RedisCache`](crate::RedisCache).
pub(crate) struct ClusterBackend {
    connection: ClusterConnection,
    /// This cache's view of which master serves which slot: it groups the commands of
    /// a bulk operation per master and lists the masters `clear` walks. The cluster
    /// client keeps a view of its own to route each command, so an outdated view here
    /// costs round trips, never correctness.
    topology: RwLock<Arc<Topology>>,
    /// Set when a node answered that it does not serve a slot: the view is refreshed
    /// before the next bulk operation.
    stale: AtomicBool,
    /// What any one operation may take: the connect plus the response timeout, retries
    /// and redirects included.
    deadline: Duration,
    fallback_host: String,
}

impl ClusterBackend {
    /// Connects to the cluster through `seeds` and reads which master serves which slot.
    pub(crate) async fn connect(
        seeds: Vec<ConnectionInfo>,
        errors: &ErrorContext,
    ) -> Result<Self, CacheError> {
        let fallback_host = match seeds.first().map(ConnectionInfo::addr) {
            Some(ConnectionAddr::Tcp(host, _)) => host.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let deadline = errors.connect_timeout + errors.response_timeout;
        let client = ClusterClientBuilder::new(seeds)
            .connection_timeout(errors.connect_timeout)
            .response_timeout(errors.response_timeout)
            // Every operation is bounded here, retries included (`bounded`).
            .overall_response_timeout(None)
            .min_retry_wait(MIN_RETRY_WAIT_MS)
            .max_retry_wait(MAX_RETRY_WAIT_MS)
            .build()
            .map_err(|err| {
                CacheError::config(scrub(
                    &format!("invalid redis cluster settings: {err}"),
                    &errors.secrets,
                ))
            })?;
        let connection = match tokio::time::timeout(deadline, client.get_async_connection()).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(err)) => return Err(connect_error(err, errors)),
            Err(_) => return Err(errors.timeout("connect", deadline)),
        };
        let backend = Self {
            connection,
            topology: RwLock::new(Arc::new(Topology::default())),
            stale: AtomicBool::new(true),
            deadline,
            fallback_host,
        };
        match tokio::time::timeout(deadline, backend.refresh_topology()).await {
            Ok(Ok(())) => Ok(backend),
            Ok(Err(err)) => Err(connect_error(err, errors)),
            Err(_) => Err(errors.timeout("connect", deadline)),
        }
    }

    /// Runs one operation within the deadline.
    async fn bounded<T>(
        &self,
        operation: impl Future<Output = RedisResult<T>>,
        errors: &ErrorContext,
    ) -> Result<T, CacheError> {
        match tokio::time::timeout(self.deadline, operation).await {
            Ok(result) => result.map_err(|err| operation_error(err, errors)),
            Err(_) => Err(errors.timeout("request", self.deadline)),
        }
    }

    fn topology(&self) -> Arc<Topology> {
        Arc::clone(&self.topology.read().unwrap_or_else(PoisonError::into_inner))
    }

    async fn refresh_topology(&self) -> RedisResult<()> {
        let mut connection = self.connection.clone();
        let value = connection
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await?
            .extract_error()?;
        let topology = Topology::parse(value, &self.fallback_host)?;
        *self
            .topology
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(topology);
        self.stale.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Sends one command to the master of its key's slot.
    pub(crate) async fn command<T: FromRedisValue>(
        &self,
        command: &Cmd,
        errors: &ErrorContext,
    ) -> Result<T, CacheError> {
        let mut connection = self.connection.clone();
        self.bounded(command.query_async(&mut connection), errors)
            .await
    }

    /// Sends `commands` as one pipeline per master (as this cache sees the slots), every
    /// pipeline at once, and returns each command's answer with its positions. A
    /// pipeline that meets a node not serving one of its slots is sent again one command
    /// at a time, each routed (and redirected) by the cluster client on its own.
    async fn bulk(&self, commands: Vec<SlotCommand>) -> RedisResult<Vec<(Vec<usize>, Value)>> {
        if self.stale.load(Ordering::Relaxed) {
            // Only the grouping depends on it: with the old view, the work still gets done.
            let _ = self.refresh_topology().await;
        }
        let topology = self.topology();
        let mut groups: BTreeMap<(usize, u16), Vec<SlotCommand>> = BTreeMap::new();
        for command in commands {
            // A slot no known master serves gets a pipeline of its own.
            let group = match topology.owner(command.slot) {
                Some(owner) => (owner, 0),
                None => (usize::MAX, command.slot),
            };
            groups.entry(group).or_default().push(command);
        }
        let sends = groups.into_values().map(|group| self.send_pipeline(group));
        let mut answers = Vec::new();
        let mut one_by_one = Vec::new();
        for (group, result) in join_all(sends).await {
            match result {
                Ok(values) => {
                    if values.len() != group.len() {
                        return Err(unexpected("a pipeline answered a wrong number of replies"));
                    }
                    let mut redirected = false;
                    for value in &values {
                        if let Value::ServerError(error) = value {
                            let error = RedisError::from(error.clone());
                            if is_redirect(error.kind()) {
                                redirected = true;
                            } else {
                                return Err(error);
                            }
                        }
                    }
                    if redirected {
                        one_by_one.extend(group);
                    } else {
                        answers.extend(
                            group
                                .into_iter()
                                .map(|command| command.positions)
                                .zip(values),
                        );
                    }
                }
                Err(err) if is_redirect(err.kind()) => one_by_one.extend(group),
                Err(err) => return Err(err),
            }
        }
        if !one_by_one.is_empty() {
            self.stale.store(true, Ordering::Relaxed);
            let sends = one_by_one.into_iter().map(|command| async move {
                let mut connection = self.connection.clone();
                let route = Route::new(command.slot, SlotAddr::Master);
                let value = connection
                    .route_command(
                        command.command,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?
                    .extract_error()?;
                Ok::<_, RedisError>((command.positions, value))
            });
            for answer in join_all(sends).await {
                answers.push(answer?);
            }
        }
        Ok(answers)
    }

    /// Sends `group` as one pipeline to the master of its first slot.
    async fn send_pipeline(
        &self,
        group: Vec<SlotCommand>,
    ) -> (Vec<SlotCommand>, RedisResult<Vec<Value>>) {
        let mut pipeline = redis::pipe();
        for command in &group {
            pipeline.add_command(command.command.clone());
        }
        let route = Route::new(group[0].slot, SlotAddr::Master);
        let mut connection = self.connection.clone();
        let result = connection
            .route_pipeline(
                pipeline,
                0,
                group.len(),
                SingleNodeRoutingInfo::SpecificNode(route),
            )
            .await;
        (group, result)
    }

    /// One `MGET` per slot, pipelined per master.
    pub(crate) async fn get_many(
        &self,
        keys: &[Cow<'_, str>],
        errors: &ErrorContext,
    ) -> Result<Vec<Option<Bytes>>, CacheError> {
        let commands = per_slot(
            "MGET",
            keys.iter().map(|key| key.as_bytes()),
            |command, at| {
                command.arg(keys[at].as_ref());
            },
        );
        self.bounded(
            async {
                let mut found = vec![None; keys.len()];
                for (positions, value) in self.bulk(commands).await? {
                    let values = Vec::<Option<Vec<u8>>>::from_redis_value(value)?;
                    if values.len() != positions.len() {
                        return Err(unexpected("mget answered a wrong number of values"));
                    }
                    for (position, value) in positions.into_iter().zip(values) {
                        found[position] = value.map(Bytes::from);
                    }
                }
                Ok(found)
            },
            errors,
        )
        .await
    }

    /// `MSET` per slot (no TTL), `UNLINK` per slot (zero TTL), or one `SET .. PX` per
    /// entry; pipelined per master.
    pub(crate) async fn set_many(
        &self,
        entries: &[(Cow<'_, str>, &Bytes)],
        expiry: &Expiry,
        errors: &ErrorContext,
    ) -> Result<(), CacheError> {
        let commands: Vec<SlotCommand> = match expiry {
            Expiry::Millis(millis) => entries
                .iter()
                .enumerate()
                .map(|(position, (key, value))| {
                    let mut command = redis::cmd("SET");
                    command
                        .arg(key.as_ref())
                        .arg(value.as_ref())
                        .arg("PX")
                        .arg(*millis);
                    SlotCommand {
                        slot: key_slot(key.as_bytes()),
                        command,
                        positions: vec![position],
                    }
                })
                .collect(),
            Expiry::Never | Expiry::Now => {
                let name = if matches!(expiry, Expiry::Never) {
                    "MSET"
                } else {
                    "UNLINK"
                };
                per_slot(
                    name,
                    entries.iter().map(|(key, _)| key.as_bytes()),
                    |command, at| {
                        let (key, value) = &entries[at];
                        command.arg(key.as_ref());
                        if matches!(expiry, Expiry::Never) {
                            command.arg(value.as_ref());
                        }
                    },
                )
            }
        };
        self.bounded(async { self.bulk(commands).await.map(drop) }, errors)
            .await
    }

    /// One `UNLINK` per slot, pipelined per master; a key named twice counts once.
    pub(crate) async fn delete_many(
        &self,
        keys: &[Cow<'_, str>],
        errors: &ErrorContext,
    ) -> Result<usize, CacheError> {
        let commands = per_slot(
            "UNLINK",
            keys.iter().map(|key| key.as_bytes()),
            |command, at| {
                command.arg(keys[at].as_ref());
            },
        );
        self.bounded(
            async {
                let mut removed = 0;
                for (_, value) in self.bulk(commands).await? {
                    removed += usize::from_redis_value(value)?;
                }
                Ok(removed)
            },
            errors,
        )
        .await
    }

    /// On every master, all at once: `SCAN MATCH prefix*` and an `UNLINK` per slot of
    /// each batch found, or `FLUSHDB ASYNC` without a prefix. The masters are read
    /// afresh from the cluster first.
    pub(crate) async fn clear(
        &self,
        prefix: &str,
        errors: &ErrorContext,
    ) -> Result<(), CacheError> {
        self.bounded(self.refresh_topology(), errors).await?;
        let topology = self.topology();
        if topology.masters.is_empty() {
            return Err(CacheError::Backend {
                backend: BACKEND,
                source: errors.source(unexpected("the cluster has no master serving slots")),
            });
        }
        let walks = topology
            .masters
            .iter()
            .map(|master| self.clear_master(master, prefix, errors));
        for result in join_all(walks).await {
            result?;
        }
        Ok(())
    }

    async fn clear_master(
        &self,
        master: &Master,
        prefix: &str,
        errors: &ErrorContext,
    ) -> Result<(), CacheError> {
        // By address, not by slot: with its master down, a slot's commands may go to
        // another node, and a SCAN there would walk the wrong keys.
        let at_master = || SingleNodeRoutingInfo::ByAddress {
            host: master.host.clone(),
            port: master.port,
        };
        let mut connection = self.connection.clone();
        if prefix.is_empty() {
            let flush = redis::cmd("FLUSHDB").arg("ASYNC").clone();
            return self
                .bounded(
                    async {
                        connection
                            .route_command(flush, RoutingInfo::SingleNode(at_master()))
                            .await?
                            .extract_error()
                            .map(drop)
                    },
                    errors,
                )
                .await;
        }
        let pattern = format!("{}*", escape_glob(prefix));
        let mut cursor = 0_u64;
        loop {
            let scan = crate::scan_command(cursor, &pattern);
            let (next, keys) = self
                .bounded(
                    async {
                        let value = connection
                            .route_command(scan, RoutingInfo::SingleNode(at_master()))
                            .await?
                            .extract_error()?;
                        Ok(<(u64, Vec<Vec<u8>>)>::from_redis_value(value)?)
                    },
                    errors,
                )
                .await?;
            if !keys.is_empty() {
                let mut pipeline = redis::pipe();
                let slots = by_slot(keys.iter().map(Vec::as_slice));
                for positions in slots.values() {
                    let command = pipeline.cmd("UNLINK");
                    for position in positions {
                        command.arg(&keys[*position]);
                    }
                }
                self.bounded(
                    async {
                        let values = connection
                            .route_pipeline(pipeline, 0, slots.len(), at_master())
                            .await?;
                        for value in values {
                            value.extract_error()?;
                        }
                        Ok(())
                    },
                    errors,
                )
                .await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

/// Maps the error of an operation. The cluster client follows `MOVED` and `ASK` as long
/// as it may retry, so one that is left at the end points at a node it could not reach
/// (during a failover: the dead master, until its replica is promoted).
fn operation_error(err: RedisError, errors: &ErrorContext) -> CacheError {
    if is_redirect(err.kind()) {
        return CacheError::Unreachable {
            backend: BACKEND,
            source: errors.source(err),
        };
    }
    errors.map(err, false)
}

/// Maps an error met while connecting: a server without cluster support is a
/// configuration mistake, and the cluster client reports a refused `AUTH` of every
/// seed inside an I/O error, whose text is all that is left to recognise it by.
fn connect_error(err: RedisError, errors: &ErrorContext) -> CacheError {
    let text = err.to_string();
    if text.contains("cluster support disabled") {
        return CacheError::config(
            "the server is not a redis cluster (its cluster support is disabled): \
             use a redis:// url for a single server",
        );
    }
    let refused_credentials = ["WRONGPASS", "NOAUTH", "AuthenticationFailed"]
        .iter()
        .any(|code| text.contains(code))
        || text.contains("authentication failed");
    if refused_credentials {
        return CacheError::Auth {
            backend: BACKEND,
            source: errors.source(err),
        };
    }
    errors.map_connect(err, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::cluster_routing::Slot;

    #[test]
    fn slots_are_those_of_redis() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"{app}:session"), b"app");
        assert_eq!(hash_tag(b"no tag"), b"no tag");
        for key in [
            &b""[..],
            b"a",
            b"{",
            b"}{",
            b"{}",
            b"x{y}z",
            b"\xff\x00binary",
            "ünï code".as_bytes(),
        ] {
            assert_eq!(
                Slot::new(key_slot(key)),
                Some(Slot::for_key(key)),
                "{key:?}"
            );
        }
        for i in 0..2000 {
            let key = format!("cache-test:{i}:key {i}");
            assert_eq!(
                Slot::new(key_slot(key.as_bytes())),
                Some(Slot::for_key(&key))
            );
        }
    }

    fn node_value(host: &str, port: i64, id: &str) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(id.as_bytes().to_vec()),
        ])
    }

    #[test]
    fn cluster_slots_are_read_into_masters_and_owners() {
        let range = |start, end, master: Value, replica: Value| {
            Value::Array(vec![Value::Int(start), Value::Int(end), master, replica])
        };
        let value = Value::Array(vec![
            range(
                0,
                5460,
                node_value("127.0.0.1", 7000, "a"),
                node_value("127.0.0.1", 7003, "d"),
            ),
            range(
                5461,
                10922,
                node_value("", 7001, "b"),
                node_value("127.0.0.1", 7004, "e"),
            ),
            range(
                10923,
                16000,
                node_value("127.0.0.1", 7002, "c"),
                node_value("127.0.0.1", 7005, "f"),
            ),
            range(
                16001,
                16383,
                node_value("127.0.0.1", 7000, "a"),
                node_value("127.0.0.1", 7003, "d"),
            ),
        ]);
        let topology = Topology::parse(value, "fallback").unwrap();
        assert_eq!(topology.masters.len(), 3);
        assert_eq!(topology.masters[0].slots, vec![(0, 5460), (16001, 16383)]);
        assert_eq!(
            topology.masters[0].replicas,
            vec![("127.0.0.1".to_owned(), 7003)]
        );
        assert_eq!(topology.masters[1].host, "fallback");
        assert_eq!(topology.owner(0), Some(0));
        assert_eq!(topology.owner(5461), Some(1));
        assert_eq!(topology.owner(16000), Some(2));
        assert_eq!(topology.owner(16383), Some(0));

        let partial = Value::Array(vec![range(
            0,
            99,
            node_value("127.0.0.1", 7000, "a"),
            node_value("127.0.0.1", 7003, "d"),
        )]);
        let topology = Topology::parse(partial, "x").unwrap();
        assert_eq!(topology.owner(99), Some(0));
        assert_eq!(topology.owner(100), None);

        for bad in [
            Value::Int(1),
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![Value::Array(vec![Value::Int(5), Value::Int(1)])]),
            Value::Array(vec![Value::Array(vec![
                Value::Int(0),
                Value::Int(16384),
                node_value("h", 1, "a"),
            ])]),
        ] {
            assert!(Topology::parse(bad, "x").is_err());
        }
    }

    #[test]
    fn keys_are_grouped_by_slot_in_order() {
        let keys: [&[u8]; 4] = [b"{a}1", b"{b}1", b"{a}2", b"{a}1"];
        let slots = by_slot(keys.into_iter());
        assert_eq!(slots.len(), 2);
        assert_eq!(slots[&key_slot(b"a")], vec![0, 2, 3]);
        assert_eq!(slots[&key_slot(b"b")], vec![1]);
    }

    fn context() -> ErrorContext {
        ErrorContext {
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(1),
            pool_wait_timeout: Duration::from_secs(1),
            secrets: vec!["s3cret".to_owned()],
        }
    }

    #[test]
    fn cluster_trouble_is_backend_trouble() {
        let moved = redis::parse_redis_value(b"-MOVED 3999 127.0.0.1:6381\r\n")
            .unwrap()
            .extract_error()
            .unwrap_err();
        assert!(is_redirect(moved.kind()));
        assert!(matches!(
            operation_error(moved, &context()),
            CacheError::Unreachable { .. }
        ));
        for reply in [
            &b"-CLUSTERDOWN The cluster is down\r\n"[..],
            b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
            b"-MASTERDOWN Link with MASTER is down\r\n",
        ] {
            let err = redis::parse_redis_value(reply)
                .unwrap()
                .extract_error()
                .unwrap_err();
            assert!(
                matches!(operation_error(err, &context()), CacheError::Backend { .. }),
                "{reply:?}"
            );
        }
        let missing = RedisError::from((ErrorKind::ClusterConnectionNotFound, "no connection"));
        assert!(matches!(
            operation_error(missing, &context()),
            CacheError::Unreachable { .. }
        ));
        let refused = RedisError::from((
            ErrorKind::Io,
            "Failed to create initial connections",
            "WRONGPASS invalid username-password pair or user is disabled".to_owned(),
        ));
        assert!(matches!(
            connect_error(refused, &context()),
            CacheError::Auth { .. }
        ));
        let not_a_cluster = RedisError::from((
            ErrorKind::Io,
            "Failed to create initial connections",
            "ERR This instance has cluster support disabled".to_owned(),
        ));
        assert!(matches!(
            connect_error(not_a_cluster, &context()),
            CacheError::Config { .. }
        ));
    }

    #[test]
    fn only_moved_and_ask_are_redirects() {
        assert!(is_redirect(ErrorKind::Server(ServerErrorKind::Moved)));
        assert!(is_redirect(ErrorKind::Server(ServerErrorKind::Ask)));
        assert!(!is_redirect(ErrorKind::Server(
            ServerErrorKind::ClusterDown
        )));
        assert!(!is_redirect(ErrorKind::Server(ServerErrorKind::TryAgain)));
        assert!(!is_redirect(ErrorKind::Io));
    }
}
