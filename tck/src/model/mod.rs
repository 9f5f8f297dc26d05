//! Model-based property tests: random sequences of operations run on a real cache and
//! compared, answer by answer, with a reference model (a map with expiry windows).
//!
//! Where the checks of [`CHECKS`](crate::CHECKS) pin one rule each, a model run mixes
//! every operation the backend declares (`get`, `set` with and without TTLs, `delete`,
//! `exists`, `get_many`, `set_many`, `delete_many`, and `add` and `clear` when
//! [declared](cache_api::Capabilities)) over a handful of keys, so that they keep
//! landing on the same entries, with pauses that let short TTLs run out. Keys come from
//! a small alphabet that includes keys a backend must encode (spaces, a line break,
//! non-ASCII text, 300 bytes); every value names its key and the step that wrote it.
//!
//! Expiry is judged with a tolerance of the backend's declared TTL granularity: each
//! call is bracketed by the instants before it was sent and after it answered, and an
//! entry with a TTL may be there or not from one granularity before its (rounded up)
//! TTL ran out to one granularity after. Inside that window both answers are accepted,
//! and the one seen is remembered: a miss means gone for good.
//!
//! A failing sequence is shrunk (proptest) and reported as the Rust calls that replay
//! it, with the step that went wrong and the seed that draws it again.
//!
//! ```no_run
//! // [dev-dependencies] cache-tck = { git = "https://github.com/cache-contract/cache-rs" }
//! # use cache_api::{async_trait, Bytes, Cache, CacheError};
//! # struct MyCache;
//! # #[async_trait] impl Cache for MyCache {
//! #   async fn get(&self, _: &str) -> Result<Option<Bytes>, CacheError> { Ok(None) }
//! #   async fn set(&self, _: &str, _: Bytes, _: Option<std::time::Duration>) -> Result<(), CacheError> { Ok(()) }
//! #   async fn delete(&self, _: &str) -> Result<bool, CacheError> { Ok(false) }
//! # }
//! async fn fresh_cache() -> MyCache {
//!     MyCache // fresh and empty: a namespace of its own on a shared server
//! }
//!
//! // The body of a #[tokio::test]:
//! async fn keeps_the_model() {
//!     let config = cache_tck::model::Config::from_env().expect("CACHE_MODEL_CASES");
//!     match cache_tck::model::run(fresh_cache, &config).await {
//!         Ok(report) => println!("{report}"),
//!         Err(failure) => panic!("{failure}"),
//!     }
//! }
//! //! ```

mod exec;
mod program;
mod reference;

use std::{
    fmt,
    future::Future,
    time::{Duration, Instant},
};

use cache_api::{Bytes, Cache, CacheError, Capabilities};
use futures::future::join_all;
use proptest::{
    strategy::{Strategy, ValueTree},
    test_runner::{RngAlgorithm, TestRng, TestRunner},
};

pub use program::{Key, Op, Program};

use exec::{execute, StepFailure};
use program::Plan;

/// The environment variable that sets [`Config::cases`].
pub const CASES_ENV: &str = "CACHE_MODEL_CASES";

/// The environment variable that sets [`Config::seed`], to draw a failing run again.
pub const SEED_ENV: &str = "CACHE_MODEL_SEED";

/// How many sequences a run draws, how long they are, and how long it may take.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Sequences drawn (each on a fresh cache). Default 32, or [`CASES_ENV`].
    pub cases: u32,
    /// Longest sequence, in operations. Default 40.
    pub max_ops: usize,
    /// Sequences run at once, each on its own cache. Default 8.
    pub parallel: usize,
    /// The time scale of TTLs and pauses: short TTLs of 2 and 3 units, pauses of 1 and
    /// 3.5; raised to the backend's TTL granularity. Default 100 ms.
    pub time_unit: Duration,
    /// No new sequence starts after this (the run reports how many ran). Default 90 s.
    pub time_budget: Duration,
    /// Runs spent shrinking a failing sequence, at most. Default 200.
    pub shrink_runs: u32,
    /// Time spent shrinking a failing sequence, at most. Default 60 s.
    pub shrink_time: Duration,
    /// The longest one call may take before it counts as hung. Default 30 s.
    pub op_timeout: Duration,
    /// Seed of the sequences: the same seed draws the same sequences. Default random,
    /// or [`SEED_ENV`].
    pub seed: u64,
    /// Writes an entry through a second cache of the factory before each sequence and
    /// reads it back after: a `clear` must stay within its own namespace. Default true.
    pub bystander: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cases: 32,
            max_ops: 40,
            parallel: 8,
            time_unit: Duration::from_millis(100),
            time_budget: Duration::from_secs(90),
            shrink_runs: 200,
            shrink_time: Duration::from_secs(60),
            op_timeout: Duration::from_secs(30),
            seed: random_seed(),
            bystander: true,
        }
    }
}

impl Config {
    /// The defaults, with [`CASES_ENV`] and [`SEED_ENV`] read when set.
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] when one of them is set but is not a whole number.
    pub fn from_env() -> Result<Self, CacheError> {
        let mut config = Self::default();
        if let Some(cases) = env_number(CASES_ENV)? {
            config.cases = u32::try_from(cases)
                .map_err(|_| CacheError::config(format!("{CASES_ENV} is too large")))?;
        }
        if let Some(seed) = env_number(SEED_ENV)? {
            config.seed = seed;
        }
        Ok(config)
    }

    /// The same, drawing `cases` sequences.
    #[must_use]
    pub fn with_cases(mut self, cases: u32) -> Self {
        self.cases = cases;
        self
    }

    /// The same, with sequences of at most `max_ops` operations.
    #[must_use]
    pub fn with_max_ops(mut self, max_ops: usize) -> Self {
        self.max_ops = max_ops;
        self
    }

    /// The same, running `parallel` sequences at once (at least one).
    #[must_use]
    pub fn with_parallel(mut self, parallel: usize) -> Self {
        self.parallel = parallel.max(1);
        self
    }

    /// The same, on the time scale `unit`.
    #[must_use]
    pub fn with_time_unit(mut self, unit: Duration) -> Self {
        self.time_unit = unit;
        self
    }

    /// The same, starting no sequence after `budget`.
    #[must_use]
    pub fn with_time_budget(mut self, budget: Duration) -> Self {
        self.time_budget = budget;
        self
    }

    /// The same, with sequences drawn from `seed`.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The same, with the bystander entry written and checked or not.
    #[must_use]
    pub fn with_bystander(mut self, bystander: bool) -> Self {
        self.bystander = bystander;
        self
    }
}

fn env_number(name: &str) -> Result<Option<u64>, CacheError> {
    match std::env::var(name) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| {
            CacheError::config(format!("{name} must be a whole number, not {text:?}"))
        }),
        Err(_) => Ok(None),
    }
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64);
    splitmix(nanos ^ u64::from(std::process::id()).rotate_left(32))
}

fn splitmix(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn runner(seed: u64) -> TestRunner {
    let mut bytes = [0_u8; 32];
    let mut state = seed;
    for chunk in bytes.chunks_mut(8) {
        state = splitmix(state);
        chunk.copy_from_slice(&state.to_le_bytes());
    }
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    TestRunner::new_with_rng(proptest::test_runner::Config::default(), rng)
}

/// What a run that found nothing wrong did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Report {
    /// Sequences run.
    pub cases: u32,
    /// Operations sent, pauses included.
    pub operations: usize,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// The seed the sequences were drawn from.
    pub seed: u64,
    /// The operations drawn: the backend's declared ones among them.
    pub drawn: Vec<&'static str>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sequences, {} operations ({}) in {:.1?}, {SEED_ENV}={}",
            self.cases,
            self.operations,
            self.drawn.join(", "),
            self.elapsed,
            self.seed
        )
    }
}

/// Fails the calling test unless `result` is a run that found nothing wrong, ran at least
/// one sequence and drew `add` and `clear`; prints the report under `backend`'s name.
///
/// A backend's test calls it with the result of [`run`]:
/// `assert_kept("memory", run(factory, &config).await)`.
///
/// # Panics
///
/// With the shrunk sequence when the cache and the model disagreed, or when the run drew
/// no sequence, no `add` or no `clear`.
pub fn assert_kept(backend: &str, result: Result<Report, ModelFailure>) {
    match result {
        Ok(report) => {
            eprintln!("{backend} model: {report}");
            assert!(report.cases > 0, "{backend}: no sequence ran: {report}");
            assert!(
                report.drawn.contains(&"add") && report.drawn.contains(&"clear"),
                "{backend}: the sequences drew no add or no clear: {report}"
            );
        }
        Err(failure) => panic!("{backend}:\n{failure}"),
    }
}

/// A sequence on which the cache and the model disagreed, shrunk.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ModelFailure {
    /// The shrunk sequence: its `Debug` replays it.
    pub program: Program,
    /// The step of `program` whose answer was wrong (its length: the bystander check
    /// after the last step).
    pub step: usize,
    /// What was sent, expected and answered at that step.
    pub failure: crate::Failure,
    /// Length of the sequence as first drawn.
    pub drawn_len: usize,
    /// Runs spent shrinking.
    pub shrink_runs: u32,
    /// Whether `program` failed the same way (same step, same answer) once more when it
    /// ran again on a fresh cache after shrinking. A failure that does not come back
    /// hangs on timing (a stalled machine, a read at the edge of an expiry) or on what
    /// other caches of the same server did meanwhile: the defect is real, but the
    /// printed steps may pass when replayed.
    pub reproduced: bool,
    /// Which sequence of the run failed (from 1); 0 when none ran, the cache declaring
    /// a TTL granularity outside the contract (`failure` names it).
    pub case: u32,
    /// The seed that draws the run again.
    pub seed: u64,
}

impl fmt::Display for ModelFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.case == 0 {
            return writeln!(
                f,
                "the cache's declared limits leave the model nothing to check: {}",
                self.failure
            );
        }
        writeln!(
            f,
            "the cache disagreed with the model on sequence {} ({SEED_ENV}={}), \
             shrunk from {} to {} operations in {} runs:",
            self.case,
            self.seed,
            self.drawn_len,
            self.program.0.len(),
            self.shrink_runs
        )?;
        writeln!(f, "  {}", self.failure)?;
        if !self.reproduced {
            writeln!(
                f,
                "  (it did not come back when the sequence ran again on a fresh cache: it \
                 hangs on timing or on other caches of the same server, and a replay may pass)"
            )?;
        }
        writeln!(f, "replay, on a fresh cache:")?;
        for line in format!("{:?}", self.program).lines() {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ModelFailure {}

/// The names of the operations a plan draws.
fn drawn(declared: &Capabilities) -> Vec<&'static str> {
    let mut names = vec![
        "get",
        "set",
        "delete",
        "exists",
        "get_many",
        "set_many",
        "delete_many",
    ];
    if declared.atomic_add {
        names.push("add");
    }
    if declared.clear {
        names.push("clear");
    }
    names
}

/// Draws [`Config::cases`] sequences and runs each on a fresh cache from `factory`,
/// comparing every answer with the reference model; a failing sequence is shrunk.
/// Operations the first cache's [capabilities](Cache::limits) do not declare (`add`
/// without an atomic add, `clear`) are never drawn.
///
/// The factory is called once for the capabilities, once per sequence, and once more per
/// sequence for the bystander when [`Config::bystander`] is on; each cache must be fresh
/// and empty (a namespace of its own on a shared server). The future is not `Send`:
/// await it on the test's own task (`#[tokio::test]`).
///
/// # Errors
///
/// A [`ModelFailure`] with the shrunk sequence when the cache gave an answer the model
/// does not allow, failed a call, or did not answer within [`Config::op_timeout`].
pub async fn run<F, Fut, C>(mut factory: F, config: &Config) -> Result<Report, ModelFailure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = C>,
    C: Cache,
{
    let started = Instant::now();
    // A granularity outside the contract would stretch every pause of the sequences
    // with it: refused before any is drawn.
    let declared =
        crate::checks::timed(factory().await.limits()).map_err(|failure| ModelFailure {
            program: Program(Vec::new()),
            step: 0,
            failure,
            drawn_len: 0,
            shrink_runs: 0,
            reproduced: true,
            case: 0,
            seed: config.seed,
        })?;
    let plan = Plan::new(&declared, config.time_unit, config.max_ops);
    let strategy = plan.program();
    let mut runner = runner(config.seed);
    let (mut cases, mut operations) = (0_u32, 0_usize);
    while cases < config.cases && started.elapsed() < config.time_budget {
        let batch = (config.cases - cases).min(config.parallel.max(1) as u32);
        let mut trees: Vec<_> = (0..batch)
            .map(|_| {
                strategy
                    .new_tree(&mut runner)
                    .expect("the strategy rejects nothing")
            })
            .collect();
        let programs: Vec<Program> = trees.iter().map(|tree| tree.current()).collect();
        let mut caches = Vec::with_capacity(programs.len());
        for _ in &programs {
            caches.push(Pair::new(&mut factory, config.bystander).await);
        }
        let results = join_all(
            caches
                .iter()
                .zip(&programs)
                .map(|(pair, program)| pair.run(program, declared.ttl_granularity, config)),
        )
        .await;
        drop(caches);
        operations += programs
            .iter()
            .map(|program| program.0.len())
            .sum::<usize>();
        if let Some(at) = results.iter().position(Result::is_err) {
            let first = results.into_iter().nth(at).and_then(Result::err);
            let first = first.expect("the position of an error");
            let tree = trees.swap_remove(at);
            let shrunk = Shrink {
                factory: &mut factory,
                config,
                granularity: declared.ttl_granularity,
            }
            .shrink(tree, programs[at].clone(), first)
            .await;
            return Err(ModelFailure {
                drawn_len: programs[at].0.len(),
                case: cases + at as u32 + 1,
                seed: config.seed,
                ..shrunk
            });
        }
        cases += batch;
    }
    Ok(Report {
        cases,
        operations,
        elapsed: started.elapsed(),
        seed: config.seed,
        drawn: drawn(&declared),
    })
}

/// Runs `program` once on `cache` (fresh and empty) and judges every answer as [`run`]
/// does: the way to run a shrunk sequence again, e.g. after a fix.
///
/// # Errors
///
/// The [`Failure`](crate::Failure) of the first step whose answer the model does not
/// allow, naming the step.
pub async fn replay(cache: &dyn Cache, program: &Program) -> Result<(), crate::Failure> {
    let granularity = crate::checks::timed_limits(cache)?.ttl_granularity;
    let op_timeout = Config::default().op_timeout;
    execute(cache, program, granularity, op_timeout)
        .await
        .map_err(|failed| failed.failure)
}

/// The key of the bystander entry.
const BYSTANDER_KEY: &str = "model:bystander";

/// The cache a sequence runs on, and the bystander beside it.
struct Pair<C> {
    cache: C,
    bystander: Option<C>,
}

impl<C: Cache> Pair<C> {
    async fn new<F, Fut>(factory: &mut F, bystander: bool) -> Self
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = C>,
    {
        let cache = factory().await;
        let bystander = if bystander {
            Some(factory().await)
        } else {
            None
        };
        Self { cache, bystander }
    }

    async fn run(
        &self,
        program: &Program,
        granularity: Duration,
        config: &Config,
    ) -> Result<(), StepFailure> {
        let after = program.0.len();
        let fail = |expected: &str, actual: String| StepFailure {
            step: after,
            failure: crate::Failure::new(
                format!(
                    "after the last step, get({BYSTANDER_KEY:?}) on another cache of the same \
                     factory, written before the first"
                ),
                expected,
                actual,
            ),
        };
        let kept = Bytes::from_static(b"untouched");
        if let Some(bystander) = &self.bystander {
            let long = Some(Duration::from_secs(3600));
            if let Err(err) = bystander.set(BYSTANDER_KEY, kept.clone(), long).await {
                return Err(fail("Ok from its set", format!("Err({err})")));
            }
        }
        execute(&self.cache, program, granularity, config.op_timeout).await?;
        if let Some(bystander) = &self.bystander {
            match bystander.get(BYSTANDER_KEY).await {
                Ok(Some(value)) if value == kept => {}
                other => return Err(fail("Ok(Some(\"untouched\"))", format!("{other:?}"))),
            }
        }
        Ok(())
    }
}

/// Shrinking a failing sequence, each try on a fresh cache.
struct Shrink<'a, F> {
    factory: &'a mut F,
    config: &'a Config,
    granularity: Duration,
}

impl<F, Fut, C> Shrink<'_, F>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = C>,
    C: Cache,
{
    /// proptest's own loop: simplify while the sequence still fails, complicate back
    /// when it passes, until neither moves or the budget is spent. A failure that does
    /// not come back (a timing one) leaves the sequence as drawn. The result runs once
    /// more on a fresh cache, to say whether its failure comes back.
    async fn shrink(
        self,
        mut tree: impl ValueTree<Value = Program>,
        drawn: Program,
        first: StepFailure,
    ) -> ModelFailure {
        let started = Instant::now();
        let (mut best, mut failure, mut runs) = (drawn, first, 0_u32);
        let mut moved = tree.simplify();
        while moved && runs < self.config.shrink_runs && started.elapsed() < self.config.shrink_time
        {
            runs += 1;
            let candidate = tree.current();
            let pair = Pair::new(self.factory, self.config.bystander).await;
            match pair.run(&candidate, self.granularity, self.config).await {
                Err(found) => {
                    (best, failure) = (candidate, found);
                    moved = tree.simplify();
                }
                Ok(()) => moved = tree.complicate(),
            }
        }
        let pair = Pair::new(self.factory, self.config.bystander).await;
        let again = pair.run(&best, self.granularity, self.config).await;
        let reproduced = again.is_err_and(|again| again == failure);
        ModelFailure {
            drawn_len: 0,
            program: best,
            step: failure.step,
            failure: failure.failure,
            shrink_runs: runs,
            reproduced,
            case: 0,
            seed: 0,
        }
    }
}
