//! What every `--json` document of cachectl starts with, so that a reader can tell which
//! layout it holds, which build produced it and when. The fields are described in
//! `crates/cache-cli/README.md`.

use std::time::SystemTime;

use serde::Serialize;

/// The layout version of the `--json` documents: raised when a field is removed or changes
/// meaning, not when one is added.
pub(crate) const SCHEMA: u32 = 1;

/// `"release"` for a build with optimisations, `"debug"` for one without (`cargo run`,
/// `cargo build`): benchmark figures of a debug build are several times lower.
pub(crate) const fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// The fields every `--json` document begins with.
#[derive(Serialize)]
pub(crate) struct Header {
    schema: u32,
    command: &'static str,
    cachectl_version: &'static str,
    build_profile: &'static str,
    /// When the command started, RFC 3339 in UTC.
    timestamp: String,
}

impl Header {
    /// The header of a document `command` (`"check"`, `"bench"`) produces, stamped now.
    pub(crate) fn now(command: &'static str) -> Self {
        Self {
            schema: SCHEMA,
            command,
            cachectl_version: env!("CARGO_PKG_VERSION"),
            build_profile: build_profile(),
            timestamp: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        }
    }
}

/// The backend a URL's scheme names, for reports; the URL itself is parsed by `cache_url`.
pub(crate) fn backend_name(url: &str) -> &'static str {
    let url = cache_url::CacheUrl::parse(url);
    match url.as_ref().map(cache_url::CacheUrl::scheme).ok() {
        Some("memory") => "memory",
        Some("redis" | "rediss" | "redis+unix") => "redis",
        Some("redis+cluster" | "rediss+cluster") => "redis cluster",
        Some("redis+sentinel") => "redis sentinel",
        Some("memcache" | "memcached" | "memcaches" | "memcache+unix") => "memcached",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_schema_profile_and_a_utc_timestamp() {
        let header = serde_json::to_value(Header::now("check")).unwrap();
        assert_eq!(header["schema"], SCHEMA);
        assert_eq!(header["command"], "check");
        assert_eq!(header["build_profile"], build_profile());
        let timestamp = header["timestamp"].as_str().unwrap();
        assert!(
            humantime::parse_rfc3339(timestamp).is_ok() && timestamp.ends_with('Z'),
            "{timestamp}"
        );
    }

    #[test]
    fn backends_are_named_from_the_scheme() {
        assert_eq!(backend_name("memory://"), "memory");
        assert_eq!(backend_name("redis://a:b@h:1"), "redis");
        assert_eq!(backend_name("redis+cluster://h:1,h:2"), "redis cluster");
        assert_eq!(backend_name("memcache://h:1,h:2"), "memcached");
        assert_eq!(backend_name("REDISS+CLUSTER://h:1"), "redis cluster");
        assert_eq!(backend_name("redis+sentinel://h:1/m"), "redis sentinel");
        assert_eq!(backend_name("memcache+unix:///run/m.sock"), "memcached");
        assert_eq!(backend_name("s3cret"), "unknown");
    }
}
