//! A Redis Sentinel group for tests: one master, one replica and three sentinels, each a
//! `redis-server` process on a free `127.0.0.1` port, in a [`TestDir`] of the group's
//! own. The sentinels fail a master over 1 s after it stops answering (quorum 2).

use std::{
    fmt,
    path::PathBuf,
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::{LocalServer, ServerKind, TestDir, REDIS};

/// The name of the master group the sentinels watch.
pub const SENTINEL_SERVICE: &str = "mymaster";

/// How long a new group may take until every sentinel knows the replica and the others.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// Where the sentinels' configuration files go: sentinel mode needs a writable file as
/// its first argument, and this process's own directory is removed when it exits.
fn config_dir() -> Result<&'static TestDir, String> {
    static DIR: OnceLock<Result<TestDir, String>> = OnceLock::new();
    DIR.get_or_init(|| TestDir::new("sentinel-config"))
        .as_ref()
        .map_err(Clone::clone)
}

fn sentinel_args(port: u16) -> Vec<String> {
    let config = match config_dir() {
        Ok(dir) => {
            let path = dir.join(&format!("sentinel-{port}.conf"));
            // An unwritable file makes redis-server exit, with its own message.
            let _ = std::fs::write(&path, "bind 127.0.0.1\n");
            path.display().to_string()
        }
        Err(err) => err,
    };
    [
        config.as_str(),
        "--sentinel",
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect()
}

/// How to start one sentinel: `redis-server <config> --sentinel` on a free port; the
/// group adds what to monitor.
pub static REDIS_SENTINEL: ServerKind = ServerKind {
    name: "redis-sentinel",
    url_env: "REDIS_SENTINEL_URL",
    binary_args: sentinel_args,
    install_hint: "apt-get install redis-server (its redis-server runs sentinels too)",
    ..REDIS
};

/// One master, one replica and three sentinels, killed (and their directory removed)
/// on drop.
pub struct SentinelGroup {
    master: LocalServer,
    replica: LocalServer,
    sentinels: Vec<LocalServer>,
    dir: TestDir,
}

impl SentinelGroup {
    /// Starts the master, the replica, waits until it is in sync, then the sentinels,
    /// and waits (at most 30 s) until each sentinel knows the replica and the two other
    /// sentinels.
    ///
    /// # Errors
    ///
    /// A message saying which process did not start, or what the sentinels last
    /// reported when they were not ready in time.
    pub async fn start() -> Result<Self, String> {
        let dir = TestDir::new("sentinel")?;
        let data_args = |name: &str| -> Result<Vec<String>, String> {
            let data = dir.join(name);
            std::fs::create_dir_all(&data)
                .map_err(|err| format!("cannot create {}: {err}", data.display()))?;
            Ok(vec![
                "--dir".to_owned(),
                data.display().to_string(),
                "--repl-diskless-sync".to_owned(),
                "yes".to_owned(),
                "--repl-diskless-sync-delay".to_owned(),
                "0".to_owned(),
            ])
        };
        let master_args = data_args("master")?;
        let master = start(&REDIS, &master_args, "the master").await?;
        let master_port = master.port().to_string();
        let mut replica_args = data_args("replica")?;
        replica_args.extend(["--replicaof".to_owned(), "127.0.0.1".to_owned()]);
        replica_args.push(master_port.clone());
        let replica = start(&REDIS, &replica_args, "the replica").await?;
        let mut group = Self {
            master,
            replica,
            sentinels: Vec::new(),
            dir,
        };
        let sentinel_dir = group.dir.path().display().to_string();
        for index in 0..3 {
            let args = [
                "--dir",
                &sentinel_dir,
                "--sentinel",
                "monitor",
                SENTINEL_SERVICE,
                "127.0.0.1",
                &master_port,
                "2",
                "--sentinel",
                "down-after-milliseconds",
                SENTINEL_SERVICE,
                "1000",
                "--sentinel",
                "failover-timeout",
                SENTINEL_SERVICE,
                "10000",
            ];
            let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
            let sentinel = start(&REDIS_SENTINEL, &args, &format!("sentinel {index}")).await?;
            group.sentinels.push(sentinel);
        }
        let ports: Vec<u16> = group.sentinels.iter().map(LocalServer::port).collect();
        tokio::task::spawn_blocking(move || wait_until_ready(&ports))
            .await
            .map_err(|err| format!("the sentinel readiness task failed: {err}"))??;
        Ok(group)
    }

    /// `redis+sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/mymaster`.
    #[must_use]
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", sentinel.port()))
            .collect();
        format!("redis+sentinel://{}/{SENTINEL_SERVICE}", hosts.join(","))
    }

    /// The server that was master at the start.
    pub fn master_mut(&mut self) -> &mut LocalServer {
        &mut self.master
    }

    /// The server that was the replica at the start.
    #[must_use]
    pub fn replica(&self) -> &LocalServer {
        &self.replica
    }

    /// The port of the master the first sentinel names now, if it answers.
    #[must_use]
    pub fn current_master_port(&self) -> Option<u16> {
        let port = self.sentinels.first()?.port();
        let reply = redis_cli(
            port,
            &["SENTINEL", "get-master-addr-by-name", SENTINEL_SERVICE],
        )
        .ok()?;
        reply.lines().nth(1)?.trim().parse().ok()
    }

    /// The directory holding the servers' data and the sentinels' state.
    #[must_use]
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl fmt::Debug for SentinelGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelGroup")
            .field("url", &self.url())
            .field("master", &self.master)
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

async fn start(
    kind: &'static ServerKind,
    args: &[String],
    what: &str,
) -> Result<LocalServer, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    LocalServer::start(kind, &args)
        .await
        .map_err(|err| format!("cannot start {what} of a sentinel group: {err}"))
}

fn redis_cli(port: u16, args: &[&str]) -> Result<String, String> {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .map_err(|err| format!("cannot run redis-cli (apt-get install redis-tools): {err}"))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The value after `name` in a flat `SENTINEL MASTER` reply.
fn field<'a>(reply: &'a str, name: &str) -> Option<&'a str> {
    let mut lines = reply.lines();
    while let Some(line) = lines.next() {
        if line.trim() == name {
            return lines.next().map(str::trim);
        }
    }
    None
}

fn wait_until_ready(ports: &[u16]) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let mut last = String::new();
        let ready = ports.iter().all(|port| {
            let reply =
                redis_cli(*port, &["SENTINEL", "MASTER", SENTINEL_SERVICE]).unwrap_or_default();
            let ok = field(&reply, "num-slaves") == Some("1")
                && field(&reply, "num-other-sentinels") == Some("2")
                && field(&reply, "flags") == Some("master");
            if !ok {
                last = format!("sentinel on port {port}: {}", reply.replace('\n', " "));
            }
            ok
        });
        if ready {
            return Ok(());
        }
        if started.elapsed() > READY_DEADLINE {
            return Err(format!(
                "the sentinels were not ready within {READY_DEADLINE:?}; last: {last}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
