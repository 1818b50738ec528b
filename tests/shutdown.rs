//! Shutdown: `shutdown` drains, `shutdown_now` cancels what waits and lets
//! running tasks finish, dropping the last `Pool` is `shutdown` (also on a
//! worker thread), intake stops, and every accepted task ends in exactly one
//! terminal state with the report's counts adding up.

use std::panic::{self};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use runq::{Pool, ShutdownReport, Status, SubmitError, Task, TaskError};

mod common;

use common::limit_10s::{bounded, occupy, open_when_shut_down, wait, wait_until, Gate, LIMIT};
use common::{scaled, wait_threads_gone};

/// Opens `gate` once the thread whose kernel id comes through `tid` sleeps:
/// that thread does nothing but call a blocking drop, so once it sleeps the
/// drop has begun. (Linux only; elsewhere, and under Miri, which cannot read
/// /proc, the id is negative, the gate opens at once and the test checks
/// less.)
fn open_when_asleep(gate: &Gate, tid: mpsc::Receiver<i64>) {
    let gate = gate.clone();
    thread::spawn(move || {
        let tid = tid.recv_timeout(LIMIT).unwrap_or(-1);
        let stat = format!("/proc/self/task/{tid}/stat");
        let start = Instant::now();
        while tid >= 0 && start.elapsed() < LIMIT {
            let Ok(text) = std::fs::read_to_string(&stat) else {
                break;
            };
            // The state is the first field after the parenthesised name.
            let state = text.rsplit_once(')').map(|(_, r)| r.trim_start());
            if matches!(state.and_then(|r| r.chars().next()), Some('S' | 'D')) {
                break;
            }
            thread::sleep(Duration::from_millis(1));
        }
        gate.open();
    });
}

/// This thread's kernel id, where /proc has a directory for it.
fn this_tid() -> i64 {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        // SAFETY: gettid has no preconditions.
        i64::from(unsafe { libc::gettid() })
    }
    #[cfg(not(all(target_os = "linux", not(miri))))]
    {
        -1
    }
}

fn counter_task(count: &Arc<AtomicUsize>) -> impl FnOnce() + Send + 'static {
    let count = count.clone();
    move || {
        count.fetch_add(1, Ordering::SeqCst);
    }
}

fn adds_up(r: &ShutdownReport) -> bool {
    r.submitted == r.completed + r.failed + r.cancelled + r.expired
}

#[test]
fn shutdown_runs_everything_queued() {
    const TASKS: usize = scaled(50);
    let pool = Pool::builder().workers(1).build().unwrap();
    let (gate, _blocker) = occupy(&pool);
    let count = Arc::new(AtomicUsize::new(0));
    for _ in 0..TASKS {
        pool.spawn(counter_task(&count)).unwrap();
    }
    open_when_shut_down(&gate, &pool);
    let report = bounded("shutdown", move || pool.shutdown());
    assert_eq!(count.load(Ordering::SeqCst), TASKS);
    assert_eq!(report.submitted, TASKS as u64 + 1);
    assert_eq!(report.completed, TASKS as u64 + 1);
    assert_eq!(report.cancelled, 0);
    assert!(adds_up(&report));
}

#[test]
fn shutdown_runs_delayed_tasks_too() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let h = pool
        .submit_task(Task::new(counter_task(&count)).delay(Duration::from_millis(100)))
        .unwrap();
    let report = bounded("shutdown", move || pool.shutdown());
    assert_eq!(count.load(Ordering::SeqCst), 1, "the delayed task ran");
    assert_eq!(h.status(), Status::Succeeded);
    assert_eq!(report.completed, 1);
}

#[test]
fn spawns_from_a_running_task_during_shutdown_run_or_are_refused() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let inner = pool.clone();
    let c = count.clone();
    let (started_tx, started_rx) = mpsc::channel();
    let outer = pool
        .submit(move || {
            started_tx.send(()).unwrap();
            // Spawn only once shutdown has begun.
            let start = Instant::now();
            while !inner.is_shut_down() && start.elapsed() < LIMIT {
                thread::sleep(Duration::from_millis(1));
            }
            assert!(inner.is_shut_down(), "shutdown never began");
            let mut accepted = 0;
            for _ in 0..10 {
                match inner.spawn(counter_task(&c)) {
                    Ok(()) => accepted += 1,
                    Err(e) => assert_eq!(e, SubmitError::ShutDown),
                }
            }
            accepted
        })
        .unwrap();
    started_rx.recv_timeout(LIMIT).unwrap();
    let p = pool.clone();
    let report = bounded("shutdown", move || p.shutdown());
    let accepted = wait(outer).unwrap();
    assert_eq!(
        count.load(Ordering::SeqCst),
        accepted,
        "an accepted spawn was lost"
    );
    assert_eq!(report.submitted, 1 + accepted as u64);
    assert_eq!(report.completed, 1 + accepted as u64);
}

#[test]
fn shutdown_now_cancels_queued_tasks_and_lets_running_ones_finish() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let (gate, blocker) = occupy(&pool);
    let count = Arc::new(AtomicUsize::new(0));
    let queued: Vec<_> = (0..20)
        .map(|_| pool.submit(counter_task(&count)).unwrap())
        .collect();
    let (tx, rx) = mpsc::channel();
    {
        let pool = pool.clone();
        thread::spawn(move || tx.send(pool.shutdown_now()).unwrap());
    }
    // The blocker finishes only once shutdown_now has begun, so the queued
    // tasks are certain to be cancelled rather than run.
    wait_until("shutdown_now to begin", || pool.is_shut_down());
    // shutdown_now waits for the running task; it is not interrupted.
    assert!(
        rx.try_recv().is_err(),
        "shutdown_now returned while a task was still running"
    );
    assert_eq!(blocker.status(), Status::Running);
    gate.open();
    let report = rx.recv_timeout(LIMIT).expect("shutdown_now hung");
    wait(blocker).expect("the running task finished normally");
    for h in queued {
        assert!(matches!(wait(h), Err(TaskError::Cancelled)));
    }
    assert_eq!(count.load(Ordering::SeqCst), 0, "a cancelled task ran");
    assert_eq!(report.submitted, 21);
    assert_eq!(report.completed, 1, "the running task finished");
    assert_eq!(report.cancelled, 20);
    assert!(adds_up(&report));
}

#[test]
fn a_task_that_panics_while_shutdown_now_waits_resolves_panicked() {
    // shutdown_now lets running tasks finish: one that ran and panicked
    // ends Failed (Panicked), not Cancelled.
    let pool = Pool::builder().workers(1).build().unwrap();
    let gate = Gate::default();
    let (started_tx, started_rx) = mpsc::channel();
    let g = gate.clone();
    let h = pool
        .submit(move || -> u8 {
            started_tx.send(()).unwrap();
            g.wait();
            panic::resume_unwind(Box::new("runq-test: intentional"))
        })
        .unwrap();
    started_rx.recv_timeout(LIMIT).unwrap();
    open_when_shut_down(&gate, &pool);
    let report = bounded("shutdown_now", move || pool.shutdown_now());
    let outcome = wait(h);
    assert!(
        matches!(outcome, Err(TaskError::Panicked(_))),
        "got {outcome:?}"
    );
    assert_eq!(report.failed, 1, "{report:?}");
    assert_eq!(report.cancelled, 0, "{report:?}");
}

#[test]
fn shutdown_now_cancels_delayed_tasks_without_waiting_for_them() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let h = pool
        .submit_task(Task::new(counter_task(&count)).delay(Duration::from_secs(3600)))
        .unwrap();
    assert_eq!(h.status(), Status::Delayed);
    let report = bounded("shutdown_now", move || pool.shutdown_now());
    assert!(matches!(wait(h), Err(TaskError::Cancelled)));
    assert_eq!(count.load(Ordering::SeqCst), 0);
    assert_eq!(report.cancelled, 1);
    assert!(adds_up(&report));
}

#[test]
fn dropping_the_last_pool_drains_like_shutdown() {
    const TASKS: usize = scaled(50);
    // One worker, held by the blocker: every task stays queued until the
    // drop has begun (the gate opens once the dropping thread sleeps).
    let pool = Pool::builder()
        .workers(1)
        .thread_name("rqdrain")
        .build()
        .unwrap();
    let (gate, _blocker) = occupy(&pool);
    let count = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..TASKS)
        .map(|_| pool.submit(counter_task(&count)).unwrap())
        .collect();
    let (tid_tx, tid_rx) = mpsc::channel();
    open_when_asleep(&gate, tid_rx);
    bounded("drop of the last pool", move || {
        tid_tx.send(this_tid()).unwrap();
        drop(pool);
    });
    assert_eq!(
        count.load(Ordering::SeqCst),
        TASKS,
        "drop ran every queued task"
    );
    for h in handles {
        assert_eq!(h.status(), Status::Succeeded);
    }
    // Joined threads can stay listed in /proc for a moment after `join`.
    wait_threads_gone("rqdrain-");
}

#[test]
fn dropping_one_clone_keeps_the_pool_running() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let other = pool.clone();
    drop(pool);
    assert!(!other.is_shut_down());
    assert_eq!(wait(other.submit(|| 3).unwrap()).unwrap(), 3);
}

#[test]
fn dropping_the_last_pool_on_a_worker_thread_does_not_hang() {
    const QUEUED: usize = scaled(20);
    let pool = Pool::builder()
        .workers(2)
        .thread_name("rqself")
        .build()
        .unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let (main_dropped_tx, main_dropped_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    let last = pool.clone();
    let gate = Gate::default();
    let g = gate.clone();
    pool.spawn(move || {
        main_dropped_rx.recv_timeout(LIMIT).unwrap();
        g.wait();
        drop(last);
        done_tx.send(runq::current_worker()).unwrap();
    })
    .unwrap();
    // Work queued behind the task that drops the last handle.
    for _ in 0..QUEUED {
        pool.spawn(counter_task(&count)).unwrap();
    }
    drop(pool);
    main_dropped_tx.send(()).unwrap();
    gate.open();
    let worker = done_rx
        .recv_timeout(LIMIT)
        .expect("dropping the last pool on a worker hung");
    assert!(worker.is_some(), "the drop happened on a worker thread");
    let start = Instant::now();
    while count.load(Ordering::SeqCst) < QUEUED {
        assert!(start.elapsed() < LIMIT, "queued tasks were lost");
        thread::sleep(Duration::from_millis(1));
    }
    wait_threads_gone("rqself-");
}

#[test]
fn submit_after_shutdown_is_refused() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let clone = pool.clone();
    assert!(!pool.is_shut_down());
    pool.shutdown();
    for p in [&pool, &clone] {
        assert!(p.is_shut_down());
        assert_eq!(p.spawn(|| ()).unwrap_err(), SubmitError::ShutDown);
        assert_eq!(p.submit(|| 1).unwrap_err(), SubmitError::ShutDown);
        assert_eq!(
            p.submit_task(Task::new(|| 1)).unwrap_err(),
            SubmitError::ShutDown
        );
        assert_eq!(
            p.try_submit_task(Task::new(|| 1)).unwrap_err().error,
            SubmitError::ShutDown
        );
        assert_eq!(
            p.submit_batch(vec![Task::new(|| 1)]).unwrap_err(),
            SubmitError::ShutDown
        );
    }
}

#[test]
fn submit_after_shutdown_now_is_refused() {
    let pool = Pool::builder().workers(1).build().unwrap();
    pool.shutdown_now();
    assert!(pool.is_shut_down());
    assert_eq!(pool.submit(|| 1).unwrap_err(), SubmitError::ShutDown);
}

#[test]
fn shutdown_twice_returns_and_keeps_the_counts() {
    let pool = Pool::builder().workers(1).build().unwrap();
    wait(pool.submit(|| ()).unwrap()).unwrap();
    let first = pool.shutdown();
    let p = pool.clone();
    let second = bounded("second shutdown", move || p.shutdown());
    let third = bounded("shutdown_now after shutdown", move || pool.shutdown_now());
    assert_eq!(first.submitted, 1);
    assert_eq!(second.submitted, first.submitted);
    assert_eq!(third.completed, first.completed);
}

#[test]
fn concurrent_shutdowns_all_return() {
    const TASKS: u64 = scaled(100) as u64;
    let pool = Pool::builder().workers(2).build().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    for _ in 0..TASKS {
        pool.spawn(counter_task(&count)).unwrap();
    }
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let p = pool.clone();
            thread::spawn(move || {
                if i % 2 == 0 {
                    p.shutdown()
                } else {
                    p.shutdown_now()
                }
            })
        })
        .collect();
    let reports = bounded("concurrent shutdowns", move || {
        threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect::<Vec<_>>()
    });
    for r in &reports {
        assert!(adds_up(r), "{r:?}");
    }
    let last = pool.metrics();
    assert_eq!(last.submitted, TASKS);
    assert_eq!(last.completed + last.cancelled, TASKS);
    assert_eq!(count.load(Ordering::SeqCst) as u64, last.completed);
}

#[test]
fn every_accepted_task_ends_in_exactly_one_terminal_state() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let (gate, blocker) = occupy(&pool);
    // Under Miri still enough for panics (every 7th) and cancels (every 5th).
    const N: usize = scaled(400);
    let callbacks: Arc<Vec<AtomicUsize>> = Arc::new((0..N).map(|_| AtomicUsize::new(0)).collect());
    let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..N).map(|_| AtomicUsize::new(0)).collect());
    let mut handles = Vec::new();
    for i in 0..N {
        let runs = runs.clone();
        let callbacks = callbacks.clone();
        let task = Task::new(move || {
            runs[i].fetch_add(1, Ordering::SeqCst);
            if i % 7 == 0 {
                panic::resume_unwind(Box::new("runq-test: intentional"));
            }
            i
        })
        .on_complete(move |_| {
            callbacks[i].fetch_add(1, Ordering::SeqCst);
        });
        handles.push(pool.submit_task(task).unwrap());
    }
    let cancelled: Vec<bool> = handles
        .iter()
        .enumerate()
        .map(|(i, h)| i % 5 == 0 && h.cancel())
        .collect();
    // Let some run, then stop the rest.
    gate.open();
    thread::sleep(Duration::from_millis(5));
    let p = pool.clone();
    let report = bounded("shutdown_now", move || p.shutdown_now());
    wait(blocker).unwrap();
    let (mut ok, mut failed, mut cancel) = (0u64, 0u64, 0u64);
    for (i, h) in handles.into_iter().enumerate() {
        let status = h.status();
        assert!(status.is_terminal(), "task {i} left in {status:?}");
        let result = wait(h);
        let ran = runs[i].load(Ordering::SeqCst);
        assert_eq!(
            callbacks[i].load(Ordering::SeqCst),
            1,
            "task {i}: callback count"
        );
        match result {
            Ok(v) => {
                assert_eq!(v, i);
                assert_eq!(ran, 1);
                assert_eq!(status, Status::Succeeded);
                ok += 1;
            }
            Err(TaskError::Panicked(_)) => {
                assert_eq!(i % 7, 0);
                assert_eq!(ran, 1);
                assert_eq!(status, Status::Failed);
                failed += 1;
            }
            Err(TaskError::Cancelled) => {
                assert_eq!(ran, 0, "task {i} ran and was cancelled");
                assert_eq!(status, Status::Cancelled);
                cancel += 1;
            }
            Err(e) => panic!("task {i}: unexpected {e:?}"),
        }
        if cancelled[i] {
            assert_eq!(ran, 0, "task {i}: cancel() said true but it ran");
        }
    }
    assert_eq!(report.submitted, N as u64 + 1);
    assert_eq!(report.completed, ok + 1);
    assert_eq!(report.failed, failed);
    assert_eq!(report.panicked, failed);
    assert_eq!(report.cancelled, cancel);
    assert!(adds_up(&report), "{report:?}");
}

#[test]
fn handles_of_a_shut_down_pool_resolve() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let (gate, blocker) = occupy(&pool);
    let h = pool.submit(|| 1).unwrap();
    open_when_shut_down(&gate, &pool);
    bounded("shutdown_now", move || pool.shutdown_now());
    wait(blocker).unwrap();
    assert!(matches!(wait(h), Err(TaskError::Cancelled)));
}

#[test]
fn metrics_after_shutdown_match_the_report() {
    // Every tenth task panics.
    const TASKS: u64 = if cfg!(miri) { 20 } else { 100 };
    let pool = Pool::builder().workers(2).build().unwrap();
    for i in 0..TASKS {
        if i % 10 == 0 {
            pool.spawn(|| panic::resume_unwind(Box::new("runq-test: intentional")))
                .unwrap();
        } else {
            pool.spawn(|| ()).unwrap();
        }
    }
    let report = pool.shutdown();
    let m = pool.metrics();
    assert_eq!(report.submitted, TASKS);
    assert_eq!(report.completed, TASKS - TASKS / 10);
    assert_eq!(report.failed, TASKS / 10);
    assert_eq!(report.panicked, TASKS / 10);
    assert_eq!(
        (m.submitted, m.completed, m.failed, m.panicked, m.cancelled),
        (
            report.submitted,
            report.completed,
            report.failed,
            report.panicked,
            report.cancelled
        )
    );
}
