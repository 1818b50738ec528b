//! Panics in tasks are caught: the handle resolves `TaskError::Panicked`
//! with the panic's message, the worker lives on, and the metrics count it.

use std::panic;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use runq::{Pool, Retry, Status, Task, TaskError};

mod common;

use common::limit_10s::{quiet_intentional_panics, wait, INTENTIONAL, LIMIT};
use common::scaled;

/// A one-worker pool, with the intentional panics of the test kept quiet.
fn quiet_one_worker() -> Pool {
    quiet_intentional_panics();
    Pool::builder().workers(1).build().unwrap()
}

fn panicked_message<T: std::fmt::Debug>(r: Result<T, TaskError>) -> String {
    match r {
        Err(TaskError::Panicked(msg)) => msg,
        other => panic!("expected Panicked, got {other:?}"),
    }
}

#[test]
fn a_panic_resolves_the_handle_with_its_str_message() {
    let pool = quiet_one_worker();
    let h = pool
        .submit(|| -> u8 { panic!("runq-test: intentional") })
        .unwrap();
    assert_eq!(panicked_message(wait(h)), INTENTIONAL);
}

#[test]
fn a_formatted_panic_message_is_kept() {
    let pool = quiet_one_worker();
    let n = 7;
    let h = pool
        .submit(move || -> u8 { panic!("{INTENTIONAL}: n = {n}") })
        .unwrap();
    assert_eq!(panicked_message(wait(h)), format!("{INTENTIONAL}: n = 7"));
}

#[test]
fn a_panic_with_a_non_string_payload_still_resolves() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let h = pool
        .submit(|| -> u8 { panic::resume_unwind(Box::new(42u32)) })
        .unwrap();
    let _any_message = panicked_message(wait(h));
    assert_eq!(wait(pool.submit(|| 1).unwrap()).unwrap(), 1);
}

#[test]
fn the_worker_survives_many_panics() {
    const PANICS: usize = scaled(100);
    let pool = quiet_one_worker();
    let first = wait(pool.submit(runq::current_worker).unwrap()).unwrap();
    let handles: Vec<_> = (0..PANICS)
        .map(|i| {
            pool.submit(move || -> u8 { panic!("{INTENTIONAL}: {i}") })
                .unwrap()
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(panicked_message(wait(h)), format!("{INTENTIONAL}: {i}"));
    }
    let after = wait(pool.submit(runq::current_worker).unwrap()).unwrap();
    assert_eq!(first, Some(0));
    assert_eq!(after, Some(0), "the same single worker still serves");
    assert_eq!(pool.workers(), 1);
    let m = pool.metrics();
    assert_eq!(m.panicked, PANICS as u64);
    assert_eq!(m.failed, PANICS as u64);
    assert_eq!(m.workers, 1);
}

#[test]
fn a_panicking_spawned_task_is_counted_and_harmless() {
    quiet_intentional_panics();
    let pool = Pool::builder().workers(2).build().unwrap();
    for _ in 0..10 {
        pool.spawn(|| panic!("{INTENTIONAL}: spawned")).unwrap();
    }
    let (tx, rx) = mpsc::channel();
    pool.spawn(move || tx.send(1).unwrap()).unwrap();
    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), 1);
    let report = pool.shutdown();
    assert_eq!(report.panicked, 10);
    assert_eq!(report.failed, 10);
    assert_eq!(report.completed, 1);
}

#[test]
fn a_panicking_task_has_status_failed() {
    let pool = quiet_one_worker();
    let h = pool.submit(|| -> u8 { panic!("{INTENTIONAL}") }).unwrap();
    let start = std::time::Instant::now();
    while !h.is_finished() {
        assert!(start.elapsed() < LIMIT);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(h.status(), Status::Failed);
}

#[test]
fn a_panic_does_not_leak_is_cancelled_or_state_into_the_next_task() {
    let pool = quiet_one_worker();
    let h = pool.submit(|| -> u8 { panic!("{INTENTIONAL}") }).unwrap();
    let _ = wait(h);
    assert!(!wait(pool.submit(runq::is_cancelled).unwrap()).unwrap());
}

#[test]
fn a_waiter_on_a_worker_sees_the_inner_panic_and_continues() {
    let pool = quiet_one_worker();
    let inner = pool.clone();
    let h = pool
        .submit(move || {
            let child = inner
                .submit(|| -> u8 { panic!("{INTENTIONAL}: child") })
                .unwrap();
            match child.wait() {
                Err(TaskError::Panicked(msg)) => msg,
                other => format!("unexpected {other:?}"),
            }
        })
        .unwrap();
    assert_eq!(wait(h).unwrap(), format!("{INTENTIONAL}: child"));
}

#[test]
fn a_panicking_callback_is_caught_and_the_result_stands() {
    let pool = quiet_one_worker();
    let h = pool
        .submit_task(Task::new(|| 5).on_complete(|_| panic!("{INTENTIONAL}: callback")))
        .unwrap();
    assert_eq!(wait(h).unwrap(), 5);
    assert_eq!(wait(pool.submit(|| 6).unwrap()).unwrap(), 6);
    let report = pool.shutdown();
    assert_eq!(report.completed, 2);
    assert_eq!(report.panicked, 0, "the task body did not panic");
    assert_eq!(
        pool.metrics().callback_panics,
        1,
        "the callback panic was counted"
    );
}

#[test]
fn a_task_that_panics_after_a_refused_cancel_resolves_panicked() {
    // cancel() on a running task answers false: the task runs on, and how
    // it ends is how it resolves. A task that ran is never `Cancelled`.
    let pool = quiet_one_worker();
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let h = pool
        .submit(move || -> u8 {
            started_tx.send(()).unwrap();
            let _ = go_rx.recv_timeout(LIMIT);
            panic!("{INTENTIONAL}: after cancel");
        })
        .unwrap();
    started_rx.recv_timeout(LIMIT).unwrap();
    assert!(!h.cancel(), "the task is running");
    go_tx.send(()).unwrap();
    assert_eq!(
        panicked_message(wait(h)),
        format!("{INTENTIONAL}: after cancel")
    );
    let report = pool.shutdown();
    assert_eq!(report.cancelled, 0);
    assert_eq!(report.failed, 1);
}

#[test]
fn a_panic_is_retried_under_a_retry_policy() {
    let pool = quiet_one_worker();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let h = pool
        .submit_task(
            Task::fallible(move || -> Result<usize, std::io::Error> {
                let n = r.fetch_add(1, Ordering::SeqCst) + 1;
                if n < 3 {
                    panic!("{INTENTIONAL}: attempt {n}");
                }
                Ok(n)
            })
            .retry(Retry::fixed(5, Duration::from_millis(1))),
        )
        .unwrap();
    assert_eq!(wait(h).unwrap(), 3);
    let report = pool.shutdown();
    assert_eq!(report.panicked, 2);
    assert_eq!(report.retried, 2);
    assert_eq!(report.completed, 1);
    assert_eq!(report.failed, 0);
}

#[test]
fn a_final_panic_after_retries_fails_the_task() {
    let pool = quiet_one_worker();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let h = pool
        .submit_task(
            Task::fallible(move || -> Result<u8, std::io::Error> {
                r.fetch_add(1, Ordering::SeqCst);
                panic!("{INTENTIONAL}: always");
            })
            .retry(Retry::fixed(3, Duration::from_millis(1))),
        )
        .unwrap();
    let outcome = wait(h);
    // A retried task that runs out of attempts fails with the attempt count
    // (`Panicked` is only for a task with a single attempt).
    assert!(
        matches!(outcome, Err(TaskError::Failed { attempts: 3, .. })),
        "got {outcome:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let report = pool.shutdown();
    assert_eq!(report.panicked, 3);
    assert_eq!(report.failed, 1);
    assert_eq!(report.retried, 2);
}

#[test]
fn a_task_new_that_panics_is_not_rerun_even_with_a_retry_policy() {
    let pool = quiet_one_worker();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let h = pool
        .submit_task(
            Task::new(move || -> u8 {
                r.fetch_add(1, Ordering::SeqCst);
                panic!("{INTENTIONAL}: once");
            })
            .retry(Retry::fixed(3, Duration::from_millis(1))),
        )
        .unwrap();
    let _ = panicked_message(wait(h));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "an FnOnce task runs at most once"
    );
}
