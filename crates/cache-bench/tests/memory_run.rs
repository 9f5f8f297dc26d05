//! Whole runs on the in-memory backend, through the library as `cachectl bench` calls it.

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use cache_bench::{run, BenchError, Progress, Settings, Workload};

fn settings() -> Settings {
    let mut settings = Settings::new("memory://");
    settings.workload = Workload::Mix;
    settings.keys = 200;
    settings.concurrency = 4;
    settings.ops = Some(2_000);
    settings.warmup = Duration::ZERO;
    settings.raw_baseline = true;
    settings.rounds = 2;
    settings
}

/// Both sides spend the operation budget, and every key written is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_run_and_clean_up() {
    let report = run(&settings(), Arc::new(Progress::default()))
        .await
        .unwrap();
    assert_eq!(report.adapter.ops, 2_000);
    assert_eq!(report.raw.as_ref().map(|raw| raw.ops), Some(2_000));
    assert_eq!(report.adapter.misses, 0);
    let ratio = report.ratio.as_ref().expect("a ratio with a baseline");
    assert_eq!(ratio.throughput_rounds.len(), 2);
    assert_eq!(report.cleanup.removed_keys, 200);
    assert!(!report.failed() && !report.interrupted);
    let table = report.to_string();
    assert!(
        table.starts_with("cache-bench memory:// (memory, "),
        "{table}"
    );
    assert!(table.contains("adapter/raw"), "{table}");
    assert!(
        table.ends_with("cleanup: removed every key written (200 keys)"),
        "{table}"
    );
}

/// A run stopped through the switch before it wrote a key says it was stopped, measures
/// nothing and has nothing to remove, whatever the workload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_before_writing_says_so_and_removes_nothing() {
    for workload in [Workload::Mix, Workload::Set] {
        let mut settings = settings();
        settings.workload = workload;
        settings.ops = None;
        settings.duration = Some(Duration::from_secs(60));
        settings.warmup = Duration::from_secs(60);
        let progress = Arc::new(Progress::default());
        progress.stop.store(true, Ordering::Relaxed);
        let report = tokio::time::timeout(Duration::from_secs(30), run(&settings, progress))
            .await
            .expect("a stopped run ends")
            .unwrap();
        assert!(report.interrupted, "{workload:?}");
        assert_eq!(report.adapter.ops, 0, "{workload:?}");
        assert_eq!(report.cleanup.removed_keys, 0, "{workload:?}");
        assert!(report.cleanup.left_prefix.is_none(), "{workload:?}");
    }
}

/// A run stopped through the switch while it measures still removes every key it may
/// have written, and says it was stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_while_measuring_says_so_and_cleans_up() {
    let mut settings = settings();
    settings.ops = None;
    settings.duration = Some(Duration::from_secs(60));
    let progress = Arc::new(Progress::default());
    let switch = Arc::clone(&progress);
    // A thread of its own: the run's tasks may keep every worker busy.
    std::thread::spawn(move || {
        while switch.ops.load(Ordering::Relaxed) == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        switch.stop.store(true, Ordering::Relaxed);
    });
    let report = tokio::time::timeout(Duration::from_secs(30), run(&settings, progress))
        .await
        .expect("a stopped run ends")
        .unwrap();
    assert!(report.interrupted);
    assert!(report.adapter.ops > 0);
    assert_eq!(report.cleanup.removed_keys, 200);
    assert!(report.cleanup.left_prefix.is_none());
}

/// Settings no run can be made of are refused before anything connects.
#[tokio::test]
async fn impossible_settings_are_refused() {
    let mut settings = settings();
    settings.concurrency = 0;
    let err = run(&settings, Arc::new(Progress::default()))
        .await
        .unwrap_err();
    assert!(matches!(err, BenchError::Settings(_)), "{err}");
    let mut settings = Settings::new("memory://");
    settings.pooled = Some(4);
    let err = run(&settings, Arc::new(Progress::default()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("redis:// only"), "{err}");
    let err = run(&Settings::new("ftp://host"), Arc::new(Progress::default()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ftp:// is not a URL"), "{err}");
}
