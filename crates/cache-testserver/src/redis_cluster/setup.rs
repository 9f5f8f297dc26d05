//! Starting the nodes' cluster: `redis-cli --cluster create`, then polling every node
//! (through `redis-cli`) until each one reports the whole cluster healthy.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use super::{ClusterSpec, REDIS_CLUSTER_NODE};
use crate::run_at_exit;

/// How long `redis-cli --cluster create` may take.
const CREATE_DEADLINE: Duration = Duration::from_secs(60);

/// How long a new cluster may take until every node reports it healthy.
const HEALTHY_DEADLINE: Duration = Duration::from_secs(30);

pub(super) fn unique_dir() -> PathBuf {
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
pub(super) fn spawn_remover(dir: &Path) -> std::io::Result<Child> {
    run_at_exit(r#"sleep 1; rm -rf "$1""#, [dir])
}

pub(super) fn node_url(port: u16, password: Option<&str>) -> String {
    match password {
        Some(password) => format!("redis://:{password}@127.0.0.1:{port}"),
        None => format!("redis://127.0.0.1:{port}"),
    }
}

/// Runs `redis-cli --cluster create` on the nodes, then waits until the cluster is healthy.
pub(super) fn create_and_wait(ports: &[u16], spec: &ClusterSpec, log: &Path) -> Result<(), String> {
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

/// Runs one command on the node at `port` with `redis-cli`, and returns its answer.
fn ask(port: u16, password: Option<&str>, command: &[&str]) -> Result<String, String> {
    let mut cli = Command::new("redis-cli");
    cli.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(command)
        .stdin(Stdio::null());
    if let Some(password) = password {
        // The password reaches redis-cli by its environment, never its command line.
        cli.env("REDISCLI_AUTH", password);
    }
    let output = cli
        .output()
        .map_err(|err| format!("cannot run redis-cli: {err}"))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() || text.starts_with("ERR") || text.starts_with("NOAUTH") {
        return Err(format!(
            "{} failed: {}{}",
            command.join(" ").to_lowercase(),
            text.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(text)
}

fn node_health(port: u16, total: usize, spec: &ClusterSpec) -> Result<(), String> {
    let password = spec.password.as_deref();
    let info = ask(port, password, &["CLUSTER", "INFO"])?;
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
    let nodes = ask(port, password, &["CLUSTER", "NODES"])?;
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
    let replication = ask(port, password, &["INFO", "replication"])?;
    match field(&replication, "role") {
        Some("master") => Ok(()),
        Some("slave") => match field(&replication, "master_link_status") {
            Some("up") => Ok(()),
            link => Err(format!("a replica whose master link is {link:?}")),
        },
        role => Err(format!("role {role:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_info_fields_are_read() {
        let info = "cluster_state:ok\r\ncluster_slots_ok:16384\r\n";
        assert_eq!(field(info, "cluster_state"), Some("ok"));
        assert_eq!(field(info, "cluster_slots_ok"), Some("16384"));
        assert_eq!(field(info, "cluster_known_nodes"), None);
    }
}
