//! The Redis Cluster fixture: clusters of local `redis-server` processes, created with
//! `redis-cli --cluster create`, and the helpers that look into one.

use std::{
    fmt,
    fs::File,
    ops::RangeInclusive,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use cache_testserver::{free_port, run_at_exit, LocalServer, ServerKind, Source, REDIS};
use tokio::sync::OnceCell;

use crate::{cluster::key_slot as slot_of, endpoint};

/// Environment variable naming an external cluster (a `redis+cluster://` URL) for the
/// tests to use instead of starting one.
pub const CLUSTER_URL_ENV: &str = "REDIS_CLUSTER_URL";

/// How long `redis-cli --cluster create` may take.
const CREATE_DEADLINE: Duration = Duration::from_secs(60);

/// How long a new cluster may take until every node reports it healthy.
const HEALTHY_DEADLINE: Duration = Duration::from_secs(30);

/// Timeout of the plain connections the fixture opens to look into a cluster.
const LOOK_TIMEOUT: Duration = Duration::from_secs(5);

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
}

impl ClusterSpec {
    /// 3 masters with one replica each, no password.
    #[must_use]
    pub fn new() -> Self {
        Self {
            masters: 3,
            replicas_per_master: 1,
            password: None,
        }
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
/// use cache_redis::{testing::RedisCluster, RedisCache};
///
/// let cluster = RedisCluster::start().await?; // 3 masters, 3 replicas
/// let cache = RedisCache::connect(&cluster.url()).await.map_err(|err| err.to_string())?;
/// # Ok(()) }
/// ```
pub struct RedisCluster {
    nodes: Vec<LocalServer>,
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
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let node = LocalServer::start(&REDIS_CLUSTER_NODE, &args)
                .await
                .map_err(|err| format!("cannot start node {index} of a redis cluster: {err}"))?;
            cluster.nodes.push(node);
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
    /// if there is one.
    #[must_use]
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        match &self.spec.password {
            Some(password) => format!("redis+cluster://:{password}@{}", hosts.join(",")),
            None => format!("redis+cluster://{}", hosts.join(",")),
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
            .field("url", &endpoint::redact_url(&self.url()))
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

fn unique_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    std::env::temp_dir().join(format!(
        "cache-redis-cluster-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A shell that removes `dir` once its stdin closes: when the cluster is dropped, or when
/// this process ends however it ends. The pause lets the watchdogs kill the nodes first,
/// so that none writes into a directory being removed.
fn spawn_remover(dir: &Path) -> std::io::Result<Child> {
    run_at_exit(r#"sleep 1; rm -rf "$1""#, [dir])
}

fn node_url(port: u16, password: Option<&str>) -> String {
    match password {
        Some(password) => format!("redis://:{password}@127.0.0.1:{port}"),
        None => format!("redis://127.0.0.1:{port}"),
    }
}

/// Runs `redis-cli --cluster create` on the nodes, then waits until the cluster is healthy.
fn create_and_wait(ports: &[u16], spec: &ClusterSpec, log: &Path) -> Result<(), String> {
    let mut command = Command::new("redis-cli");
    command.arg("--cluster").arg("create");
    for port in ports {
        command.arg(format!("127.0.0.1:{port}"));
    }
    command
        .arg("--cluster-replicas")
        .arg(spec.replicas_per_master.to_string())
        .arg("--cluster-yes");
    if let Some(password) = &spec.password {
        // The password reaches redis-cli by its environment, never its command line.
        command.env("REDISCLI_AUTH", password);
    }
    let output =
        File::create(log).map_err(|err| format!("cannot create {}: {err}", log.display()))?;
    let errors = output
        .try_clone()
        .map_err(|err| format!("cannot open {} twice: {err}", log.display()))?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors)
        .spawn()
        .map_err(|err| {
            format!(
                "cannot run redis-cli to create the cluster (install it: {}): {err}",
                REDIS_CLUSTER_NODE.install_hint
            )
        })?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < CREATE_DEADLINE => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "redis-cli --cluster create did not finish within {CREATE_DEADLINE:?}; its output:\n{}",
                    read_log(log)
                ));
            }
            Err(err) => return Err(format!("cannot wait for redis-cli: {err}")),
        }
    };
    if !status.success() {
        return Err(format!(
            "redis-cli --cluster create failed ({status}); its output:\n{}",
            read_log(log)
        ));
    }
    wait_until_healthy(ports, spec)
}

fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_else(|err| format!("(unreadable: {err})"))
}

/// Polls every node until all of them report the cluster healthy, or the deadline passes.
fn wait_until_healthy(ports: &[u16], spec: &ClusterSpec) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let reports: Vec<(u16, Result<(), String>)> = ports
            .iter()
            .map(|port| (*port, node_health(*port, ports.len(), spec)))
            .collect();
        if reports.iter().all(|(_, report)| report.is_ok()) {
            return Ok(());
        }
        if start.elapsed() >= HEALTHY_DEADLINE {
            let mut message = format!(
                "the redis cluster on ports {ports:?} was not healthy within {HEALTHY_DEADLINE:?}; last seen:\n"
            );
            for (port, report) in reports {
                let state = report.err().unwrap_or_else(|| "healthy".to_owned());
                message.push_str(&format!("  127.0.0.1:{port}: {state}\n"));
            }
            return Err(message);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

fn node_health(port: u16, total: usize, spec: &ClusterSpec) -> Result<(), String> {
    let client = redis::Client::open(node_url(port, spec.password.as_deref()))
        .map_err(|err| err.to_string())?;
    let mut connection = client
        .get_connection_with_timeout(LOOK_TIMEOUT)
        .map_err(|err| format!("cannot connect: {err}"))?;
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut connection)
        .map_err(|err| format!("cluster info failed: {err}"))?;
    let state = (
        field(&info, "cluster_state"),
        field(&info, "cluster_slots_ok"),
        field(&info, "cluster_known_nodes"),
    );
    let total = total.to_string();
    if state != (Some("ok"), Some("16384"), Some(total.as_str())) {
        return Err(format!(
            "cluster_state {:?}, cluster_slots_ok {:?}, cluster_known_nodes {:?} (of {total})",
            state.0, state.1, state.2
        ));
    }
    // Every node must know every master with its slots and every replica with its
    // master, so that any node a client asks describes the whole cluster.
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut connection)
        .map_err(|err| format!("cluster nodes failed: {err}"))?;
    let (mut masters, mut replicas) = (0, 0);
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let flags = fields.get(2).copied().unwrap_or_default();
        if flags.contains("fail") {
            continue;
        }
        if flags.contains("master") && fields.len() > 8 {
            masters += 1;
        } else if flags.contains("slave") && fields.get(3).is_some_and(|master| *master != "-") {
            replicas += 1;
        }
    }
    let wanted_replicas = spec.masters * spec.replicas_per_master;
    if (masters, replicas) != (spec.masters, wanted_replicas) {
        return Err(format!(
            "sees {masters} masters serving slots and {replicas} replicas, not {} and {wanted_replicas}",
            spec.masters
        ));
    }
    let replication: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut connection)
        .map_err(|err| format!("info replication failed: {err}"))?;
    match field(&replication, "role") {
        Some("master") => Ok(()),
        Some("slave") => match field(&replication, "master_link_status") {
            Some("up") => Ok(()),
            link => Err(format!("a replica whose master link is {link:?}")),
        },
        role => Err(format!("role {role:?}")),
    }
}

/// The cluster the tests of this process share: started on first use, or named by
/// `REDIS_CLUSTER_URL`; see [`cluster`].
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
        endpoint::split_cluster_url(&self.url).unwrap_or_else(|_| vec![self.url.clone()])
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
            .field("url", &endpoint::redact_url(&self.url))
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
/// A line on stderr says which cluster the run uses.
///
/// # Panics
///
/// When no cluster can be had, with a message that says what failed and how to provide
/// one; every later call panics with the same message.
pub async fn cluster() -> &'static SharedCluster {
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
                endpoint::redact_url(&url)
            ));
            return Ok(SharedCluster { url, started: None });
        }
    }
    // Only `external` rules out starting a cluster; a value shared_server refuses does not.
    let external_only = Source::from_env() == Ok(Source::External);
    let failure = if external_only {
        format!(
            "{CLUSTER_URL_ENV} is not set, and {}=external",
            cache_testserver::SOURCE_ENV
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
        "cache-redis testing: no redis cluster available: {failure}\nprovide one of:\n  \
         - an external cluster: {CLUSTER_URL_ENV}=redis+cluster://host1:port1,host2:port2,...\n  \
         - redis-server and redis-cli 7.0 or later on PATH: {}",
        REDIS_CLUSTER_NODE.install_hint
    ))
}

/// Writes one line on stderr, past the test harness' capture: which cluster a run used
/// is worth seeing even when every test passes.
fn announce(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "cache-redis testing: {line}");
}

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
