//! Retries with backoff: which outcomes are re-run, how many times, what the
//! handle reports when attempts run out, and that a retry never comes sooner
//! than its policy allows (lower bounds only: wall time has no upper bound).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use runq::{Jitter, Retry, Status, Task, TaskError};

mod common;

use common::limit_30s::{finish, pool, wait_until};

/// A fallible task that fails its first `failures` runs, then returns the
/// number of runs; every run's start time is recorded.
fn flaky(failures: u32, runs: Arc<AtomicU32>, starts: Arc<Mutex<Vec<Instant>>>) -> Task<u32> {
    Task::fallible(move || {
        starts.lock().unwrap().push(Instant::now());
        let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= failures {
            Err(format!("failure {n}"))
        } else {
            Ok(n)
        }
    })
}

/// Gaps between consecutive run starts.
fn gaps(starts: &Mutex<Vec<Instant>>) -> Vec<Duration> {
    let s = starts.lock().unwrap();
    s.windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
fn fallible_task_is_retried_until_it_succeeds() {
    let pool = pool(2);
    let runs = Arc::new(AtomicU32::new(0));
    let starts = Arc::new(Mutex::new(Vec::new()));
    let task = flaky(2, runs.clone(), starts).retry(Retry::fixed(5, Duration::from_millis(1)));
    let h = pool.submit_task(task).unwrap();
    assert_eq!(finish(h).unwrap(), 3);
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let report = pool.shutdown();
    assert_eq!(report.retried, 2, "{report:?}");
    assert_eq!(report.completed, 1, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
}

#[test]
fn failed_after_attempts_run_out_reports_attempts_and_last_error() {
    let pool = pool(2);
    let runs = Arc::new(AtomicU32::new(0));
    let starts = Arc::new(Mutex::new(Vec::new()));
    let task =
        flaky(u32::MAX, runs.clone(), starts).retry(Retry::fixed(3, Duration::from_millis(1)));
    let h = pool.submit_task(task).unwrap();
    match finish(h) {
        Err(TaskError::Failed { attempts, error }) => {
            assert_eq!(attempts, 3);
            assert_eq!(error.to_string(), "failure 3", "the last error is kept");
        }
        other => panic!("expected Failed after 3 attempts, got {other:?}"),
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "attempts count runs, the first included"
    );
    let report = pool.shutdown();
    assert_eq!(report.retried, 2, "{report:?}");
    assert_eq!(report.failed, 1, "{report:?}");
}

#[test]
fn failure_without_retry_policy_runs_once() {
    let pool = pool(1);
    let runs = Arc::new(AtomicU32::new(0));
    let starts = Arc::new(Mutex::new(Vec::new()));
    let h = pool
        .submit_task(flaky(u32::MAX, runs.clone(), starts))
        .unwrap();
    match finish(h) {
        Err(TaskError::Failed { attempts, error }) => {
            assert_eq!(attempts, 1);
            assert_eq!(error.to_string(), "failure 1");
        }
        other => panic!("expected Failed after 1 attempt, got {other:?}"),
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(pool.shutdown().retried, 0);
}

#[test]
fn zero_attempts_is_treated_as_one_run() {
    let pool = pool(1);
    let runs = Arc::new(AtomicU32::new(0));
    let starts = Arc::new(Mutex::new(Vec::new()));
    let task = flaky(u32::MAX, runs.clone(), starts).retry(Retry::fixed(0, Duration::ZERO));
    match finish(pool.submit_task(task).unwrap()) {
        Err(TaskError::Failed { attempts, .. }) => assert_eq!(attempts, 1),
        other => panic!("expected Failed after 1 attempt, got {other:?}"),
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn panic_is_retried_and_final_panic_message_becomes_the_error() {
    let pool = pool(2);
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let task = Task::<u32>::fallible(move || -> Result<u32, String> {
        let n = r.fetch_add(1, Ordering::SeqCst) + 1;
        panic!("boom {n}");
    })
    .retry(Retry::fixed(3, Duration::from_millis(1)));
    match finish(pool.submit_task(task).unwrap()) {
        Err(TaskError::Failed { attempts, error }) => {
            assert_eq!(attempts, 3);
            assert!(error.to_string().contains("boom 3"), "error was {error}");
        }
        other => panic!("expected Failed carrying the panic message, got {other:?}"),
    }
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let report = pool.shutdown();
    assert_eq!(
        report.panicked, 3,
        "every panicking attempt is counted: {report:?}"
    );
    assert_eq!(report.retried, 2, "{report:?}");
    assert_eq!(report.failed, 1, "{report:?}");
}

#[test]
fn panic_then_success_resolves_ok() {
    let pool = pool(2);
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let task = Task::fallible(move || -> Result<u32, String> {
        let n = r.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 1 {
            panic!("first run panics");
        }
        Ok(n)
    })
    .retry(Retry::exponential(4, Duration::from_millis(1)));
    assert_eq!(finish(pool.submit_task(task).unwrap()).unwrap(), 2);
    let report = pool.shutdown();
    assert_eq!(report.panicked, 1, "{report:?}");
    assert_eq!(report.completed, 1, "{report:?}");
}

#[test]
fn run_once_task_is_never_rerun_even_with_a_retry_policy() {
    let pool = pool(1);
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let task = Task::<u32>::new(move || {
        r.fetch_add(1, Ordering::SeqCst);
        panic!("once");
    })
    .retry(Retry::fixed(5, Duration::from_millis(1)));
    let res = finish(pool.submit_task(task).unwrap());
    assert!(res.is_err(), "a panicking task cannot succeed: {res:?}");
    if let Err(TaskError::Failed { attempts, .. }) = &res {
        assert_eq!(*attempts, 1);
    }
    pool.shutdown();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "a FnOnce body ran more than once"
    );
}

#[test]
fn fixed_backoff_with_equal_jitter_is_never_sooner_than_half_the_delay() {
    let pool = pool(2);
    let delay = Duration::from_millis(40);
    let runs = Arc::new(AtomicU32::new(0));
    let starts = Arc::new(Mutex::new(Vec::new()));
    // Equal jitter is the default.
    let task = flaky(3, runs, starts.clone()).retry(Retry::fixed(4, delay));
    assert_eq!(finish(pool.submit_task(task).unwrap()).unwrap(), 4);
    let g = gaps(&starts);
    assert_eq!(g.len(), 3);
    for gap in g {
        assert!(
            gap >= delay / 2,
            "retry came after {gap:?}, sooner than {:?}",
            delay / 2
        );
    }
}

#[test]
fn fixed_backoff_without_jitter_is_never_sooner_than_the_delay() {
    let pool = pool(2);
    let delay = Duration::from_millis(30);
    let runs = Arc::new(AtomicU32::new(0));
    let starts = Arc::new(Mutex::new(Vec::new()));
    let task = flaky(3, runs, starts.clone()).retry(Retry::fixed(4, delay).jitter(Jitter::None));
    assert_eq!(finish(pool.submit_task(task).unwrap()).unwrap(), 4);
    for gap in gaps(&starts) {
        assert!(
            gap >= delay,
            "retry came after {gap:?}, sooner than {delay:?}"
        );
    }
}

#[test]
fn exponential_backoff_doubles_each_time_as_a_lower_bound() {
    let pool = pool(2);
    let base = Duration::from_millis(10);
    let runs = Arc::new(AtomicU32::new(0));
    let starts = Arc::new(Mutex::new(Vec::new()));
    let task =
        flaky(4, runs, starts.clone()).retry(Retry::exponential(5, base).jitter(Jitter::None));
    assert_eq!(finish(pool.submit_task(task).unwrap()).unwrap(), 5);
    let g = gaps(&starts);
    assert_eq!(g.len(), 4);
    for (i, gap) in g.into_iter().enumerate() {
        let nominal = base * (1 << i);
        assert!(
            gap >= nominal,
            "retry {} came after {gap:?}, sooner than {nominal:?}",
            i + 1
        );
    }
}

#[test]
fn exponential_backoff_with_equal_jitter_is_never_sooner_than_half_nominal() {
    let pool = pool(2);
    let base = Duration::from_millis(10);
    let runs = Arc::new(AtomicU32::new(0));
    let starts = Arc::new(Mutex::new(Vec::new()));
    let task = flaky(3, runs, starts.clone()).retry(Retry::exponential(4, base));
    assert_eq!(finish(pool.submit_task(task).unwrap()).unwrap(), 4);
    for (i, gap) in gaps(&starts).into_iter().enumerate() {
        let half = base * (1 << i) / 2;
        assert!(
            gap >= half,
            "retry {} came after {gap:?}, sooner than {half:?}",
            i + 1
        );
    }
}

#[test]
fn max_delay_caps_an_exponential_backoff() {
    // With a base of an hour the test could only finish in time if the cap
    // applies; the cap itself is still a lower bound on each gap.
    let pool = pool(1);
    let cap = Duration::from_millis(20);
    let runs = Arc::new(AtomicU32::new(0));
    let starts = Arc::new(Mutex::new(Vec::new()));
    let task = flaky(2, runs, starts.clone()).retry(
        Retry::exponential(3, Duration::from_secs(3600))
            .max_delay(cap)
            .jitter(Jitter::None),
    );
    assert_eq!(finish(pool.submit_task(task).unwrap()).unwrap(), 3);
    for gap in gaps(&starts) {
        assert!(
            gap >= cap,
            "retry came after {gap:?}, sooner than the capped {cap:?}"
        );
    }
}

#[test]
fn full_jitter_still_runs_every_attempt() {
    let pool = pool(2);
    let runs = Arc::new(AtomicU32::new(0));
    let starts = Arc::new(Mutex::new(Vec::new()));
    let task = flaky(u32::MAX, runs.clone(), starts)
        .retry(Retry::fixed(4, Duration::from_millis(5)).jitter(Jitter::Full));
    match finish(pool.submit_task(task).unwrap()) {
        Err(TaskError::Failed { attempts, .. }) => assert_eq!(attempts, 4),
        other => panic!("expected Failed after 4 attempts, got {other:?}"),
    }
    assert_eq!(runs.load(Ordering::SeqCst), 4);
}

#[test]
fn status_is_retrying_while_a_retry_waits() {
    // The retry waits an hour, so the status cannot move on under the
    // assertions however slow the machine; the wait is cancelled at the end.
    let pool = pool(1);
    let runs = Arc::new(AtomicU32::new(0));
    let starts = Arc::new(Mutex::new(Vec::new()));
    let task = flaky(1, runs.clone(), starts)
        .retry(Retry::fixed(2, Duration::from_secs(3600)).jitter(Jitter::None));
    let h = pool.submit_task(task).unwrap();
    wait_until("the first run to end", || h.status() == Status::Retrying);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(!h.is_finished());
    // The worker publishes RETRYING a moment before it counts the retry.
    wait_until("the retry to be counted", || pool.metrics().retried == 1);
    assert_eq!(h.status(), Status::Retrying);
    assert!(h.cancel(), "a task waiting for its retry can be cancelled");
    assert!(matches!(finish(h), Err(TaskError::Cancelled)));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "a cancelled retry ran");
}

#[test]
fn a_waiting_retry_does_not_block_the_worker() {
    let pool = pool(1);
    let runs = Arc::new(AtomicU32::new(0));
    let starts = Arc::new(Mutex::new(Vec::new()));
    // The retry waits an hour: were the backoff held on the worker, the
    // quick task below could not run before the test's limit.
    let task = flaky(1, runs.clone(), starts.clone())
        .retry(Retry::fixed(2, Duration::from_secs(3600)).jitter(Jitter::None));
    let slow = pool.submit_task(task).unwrap();
    wait_until("the first run to fail", || {
        slow.status() == Status::Retrying
    });
    // The single worker is free while the retry waits in the timer.
    let (tx, rx) = mpsc::channel();
    let r = runs.clone();
    let quick = pool
        .submit(move || {
            tx.send(r.load(Ordering::SeqCst)).unwrap();
        })
        .unwrap();
    finish(quick).unwrap();
    let runs_seen_by_quick = rx.recv().unwrap();
    assert_eq!(
        runs_seen_by_quick, 1,
        "the quick task ran only after the retry: the backoff held the worker"
    );
    assert!(slow.cancel());
    assert!(matches!(finish(slow), Err(TaskError::Cancelled)));
}

#[test]
fn many_retrying_tasks_on_one_worker_all_finish() {
    // Under Miri, each number of failures (0, 1, 2) twice.
    const TASKS: u32 = if cfg!(miri) { 6 } else { 50 };
    let pool = pool(1);
    let handles: Vec<_> = (0..TASKS)
        .map(|i| {
            let runs = Arc::new(AtomicU32::new(0));
            let starts = Arc::new(Mutex::new(Vec::new()));
            let task =
                flaky(i % 3, runs, starts).retry(Retry::exponential(3, Duration::from_millis(1)));
            (i % 3, pool.submit_task(task).unwrap())
        })
        .collect();
    for (failures, h) in handles {
        assert_eq!(finish(h).unwrap(), failures + 1);
    }
    let report = pool.shutdown();
    assert_eq!(report.completed, u64::from(TASKS), "{report:?}");
    assert_eq!(
        report.retried,
        (0..u64::from(TASKS)).map(|i| i % 3).sum::<u64>(),
        "{report:?}"
    );
}
