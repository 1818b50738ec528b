//! Cancellation: `cancel()` is true exactly when the task will never run
//! (again), a running task only gets the cooperative flag, and the races with
//! a worker starting the task or the timer firing a retry have one outcome.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use runq::{Jitter, Retry, Status, Task, TaskError};

mod common;

use common::limit_30s::{finish, occupy_worker, pool, wait_until, LIMIT};
use common::scaled;

#[test]
fn cancelling_a_queued_task_returns_true_and_it_never_runs() {
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let h = pool
        .submit(move || r.store(true, Ordering::SeqCst))
        .unwrap();
    assert_eq!(h.status(), Status::Queued);
    assert!(h.cancel(), "a queued task can be cancelled");
    assert_eq!(h.status(), Status::Cancelled);
    assert!(h.is_finished());
    drop(release);
    finish(blocker).unwrap();
    assert!(matches!(finish(h), Err(TaskError::Cancelled)));
    let report = pool.shutdown();
    assert!(!ran.load(Ordering::SeqCst), "a cancelled task ran");
    assert_eq!(report.cancelled, 1, "{report:?}");
}

#[test]
fn cancelled_task_resolves_without_waiting_for_the_worker() {
    // The handle of a cancelled queued task resolves at once, while the only
    // worker is still busy.
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let h = pool.submit(|| ()).unwrap();
    assert!(h.cancel());
    assert!(matches!(finish(h), Err(TaskError::Cancelled)));
    drop(release);
    finish(blocker).unwrap();
}

#[test]
fn cancelling_a_delayed_task_returns_true_and_it_never_runs() {
    let pool = pool(1);
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let h = pool
        .submit_task(
            Task::new(move || r.store(true, Ordering::SeqCst)).delay(Duration::from_secs(3600)),
        )
        .unwrap();
    assert_eq!(h.status(), Status::Delayed);
    assert!(h.cancel());
    assert!(matches!(finish(h), Err(TaskError::Cancelled)));
    // A graceful shutdown must not wait out the cancelled hour.
    let report = pool.shutdown();
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(report.cancelled, 1, "{report:?}");
}

#[test]
fn cancelling_a_running_task_returns_false_and_sets_its_flag() {
    let pool = pool(2);
    let (started_tx, started_rx) = mpsc::channel();
    let h = pool
        .submit(move || {
            started_tx.send(()).unwrap();
            let start = Instant::now();
            while !runq::is_cancelled() {
                if start.elapsed() > LIMIT {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            true
        })
        .unwrap();
    started_rx.recv_timeout(LIMIT).unwrap();
    assert_eq!(h.status(), Status::Running);
    assert!(!h.cancel(), "a running task cannot be cancelled");
    assert!(
        finish(h).unwrap(),
        "the running task never saw is_cancelled()"
    );
}

#[test]
fn is_cancelled_is_false_for_a_task_nobody_cancelled() {
    let pool = pool(1);
    assert!(!finish(pool.submit(runq::is_cancelled).unwrap()).unwrap());
    assert!(!runq::is_cancelled(), "outside a task nothing is cancelled");
}

#[test]
fn cancel_flag_does_not_leak_to_the_next_task_on_the_worker() {
    let pool = pool(1);
    let (started_tx, started_rx) = mpsc::channel();
    let first = pool
        .submit(move || {
            started_tx.send(()).unwrap();
            let start = Instant::now();
            while !runq::is_cancelled() && start.elapsed() < LIMIT {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .unwrap();
    let second = pool.submit(runq::is_cancelled).unwrap();
    started_rx.recv_timeout(LIMIT).unwrap();
    assert!(!first.cancel());
    finish(first).unwrap();
    assert!(
        !finish(second).unwrap(),
        "the flag of one task showed up in the next"
    );
}

#[test]
fn cancelling_a_finished_task_returns_false_and_keeps_its_result() {
    let pool = pool(1);
    let h = pool.submit(|| 3).unwrap();
    wait_until("the task to finish", || h.is_finished());
    assert!(!h.cancel());
    assert_eq!(h.status(), Status::Succeeded);
    assert_eq!(finish(h).unwrap(), 3);
    assert_eq!(pool.shutdown().cancelled, 0);
}

#[test]
fn cancelling_twice_keeps_one_cancelled_outcome() {
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let h = pool.submit(|| ()).unwrap();
    assert!(h.cancel());
    let _ = h.cancel();
    assert_eq!(h.status(), Status::Cancelled);
    drop(release);
    finish(blocker).unwrap();
    assert!(matches!(finish(h), Err(TaskError::Cancelled)));
    assert_eq!(pool.shutdown().cancelled, 1);
}

#[test]
fn cancel_racing_start_has_exactly_one_outcome() {
    const ROUNDS: u32 = scaled(2000) as u32;
    let pool = pool(2);
    let mut cancelled = 0u32;
    for i in 0..ROUNDS {
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let h = pool
            .submit(move || r.store(true, Ordering::SeqCst))
            .unwrap();
        // Vary the moment of the cancel relative to the worker's pickup.
        for _ in 0..(i % 64) {
            std::hint::spin_loop();
        }
        let said_never_runs = h.cancel();
        let res = finish(h);
        if said_never_runs {
            cancelled += 1;
            assert!(
                matches!(res, Err(TaskError::Cancelled)),
                "round {i}: {res:?}"
            );
            assert!(
                !ran.load(Ordering::SeqCst),
                "round {i}: cancel() was true but it ran"
            );
        } else {
            assert!(res.is_ok(), "round {i}: cancel() was false but {res:?}");
            assert!(
                ran.load(Ordering::SeqCst),
                "round {i}: succeeded without running"
            );
        }
    }
    let report = pool.shutdown();
    assert_eq!(report.cancelled, u64::from(cancelled), "{report:?}");
    assert_eq!(
        report.completed,
        u64::from(ROUNDS - cancelled),
        "{report:?}"
    );
}

#[test]
fn cancelling_a_task_waiting_for_a_retry_stops_further_runs() {
    let pool = pool(1);
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let h = pool
        .submit_task(
            Task::<()>::fallible(move || {
                r.fetch_add(1, Ordering::SeqCst);
                Err("not yet")
            })
            .retry(Retry::fixed(10, Duration::from_secs(3600))),
        )
        .unwrap();
    wait_until("the task to wait for its retry", || {
        h.status() == Status::Retrying
    });
    assert!(h.cancel(), "a task waiting for a retry can be cancelled");
    assert!(matches!(finish(h), Err(TaskError::Cancelled)));
    let report = pool.shutdown();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(report.cancelled, 1, "{report:?}");
}

#[test]
fn cancel_racing_retry_has_exactly_one_outcome() {
    // Each task fails until cancelled, retrying every millisecond; cancel()
    // lands sometimes while it runs and sometimes while it waits.
    // Under Miri, each number of runs before the cancel (1 to 4) twice.
    const ROUNDS: u32 = if cfg!(miri) { 8 } else { 300 };
    let pool = pool(2);
    for i in 0..ROUNDS {
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let h = pool
            .submit_task(
                Task::fallible(move || {
                    let n = r.fetch_add(1, Ordering::SeqCst) + 1;
                    if runq::is_cancelled() {
                        Ok(n)
                    } else {
                        Err("again")
                    }
                })
                .retry(Retry::fixed(1_000_000, Duration::from_millis(1)).jitter(Jitter::None)),
            )
            .unwrap();
        let target = 1 + i % 4;
        wait_until("some runs", || runs.load(Ordering::SeqCst) >= target);
        for _ in 0..(i * 37 % 2000) {
            std::hint::spin_loop();
        }
        let said_never_runs = h.cancel();
        let runs_at_cancel = runs.load(Ordering::SeqCst);
        let res = finish(h);
        let runs_after = runs.load(Ordering::SeqCst);
        if said_never_runs {
            assert!(
                matches!(res, Err(TaskError::Cancelled)),
                "round {i}: {res:?}"
            );
            assert_eq!(
                runs_after, runs_at_cancel,
                "round {i}: ran again after cancel() was true"
            );
        } else {
            // It was running: the flag either ends it cooperatively (Ok,
            // with the run count) or stops further retries, so the run in
            // progress is the last one and its failure is the outcome. A
            // run that ended is never turned into Cancelled.
            match &res {
                Ok(n) => assert_eq!(*n, runs_after, "round {i}: not the last run's value"),
                Err(TaskError::Failed { attempts, .. }) => assert_eq!(
                    *attempts, runs_after,
                    "round {i}: the failure does not count the runs"
                ),
                other => panic!("round {i}: {other:?}"),
            }
            assert!(
                runs_after <= runs_at_cancel + 1,
                "round {i}: retried after cancel was requested"
            );
        }
        std::thread::sleep(Duration::from_millis(3));
        assert_eq!(
            runs.load(Ordering::SeqCst),
            runs_after,
            "round {i}: ran after resolving"
        );
    }
    let report = pool.shutdown();
    assert_eq!(
        report.submitted,
        report.completed + report.failed + report.cancelled + report.expired,
        "{report:?}"
    );
}

#[test]
fn concurrent_cancels_of_a_queued_task_resolve_it_once() {
    const ROUNDS: usize = scaled(100);
    let pool = pool(1);
    for _ in 0..ROUNDS {
        let (blocker, release) = occupy_worker(&pool);
        let h = Arc::new(pool.submit(|| ()).unwrap());
        let wins = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let h = h.clone();
                let wins = wins.clone();
                std::thread::spawn(move || {
                    if h.cancel() {
                        wins.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(
            wins.load(Ordering::SeqCst) >= 1,
            "a queued task could not be cancelled"
        );
        drop(release);
        finish(blocker).unwrap();
        let h = Arc::try_unwrap(h).expect("all clones joined");
        assert!(matches!(finish(h), Err(TaskError::Cancelled)));
    }
    let report = pool.shutdown();
    assert_eq!(
        report.cancelled, ROUNDS as u64,
        "each task is counted cancelled once: {report:?}"
    );
}

/// Runs `body` on a fresh worker, calls `cancel()` once it has started (it
/// returns false: the task runs), lets it go on and returns the outcome and
/// the number of runs.
fn cancel_while_running<T: Send + std::fmt::Debug + 'static>(
    make: impl FnOnce(Arc<AtomicU32>) -> Task<T>,
) -> (Result<T, TaskError>, u32) {
    let pool = pool(1);
    let runs = Arc::new(AtomicU32::new(0));
    let h = pool.submit_task(make(runs.clone())).unwrap();
    wait_until("the task to start", || runs.load(Ordering::SeqCst) == 1);
    assert!(!h.cancel(), "a running task cannot be cancelled");
    let res = finish(h);
    pool.shutdown();
    (res, runs.load(Ordering::SeqCst))
}

/// Spins until the running task sees its cancel flag.
fn until_cancel_requested() {
    let start = Instant::now();
    while !runq::is_cancelled() {
        assert!(start.elapsed() < LIMIT, "cancel flag never seen");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_run_once_task_that_panics_after_a_refused_cancel_reports_its_panic() {
    // cancel() said false, so the task ran; its outcome is its own.
    let (res, runs) = cancel_while_running(|runs| {
        Task::<u8>::new(move || {
            runs.fetch_add(1, Ordering::SeqCst);
            until_cancel_requested();
            panic!("gave up");
        })
    });
    assert_eq!(runs, 1);
    assert!(
        matches!(&res, Err(TaskError::Panicked(m)) if m.contains("gave up")),
        "a task that ran and panicked resolved {res:?}"
    );
}

#[test]
fn a_last_attempt_that_fails_after_a_refused_cancel_reports_its_failure() {
    let (res, runs) = cancel_while_running(|runs| {
        Task::<u8>::fallible(move || {
            runs.fetch_add(1, Ordering::SeqCst);
            until_cancel_requested();
            Err("stopped early")
        })
    });
    assert_eq!(runs, 1);
    assert!(
        matches!(&res, Err(TaskError::Failed { attempts: 1, .. })),
        "a task that ran its only attempt and failed resolved {res:?}"
    );
}

#[test]
fn a_refused_cancel_stops_further_retries() {
    let (res, runs) = cancel_while_running(|runs| {
        Task::<u8>::fallible(move || {
            runs.fetch_add(1, Ordering::SeqCst);
            until_cancel_requested();
            Err("stopped early")
        })
        .retry(Retry::fixed(5, Duration::from_millis(1)))
    });
    assert_eq!(runs, 1, "retried after cancel was requested");
    assert!(
        matches!(
            res,
            Err(TaskError::Cancelled | TaskError::Failed { attempts: 1, .. })
        ),
        "{res:?}"
    );
}
