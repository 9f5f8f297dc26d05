//! Redis Cluster: connecting, and single-key commands. The cluster client of the
//! `redis` crate sends every single-key command to the master of its key's slot,
//! follows `MOVED` and `ASK`, and tries again by itself (within the deadline) while a
//! node is down or the slots move: that retry is the client's, not this crate's. Bulk
//! operations and `clear` are in `bulk.rs`, the slot arithmetic in `slots.rs`.

mod bulk;
mod slots;

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, PoisonError, RwLock,
    },
    time::Duration,
};

use arc_swap::ArcSwap;
use cache_api::CacheError;
use redis::{
    cluster::{ClusterClient, ClusterClientBuilder},
    cluster_async::ClusterConnection,
    cluster_routing::{
        MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, SingleNodeRoutingInfo,
    },
    Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, FromRedisValue, RedisError, RedisResult,
    ServerErrorKind,
};

pub(crate) use slots::key_slot;
use slots::Topology;

use crate::{
    cut_short::{spawn_check, spawn_on_current, OnCutShort},
    endpoint::scrub,
    error::{ErrorContext, BACKEND},
    throttle::AtMostEvery,
};

/// Shortest and longest wait, in milliseconds, of the cluster client between two tries
/// of a request that met a node being down or a cluster being reconfigured. Short, so
/// that a request still waiting when a replica has been promoted gets through within
/// its deadline; the deadline, not the number of tries, bounds the whole.
const MIN_RETRY_WAIT_MS: u64 = 10;
const MAX_RETRY_WAIT_MS: u64 = 250;

/// Whether the node that answered does not serve the slot: the cache's view of the
/// slots is out of date, or a slot is being migrated.
fn is_redirect(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask)
    )
}

/// Replacements of the cluster connection are at least this far apart: each one dials
/// the seeds and reads the slots again.
const REPLACE_AT_MOST_EVERY: Duration = Duration::from_millis(250);

/// The cluster connection in use, and what a new one is made from.
///
/// The cluster client tries a request that timed out again on the same connection to
/// the node, and reconnects to a node only once the connection reports itself broken: a
/// connection that answers nothing and is never closed (a flow a middlebox forgot, a host
/// gone without a reset) stalls every request to its node until TCP gives up on it, a
/// quarter of an hour later. A request that times out here has a new cluster connection
/// made in the background, which later requests use; those in flight keep the old one
/// until they end.
struct Connections {
    current: ArcSwap<ClusterConnection>,
    client: ClusterClient,
    /// Bound on making a new connection.
    deadline: Duration,
    /// Spaces out the replacements.
    replacements: AtMostEvery,
    /// Set while a `PING` checks the connection after a call was cut short.
    probing: AtomicBool,
}

impl Connections {
    /// Starts making a new connection, unless one was started less than
    /// [`REPLACE_AT_MOST_EVERY`] ago. The current one stays in use until the new one is
    /// ready, and for good if it cannot be made.
    fn replace(self: &Arc<Self>) {
        if !self.replacements.claim() {
            return;
        }
        let connections = Arc::clone(self);
        spawn_on_current(async move {
            let connecting = connections.client.get_async_connection();
            if let Ok(Ok(fresh)) = tokio::time::timeout(connections.deadline, connecting).await {
                connections.current.store(Arc::new(fresh));
            }
        });
    }

    /// Checks the connection after a call on it was cut short (`cut_short.rs`): a `PING`
    /// to every master, and a `PING` unanswered within the deadline has a new connection
    /// made, as a call that timed out does. One check at a time.
    fn check_after_cut(self: &Arc<Self>) {
        spawn_check(
            self,
            |connections| &connections.probing,
            |connections| async move {
                let mut connection = ClusterConnection::clone(&connections.current.load());
                let every_master = RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    Some(ResponsePolicy::AllSucceeded),
                ));
                let ping = connection.route_command(redis::cmd("PING"), every_master);
                match tokio::time::timeout(connections.deadline, ping).await {
                    Err(_) => connections.replace(),
                    Ok(Err(err)) if err.is_timeout() => connections.replace(),
                    Ok(_) => {}
                }
            },
        );
    }
}

/// The cluster side of a [`RedisCache`](crate::RedisCache).
pub(crate) struct ClusterBackend {
    connections: Arc<Connections>,
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
        certificates: Option<redis::TlsCertificates>,
        errors: &ErrorContext,
    ) -> Result<Self, CacheError> {
        let fallback_host = match seeds.first().map(ConnectionInfo::addr) {
            Some(ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. }) => {
                host.clone()
            }
            _ => "127.0.0.1".to_owned(),
        };
        let deadline = errors
            .connect_timeout
            .saturating_add(errors.response_timeout);
        let mut builder = ClusterClientBuilder::new(seeds);
        // The nodes found from the seeds are reached over TLS as the seeds are, and
        // need the same CA and client certificate.
        if let Some(certificates) = certificates {
            builder = builder.certs(certificates);
        }
        let client = builder
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
            connections: Arc::new(Connections {
                current: ArcSwap::from_pointee(connection),
                client,
                deadline,
                replacements: AtMostEvery::new(REPLACE_AT_MOST_EVERY),
                probing: AtomicBool::new(false),
            }),
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
        let cut_short = OnCutShort::new(|| self.connections.check_after_cut());
        let outcome = tokio::time::timeout(self.deadline, operation).await;
        cut_short.finish();
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                if err.is_timeout() {
                    self.connections.replace();
                }
                Err(operation_error(err, errors))
            }
            Err(_) => {
                self.connections.replace();
                Err(errors.timeout("request", self.deadline))
            }
        }
    }

    /// The cluster connection to send on.
    fn connection(&self) -> ClusterConnection {
        ClusterConnection::clone(&self.connections.current.load())
    }

    fn topology(&self) -> Arc<Topology> {
        Arc::clone(&self.topology.read().unwrap_or_else(PoisonError::into_inner))
    }

    async fn refresh_topology(&self) -> RedisResult<()> {
        let mut connection = self.connection();
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

    /// Sends one command to the master of its key's slot; an `Unreachable` names that
    /// master.
    pub(crate) async fn command<T: FromRedisValue>(
        &self,
        command: &Cmd,
        errors: &ErrorContext,
    ) -> Result<T, CacheError> {
        let mut connection = self.connection();
        self.bounded(command.query_async(&mut connection), errors)
            .await
            .map_err(|err| match self.master_of(command) {
                Some((slot, node)) => crate::error::at_node(err, slot, &node),
                None => err,
            })
    }

    /// The slot of `command`'s key (its first argument after the name) and the
    /// `host:port` of the master serving it, as this cache last read the slots.
    fn master_of(&self, command: &Cmd) -> Option<(u16, String)> {
        let redis::Arg::Simple(key) = command.args_iter().nth(1)? else {
            return None;
        };
        let slot = key_slot(key);
        let topology = self.topology();
        let master = &topology.masters[topology.owner(slot)?];
        Some((
            slot,
            crate::wrong_port::display_address(&master.host, master.port),
        ))
    }

    /// The longest argument each master takes, all masters asked at once; `None` for one
    /// that did not say (see [`crate::bulk_limit`]).
    pub(crate) async fn bulk_limits(&self, errors: &ErrorContext) -> Vec<Option<usize>> {
        let topology = self.topology();
        let asks = topology.masters.iter().map(|master| async move {
            let mut answers: [Option<redis::Value>; 2] = [None, None];
            for (query, answer) in crate::bulk_limit::queries().into_iter().zip(&mut answers) {
                let mut connection = self.connection();
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: master.host.clone(),
                    port: master.port,
                });
                *answer = self
                    .bounded(
                        async {
                            connection
                                .route_command(query, route)
                                .await?
                                .extract_error()
                        },
                        errors,
                    )
                    .await
                    .ok();
            }
            crate::bulk_limit::server_limit(answers.each_ref().map(Option::as_ref))
        });
        futures::future::join_all(asks).await
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
    // No seed answered in time: the cluster client says so only in words ("Failed to
    // create initial connections - Io: timed out"), the kind being `Io`. A timeout, as
    // on one server, not an address that refuses.
    if text.contains(INITIAL_CONNECTIONS) && text.contains("timed out") {
        return errors.timeout("connect", errors.connect_timeout);
    }
    errors.map_connect(err, 0)
}

/// How the cluster client begins the error of a connect that reached no seed.
const INITIAL_CONNECTIONS: &str = "Failed to create initial connections";

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> ErrorContext {
        ErrorContext {
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(1),
            pool_wait_timeout: Duration::from_secs(1),
            secrets: vec!["s3cret".to_owned()],
            origin: None,
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
        let silent = RedisError::from((
            ErrorKind::Io,
            "Failed to create initial connections",
            "Io: timed out".to_owned(),
        ));
        assert!(matches!(
            connect_error(silent, &context()),
            CacheError::Timeout {
                phase: "connect",
                ..
            }
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
