//! The life of a factory run beside the application's other calls: a run that never
//! ends holds its key no longer than a caller's timeout, a failure is not handed to
//! the call that retries after it, a write or delete while a run is under way is not
//! undone by the run, and fail-safe serves only values within the caller's own
//! fail-safe duration.

mod common;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use cache_typed::{Entry, EntryOptions, Error};
use common::{user, users, Runs, User};

/// A factory that never ends (a database call with no timeout of its own).
fn hangs() -> impl FnOnce() -> std::future::Pending<User> + Send + 'static {
    std::future::pending::<User>
}

type Users = cache_typed::TypedCache<User, cache_typed::JsonCodec>;

/// `get_or_set_entry` of `key` with a factory of `value` that counts its runs: the
/// entry returned, and how many times the factory ran (0 or 1).
async fn counted(
    typed: &Users,
    key: &str,
    options: EntryOptions,
    value: User,
) -> (Entry<User>, usize) {
    let runs = Runs::default();
    let entry = typed
        .get_or_set_entry(key, options, runs.factory(Duration::ZERO, value))
        .await
        .unwrap();
    (entry, runs.count())
}

/// What a plain `get` reads under `key`.
async fn stored(typed: &Users, key: &str) -> Option<User> {
    typed.get(key).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_factory_holds_its_key_no_longer_than_the_hard_timeout() {
    let typed = users(common::memory());
    let options = typed.options().hard_timeout(Duration::from_millis(100));
    let first = typed.get_or_set("user:1", options, hangs()).await;
    assert!(matches!(first, Err(Error::Timeout { .. })), "{first:?}");
    // The hung run is still under way: the next caller runs a factory of its own.
    let (second, runs) = counted(&typed, "user:1", options, user(1, "ada")).await;
    assert_eq!((second.value, runs), (user(1, "ada"), 1));
    assert_eq!(stored(&typed, "user:1").await, Some(user(1, "ada")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_factory_past_the_soft_timeout_serves_stale_then_lets_a_new_run_refresh() {
    let typed = users(common::memory());
    let options = typed
        .options()
        .ttl(Duration::from_millis(50))
        .fail_safe(Duration::from_secs(60), Duration::from_millis(200))
        .soft_timeout(Duration::from_millis(50));
    typed
        .get_or_set("user:2", options, || async { user(2, "old") })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    let entry = typed
        .get_or_set_entry("user:2", options, hangs())
        .await
        .unwrap();
    assert_eq!((entry.value, entry.stale), (user(2, "old"), true));
    // Within the throttle, the stale value alone: no factory runs.
    let (throttled, runs) = counted(&typed, "user:2", options, user(2, "new")).await;
    assert_eq!(
        (throttled.value, throttled.stale, runs),
        (user(2, "old"), true, 0)
    );
    // Past it, a run of its own, although the hung one is still under way.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (fresh, runs) = counted(&typed, "user:2", options, user(2, "new")).await;
    assert_eq!((fresh.value, fresh.stale, runs), (user(2, "new"), false, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_eager_refresh_holds_the_key_no_longer_than_one_timeout_after_expiry() {
    let typed = users(common::memory());
    let options = typed
        .options()
        .ttl(Duration::from_millis(200))
        .eager_refresh(0.5)
        .hard_timeout(Duration::from_millis(100));
    typed
        .get_or_set("user:3", options, || async { user(3, "first") })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    // A hit past half its TTL: served, and refreshed by a factory that hangs.
    let hit = typed.get_or_set("user:3", options, hangs()).await.unwrap();
    assert_eq!(hit, user(3, "first"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Expired: the first caller waits for the hung refresh and times out...
    let waited = typed
        .get_or_set("user:3", options, || async { user(3, "unused") })
        .await;
    assert!(matches!(waited, Err(Error::Timeout { .. })), "{waited:?}");
    // ...the next one computes.
    let (fresh, runs) = counted(&typed, "user:3", options, user(3, "second")).await;
    assert_eq!((fresh.value, runs), (user(3, "second"), 1));
}

/// 200 times, on a fresh key: a call whose factory fails (or panics), then at once a
/// call whose factory succeeds. The second is never handed the first one's failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_right_after_a_failure_runs_its_own_factory() {
    let typed = users(common::memory());
    let options = typed.options();
    for round in 0..200 {
        let key = format!("retry:{round}");
        let failed = typed
            .try_get_or_set(&key, options, move || async move {
                Err::<User, _>(std::io::Error::other(format!("attempt {round}")))
            })
            .await;
        assert!(matches!(failed, Err(Error::Factory(_))), "{failed:?}");
        let again = typed
            .try_get_or_set(&key, options, || async {
                Ok::<_, std::io::Error>(user(4, "ok"))
            })
            .await;
        assert_eq!(
            again.unwrap(),
            user(4, "ok"),
            "round {round}: the retry got the failure"
        );

        let key = format!("retry-panic:{round}");
        let panicked = typed
            .get_or_set(&key, options, || async { panic!("boom") })
            .await;
        assert!(
            matches!(panicked, Err(Error::FactoryPanicked { .. })),
            "{panicked:?}"
        );
        let again = typed
            .get_or_set(&key, options, || async { user(4, "ok") })
            .await;
        assert_eq!(
            again.unwrap(),
            user(4, "ok"),
            "round {round}: the retry got the panic"
        );
    }
}

/// A tight loop of failing calls on one key runs the factory once per call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_failing_calls_each_run_the_factory() {
    let typed = users(common::memory());
    let runs = Arc::new(AtomicUsize::new(0));
    for _ in 0..500 {
        let runs = Arc::clone(&runs);
        let failed = typed
            .try_get_or_set("user:5", typed.options(), move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Err::<User, _>(std::io::Error::other("down"))
            })
            .await;
        assert!(failed.is_err());
    }
    assert_eq!(runs.load(Ordering::SeqCst), 500);
}

/// `delete` while the factory runs: the caller gets the run's value, and the run does
/// not write it back over the deletion (nor keep it for fail-safe).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_during_a_run_is_not_undone_by_it() {
    let typed = Arc::new(users(common::memory()));
    let options = typed
        .options()
        .fail_safe(Duration::from_secs(60), Duration::from_secs(1));
    let caller = {
        let typed = Arc::clone(&typed);
        tokio::spawn(async move {
            typed
                .get_or_set("user:6", options, || async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    user(6, "computed before the delete")
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    typed.delete("user:6").await.unwrap();
    assert_eq!(
        caller.await.unwrap().unwrap(),
        user(6, "computed before the delete")
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(stored(&typed, "user:6").await, None);
    // Nothing kept for fail-safe either: a failing factory now has no stale value.
    let failed = typed
        .try_get_or_set("user:6", options, || async {
            Err::<User, _>(std::io::Error::other("down"))
        })
        .await;
    assert!(matches!(failed, Err(Error::Factory(_))), "{failed:?}");
}

/// `set` while the factory runs: the value set is what stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_during_a_run_is_not_overwritten_by_it() {
    let typed = Arc::new(users(common::memory()));
    let caller = {
        let typed = Arc::clone(&typed);
        tokio::spawn(async move {
            typed
                .get_or_set("user:7", typed.options(), || async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    user(7, "old")
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    typed.set("user:7", &user(7, "new")).await.unwrap();
    assert_eq!(caller.await.unwrap().unwrap(), user(7, "old"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(stored(&typed, "user:7").await, Some(user(7, "new")));
    // And a new call after the set reads it, without a run.
    let (read, runs) = counted(&typed, "user:7", typed.options(), user(7, "x")).await;
    assert_eq!((read.value, runs), (user(7, "new"), 0));
}

/// An eager refresh under way when the key is deleted writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_during_an_eager_refresh_is_not_undone_by_it() {
    let typed = users(common::memory());
    let options = typed
        .options()
        .ttl(Duration::from_millis(200))
        .eager_refresh(0.5);
    typed
        .get_or_set("user:8", options, || async { user(8, "first") })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    let hit = typed
        .get_or_set("user:8", options, || async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            user(8, "refreshed")
        })
        .await
        .unwrap();
    assert_eq!(hit, user(8, "first"));
    typed.delete("user:8").await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(stored(&typed, "user:8").await, None);
}

/// A stale value is served only within the caller's own fail-safe duration, however
/// long the options it was written with keep it in the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_safe_serves_only_values_within_the_callers_duration() {
    let typed = users(common::memory());
    let long = typed
        .options()
        .ttl(Duration::from_millis(50))
        .fail_safe(Duration::from_secs(3600), Duration::from_millis(10));
    typed
        .get_or_set("user:9", long, || async { user(9, "old") })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let short = typed
        .options()
        .fail_safe(Duration::from_millis(100), Duration::from_secs(10));
    let runs = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let runs = Arc::clone(&runs);
        let failed = typed
            .try_get_or_set_entry("user:9", short, move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Err::<User, _>(std::io::Error::other("down"))
            })
            .await;
        assert!(matches!(failed, Err(Error::Factory(_))), "{failed:?}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    // Within the long duration, the same stale value is served, and throttled.
    let served = typed
        .try_get_or_set_entry("user:9", long, || async {
            Err::<User, _>(std::io::Error::other("down"))
        })
        .await
        .unwrap();
    assert_eq!((served.value, served.stale), (user(9, "old"), true));
}

/// A stale value that runs out of its fail-safe duration while the factory is under way
/// is not served when the factory fails, nor at a hard timeout; and a soft timeout that
/// would fire after it ran out does not cut the wait short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_value_that_runs_out_during_the_run_is_not_served() {
    let typed = users(common::memory());
    // Stale 100 ms after the write, out of fail-safe 300 ms later.
    let options = typed
        .options()
        .ttl(Duration::from_millis(100))
        .fail_safe(Duration::from_millis(300), Duration::from_millis(50));
    let write = |key: &'static str| {
        let typed = typed.clone();
        async move {
            typed
                .get_or_set(key, options, move || async move { user(5, key) })
                .await
                .unwrap();
            // Stale, and 100 ms within the fail-safe duration.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };

    // A factory that fails 300 ms in, 200 ms after the stale value ran out.
    write("user:5").await;
    let failed = typed
        .try_get_or_set_entry("user:5", options, || async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Err::<User, _>(std::io::Error::other("database down"))
        })
        .await;
    assert!(
        matches!(&failed, Err(error) if error.to_string().contains("database down")),
        "{failed:?}"
    );

    // A hard timeout 300 ms in.
    write("user:6").await;
    let timed_out = typed
        .get_or_set_entry(
            "user:6",
            options.hard_timeout(Duration::from_millis(300)),
            hangs(),
        )
        .await;
    assert!(
        matches!(timed_out, Err(Error::Timeout { after }) if after == Duration::from_millis(300)),
        "{timed_out:?}"
    );

    // A soft timeout that fires after the stale value ran out: the caller waits for the
    // run instead, and gets its value.
    write("user:7").await;
    let slow = Runs::default();
    let entry = typed
        .get_or_set_entry(
            "user:7",
            options.soft_timeout(Duration::from_millis(200)),
            slow.factory(Duration::from_millis(400), user(7, "new")),
        )
        .await
        .unwrap();
    assert_eq!((entry.value, entry.stale), (user(7, "new"), false));
    assert_eq!(slow.count(), 1);
}
