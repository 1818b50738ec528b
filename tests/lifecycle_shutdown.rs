//! Shutdown and the task lifecycle: `shutdown()` waits for delayed tasks and
//! pending retries; `shutdown_now()` resolves queued, delayed and retrying
//! tasks `Cancelled` and lets running ones finish; either way every accepted
//! task gets one terminal state and one callback, and the workers are gone.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use runq::{Jitter, Pool, Retry, ShutdownReport, Status, SubmitError, Task, TaskError};

mod common;

use common::limit_30s::{finish, wait_until, TestPool, LIMIT};
use common::{scaled, threads_named, wait_threads_gone};

fn pool(workers: usize, name: &str) -> TestPool {
    TestPool(
        Pool::builder()
            .workers(workers)
            .pin_workers(false)
            .thread_name(name)
            .build()
            .expect("build pool"),
    )
}

/// Joined threads can linger in /proc for a moment after `join` returns.
/// (Under Miri, which cannot read /proc, there is nothing to count.)
fn assert_threads_gone(prefix: &str) {
    wait_threads_gone(prefix);
}

fn assert_balanced(report: &ShutdownReport) {
    assert_eq!(
        report.submitted,
        report.completed + report.failed + report.cancelled + report.expired,
        "{report:?}"
    );
}

/// Counts body runs and callback calls of a group of tasks.
#[derive(Clone, Default)]
struct Tally {
    runs: Arc<AtomicU32>,
    callbacks: Arc<AtomicU32>,
}

impl Tally {
    fn task(&self) -> Task<()> {
        let runs = self.runs.clone();
        let callbacks = self.callbacks.clone();
        Task::new(move || {
            runs.fetch_add(1, Ordering::SeqCst);
        })
        .on_complete(move |_| {
            callbacks.fetch_add(1, Ordering::SeqCst);
        })
    }
    /// Fails `failures` times, then succeeds.
    fn flaky(&self, failures: u32, retry: Retry) -> Task<()> {
        let runs = self.runs.clone();
        let callbacks = self.callbacks.clone();
        Task::fallible(move || {
            if runs.fetch_add(1, Ordering::SeqCst) < failures {
                Err("not yet")
            } else {
                Ok(())
            }
        })
        .retry(retry)
        .on_complete(move |_| {
            callbacks.fetch_add(1, Ordering::SeqCst);
        })
    }
    fn runs(&self) -> u32 {
        self.runs.load(Ordering::SeqCst)
    }
    fn callbacks(&self) -> u32 {
        self.callbacks.load(Ordering::SeqCst)
    }
}

#[test]
fn shutdown_waits_for_delayed_tasks() {
    let pool = pool(2, "lsdly");
    let tally = Tally::default();
    let handles: Vec<_> = (0..10)
        .map(|i| {
            pool.submit_task(tally.task().delay(Duration::from_millis(20 + 10 * i)))
                .unwrap()
        })
        .collect();
    let report = pool.shutdown();
    assert_eq!(
        tally.runs(),
        10,
        "shutdown returned before delayed tasks ran"
    );
    assert_eq!(tally.callbacks(), 10);
    for h in handles {
        assert_eq!(h.status(), Status::Succeeded);
        finish(h).unwrap();
    }
    assert_eq!(report.completed, 10, "{report:?}");
    assert_balanced(&report);
    assert_threads_gone("lsdly-");
}

#[test]
fn shutdown_waits_for_pending_retries() {
    let pool = pool(1, "lsrty");
    let tally = Tally::default();
    let h = pool
        .submit_task(tally.flaky(
            2,
            Retry::fixed(5, Duration::from_millis(50)).jitter(Jitter::None),
        ))
        .unwrap();
    wait_until("the first retry wait", || h.status() == Status::Retrying);
    let report = pool.shutdown();
    assert_eq!(tally.runs(), 3, "shutdown dropped a pending retry");
    assert_eq!(tally.callbacks(), 1);
    finish(h).unwrap();
    assert_eq!(report.completed, 1, "{report:?}");
    assert_eq!(report.retried, 2, "{report:?}");
    assert_balanced(&report);
    assert_threads_gone("lsrty-");
}

#[test]
fn shutdown_while_retries_wait_lets_them_run_out_their_attempts() {
    let pool = pool(2, "lsrfl");
    let tallies: Vec<Tally> = (0..8).map(|_| Tally::default()).collect();
    let handles: Vec<_> = tallies
        .iter()
        .map(|t| {
            pool.submit_task(t.flaky(u32::MAX, Retry::fixed(3, Duration::from_millis(10))))
                .unwrap()
        })
        .collect();
    let report = pool.shutdown();
    for (t, h) in tallies.iter().zip(handles) {
        assert!(matches!(
            finish(h),
            Err(TaskError::Failed { attempts: 3, .. })
        ));
        assert_eq!(t.runs(), 3);
        assert_eq!(t.callbacks(), 1);
    }
    assert_eq!(report.failed, 8, "{report:?}");
    assert_eq!(report.retried, 16, "{report:?}");
    assert_balanced(&report);
}

#[test]
fn shutdown_now_cancels_delayed_tasks_and_runs_their_callbacks_once() {
    let pool = pool(1, "lsndl");
    let tally = Tally::default();
    let handles: Vec<_> = (0..5)
        .map(|_| {
            pool.submit_task(tally.task().delay(Duration::from_secs(3600)))
                .unwrap()
        })
        .collect();
    let report = pool.shutdown_now();
    for h in handles {
        assert!(matches!(finish(h), Err(TaskError::Cancelled)));
    }
    assert_eq!(tally.runs(), 0);
    assert_eq!(tally.callbacks(), 5);
    assert_eq!(report.cancelled, 5, "{report:?}");
    assert_balanced(&report);
    assert_threads_gone("lsndl-");
}

#[test]
fn shutdown_now_cancels_pending_retries_and_runs_their_callbacks_once() {
    let pool = pool(1, "lsnrt");
    let tally = Tally::default();
    let h = pool
        .submit_task(tally.flaky(1, Retry::fixed(3, Duration::from_secs(3600))))
        .unwrap();
    wait_until("the retry wait", || h.status() == Status::Retrying);
    let report = pool.shutdown_now();
    assert!(matches!(finish(h), Err(TaskError::Cancelled)));
    assert_eq!(tally.runs(), 1);
    assert_eq!(tally.callbacks(), 1);
    assert_eq!(report.cancelled, 1, "{report:?}");
    assert_balanced(&report);
    assert_threads_gone("lsnrt-");
}

#[test]
fn shutdown_now_cancels_queued_tasks_and_lets_the_running_one_finish() {
    let pool = pool(1, "lsnq");
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let running_done = Arc::new(AtomicBool::new(false));
    let rd = running_done.clone();
    let running = pool
        .submit(move || {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(LIMIT);
            rd.store(true, Ordering::SeqCst);
            "finished"
        })
        .unwrap();
    started_rx.recv_timeout(LIMIT).unwrap();
    let tally = Tally::default();
    let queued: Vec<_> = (0..20)
        .map(|_| pool.submit_task(tally.task()).unwrap())
        .collect();
    let p = pool.clone();
    let stopper = std::thread::spawn(move || p.shutdown_now());
    wait_until("shutdown to begin", || pool.is_shut_down());
    // Intake is closed before the running task is done.
    assert_eq!(pool.submit(|| ()).unwrap_err(), SubmitError::ShutDown);
    drop(release_tx);
    let report = stopper.join().unwrap();
    assert!(
        running_done.load(Ordering::SeqCst),
        "shutdown_now returned mid-task"
    );
    assert_eq!(finish(running).unwrap(), "finished");
    for h in queued {
        assert!(matches!(finish(h), Err(TaskError::Cancelled)));
    }
    assert_eq!(tally.runs(), 0, "a queued task ran after shutdown_now");
    assert_eq!(tally.callbacks(), 20);
    assert_eq!(report.cancelled, 20, "{report:?}");
    assert_eq!(report.completed, 1, "{report:?}");
    assert_balanced(&report);
    assert_threads_gone("lsnq-");
}

#[test]
fn shutdown_drains_queued_tasks() {
    let pool = pool(2, "lsdrn");
    if cfg!(target_os = "linux") && !cfg!(miri) {
        // The leak checks count on the workers carrying the name. (Miri
        // cannot read /proc, where the names are.)
        assert!(threads_named("lsdrn-") >= 2, "workers not named lsdrn-*");
    }
    const TASKS: u32 = scaled(500) as u32;
    let tally = Tally::default();
    let handles: Vec<_> = (0..TASKS)
        .map(|_| pool.submit_task(tally.task()).unwrap())
        .collect();
    let report = pool.shutdown();
    assert_eq!(tally.runs(), TASKS);
    assert_eq!(tally.callbacks(), TASKS);
    for h in handles {
        finish(h).unwrap();
    }
    assert_eq!(report.completed, u64::from(TASKS), "{report:?}");
    assert_balanced(&report);
    assert_threads_gone("lsdrn-");
}

#[test]
fn submissions_after_shutdown_are_refused_and_never_run() {
    let pool = pool(1, "lsaft");
    let clone = pool.clone();
    pool.shutdown();
    assert!(clone.is_shut_down());
    let tally = Tally::default();
    assert_eq!(
        clone.submit_task(tally.task()).unwrap_err(),
        SubmitError::ShutDown
    );
    assert_eq!(
        clone
            .submit_task(tally.task().delay(Duration::from_millis(1)))
            .unwrap_err(),
        SubmitError::ShutDown
    );
    assert_eq!(clone.spawn(|| ()).unwrap_err(), SubmitError::ShutDown);
    let err = clone.try_submit_task(tally.task()).unwrap_err();
    assert_eq!(err.error, SubmitError::ShutDown);
    drop(err);
    assert_eq!(tally.runs(), 0);
    assert_eq!(tally.callbacks(), 0, "a refused task got a callback");
}

#[test]
fn second_shutdown_returns_without_hanging() {
    let pool = pool(2, "lstwo");
    let tally = Tally::default();
    for _ in 0..10 {
        pool.submit_task(tally.task()).unwrap();
    }
    let first = pool.shutdown();
    let second = pool.clone().shutdown();
    let third = pool.shutdown_now();
    assert_eq!(first.completed, 10, "{first:?}");
    assert_balanced(&second);
    assert_balanced(&third);
    assert_eq!(tally.runs(), 10);
}

#[test]
fn shutdown_racing_a_retry_timer_resolves_every_task_once() {
    for round in 0..scaled(20) as u32 {
        let pool = pool(2, "lsrce");
        let tallies: Vec<Tally> = (0..10).map(|_| Tally::default()).collect();
        let handles: Vec<_> = tallies
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let retry = Retry::exponential(4, Duration::from_micros(200 * (i as u64 + 1)));
                pool.submit_task(t.flaky(i as u32 % 5, retry)).unwrap()
            })
            .collect();
        std::thread::sleep(Duration::from_micros(u64::from(round) * 150));
        let report = if round % 2 == 0 {
            pool.shutdown()
        } else {
            pool.shutdown_now()
        };
        for (i, (t, h)) in tallies.iter().zip(handles).enumerate() {
            let res = finish(h);
            assert_eq!(t.callbacks(), 1, "round {round} task {i}: {res:?}");
            if round % 2 == 0 {
                // Graceful: retries ran to their end.
                match res {
                    Ok(()) => assert!(i % 5 < 4, "round {round} task {i}"),
                    Err(TaskError::Failed { attempts: 4, .. }) => assert_eq!(i % 5, 4),
                    other => panic!("round {round} task {i}: {other:?}"),
                }
            } else {
                assert!(
                    matches!(
                        res,
                        Ok(()) | Err(TaskError::Cancelled | TaskError::Failed { .. })
                    ),
                    "round {round} task {i}: {res:?}"
                );
            }
        }
        assert_balanced(&report);
        assert_eq!(report.submitted, 10, "{report:?}");
    }
    assert_threads_gone("lsrce-");
}

#[test]
fn dropping_the_last_pool_runs_delayed_tasks() {
    let tally = Tally::default();
    let h = {
        let pool = pool(1, "lsdrp");
        pool.submit_task(tally.task().delay(Duration::from_millis(30)))
            .unwrap()
    };
    finish(h).unwrap();
    assert_eq!(tally.runs(), 1);
    assert_eq!(tally.callbacks(), 1);
    assert_threads_gone("lsdrp-");
}

#[test]
fn shutdown_from_inside_a_task_does_not_hang() {
    let pool = pool(2, "lsins");
    let p = pool.clone();
    let tally = Tally::default();
    for _ in 0..5 {
        pool.submit_task(tally.task()).unwrap();
    }
    let h = pool.submit(move || p.shutdown()).unwrap();
    let inner_report = finish(h).unwrap();
    let report = pool.shutdown();
    assert!(inner_report.submitted >= 1, "{inner_report:?}");
    assert_balanced(&report);
    assert_eq!(tally.callbacks(), 5);
    assert_threads_gone("lsins-");
}

#[test]
fn shutdown_now_lets_a_running_task_keep_its_own_failure() {
    // shutdown_now lets running tasks finish: a task that was running and
    // then fails reports that failure, not Cancelled.
    let pool = pool(1, "lsnfl");
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let h = pool
        .submit_task(Task::<u8>::new(move || {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(LIMIT);
            panic!("failed while the pool stopped");
        }))
        .unwrap();
    started_rx.recv_timeout(LIMIT).unwrap();
    let p = pool.clone();
    let stopper = std::thread::spawn(move || p.shutdown_now());
    wait_until("shutdown to begin", || pool.is_shut_down());
    drop(release_tx);
    let report = stopper.join().unwrap();
    let res = finish(h);
    assert!(
        matches!(&res, Err(TaskError::Panicked(m)) if m.contains("pool stopped")),
        "a task that ran and panicked resolved {res:?}"
    );
    assert_eq!(report.cancelled, 0, "{report:?}");
    assert_eq!(report.failed, 1, "{report:?}");
}

#[test]
fn last_pool_dropped_inside_a_task_still_drains_and_lets_every_thread_exit() {
    let tally = Tally::default();
    let (dropped_tx, dropped_rx) = mpsc::channel();
    let (caller_dropped_tx, caller_dropped_rx) = mpsc::channel::<()>();
    {
        let pool = pool(2, "lsdin");
        let p = pool.clone();
        pool.spawn(move || {
            // Outlive the caller's handle, so this clone is the last one.
            caller_dropped_rx
                .recv_timeout(LIMIT)
                .expect("the caller's pool was dropped");
            drop(p);
            dropped_tx.send(()).unwrap();
        })
        .unwrap();
        for _ in 0..10 {
            pool.submit_task(tally.task().delay(Duration::from_millis(80)))
                .unwrap();
        }
    }
    caller_dropped_tx.send(()).unwrap();
    dropped_rx
        .recv_timeout(LIMIT)
        .expect("dropping the last pool on a worker hung");
    wait_until("every delayed task to run", || tally.callbacks() == 10);
    assert_eq!(
        tally.runs(),
        10,
        "dropping the last pool lost delayed tasks"
    );
    wait_threads_gone("lsdin-");
}
