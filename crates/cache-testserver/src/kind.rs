//! The static description of a kind of server: how to find it, start it and address it.
//!
//! One `pub static` [`ServerKind`] describes each kind of server (this crate's own are in
//! `kinds.rs`); everything else in this crate is driven by that description, so another kind of
//! server is declared where it is needed, without code here.

/// Static description of a kind of server (Redis, memcached, ...).
///
/// Declare it as a `static` so every test of a process refers to the same description:
///
/// ```
/// use cache_testserver::{Ready, ServerKind};
///
/// fn redis_args(port: u16) -> Vec<String> {
///     let port = port.to_string();
///     ["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
///         .iter()
///         .map(|arg| arg.to_string())
///         .collect()
/// }
///
/// fn redis_url(host: &str, port: u16) -> String {
///     format!("redis://{host}:{port}")
/// }
///
/// pub static REDIS: ServerKind = ServerKind {
///     name: "redis",
///     url_env: "REDIS_URL",
///     binary: "redis-server",
///     binary_args: redis_args,
///     image_env: "REDIS_IMAGE",
///     default_image: "cache-test/redis:latest",
///     container_port: 6379,
///     container_args: &[],
///     container_ready: Ready::Reply { request: "PING\r\n", reply_prefix: "+PONG" },
///     url_for: redis_url,
///     install_hint: "apt-get install redis-server",
/// };
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ServerKind {
    /// Short name used in messages and container labels, e.g. `"redis"`.
    ///
    /// It is also the key of the per-process shared server: two kinds with the same name share
    /// one server.
    pub name: &'static str,
    /// Environment variable that names an external server to use instead, e.g. `"REDIS_URL"`.
    pub url_env: &'static str,
    /// Server binary, looked up on `PATH` unless it contains a `/`, e.g. `"redis-server"`.
    pub binary: &'static str,
    /// Arguments that make the binary listen on `127.0.0.1:port` in the foreground, without
    /// persistence.
    pub binary_args: fn(port: u16) -> Vec<String>,
    /// Environment variable that overrides the container image, value `"name:tag"`, e.g.
    /// `"REDIS_IMAGE"`.
    pub image_env: &'static str,
    /// Image used when `image_env` is unset, e.g. `"cache-test/redis:latest"` (what
    /// `scripts/build-test-images` builds).
    pub default_image: &'static str,
    /// Port the server listens on inside the container, e.g. `6379`.
    pub container_port: u16,
    /// Command (arguments) given to the container; empty keeps the image's default.
    pub container_args: &'static [&'static str],
    /// How to know the container's server is ready.
    pub container_ready: Ready,
    /// Builds the URL a client uses to reach the server at `host:port`.
    pub url_for: fn(host: &str, port: u16) -> String,
    /// How to install the binary, shown when nothing could be found, e.g.
    /// `"apt-get install redis-server"`.
    pub install_hint: &'static str,
}

/// How to know that a server started in a container is ready for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// The server writes this text on its standard output once it accepts connections.
    StdoutLine(&'static str),
    /// The server writes this text on its standard error once it accepts connections.
    StderrLine(&'static str),
    /// The server answers `request`, sent over TCP to its published port, with a reply that
    /// starts with `reply_prefix`. Works whatever the image logs: memcached prints nothing at
    /// start unless run with `-vv`, and Docker's port proxy accepts connections before the
    /// server inside listens, so only a round trip tells that the server is there.
    Reply {
        /// Bytes sent on a fresh connection, e.g. `"version\r\n"`.
        request: &'static str,
        /// How a ready server's reply starts, e.g. `"VERSION "`.
        reply_prefix: &'static str,
    },
}
