//! A Redis Cluster for tests: local `redis-server` processes in cluster mode, joined by
//! `redis-cli --cluster create`, and the cluster a test process shares. It lives beside
//! the single-server fixtures so every topology a test starts is found in one crate;
//! it talks to the nodes through `redis-cli` only, so this crate needs no Redis client.

use cache_url_core::redact;
use std::{fmt, path::PathBuf, process::Child, time::Duration};

use tokio::sync::OnceCell;

use crate::{
    free_port, tls::TestCertificates, wait_for_port, LocalServer, ServerKind, Source, REDIS,
};

mod setup;

use setup::{create_and_wait, node_url, spawn_remover, unique_dir};

/// Environment variable naming an external cluster (a `redis+cluster://` URL) for the
/// tests to use instead of starting one.
pub const CLUSTER_URL_ENV: &str = "REDIS_CLUSTER_URL";

fn cluster_node_args(port: u16) -> Vec<String> {
    let mut args = (REDIS.binary_args)(port);
    let settings = [
        ("--cluster-enabled", "yes".to_owned()),
        ("--cluster-config-file", format!("nodes-{port}.conf")),
        // The bus port is by default the port plus 10000, which may be taken or past
        // 65535 for a port picked at random.
        ("--cluster-port", free_port().to_string()),
        // A master is failed after 1 s without an answer (the default is 15 s).
        ("--cluster-node-timeout", "1000".to_owned()),
        // A replica may take over however long its link was down: the test clusters
        // hold nothing that an older copy could betray.
        ("--cluster-replica-validity-factor", "0".to_owned()),
        // The other masters keep serving their slots while one shard fails over.
        ("--cluster-require-full-coverage", "no".to_owned()),
        // Replicas get their first copy at once, from memory, not after 5 s.
        ("--repl-diskless-sync", "yes".to_owned()),
        ("--repl-diskless-sync-delay", "0".to_owned()),
        ("--dbfilename", format!("dump-{port}.rdb")),
    ];
    for (name, value) in settings {
        args.push(name.to_owned());
        args.push(value);
    }
    args
}

/// How to start one node of a test cluster: `redis-server` from `PATH` (7.0 or later,
/// for `--cluster-port`), with the arguments of [`REDIS`] plus cluster
/// mode, a node timeout of 1 s, quick replica sync and failover, and
/// `cluster-require-full-coverage no`. [`RedisCluster`] adds `--dir` (a directory of
/// the node's own) and the password, if any.
pub static REDIS_CLUSTER_NODE: ServerKind = ServerKind {
    name: "redis-cluster-node",
    url_env: CLUSTER_URL_ENV,
    binary_args: cluster_node_args,
    install_hint: "apt-get install redis-server redis-tools (7.0 or later)",
    ..REDIS
};

/// The shape of a test cluster.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterSpec {
    /// Number of masters; `redis-cli --cluster create` needs at least 3.
    pub masters: usize,
    /// Replicas of each master.
    pub replicas_per_master: usize,
    /// The password every node asks for (`requirepass`, and `masterauth` for replication).
    pub password: Option<String>,
    /// The certificates of a cluster that clients reach over TLS; see [`tls`](Self::tls).
    pub tls: Option<ClusterTls>,
}

/// The files of a TLS cluster's certificates, read by every node.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterTls {
    /// The CA that signed both certificates, which the nodes trust.
    pub ca: PathBuf,
    /// The certificate each node shows to clients and to the other nodes.
    pub server_cert: PathBuf,
    /// Its private key.
    pub server_key: PathBuf,
    /// The certificate each node shows when it dials another node's bus, which asks
    /// for one.
    pub client_cert: PathBuf,
    /// Its private key.
    pub client_key: PathBuf,
    /// Whether clients must show a certificate from the CA (`--tls-auth-clients yes`).
    pub mutual: bool,
}

impl ClusterTls {
    /// The node arguments: a TLS port beside the plain one, the bus and replication
    /// over TLS, clients asked for a certificate only when `mutual`.
    fn node_args(&self, tls_port: u16) -> Vec<String> {
        let path = |path: &PathBuf| path.display().to_string();
        [
            ("--tls-port", tls_port.to_string()),
            ("--tls-cluster", "yes".to_owned()),
            ("--tls-replication", "yes".to_owned()),
            ("--tls-cert-file", path(&self.server_cert)),
            ("--tls-key-file", path(&self.server_key)),
            ("--tls-client-cert-file", path(&self.client_cert)),
            ("--tls-client-key-file", path(&self.client_key)),
            ("--tls-ca-cert-file", path(&self.ca)),
            (
                "--tls-auth-clients",
                if self.mutual { "yes" } else { "no" }.to_owned(),
            ),
        ]
        .into_iter()
        .flat_map(|(name, value)| [name.to_owned(), value])
        .collect()
    }
}

impl ClusterSpec {
    /// 3 masters with one replica each, no password.
    #[must_use]
    pub fn new() -> Self {
        Self {
            masters: 3,
            replicas_per_master: 1,
            password: None,
            tls: None,
        }
    }

    /// Makes clients reach every node over TLS with `certs` (the nodes also keep a plain
    /// port, which the fixture's own setup and health checks use): the cluster's
    /// [`url`](RedisCluster::url) is then a `rediss+cluster://` URL of the TLS ports,
    /// which the nodes also report to a client that asks over TLS where slots are.
    #[must_use]
    pub fn tls(self, certs: &TestCertificates) -> Self {
        self.with_tls(certs, false)
    }

    /// As [`tls`](Self::tls), and every node asks clients for a certificate from the
    /// test CA (`--tls-auth-clients yes`), as [`TestCertificates::client_cert`] is.
    #[must_use]
    pub fn mutual_tls(self, certs: &TestCertificates) -> Self {
        self.with_tls(certs, true)
    }

    fn with_tls(mut self, certs: &TestCertificates, mutual: bool) -> Self {
        self.tls = Some(ClusterTls {
            ca: certs.ca.clone(),
            server_cert: certs.server_cert.clone(),
            server_key: certs.server_key.clone(),
            client_cert: certs.client_cert.clone(),
            client_key: certs.client_key.clone(),
            mutual,
        });
        self
    }

    /// Sets the number of replicas per master.
    #[must_use]
    pub fn replicas_per_master(mut self, replicas: usize) -> Self {
        self.replicas_per_master = replicas;
        self
    }

    /// Makes every node ask for `password`.
    #[must_use]
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }
}

impl Default for ClusterSpec {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ClusterSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterSpec")
            .field("masters", &self.masters)
            .field("replicas_per_master", &self.replicas_per_master)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls", &self.tls)
            .finish()
    }
}

/// A Redis Cluster of local `redis-server` processes on free `127.0.0.1` ports, each
/// under the watchdog of [`LocalServer`], with a temporary directory of its own per
/// node. Dropping it kills every node and removes the directories; so does the end of
/// the test process, however it ends.
///
/// ```no_run
/// # async fn demo() -> Result<(), String> {
/// use cache_testserver::redis_cluster::RedisCluster;
///
/// let cluster = RedisCluster::start().await?; // 3 masters, 3 replicas
/// println!("{:?}", cluster); // the url, its password (if any) shown as ***
/// let url = cluster.url(); // redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...
/// # Ok(()) }
/// ```
pub struct RedisCluster {
    nodes: Vec<LocalServer>,
    /// The TLS port of each node, in the order of `nodes`; empty without TLS.
    tls_ports: Vec<u16>,
    spec: ClusterSpec,
    dir: PathBuf,
    /// A shell that removes `dir` once this process's end of its stdin closes, so that
    /// the directory goes even when the process is killed.
    remover: Option<Child>,
}

impl RedisCluster {
    /// Starts 3 masters with one replica each, and waits until every node reports the
    /// cluster healthy.
    ///
    /// # Errors
    ///
    /// As [`start_with`](Self::start_with).
    pub async fn start() -> Result<Self, String> {
        Self::start_with(&ClusterSpec::new()).await
    }

    /// Starts a cluster of the given shape: the nodes, then `redis-cli --cluster create
    /// ... --cluster-replicas N --cluster-yes`, then waits (at most 30 s) until every
    /// node says `cluster_state:ok` with all 16384 slots served, knows every other node,
    /// and every replica's link to its master is up.
    ///
    /// # Errors
    ///
    /// A message saying what failed and how to fix it: `redis-server` or `redis-cli`
    /// missing, a node that did not start, `redis-cli` failing (with its output), or a
    /// cluster not healthy in time (with what each node reported last).
    pub async fn start_with(spec: &ClusterSpec) -> Result<Self, String> {
        if spec.masters < 3 {
            return Err(format!(
                "a redis cluster needs at least 3 masters, not {}",
                spec.masters
            ));
        }
        let dir = unique_dir();
        std::fs::create_dir_all(&dir)
            .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
        let mut cluster = Self {
            nodes: Vec::new(),
            tls_ports: Vec::new(),
            spec: spec.clone(),
            remover: spawn_remover(&dir).ok(),
            dir,
        };
        let total = spec.masters * (1 + spec.replicas_per_master);
        for index in 0..total {
            let node_dir = cluster.dir.join(format!("node-{index}"));
            std::fs::create_dir_all(&node_dir)
                .map_err(|err| format!("cannot create {}: {err}", node_dir.display()))?;
            let mut args = vec!["--dir".to_owned(), node_dir.display().to_string()];
            if let Some(password) = &spec.password {
                args.extend([
                    "--requirepass".to_owned(),
                    password.clone(),
                    "--masterauth".to_owned(),
                    password.clone(),
                ]);
            }
            let tls_port = spec.tls.as_ref().map(|tls| {
                let port = free_port();
                args.extend(tls.node_args(port));
                port
            });
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let node = LocalServer::start(&REDIS_CLUSTER_NODE, &args)
                .await
                .map_err(|err| format!("cannot start node {index} of a redis cluster: {err}"))?;
            cluster.nodes.push(node);
            if let Some(port) = tls_port {
                wait_for_port(port, Duration::from_secs(10))
                    .await
                    .map_err(|err| format!("node {index} opened no tls port: {err}"))?;
                cluster.tls_ports.push(port);
            }
        }

        let ports: Vec<u16> = cluster.nodes.iter().map(LocalServer::port).collect();
        let spec = spec.clone();
        let log = cluster.dir.join("redis-cli-create.log");
        tokio::task::spawn_blocking(move || create_and_wait(&ports, &spec, &log))
            .await
            .map_err(|err| format!("the cluster setup task failed: {err}"))??;
        Ok(cluster)
    }

    /// The `redis+cluster://` URL of the cluster, every node a seed, with the password
    /// if there is one; `rediss+cluster://` and the TLS ports for a TLS cluster (the
    /// client must be told to trust the CA of [`ClusterSpec::tls`]).
    #[must_use]
    pub fn url(&self) -> String {
        let (scheme, ports): (_, Vec<u16>) = if self.tls_ports.is_empty() {
            (
                "redis+cluster",
                self.nodes.iter().map(LocalServer::port).collect(),
            )
        } else {
            ("rediss+cluster", self.tls_ports.clone())
        };
        let hosts: Vec<String> = ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        match &self.spec.password {
            Some(password) => format!("{scheme}://:{password}@{}", hosts.join(",")),
            None => format!("{scheme}://{}", hosts.join(",")),
        }
    }

    /// The `redis://` URL of every node, with the password if there is one.
    #[must_use]
    pub fn seed_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| node_url(node.port(), self.spec.password.as_deref()))
            .collect()
    }

    /// The nodes, in the order they were started (`redis-cli` makes the first
    /// [`masters`](ClusterSpec::masters) of them masters).
    #[must_use]
    pub fn nodes(&self) -> &[LocalServer] {
        &self.nodes
    }

    /// The node listening on `port`, to kill, pause or restart it.
    pub fn node_mut(&mut self, port: u16) -> Option<&mut LocalServer> {
        self.nodes.iter_mut().find(|node| node.port() == port)
    }

    /// The shape the cluster was started with.
    #[must_use]
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }
}

impl fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCluster")
            .field("url", &redact(&self.url()))
            .field("spec", &self.spec)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        // Every node killed (and its port closed) before its directory goes.
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(mut remover) = self.remover.take() {
            let _ = remover.kill();
            let _ = remover.wait();
        }
    }
}

/// The cluster the tests of this process share: started on first use, or named by
/// `REDIS_CLUSTER_URL`; see [`shared_cluster`].
pub struct SharedCluster {
    url: String,
    /// Holds the nodes for as long as the process runs; `None` for an external cluster.
    started: Option<RedisCluster>,
}

impl SharedCluster {
    /// The `redis+cluster://` URL of the cluster. It may hold a password (when it comes
    /// from `REDIS_CLUSTER_URL`): do not log it as is.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `redis://` URL of each seed node of [`url`](Self::url).
    #[must_use]
    pub fn seed_urls(&self) -> Vec<String> {
        match &self.started {
            Some(cluster) => cluster.seed_urls(),
            None => split_cluster_url(&self.url),
        }
    }

    /// True when this process started the cluster, false for an external one, which
    /// may hold someone else's data: nothing may be flushed there.
    #[must_use]
    pub fn owned_by_fixture(&self) -> bool {
        self.started.is_some()
    }
}

impl fmt::Debug for SharedCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedCluster")
            .field("url", &redact(&self.url))
            .field("owned_by_fixture", &self.owned_by_fixture())
            .finish()
    }
}

/// One Redis Cluster per test process, shared by every test in it: the one
/// `REDIS_CLUSTER_URL` names (a `redis+cluster://` URL), else 3 masters and 3 replicas
/// started from `redis-server` and `redis-cli` on `PATH` (see [`RedisCluster`]), which
/// live until the process exits. With `CACHE_TEST_SERVERS=external` only the variable
/// is used; there is no container source for a cluster, so any other value starts one
/// from the binaries.
///
/// Started once: every later call returns the same cluster, from any test's runtime.
/// Only the URL is kept for an external cluster; a started one lives in the static, so
/// its nodes are killed by their watchdogs when the process ends.
/// A line on stderr says which cluster the run uses.
///
/// # Panics
///
/// When no cluster can be had, with a message that says what failed and how to provide
/// one; every later call panics with the same message.
pub async fn shared_cluster() -> &'static SharedCluster {
    static CLUSTER: OnceCell<Result<SharedCluster, String>> = OnceCell::const_new();
    match CLUSTER.get_or_init(find_or_start).await {
        Ok(cluster) => cluster,
        Err(message) => panic!("{message}"),
    }
}

async fn find_or_start() -> Result<SharedCluster, String> {
    if let Ok(url) = std::env::var(CLUSTER_URL_ENV) {
        let url = url.trim().to_owned();
        if !url.is_empty() {
            announce(&format!(
                "redis cluster from {CLUSTER_URL_ENV} at {}",
                redact(&url)
            ));
            return Ok(SharedCluster { url, started: None });
        }
    }
    // Only `external` rules out starting a cluster; a value shared_server refuses does not.
    let external_only = Source::from_env() == Ok(Source::External);
    let failure = if external_only {
        format!(
            "{CLUSTER_URL_ENV} is not set, and {}=external",
            crate::SOURCE_ENV
        )
    } else {
        match RedisCluster::start().await {
            Ok(cluster) => {
                let url = cluster.url();
                announce(&format!(
                    "redis cluster of {} nodes (3 masters, 3 replicas) from redis-server at {url}",
                    cluster.nodes().len()
                ));
                return Ok(SharedCluster {
                    url,
                    started: Some(cluster),
                });
            }
            Err(err) => err,
        }
    };
    Err(format!(
        "cache-testserver: no redis cluster available: {failure}\nprovide one of:\n  \
         - an external cluster: {CLUSTER_URL_ENV}=redis+cluster://host1:port1,host2:port2,...\n  \
         - redis-server and redis-cli 7.0 or later on PATH: {}",
        REDIS_CLUSTER_NODE.install_hint
    ))
}

/// Writes one line on stderr, past the test harness' capture: which cluster a run used
/// is worth seeing even when every test passes.
fn announce(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "cache-testserver: {line}");
}

/// Splits `redis+cluster://[user:password@]host1,host2[/path]` into one `redis://` URL
/// per host, each with the same user info and path.
fn split_cluster_url(url: &str) -> Vec<String> {
    cache_url_core::CacheUrl::parse(url)
        .map(|url| url.per_host_urls("redis"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("redis+cluster://:s3cret@127.0.0.1:7000,127.0.0.1:7001"),
            "redis+cluster://:***@127.0.0.1:7000,127.0.0.1:7001"
        );
        assert_eq!(redact("redis://alice:pw@h:1/0"), "redis://alice:***@h:1/0");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
        let spec = format!("{:?}", ClusterSpec::new().password("s3cret"));
        assert!(!spec.contains("s3cret"), "{spec}");
    }

    #[test]
    fn cluster_urls_split_into_seeds() {
        assert_eq!(
            split_cluster_url("redis+cluster://u:p@h1:7000,h2:7001/0"),
            vec!["redis://u:p@h1:7000/0", "redis://u:p@h2:7001/0"]
        );
        assert_eq!(
            split_cluster_url("redis+cluster://h1,h2"),
            vec!["redis://h1", "redis://h2"]
        );
    }
}
