//! Running one sequence on a cache, step by step, and judging each answer against the
//! reference model.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use cache_api::{Bytes, Cache, CacheError};

use super::{
    program::{value_of, Key, Op, Program},
    reference::{Bracket, Known, Reference},
};
use crate::{
    failure::{describe, describe_bytes},
    Failure,
};

/// The first step of a sequence whose answer the model does not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StepFailure {
    pub(crate) step: usize,
    pub(crate) failure: Failure,
}

/// Runs `program` on `cache`, a fresh and empty cache whose clock has `granularity`;
/// every call must answer within `op_timeout`.
pub(crate) async fn execute(
    cache: &dyn Cache,
    program: &Program,
    granularity: Duration,
    op_timeout: Duration,
) -> Result<(), StepFailure> {
    let mut model = Reference::new(granularity);
    for (step, op) in program.0.iter().enumerate() {
        let fail = |expected: String, actual: String| StepFailure {
            step,
            failure: Failure::new(
                format!("step {step}: {}", program.statement(step)),
                expected,
                actual,
            ),
        };
        let mut run = Step {
            cache,
            model: &mut model,
            step,
            op_timeout,
        };
        run.op(op)
            .await
            .map_err(|(expected, actual)| fail(expected, actual))?;
    }
    Ok(())
}

/// What a step expected and what came back, when they differ.
type Mismatch = (String, String);

struct Step<'a> {
    cache: &'a dyn Cache,
    model: &'a mut Reference,
    step: usize,
    op_timeout: Duration,
}

impl Step<'_> {
    /// Sends one call, bracketed in time; an error or no answer in time is a mismatch.
    async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, CacheError>>,
    ) -> Result<(T, Bracket), Mismatch> {
        let sent = Instant::now();
        let answer = tokio::time::timeout(self.op_timeout, call).await;
        let at = Bracket {
            sent,
            answered: Instant::now(),
        };
        match answer {
            Ok(Ok(value)) => Ok((value, at)),
            Ok(Err(err)) => Err(("Ok".to_owned(), format!("Err({err}) [{err:?}]"))),
            Err(_) => Err((
                format!("an answer within {:?}", self.op_timeout),
                "none (the backend hung)".to_owned(),
            )),
        }
    }

    async fn op(&mut self, op: &Op) -> Result<(), Mismatch> {
        let cache = self.cache;
        let step = self.step;
        match op {
            Op::Get(key) => {
                let (seen, at) = self.call(cache.get(key.text())).await?;
                self.read(*key, seen.as_ref(), at, "")
            }
            Op::Set(key, ttl) => {
                let value = value_of(*key, step, None);
                let ((), at) = self
                    .call(cache.set(key.text(), value.clone(), *ttl))
                    .await?;
                self.model.set(*key, value, *ttl, at);
                Ok(())
            }
            Op::Delete(key) => {
                let (removed, at) = self.call(cache.delete(key.text())).await?;
                let known = self.model.known(*key, at);
                self.model.saw(*key, false, at);
                expect_flag(&known, removed, "true (a live entry removed)", "false")
            }
            Op::Exists(key) => {
                let (seen, at) = self.call(cache.exists(key.text())).await?;
                let known = self.model.known(*key, at);
                if self.model.accept_exists(*key, seen, at) {
                    return Ok(());
                }
                Err((flag_expected(&known, "true", "false"), seen.to_string()))
            }
            Op::GetMany(keys) => self.get_many(keys).await,
            Op::SetMany(keys, ttl) => {
                let entries: Vec<(&str, Bytes)> = keys
                    .iter()
                    .enumerate()
                    .map(|(at, key)| (key.text(), value_of(*key, step, Some(at))))
                    .collect();
                let ((), at) = self.call(cache.set_many(&entries, *ttl)).await?;
                // In order: of a key named twice, the last value wins.
                for (key, (_, value)) in keys.iter().zip(entries) {
                    self.model.set(*key, value, *ttl, at);
                }
                Ok(())
            }
            Op::DeleteMany(keys) => {
                let texts: Vec<&str> = keys.iter().map(|key| key.text()).collect();
                let (removed, at) = self.call(cache.delete_many(&texts)).await?;
                let (least, most) = self.model.delete_many(keys, at);
                if (least..=most).contains(&removed) {
                    return Ok(());
                }
                let expected = if least == most {
                    format!("{least} (live entries removed)")
                } else {
                    format!("{least} to {most} (some entries expiring)")
                };
                Err((expected, removed.to_string()))
            }
            Op::Add(key, ttl) => self.add(*key, *ttl).await,
            Op::Clear => {
                let ((), _) = self.call(cache.clear()).await?;
                self.model.clear();
                Ok(())
            }
            Op::Sleep(pause) => {
                tokio::time::sleep(*pause).await;
                Ok(())
            }
        }
    }

    /// Judges one read of `key` (a `get`, or a position of `get_many` named by `at_pos`).
    fn read(
        &mut self,
        key: Key,
        seen: Option<&Bytes>,
        at: Bracket,
        at_pos: &str,
    ) -> Result<(), Mismatch> {
        let known = self.model.known(key, at);
        if self.model.accept_read(key, seen, at) {
            return Ok(());
        }
        Err((
            format!("{at_pos}{}", expected_get(&known)),
            format!("{at_pos}{}", describe(&seen.cloned())),
        ))
    }

    async fn get_many(&mut self, keys: &[Key]) -> Result<(), Mismatch> {
        let texts: Vec<&str> = keys.iter().map(|key| key.text()).collect();
        let (answers, at) = self.call(self.cache.get_many(&texts)).await?;
        if answers.len() != keys.len() {
            return Err((
                format!("{} answers", keys.len()),
                format!("{} answers: {answers:?}", answers.len()),
            ));
        }
        for (position, (key, seen)) in keys.iter().zip(&answers).enumerate() {
            self.read(*key, seen.as_ref(), at, &format!("at {position}, "))?;
        }
        Ok(())
    }

    async fn add(&mut self, key: Key, ttl: Option<Duration>) -> Result<(), Mismatch> {
        let value = value_of(key, self.step, None);
        let (added, at) = self
            .call(self.cache.add(key.text(), value.clone(), ttl))
            .await?;
        if ttl.is_some_and(|ttl| ttl.is_zero()) {
            // Nothing stored, nothing changed, whatever was there.
            return match added {
                false => Ok(()),
                true => Err((
                    "false (a zero ttl adds nothing)".to_owned(),
                    "true".to_owned(),
                )),
            };
        }
        let known = self.model.known(key, at);
        expect_flag(&known, !added, "false (present)", "true (absent)")?;
        if added {
            self.model.set(key, value, ttl, at);
        } else {
            self.model.saw(key, true, at);
        }
        Ok(())
    }
}

fn expected_get(known: &Known) -> String {
    match known {
        Known::Absent => "None (a miss)".to_owned(),
        Known::Present(value) => format!("Some({})", describe_bytes(value)),
        Known::MaybeExpired(value) => {
            format!("Some({}) or None (expiring)", describe_bytes(value))
        }
    }
}

fn flag_expected(known: &Known, if_live: &str, if_absent: &str) -> String {
    match known {
        Known::Absent => if_absent.to_owned(),
        Known::Present(_) => if_live.to_owned(),
        Known::MaybeExpired(_) => format!("{if_live} or {if_absent}"),
    }
}

/// Checks a boolean answer that says whether a live entry was there.
fn expect_flag(known: &Known, live: bool, if_live: &str, if_absent: &str) -> Result<(), Mismatch> {
    let allowed = match known {
        Known::Absent => !live,
        Known::Present(_) => live,
        Known::MaybeExpired(_) => true,
    };
    if allowed {
        Ok(())
    } else {
        let actual = if live { if_live } else { if_absent };
        Err((flag_expected(known, if_live, if_absent), actual.to_owned()))
    }
}
