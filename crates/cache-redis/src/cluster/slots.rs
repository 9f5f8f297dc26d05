//! Redis Cluster's slots: which slot a key hashes to, which master serves which slot
//! (read from `CLUSTER SLOTS`), and grouping the keys of a bulk operation by slot.

use std::collections::BTreeMap;

use redis::{Cmd, ErrorKind, RedisError, RedisResult, Value};

/// Number of hash slots of a Redis Cluster.
pub(crate) const SLOT_COUNT: u16 = 16384;

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

pub(super) fn unexpected(what: &'static str) -> RedisError {
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
pub(super) struct SlotCommand {
    pub(super) slot: u16,
    pub(super) command: Cmd,
    pub(super) positions: Vec<usize>,
}

/// The positions of `keys` grouped by slot, slots in ascending order.
pub(super) fn by_slot<'a>(keys: impl Iterator<Item = &'a [u8]>) -> BTreeMap<u16, Vec<usize>> {
    let mut slots: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for (position, key) in keys.enumerate() {
        slots.entry(key_slot(key)).or_default().push(position);
    }
    slots
}

/// One `name` command per slot of `keys`, its arguments added by `args` for each
/// position of the slot, in order.
pub(super) fn per_slot<'a>(
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
}
