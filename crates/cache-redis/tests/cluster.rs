//! Redis Cluster: the whole cache contract on the cluster the tests of this process
//! share (3 masters, 3 replicas), then what is particular to a cluster: keys spread
//! over every master, bulk operations across slots (one pipeline per master), clear on
//! every master, hash-tag prefixes, credentials, and the settings a cluster refuses.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use cache_api::{Bytes, Cache, CacheError};
use cache_redis::{
    testing::{
        cluster, fresh_cache_on, fresh_cache_on_with, fresh_cluster_cache, key_slot, unique_prefix,
        ClusterMaster, ClusterSpec, RedisTestCache,
    },
    ConnectionModel, RedisCache,
};
use common::{
    assert_err, eventually, everything_shown, keys_on, local_cluster, local_server, masters, plain,
};

async fn factory() -> RedisTestCache {
    fresh_cluster_cache().await
}

cache_tck::contract_tests!(factory);
cache_tck::extended_tests!(factory);

/// `n` keys and values, `key-{i}` and `value-{i}`.
fn entries(n: usize) -> Vec<(String, Bytes)> {
    (0..n)
        .map(|i| (format!("key-{i}"), Bytes::from(format!("value-{i}"))))
        .collect()
}

fn borrowed(entries: &[(String, Bytes)]) -> Vec<(&str, Bytes)> {
    entries
        .iter()
        .map(|(key, value)| (key.as_str(), value.clone()))
        .collect()
}

fn keys_of(entries: &[(String, Bytes)]) -> Vec<&str> {
    entries.iter().map(|(key, _)| key.as_str()).collect()
}

/// Writes `entries` in one `set_many`, checks that one `get_many` reads every one back,
/// and returns their keys.
async fn write_and_read_back<'e>(
    cache: &impl Cache,
    entries: &'e [(String, Bytes)],
) -> Vec<&'e str> {
    cache.set_many(&borrowed(entries), None).await.unwrap();
    let keys = keys_of(entries);
    assert!(all_present(cache, &keys).await);
    keys
}

async fn all_present(cache: &impl Cache, keys: &[&str]) -> bool {
    cache
        .get_many(keys)
        .await
        .unwrap()
        .iter()
        .all(Option::is_some)
}

fn master_of<'a>(masters: &'a [ClusterMaster], key: &[u8]) -> &'a ClusterMaster {
    let slot = key_slot(key);
    masters
        .iter()
        .find(|master| master.serves(slot))
        .unwrap_or_else(|| panic!("no master serves slot {slot}: {masters:?}"))
}

/// The keys under `prefix` on each master, by master port.
async fn keys_per_master(masters: &[ClusterMaster], prefix: &str) -> BTreeMap<u16, Vec<Vec<u8>>> {
    let mut found = BTreeMap::new();
    for master in masters {
        found.insert(
            master.port,
            keys_on(&master.url, &format!("{prefix}*")).await,
        );
    }
    found
}

/// Keys without a hash tag spread over all three masters, each key on the master that
/// serves its slot; the slot computed here is the one `CLUSTER KEYSLOT` gives.
#[tokio::test]
async fn keys_spread_over_the_three_masters() {
    let cache = fresh_cluster_cache().await;
    let url = cluster().await.url();
    let masters = masters(url);
    assert_eq!(masters.len(), 3, "{masters:?}");
    let seeds = cluster().await.seed_urls();
    assert!(
        !seeds.is_empty() && seeds.iter().all(|seed| seed.starts_with("redis://")),
        "seeds of the shared cluster: {} of them",
        seeds.len()
    );

    let entries = entries(300);
    cache.set_many(&borrowed(&entries), None).await.unwrap();
    let found = keys_per_master(&masters, cache.prefix()).await;
    let mut total = 0;
    for master in &masters {
        let keys = &found[&master.port];
        assert!(
            keys.len() >= 50,
            "master {master:?} holds only {} of 300 keys",
            keys.len()
        );
        for key in keys {
            assert!(
                master.serves(key_slot(key)),
                "key {:?} is on {master:?}, which does not serve its slot {}",
                String::from_utf8_lossy(key),
                key_slot(key)
            );
        }
        total += keys.len();
    }
    assert_eq!(total, 300, "{found:?}");

    let mut client = plain(&masters[0].url).await;
    for (key, _) in entries.iter().take(50) {
        let full = format!("{}{key}", cache.prefix());
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&full)
            .query_async(&mut client)
            .await
            .unwrap();
        assert_eq!(slot, key_slot(full.as_bytes()), "slot of {full:?}");
    }
}

/// `get_many` and `delete_many` over keys of every master, with misses and repeated
/// keys, answer in the caller's order, count each removed key once, and leave the
/// other keys in place.
#[tokio::test]
async fn get_many_and_delete_many_across_slots_are_correct() {
    let cache = fresh_cluster_cache().await;
    let masters = masters(cluster().await.url());
    let entries = entries(120);
    let present: Vec<(&str, Bytes)> = borrowed(&entries).into_iter().step_by(2).collect();
    cache.set_many(&present, None).await.unwrap();

    let mut asked: Vec<&str> = entries.iter().rev().map(|(key, _)| key.as_str()).collect();
    asked.extend(["key-0", "key-1", "key-0", "never-set"]);
    let got = cache.get_many(&asked).await.unwrap();
    assert_eq!(got.len(), asked.len());
    for (key, value) in asked.iter().zip(&got) {
        let index: Option<usize> = key.strip_prefix("key-").map(|i| i.parse().unwrap());
        let expected = index
            .filter(|i| i.is_multiple_of(2))
            .map(|i| Bytes::from(format!("value-{i}")));
        assert_eq!(value, &expected, "get_many answered wrongly for {key}");
    }
    let involved: BTreeSet<u16> = present
        .iter()
        .map(|(key, _)| master_of(&masters, format!("{}{key}", cache.prefix()).as_bytes()).port)
        .collect();
    assert_eq!(involved.len(), 3, "the keys did not span every master");

    // Every even key of the first 60, twice, plus misses: 30 removed.
    let mut doomed: Vec<&str> = entries[..60].iter().map(|(key, _)| key.as_str()).collect();
    doomed.extend(entries[..60].iter().map(|(key, _)| key.as_str()));
    doomed.push("never-set");
    assert_eq!(cache.delete_many(&doomed).await.unwrap(), 30);

    let left = keys_per_master(&masters, cache.prefix()).await;
    let left: BTreeSet<String> = left
        .values()
        .flatten()
        .map(|key| String::from_utf8_lossy(&key[cache.prefix().len()..]).into_owned())
        .collect();
    let expected: BTreeSet<String> = (60..120).step_by(2).map(|i| format!("key-{i}")).collect();
    assert_eq!(left, expected);
    assert_eq!(cache.delete_many(&doomed).await.unwrap(), 0);
}

/// `set_many` with a TTL lands as the PTTL of every key on every master; without a
/// TTL it removes old TTLs; a zero TTL removes every key.
#[tokio::test]
async fn set_many_with_a_ttl_sets_it_on_every_master() {
    let cache = fresh_cluster_cache().await;
    let masters = masters(cluster().await.url());
    let entries = entries(90);
    let pttls = |prefix: String| {
        let masters = masters.clone();
        let keys: Vec<String> = entries
            .iter()
            .map(|(key, _)| format!("{prefix}{key}"))
            .collect();
        async move {
            let mut pttls = Vec::new();
            for key in keys {
                let mut client = plain(&master_of(&masters, key.as_bytes()).url).await;
                let pttl: i64 = redis::cmd("PTTL")
                    .arg(&key)
                    .query_async(&mut client)
                    .await
                    .unwrap();
                pttls.push(pttl);
            }
            pttls
        }
    };

    cache
        .set_many(&borrowed(&entries), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    for pttl in pttls(cache.prefix().to_owned()).await {
        assert!(
            (50_000..=60_000).contains(&pttl),
            "PTTL {pttl} after a 60 s ttl"
        );
    }
    cache.set_many(&borrowed(&entries), None).await.unwrap();
    for pttl in pttls(cache.prefix().to_owned()).await {
        assert_eq!(pttl, -1, "a set_many without ttl must remove the old ttl");
    }
    cache
        .set_many(&borrowed(&entries), Some(Duration::ZERO))
        .await
        .unwrap();
    for pttl in pttls(cache.prefix().to_owned()).await {
        assert_eq!(pttl, -2, "a zero ttl must remove the key");
    }
}

fn info_field(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map_or(0, |value| value.trim().parse().unwrap())
}

fn command_calls(info: &str, command: &str) -> u64 {
    let wanted = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&wanted))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

/// Runs `operation` and returns, per master, how many reads of requests it cost the
/// server and its `INFO commandstats` afterwards. On a cluster of the test's own, with
/// no replicas, nothing else talks to the masters.
async fn measured<F, Fut>(masters: &[ClusterMaster], operation: F) -> Vec<(u64, String)>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut clients = Vec::new();
    for master in masters {
        let mut client = plain(&master.url).await;
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut client)
            .await
            .unwrap();
        clients.push(client);
    }
    operation().await;
    let mut measured = Vec::new();
    for client in &mut clients {
        let info: String = redis::cmd("INFO")
            .arg("all")
            .query_async(client)
            .await
            .unwrap();
        // The INFO itself is one read; RESETSTAT came before the counting started.
        let reads = info_field(&info, "total_reads_processed").saturating_sub(1);
        measured.push((reads, info));
    }
    measured
}

/// A bulk operation costs each master involved one read of requests (one pipeline),
/// whatever the number of keys and slots, and masters not involved nothing; each slot
/// gets one command (a node refuses multi-key commands across slots).
#[tokio::test]
async fn bulk_operations_take_one_round_trip_per_master() {
    let cluster = local_cluster(&ClusterSpec::new().replicas_per_master(0)).await;
    let masters = masters(&cluster.url());
    let cache = RedisCache::builder(&cluster.url())
        .key_prefix("rt:")
        .build()
        .await
        .unwrap();
    let entries = entries(300);
    let keys = keys_of(&entries);
    let slots_of = |master: &ClusterMaster| {
        keys.iter()
            .map(|key| key_slot(format!("rt:{key}").as_bytes()))
            .filter(|slot| master.serves(*slot))
            .collect::<BTreeSet<u16>>()
            .len() as u64
    };

    let stats = measured(&masters, || async {
        cache.set_many(&borrowed(&entries), None).await.unwrap();
    })
    .await;
    for (master, (reads, info)) in masters.iter().zip(&stats) {
        assert_eq!(
            *reads, 1,
            "set_many (mset) read by {master:?} in {reads} reads"
        );
        assert_eq!(command_calls(info, "mset"), slots_of(master), "{info}");
    }

    let stats = measured(&masters, || async {
        let got = cache.get_many(&keys).await.unwrap();
        assert!(got.iter().all(Option::is_some));
    })
    .await;
    for (master, (reads, info)) in masters.iter().zip(&stats) {
        assert_eq!(*reads, 1, "get_many read by {master:?} in {reads} reads");
        assert_eq!(command_calls(info, "mget"), slots_of(master), "{info}");
        assert_eq!(command_calls(info, "get"), 0, "{info}");
    }

    let stats = measured(&masters, || async {
        cache
            .set_many(&borrowed(&entries), Some(Duration::from_secs(60)))
            .await
            .unwrap();
    })
    .await;
    for (master, (reads, info)) in masters.iter().zip(&stats) {
        assert_eq!(
            *reads, 1,
            "set_many (ttl) read by {master:?} in {reads} reads"
        );
        let on_master = keys
            .iter()
            .filter(|key| master.serves(key_slot(format!("rt:{key}").as_bytes())))
            .count() as u64;
        assert_eq!(command_calls(info, "set"), on_master, "{info}");
    }

    // Keys of the first master only: the others are not asked anything.
    let first_only: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|key| masters[0].serves(key_slot(format!("rt:{key}").as_bytes())))
        .collect();
    let stats = measured(&masters, || async {
        assert_eq!(
            cache.delete_many(&first_only).await.unwrap(),
            first_only.len()
        );
    })
    .await;
    assert_eq!(stats[0].0, 1, "delete_many read in {} reads", stats[0].0);
    assert_eq!(stats[1].0, 0, "a master without any of the keys was asked");
    assert_eq!(stats[2].0, 0, "a master without any of the keys was asked");

    let stats = measured(&masters, || async {
        assert_eq!(
            cache.delete_many(&keys).await.unwrap(),
            keys.len() - first_only.len()
        );
    })
    .await;
    for (master, (reads, info)) in masters.iter().zip(&stats) {
        assert_eq!(*reads, 1, "delete_many read by {master:?} in {reads} reads");
        assert_eq!(command_calls(info, "unlink"), slots_of(master), "{info}");
    }
}

/// `clear` with a prefix removes the prefix's keys from every master and leaves the
/// keys of another prefix, and keys under no prefix, on every master.
#[tokio::test]
async fn clear_with_a_prefix_empties_it_on_every_master_and_nothing_else() {
    let url = cluster().await.url();
    let masters = masters(url);
    let doomed = fresh_cluster_cache().await;
    let kept = fresh_cluster_cache().await;
    let entries = entries(150);
    doomed.set_many(&borrowed(&entries), None).await.unwrap();
    kept.set_many(&borrowed(&entries), None).await.unwrap();
    // Keys under no cache prefix, written by a cache whose own keys start with the
    // doomed prefix minus its last character: a prefix "match" must not reach them.
    let shorter = &doomed.prefix()[..doomed.prefix().len() - 1];
    let outsider = RedisCache::builder(url)
        .key_prefix(format!("{shorter}-"))
        .build()
        .await
        .unwrap();
    outsider
        .set_many(&borrowed(&entries[..30]), None)
        .await
        .unwrap();

    let before = keys_per_master(&masters, doomed.prefix()).await;
    assert!(before.values().all(|keys| !keys.is_empty()), "{before:?}");

    doomed.clear().await.unwrap();
    let after = keys_per_master(&masters, doomed.prefix()).await;
    for (port, keys) in &after {
        assert!(
            keys.is_empty(),
            "master {port} still holds {} keys",
            keys.len()
        );
    }
    let kept_keys = keys_of(&entries);
    let got = kept.get_many(&kept_keys).await.unwrap();
    assert!(
        got.iter().all(Option::is_some),
        "clear removed keys of another prefix"
    );
    let outsiders = outsider.get_many(&kept_keys[..30]).await.unwrap();
    assert!(
        outsiders.iter().all(Option::is_some),
        "clear removed an outsider's keys"
    );
    outsider.clear().await.unwrap();
    assert_eq!(
        keys_per_master(&masters, &format!("{shorter}-"))
            .await
            .values()
            .map(Vec::len)
            .sum::<usize>(),
        0
    );
}

/// Without a prefix, `clear` is `FLUSHDB ASYNC` on every master: every master ends
/// empty (on a cluster of the test's own).
#[tokio::test]
async fn clear_without_a_prefix_flushes_every_master() {
    let cluster = local_cluster(&ClusterSpec::new().replicas_per_master(0)).await;
    let masters = masters(&cluster.url());
    let cache = RedisCache::connect(&cluster.url()).await.unwrap();
    cache
        .set_many(&borrowed(&entries(200)), None)
        .await
        .unwrap();
    for master in &masters {
        assert!(
            !keys_on(&master.url, "*").await.is_empty(),
            "{master:?} is empty"
        );
    }
    cache.clear().await.unwrap();
    for master in &masters {
        let mut client = plain(&master.url).await;
        let mut size = u64::MAX;
        // FLUSHDB ASYNC frees in the background, but the keys are gone at once.
        for _ in 0..50 {
            size = redis::cmd("DBSIZE").query_async(&mut client).await.unwrap();
            if size == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(size, 0, "{master:?} still holds keys");
    }
}

/// A prefix with a hash tag (`{tag}:`) puts every key in one slot, so on one master;
/// bulk operations are then one command, and everything still works.
#[tokio::test]
async fn a_hash_tag_prefix_puts_every_key_on_one_master() {
    let url = cluster().await.url();
    let masters = masters(url);
    let tag = unique_prefix();
    let prefix = format!("{{{}}}:", tag.trim_end_matches(':'));
    let cache = RedisCache::builder(url)
        .key_prefix(prefix.clone())
        .build()
        .await
        .unwrap();
    let entries = entries(100);
    cache
        .set_many(&borrowed(&entries), Some(Duration::from_secs(600)))
        .await
        .unwrap();
    let found = keys_per_master(&masters, &prefix.replace('{', "\\{").replace('}', "\\}")).await;
    let holders: Vec<_> = found.iter().filter(|(_, keys)| !keys.is_empty()).collect();
    assert_eq!(
        holders.len(),
        1,
        "keys of one hash tag on several masters: {found:?}"
    );
    assert_eq!(holders[0].1.len(), 100);

    let keys = keys_of(&entries);
    let got = cache.get_many(&keys).await.unwrap();
    assert!(got.iter().all(Option::is_some));
    assert_eq!(cache.delete_many(&keys[..10]).await.unwrap(), 10);
    cache.clear().await.unwrap();
    let found = keys_per_master(&masters, &prefix.replace('{', "\\{").replace('}', "\\}")).await;
    assert!(found.values().all(Vec::is_empty), "{found:?}");
}

/// The fixture cleans up after itself on a cluster too: dropping a fixture cache
/// removes its keys from every master, whether they fill several `SCAN` batches on
/// every master or sit on one master only.
#[tokio::test]
async fn dropping_a_fixture_cache_removes_its_keys_from_every_master() {
    let url = cluster().await.url();
    let masters = masters(url);
    for count in [2000, 1] {
        let cache = fresh_cache_on(url).await;
        let prefix = cache.prefix().to_owned();
        cache
            .set_many(&borrowed(&entries(count)), None)
            .await
            .unwrap();
        let before = keys_per_master(&masters, &prefix).await;
        assert_eq!(before.values().map(Vec::len).sum::<usize>(), count);
        drop(cache);
        let after = keys_per_master(&masters, &prefix).await;
        assert_eq!(after.values().map(Vec::len).sum::<usize>(), 0, "{after:?}");
    }
}

/// Settings that have no meaning on a cluster are refused before connecting: another
/// database than 0 (by method or in a URL), several connections, a pool.
#[tokio::test]
async fn settings_that_do_not_apply_to_a_cluster_are_refused() {
    let url = cluster().await.url();
    let seeds = ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"];
    for (what, result) in [
        (
            "database(2)",
            RedisCache::builder(url).database(2).build().await,
        ),
        (
            "a seed naming database 3",
            RedisCache::cluster_builder(["redis://127.0.0.1:7000/3"])
                .build()
                .await,
        ),
        (
            "a cluster url naming database 1",
            RedisCache::connect("redis+cluster://127.0.0.1:7000,127.0.0.1:7001/1").await,
        ),
        (
            "connections(2)",
            RedisCache::builder(url)
                .connection_model(ConnectionModel::Multiplexed { connections: 2 })
                .build()
                .await,
        ),
        (
            "pooled(2)",
            RedisCache::cluster_builder(seeds)
                .connection_model(ConnectionModel::Pooled { max_size: 2 })
                .build()
                .await,
        ),
        (
            "no seed",
            RedisCache::cluster_builder(Vec::<String>::new())
                .build()
                .await,
        ),
        (
            "an empty host in the list",
            RedisCache::connect("redis+cluster://127.0.0.1:7000,,127.0.0.1:7001").await,
        ),
        (
            "seeds with different passwords",
            RedisCache::cluster_builder([
                "redis://:a-pw@127.0.0.1:7000",
                "redis://:b-pw@127.0.0.1:7001",
            ])
            .build()
            .await,
        ),
    ] {
        assert_err(result, &format!("Config for {what}"), |err| {
            matches!(err, CacheError::Config { message }
                if !message.contains("a-pw") && !message.contains("b-pw"))
        });
    }
    // Database 0 is no contradiction.
    let cache = RedisCache::builder(url).database(0).build().await.unwrap();
    assert_eq!(cache.database(), 0);
    assert!(cache.is_cluster());
}

/// `redis+cluster://` and `cluster_builder` with seed URLs reach the same cluster: a
/// key written through one is read through the other, and a plain client reads the
/// raw bytes on the master of its slot.
#[tokio::test]
async fn the_url_form_and_the_seed_list_reach_the_same_cluster() {
    let url = cluster().await.url();
    let masters = masters(url);
    let prefix = unique_prefix();
    let from_url = RedisCache::builder(url)
        .key_prefix(prefix.clone())
        .build()
        .await
        .unwrap();
    // One seed is enough: the other nodes are found from it.
    let seed = masters[1].url.clone();
    let from_seeds = RedisCache::cluster_builder([seed])
        .key_prefix(prefix.clone())
        .build()
        .await
        .unwrap();
    let value = Bytes::from_static(b"\x00\xffraw bytes\r\n");
    from_url.set("shared", value.clone(), None).await.unwrap();
    assert_eq!(from_seeds.get("shared").await.unwrap(), Some(value.clone()));
    let full = format!("{prefix}shared");
    let mut client = plain(&master_of(&masters, full.as_bytes()).url).await;
    let raw: Vec<u8> = redis::cmd("GET")
        .arg(&full)
        .query_async(&mut client)
        .await
        .unwrap();
    assert_eq!(raw, value.to_vec());
    assert!(from_seeds.delete("shared").await.unwrap());
    assert!(format!("{from_url:?}").contains("cluster"), "{from_url:?}");
}

const PASSWORD: &str = "Cluster-pw-of-the-test-4417";

/// On a cluster whose nodes ask for a password, the URL's password reaches every node
/// (keys of every master work); a wrong one or none gives `Auth`; no error and no
/// `Debug` output shows it.
#[tokio::test]
async fn a_password_protected_cluster_works_and_never_shows_the_password() {
    let cluster =
        local_cluster(&ClusterSpec::new().replicas_per_master(0).password(PASSWORD)).await;
    let cache = RedisCache::builder(&cluster.url())
        .key_prefix("auth:")
        .build()
        .await
        .unwrap();
    let entries = entries(60);
    write_and_read_back(&cache, &entries).await;
    for master in masters(&cluster.url()) {
        assert!(
            !keys_on(&master.url, "auth:*").await.is_empty(),
            "{master:?}"
        );
    }
    cache.clear().await.unwrap();
    assert!(!format!("{cache:?}").contains(PASSWORD), "{cache:?}");
    let builder = RedisCache::builder(&cluster.url());
    assert!(!format!("{builder:?}").contains(PASSWORD), "{builder:?}");
    let seeds = RedisCache::cluster_builder(cluster.seed_urls());
    assert!(!format!("{seeds:?}").contains(PASSWORD), "{seeds:?}");

    let wrong = cluster.url().replace(PASSWORD, "not-the-password");
    let none = cluster.url().replace(&format!(":{PASSWORD}@"), "");
    for (what, url) in [("a wrong password", wrong), ("no password", none)] {
        match RedisCache::connect(&url).await {
            Err(err @ CacheError::Auth { .. }) => {
                let shown = everything_shown(&err);
                assert!(!shown.contains(PASSWORD), "{what}: {shown}");
            }
            other => panic!("{what}: expected Auth, got {other:?}"),
        }
    }
}

/// A login refused when the cluster client reconnects (every node's password changed, then
/// its connections killed) fails calls; once the password is the cache's again, the same
/// cache is served again by itself.
#[tokio::test]
async fn a_login_refused_on_reconnect_heals_once_the_password_is_back() {
    let cluster =
        local_cluster(&ClusterSpec::new().replicas_per_master(0).password(PASSWORD)).await;
    let cache = RedisCache::builder(&cluster.url())
        .key_prefix("relogin:")
        .timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let entries = entries(30);
    let keys = write_and_read_back(&cache, &entries).await;

    let mut admins = Vec::new();
    for node in cluster.nodes() {
        let url = format!("redis://:{PASSWORD}@127.0.0.1:{}", node.port());
        admins.push(plain(&url).await);
    }
    for admin in &mut admins {
        common::set_requirepass(admin, "another-password").await;
        common::kill_other_clients(admin).await;
    }
    let mut failed = 0;
    for _ in 0..6 {
        if cache.get_many(&keys).await.is_err() {
            failed += 1;
        }
    }
    assert!(failed > 0, "no call failed under the other password");

    for admin in &mut admins {
        common::set_requirepass(admin, PASSWORD).await;
    }
    eventually(Duration::from_secs(5), || cache.get_many(&keys))
        .await
        .unwrap_or_else(|err| panic!("not served again: {err}"));
    assert!(all_present(&cache, &keys).await);
    cache.clear().await.unwrap();
}

/// A `redis+cluster://` URL naming a server without cluster support is a `Config`
/// error that says so.
#[tokio::test]
async fn a_server_without_cluster_support_is_a_config_error() {
    let server = local_server(&[]).await;
    let url = format!("redis+cluster://127.0.0.1:{}", server.port());
    assert_err(
        RedisCache::connect(&url).await,
        "Config naming the cluster",
        |err| matches!(err, CacheError::Config { message } if message.contains("not a redis cluster")),
    );
}

/// Seeds where nothing listens fail within the timeouts, as backend trouble.
#[tokio::test]
async fn unreachable_seeds_fail_within_the_timeouts() {
    let ports = [
        cache_redis::testing::free_port(),
        cache_redis::testing::free_port(),
    ];
    let url = format!(
        "redis+cluster://127.0.0.1:{},127.0.0.1:{}",
        ports[0], ports[1]
    );
    let start = Instant::now();
    let result = RedisCache::builder(&url)
        .timeout(Duration::from_millis(500))
        .build()
        .await;
    let named = format!("127.0.0.1:{}, 127.0.0.1:{}", ports[0], ports[1]);
    assert_err(
        result,
        "Unreachable naming the seeds, or Timeout",
        |err| match err {
            CacheError::Unreachable { .. } => err.to_string().contains(&named),
            _ => matches!(err, CacheError::Timeout { .. }),
        },
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
}

/// Timeouts too long for the clock to add (`Duration::MAX`, a URL's `584542046090y`) are
/// the longest timeout (an hour) rather than a panic: the cluster is used as with any
/// other, and seeds where nothing listens still fail at once.
#[tokio::test]
async fn timeouts_too_long_for_the_clock_work_as_the_longest() {
    let url = cluster().await.url().to_owned();
    let cache = fresh_cache_on_with(&url, |builder| builder.timeout(Duration::MAX)).await;
    let entries = entries(8);
    let keys = write_and_read_back(&cache, &entries).await;
    assert_eq!(cache.delete_many(&keys).await.unwrap(), keys.len());
    let dead = format!(
        "redis+cluster://127.0.0.1:{}?timeout=584542046090y",
        cache_redis::testing::free_port()
    );
    assert_err(RedisCache::connect(&dead).await, "Unreachable", |err| {
        matches!(err, CacheError::Unreachable { .. })
    });
}

/// Moves `slot` to `to` on every master by hand (`CLUSTER SETSLOT .. NODE`, the slot
/// being empty), with a new epoch for `to` so that gossip keeps the move.
async fn move_empty_slot(masters: &[ClusterMaster], slot: u16, to: &ClusterMaster) {
    let mut target = plain(&to.url).await;
    for command in [
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("NODE")
            .arg(&to.id)
            .clone(),
        redis::cmd("CLUSTER").arg("BUMPEPOCH").clone(),
    ] {
        let _: redis::Value = command.query_async(&mut target).await.unwrap();
    }
    for master in masters.iter().filter(|master| master.id != to.id) {
        let mut client = plain(&master.url).await;
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("NODE")
            .arg(&to.id)
            .query_async(&mut client)
            .await
            .unwrap();
    }
    let start = Instant::now();
    loop {
        let mut agreed = true;
        for master in masters {
            let seen = common::masters(&master.url);
            agreed &= seen.iter().any(|m| m.id == to.id && m.serves(slot));
        }
        if agreed {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the masters do not agree that slot {slot} moved"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After a slot moved to another master behind the cache's back (resharding), single
/// operations follow the `MOVED` redirect, and bulk operations whose per-master
/// pipeline meets it are sent again one command at a time: every result is still
/// right, and the key lands on its new master.
#[tokio::test]
async fn operations_stay_correct_after_a_slot_moved_to_another_master() {
    let cluster = local_cluster(&ClusterSpec::new().replicas_per_master(0)).await;
    let before = masters(&cluster.url());
    let cache = RedisCache::builder(&cluster.url())
        .key_prefix("mv:")
        .build()
        .await
        .unwrap();
    let entries = entries(60);
    let full = |key: &str| format!("mv:{key}");
    // A key of the first master moves to the second with its (empty) slot.
    let (moving, _) = entries
        .iter()
        .find(|(key, _)| before[0].serves(key_slot(full(key).as_bytes())))
        .unwrap();
    let slot = key_slot(full(moving).as_bytes());
    let others: Vec<(&str, Bytes)> = borrowed(&entries)
        .into_iter()
        .filter(|(key, _)| key_slot(full(key).as_bytes()) != slot)
        .collect();
    cache.set_many(&others, None).await.unwrap();
    move_empty_slot(&before, slot, &before[1]).await;

    // One key: the cluster client follows MOVED by itself.
    cache.set(moving, Bytes::from("moved"), None).await.unwrap();
    assert_eq!(cache.get(moving).await.unwrap(), Some(Bytes::from("moved")));
    let on_new_master = keys_on(&before[1].url, &full(moving)).await;
    assert_eq!(on_new_master.len(), 1, "the key is not on its new master");

    // Bulk: the first master's pipeline meets the moved slot.
    cache.set_many(&borrowed(&entries), None).await.unwrap();
    let keys = keys_of(&entries);
    let got = cache.get_many(&keys).await.unwrap();
    for ((key, value), got) in entries.iter().zip(&got) {
        assert_eq!(got.as_ref(), Some(value), "{key}");
    }
    assert!(keys_on(&before[0].url, &full(moving)).await.is_empty());
    assert_eq!(keys_on(&before[1].url, &full(moving)).await.len(), 1);
    assert_eq!(cache.delete_many(&keys).await.unwrap(), keys.len());
    assert!(cache
        .get_many(&keys)
        .await
        .unwrap()
        .iter()
        .all(Option::is_none));
}

/// A plain `redis://` URL to a node of a cluster is refused at build, naming the scheme
/// to use, rather than connecting and seeing the keys of other nodes' slots refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_url_to_a_cluster_node_is_refused_naming_the_cluster_scheme() {
    let node = &masters(cluster().await.url())[0];
    let err = match RedisCache::builder(&node.url).build().await {
        Ok(_) => panic!(
            "a plain connection to cluster node {} was accepted",
            node.port
        ),
        Err(err) => err,
    };
    assert!(matches!(err, CacheError::Config { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("redis+cluster://") && message.contains(&node.port.to_string()),
        "{message}"
    );
}

/// Nodes that close idle connections (`timeout 1`): the first calls after a quiet spell
/// work, as on a single server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_closing_idle_connections_fail_no_call() {
    let cluster = local_cluster(&ClusterSpec::new().replicas_per_master(0)).await;
    for master in masters(&cluster.url()) {
        let mut admin = plain(&master.url).await;
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("timeout")
            .arg("1")
            .query_async::<()>(&mut admin)
            .await
            .unwrap();
    }
    let cache = RedisCache::builder(&cluster.url())
        .timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let entries = entries(30);
    cache.set_many(&borrowed(&entries), None).await.unwrap();
    for round in 0..2 {
        tokio::time::sleep(Duration::from_millis(2300)).await;
        for (key, value) in &entries {
            let read = cache.get(key).await;
            assert!(
                matches!(&read, Ok(Some(found)) if found == value),
                "round {round}, {key} after the quiet spell: {read:?}"
            );
        }
    }
}
