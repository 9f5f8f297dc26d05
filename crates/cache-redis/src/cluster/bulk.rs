//! The cluster operations over many keys, or over every master: keys split by slot,
//! one pipeline per master, every master at once.

use std::{borrow::Cow, collections::BTreeMap, sync::atomic::Ordering};

use cache_api::{Bytes, CacheError};
use futures::future::join_all;
use redis::{
    cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr},
    FromRedisValue, RedisError, RedisResult, Value,
};

use super::{
    is_redirect,
    slots::{by_slot, key_slot, per_slot, unexpected, Master, SlotCommand},
    ClusterBackend,
};
use crate::{
    command::{escape_glob, scan_command, Expiry},
    error::{ErrorContext, BACKEND},
    reply::{Count, Stored},
};

impl ClusterBackend {
    /// Sends `commands` as one pipeline per master (as this cache sees the slots), every
    /// pipeline at once, and returns each command's answer with its positions. A
    /// pipeline that meets a node not serving one of its slots is sent again one command
    /// at a time, each routed (and redirected) by the cluster client on its own.
    async fn bulk(&self, commands: Vec<SlotCommand>) -> RedisResult<Vec<(Vec<usize>, Value)>> {
        if self.stale.load(Ordering::Relaxed) {
            // Only the grouping depends on it: with the old view, the work still gets done.
            let _ = self.refresh_topology().await;
        }
        let topology = self.topology();
        let mut groups: BTreeMap<(usize, u16), Vec<SlotCommand>> = BTreeMap::new();
        for command in commands {
            // A slot no known master serves gets a pipeline of its own.
            let group = match topology.owner(command.slot) {
                Some(owner) => (owner, 0),
                None => (usize::MAX, command.slot),
            };
            groups.entry(group).or_default().push(command);
        }
        let sends = groups.into_values().map(|group| self.send_pipeline(group));
        let mut answers = Vec::new();
        let mut one_by_one = Vec::new();
        for (group, result) in join_all(sends).await {
            match result {
                Ok(values) => {
                    if values.len() != group.len() {
                        return Err(unexpected("a pipeline answered a wrong number of replies"));
                    }
                    let mut redirected = false;
                    for value in &values {
                        if let Value::ServerError(error) = value {
                            let error = RedisError::from(error.clone());
                            if is_redirect(error.kind()) {
                                redirected = true;
                            } else {
                                return Err(error);
                            }
                        }
                    }
                    if redirected {
                        one_by_one.extend(group);
                    } else {
                        answers.extend(
                            group
                                .into_iter()
                                .map(|command| command.positions)
                                .zip(values),
                        );
                    }
                }
                Err(err) if is_redirect(err.kind()) => one_by_one.extend(group),
                Err(err) => return Err(err),
            }
        }
        if !one_by_one.is_empty() {
            self.stale.store(true, Ordering::Relaxed);
            let sends = one_by_one.into_iter().map(|command| async move {
                let mut connection = self.connection();
                let route = Route::new(command.slot, SlotAddr::Master);
                let value = connection
                    .route_command(
                        command.command,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?
                    .extract_error()?;
                Ok::<_, RedisError>((command.positions, value))
            });
            for answer in join_all(sends).await {
                answers.push(answer?);
            }
        }
        Ok(answers)
    }

    /// Sends `group` as one pipeline to the master of its first slot.
    async fn send_pipeline(
        &self,
        group: Vec<SlotCommand>,
    ) -> (Vec<SlotCommand>, RedisResult<Vec<Value>>) {
        let mut pipeline = redis::pipe();
        for command in &group {
            pipeline.add_command(command.command.clone());
        }
        let route = Route::new(group[0].slot, SlotAddr::Master);
        let mut connection = self.connection();
        let result = connection
            .route_pipeline(
                pipeline,
                0,
                group.len(),
                SingleNodeRoutingInfo::SpecificNode(route),
            )
            .await;
        (group, result)
    }

    /// One `MGET` per slot, pipelined per master.
    pub(crate) async fn get_many(
        &self,
        keys: &[Cow<'_, str>],
        errors: &ErrorContext,
    ) -> Result<Vec<Option<Bytes>>, CacheError> {
        let commands = per_slot(
            "MGET",
            keys.iter().map(|key| key.as_bytes()),
            |command, at| {
                command.arg(keys[at].as_ref());
            },
        );
        self.bounded(
            async {
                let mut found = vec![None; keys.len()];
                for (positions, value) in self.bulk(commands).await? {
                    let values = Vec::<Option<Vec<u8>>>::from_redis_value(value)?;
                    if values.len() != positions.len() {
                        return Err(unexpected("mget answered a wrong number of values"));
                    }
                    for (position, value) in positions.into_iter().zip(values) {
                        found[position] = value.map(Bytes::from);
                    }
                }
                Ok(found)
            },
            errors,
        )
        .await
    }

    /// `MSET` per slot (no TTL), `UNLINK` per slot (zero TTL), or one `SET .. PX` per
    /// entry; pipelined per master.
    pub(crate) async fn set_many(
        &self,
        entries: &[(Cow<'_, str>, &Bytes)],
        expiry: &Expiry,
        errors: &ErrorContext,
    ) -> Result<(), CacheError> {
        let commands: Vec<SlotCommand> = match expiry {
            Expiry::Millis(millis) => entries
                .iter()
                .enumerate()
                .map(|(position, (key, value))| {
                    let mut command = redis::cmd("SET");
                    command
                        .arg(key.as_ref())
                        .arg(value.as_ref())
                        .arg("PX")
                        .arg(*millis);
                    SlotCommand {
                        slot: key_slot(key.as_bytes()),
                        command,
                        positions: vec![position],
                    }
                })
                .collect(),
            Expiry::Never | Expiry::Now => {
                let name = if matches!(expiry, Expiry::Never) {
                    "MSET"
                } else {
                    "UNLINK"
                };
                per_slot(
                    name,
                    entries.iter().map(|(key, _)| key.as_bytes()),
                    |command, at| {
                        let (key, value) = &entries[at];
                        command.arg(key.as_ref());
                        if matches!(expiry, Expiry::Never) {
                            command.arg(value.as_ref());
                        }
                    },
                )
            }
        };
        self.bounded(
            async {
                for (_, value) in self.bulk(commands).await? {
                    if matches!(expiry, Expiry::Now) {
                        Count::from_redis_value(value)?;
                    } else {
                        Stored::from_redis_value(value)?;
                    }
                }
                Ok(())
            },
            errors,
        )
        .await
    }

    /// One `UNLINK` per slot, pipelined per master; a key named twice counts once.
    pub(crate) async fn delete_many(
        &self,
        keys: &[Cow<'_, str>],
        errors: &ErrorContext,
    ) -> Result<usize, CacheError> {
        let commands = per_slot(
            "UNLINK",
            keys.iter().map(|key| key.as_bytes()),
            |command, at| {
                command.arg(keys[at].as_ref());
            },
        );
        self.bounded(
            async {
                let mut removed = 0;
                for (_, value) in self.bulk(commands).await? {
                    removed += Count::from_redis_value(value)?.0;
                }
                Ok(removed)
            },
            errors,
        )
        .await
    }

    /// On every master, all at once: `SCAN MATCH prefix*` and an `UNLINK` per slot of
    /// each batch found, or `FLUSHDB ASYNC` without a prefix. The masters are read
    /// afresh from the cluster first.
    pub(crate) async fn clear(
        &self,
        prefix: &str,
        errors: &ErrorContext,
    ) -> Result<(), CacheError> {
        self.bounded(self.refresh_topology(), errors).await?;
        let topology = self.topology();
        if topology.masters.is_empty() {
            return Err(CacheError::Backend {
                backend: BACKEND,
                source: errors.source(unexpected("the cluster has no master serving slots")),
            });
        }
        let walks = topology
            .masters
            .iter()
            .map(|master| self.clear_master(master, prefix, errors));
        for result in join_all(walks).await {
            result?;
        }
        Ok(())
    }

    async fn clear_master(
        &self,
        master: &Master,
        prefix: &str,
        errors: &ErrorContext,
    ) -> Result<(), CacheError> {
        // By address, not by slot: with its master down, a slot's commands may go to
        // another node, and a SCAN there would walk the wrong keys.
        let at_master = || SingleNodeRoutingInfo::ByAddress {
            host: master.host.clone(),
            port: master.port,
        };
        let mut connection = self.connection();
        if prefix.is_empty() {
            let flush = redis::cmd("FLUSHDB").arg("ASYNC").clone();
            return self
                .bounded(
                    async {
                        connection
                            .route_command(flush, RoutingInfo::SingleNode(at_master()))
                            .await
                            .and_then(Value::extract_error)
                            .and_then(|value| Ok(Stored::from_redis_value(value).map(drop)?))
                    },
                    errors,
                )
                .await;
        }
        let pattern = format!("{}*", escape_glob(prefix));
        let mut cursor = 0_u64;
        loop {
            let scan = scan_command(cursor, &pattern);
            let (next, keys) = self
                .bounded(
                    async {
                        let value = connection
                            .route_command(scan, RoutingInfo::SingleNode(at_master()))
                            .await?
                            .extract_error()?;
                        Ok(<(u64, Vec<Vec<u8>>)>::from_redis_value(value)?)
                    },
                    errors,
                )
                .await?;
            if !keys.is_empty() {
                let mut pipeline = redis::pipe();
                let slots = by_slot(keys.iter().map(Vec::as_slice));
                for positions in slots.values() {
                    let command = pipeline.cmd("UNLINK");
                    for position in positions {
                        command.arg(&keys[*position]);
                    }
                }
                self.bounded(
                    async {
                        let values = connection
                            .route_pipeline(pipeline, 0, slots.len(), at_master())
                            .await?;
                        for value in values {
                            value.extract_error()?;
                        }
                        Ok(())
                    },
                    errors,
                )
                .await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}
