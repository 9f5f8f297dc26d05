//! The kinds of server the workspace's backends are tested against, described once so that
//! each backend's fixture and this crate's own tests start them the same way.

use crate::kind::{Ready, ServerKind};

/// Redis: `REDIS_URL` names an external server, `REDIS_IMAGE` overrides the image
/// `cache-test/redis:latest` (built by `scripts/build-test-images`). A container is ready
/// once it answers `PING`.
///
/// The binary runs as `redis-server --port P --bind 127.0.0.1 --save "" --appendonly no`:
/// loopback only, nothing persisted.
pub static REDIS: ServerKind = ServerKind {
    name: "redis",
    url_env: "REDIS_URL",
    binary: "redis-server",
    binary_args: redis_args,
    image_env: "REDIS_IMAGE",
    default_image: "cache-test/redis:latest",
    container_port: 6379,
    container_args: &[],
    container_ready: Ready::Reply {
        request: "PING\r\n",
        reply_prefix: "+PONG",
    },
    url_for: redis_url,
    install_hint: "apt-get install redis-server",
};

/// memcached: `MEMCACHED_URL` names an external server, `MEMCACHED_IMAGE` overrides the
/// image `cache-test/memcached:latest` (built by `scripts/build-test-images`).
///
/// The binary listens on `127.0.0.1` only, without UDP. The container keeps its image's
/// command, and is ready once it answers `version`: that holds for any memcached image,
/// whatever it logs.
pub static MEMCACHED: ServerKind = ServerKind {
    name: "memcached",
    url_env: "MEMCACHED_URL",
    binary: "memcached",
    binary_args: memcached_args,
    image_env: "MEMCACHED_IMAGE",
    default_image: "cache-test/memcached:latest",
    container_port: 11211,
    container_args: &[],
    container_ready: Ready::Reply {
        request: "version\r\n",
        reply_prefix: "VERSION ",
    },
    url_for: memcached_url,
    install_hint: "apt-get install memcached",
};

fn redis_args(port: u16) -> Vec<String> {
    let port = port.to_string();
    [
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect()
}

fn redis_url(host: &str, port: u16) -> String {
    format!("redis://{host}:{port}")
}

fn memcached_args(port: u16) -> Vec<String> {
    // 1 GiB of item memory at most (taken as items come, not at start): the default 64 MiB
    // holds the entries of a few suites' checks at once, and beyond it memcached evicts
    // entries a check is about to read back. A test's own `-m` comes later and wins.
    let mut args: Vec<String> = [
        "-l",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        "0",
        "-m",
        "1024",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    // memcached refuses to start as root unless told which user to run as.
    if running_as_root() {
        args.extend(["-u".to_owned(), "root".to_owned()]);
    }
    args
}

fn memcached_url(host: &str, port: u16) -> String {
    format!("memcache://{host}:{port}")
}

/// Whether this process runs as root (real or effective user id 0), read from `/proc`.
fn running_as_root() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .is_some_and(|ids| ids.split_whitespace().take(2).any(|id| id == "0"))
}

#[cfg(test)]
mod tests {
    use super::{MEMCACHED, REDIS};
    use crate::kind::ServerKind;

    /// Fails unless `kind`'s binary arguments for port 12345 hold each of `pairs` in a row.
    fn assert_args_hold(kind: &ServerKind, pairs: &[[&str; 2]]) {
        let args = (kind.binary_args)(12345);
        for pair in pairs {
            assert!(
                args.windows(2).any(|window| window == pair),
                "{} arguments {args:?} lack {pair:?}",
                kind.name
            );
        }
    }

    #[test]
    fn redis_listens_on_loopback_only_without_persistence() {
        assert_args_hold(
            &REDIS,
            &[
                ["--port", "12345"],
                ["--bind", "127.0.0.1"],
                ["--save", ""],
                ["--appendonly", "no"],
            ],
        );
    }

    #[test]
    fn memcached_listens_on_loopback_only_with_room_for_many_suites() {
        assert_args_hold(
            &MEMCACHED,
            &[
                ["-l", "127.0.0.1"],
                ["-p", "12345"],
                ["-U", "0"],
                ["-m", "1024"],
            ],
        );
    }
}
