//! Hostile tasks: values whose destructors panic, wakers that panic, and
//! panics inside the helping loop of `join`. Whatever user code does while
//! the engine drops or wakes it, the panic stays inside a catch: every
//! worker lives on, the timer keeps firing, shutdown returns, and the
//! caught panics are counted in [`Metrics::drop_panics`].
//!
//! Every case runs on one worker and on two.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Duration;

use runq::{Metrics, Pool, Retry, ShutdownReport, Task, TaskError};

mod common;

use common::limit_10s::{
    bounded, occupy, quiet_intentional_panics, wait, Gate, INTENTIONAL, LIMIT,
};
use common::limit_30s::wait_until;

/// A value whose destructor counts itself, then panics.
struct Bomb(Arc<AtomicUsize>);

impl Drop for Bomb {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("{INTENTIONAL}: a destructor panics");
    }
}

/// An error whose destructor panics.
#[derive(Debug)]
struct BombError(#[allow(dead_code)] Bomb);

impl std::fmt::Debug for Bomb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bomb")
    }
}

impl std::fmt::Display for BombError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an error whose destructor panics")
    }
}

impl std::error::Error for BombError {}

fn pool(workers: usize) -> Pool {
    quiet_intentional_panics();
    Pool::builder()
        .workers(workers)
        .pin_workers(false)
        .build()
        .expect("build pool")
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn drop_panics(m: &Metrics) -> u64 {
    m.drop_panics
}

/// Every one of the pool's workers is alive: `workers` tasks must all be
/// running at the same time for any of them to return true.
fn assert_all_workers_alive(pool: &Pool) {
    let n = pool.workers();
    let arrived = counter();
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let arrived = arrived.clone();
            pool.submit(move || {
                arrived.fetch_add(1, Ordering::SeqCst);
                let start = std::time::Instant::now();
                while arrived.load(Ordering::SeqCst) < n {
                    if start.elapsed() > LIMIT {
                        return false;
                    }
                    std::thread::yield_now();
                }
                true
            })
            .expect("submit")
        })
        .collect();
    for h in handles {
        assert_eq!(wait(h).ok(), Some(true), "a worker is gone");
    }
    // And the timer fires delayed tasks.
    let delayed = pool
        .submit_task(Task::new(|| 5).delay(Duration::from_millis(1)))
        .expect("submit delayed");
    assert_eq!(wait(delayed).ok(), Some(5), "the timer is gone");
}

/// Shuts down within the limit and checks the report balances.
fn shut_down(pool: Pool) -> (ShutdownReport, Metrics) {
    let (report, metrics) = bounded("shutdown", move || {
        let r = pool.shutdown();
        (r, pool.metrics())
    });
    assert_eq!(
        report.submitted,
        report.completed + report.failed + report.cancelled + report.expired,
        "{report:?}"
    );
    assert_eq!(report.in_flight, 0, "{report:?}");
    (report, metrics)
}

/// Runs `case` on one worker and on two.
macro_rules! on_1_and_2_workers {
    ($($name:ident),* $(,)?) => {
        mod one_worker {
            $(#[test] fn $name() { super::$name(1) })*
        }
        mod two_workers {
            $(#[test] fn $name() { super::$name(2) })*
        }
    };
}

on_1_and_2_workers!(
    output_dropped_by_the_worker_after_the_handle_is_gone,
    closure_of_a_cancelled_task_dropped_by_the_worker,
    closure_of_an_expired_task_dropped_by_the_worker,
    closure_dropped_by_the_timer_thread,
    guard_panic_payload_that_panics_when_dropped,
    body_panic_payload_that_panics_when_dropped,
    retried_error_that_panics_when_dropped,
    callback_captures_that_panic_when_dropped,
    waker_that_panics_when_woken_or_dropped,
    output_dropped_with_the_last_handle,
    join_helping_loop_runs_a_job_that_drops_a_bomb,
    dead_letter_hook_whose_captures_panic_when_the_pool_drops_it,
);

fn output_dropped_by_the_worker_after_the_handle_is_gone(workers: usize) {
    let pool = pool(workers);
    let bombs = counter();
    let gate = Gate::default();
    let (g, b) = (gate.clone(), bombs.clone());
    let h = pool
        .submit(move || {
            g.wait();
            Bomb(b)
        })
        .unwrap();
    drop(h);
    gate.open();
    wait_until("the output to be dropped", || {
        bombs.load(Ordering::SeqCst) == 1
    });
    assert_all_workers_alive(&pool);
    let (report, m) = shut_down(pool);
    assert_eq!(report.completed, 1 + workers as u64 + 1);
    assert_eq!(drop_panics(&m), 1, "{m:?}");
}

fn closure_of_a_cancelled_task_dropped_by_the_worker(workers: usize) {
    let pool = pool(workers);
    let blockers: Vec<_> = (0..workers).map(|_| occupy(&pool)).collect();
    let bombs = counter();
    let bomb = Bomb(bombs.clone());
    let h = pool.submit(move || drop(bomb)).unwrap();
    assert!(h.cancel());
    drop(h);
    for (gate, _) in &blockers {
        gate.open();
    }
    wait_until("the closure to be dropped", || {
        bombs.load(Ordering::SeqCst) == 1
    });
    assert_all_workers_alive(&pool);
    let (report, m) = shut_down(pool);
    assert_eq!(report.cancelled, 1);
    assert_eq!(drop_panics(&m), 1, "{m:?}");
}

fn closure_of_an_expired_task_dropped_by_the_worker(workers: usize) {
    let pool = pool(workers);
    let blockers: Vec<_> = (0..workers).map(|_| occupy(&pool)).collect();
    let bombs = counter();
    let bomb = Bomb(bombs.clone());
    let h = pool
        .submit_task(Task::new(move || drop(bomb)).deadline(Duration::from_millis(1)))
        .unwrap();
    wait_until("the task to expire", || h.is_finished());
    assert!(matches!(wait(h), Err(TaskError::Expired)));
    for (gate, _) in &blockers {
        gate.open();
    }
    wait_until("the closure to be dropped", || {
        bombs.load(Ordering::SeqCst) == 1
    });
    assert_all_workers_alive(&pool);
    let (report, m) = shut_down(pool);
    assert_eq!(report.expired, 1);
    assert_eq!(drop_panics(&m), 1, "{m:?}");
}

/// A delayed task cancelled before its time: the timer's entry holds the
/// last reference and drops the closure when it comes due.
fn closure_dropped_by_the_timer_thread(workers: usize) {
    let pool = pool(workers);
    let bombs = counter();
    // The cancel must come before the due time. If the machine is so slow
    // that the task already ran, try again with a longer delay (the bomb
    // then went off inside the task's own call, which is a task panic).
    let mut delay = Duration::from_millis(200);
    let mut lost_races = 0u64;
    loop {
        let bomb = Bomb(bombs.clone());
        let h = pool
            .submit_task(Task::new(move || drop(bomb)).delay(delay))
            .unwrap();
        if h.cancel() {
            break;
        }
        assert!(wait(h).is_err());
        bombs.store(0, Ordering::SeqCst);
        lost_races += 1;
        delay *= 4;
    }
    wait_until("the timer to drop the closure", || {
        bombs.load(Ordering::SeqCst) == 1
    });
    assert_all_workers_alive(&pool);
    let (report, m) = shut_down(pool);
    assert_eq!(report.cancelled, 1);
    assert_eq!(report.failed, lost_races);
    assert_eq!(drop_panics(&m), 1, "{m:?}");
}

fn guard_panic_payload_that_panics_when_dropped(workers: usize) {
    let pool = pool(workers);
    let bombs = counter();
    let b = bombs.clone();
    let h = pool
        .submit_task(Task::new(|| 1).guard(move || std::panic::panic_any(Bomb(b))))
        .unwrap();
    assert!(matches!(wait(h), Err(TaskError::Cancelled)));
    assert_eq!(bombs.load(Ordering::SeqCst), 1);
    assert_all_workers_alive(&pool);
    let (report, m) = shut_down(pool);
    assert_eq!(report.cancelled, 1);
    assert_eq!(drop_panics(&m), 1, "{m:?}");
}

fn body_panic_payload_that_panics_when_dropped(workers: usize) {
    let pool = pool(workers);
    let bombs = counter();
    let b = bombs.clone();
    let h = pool
        .submit(move || -> u32 { std::panic::panic_any(Bomb(b)) })
        .unwrap();
    assert!(matches!(wait(h), Err(TaskError::Panicked(_))));
    assert_eq!(bombs.load(Ordering::SeqCst), 1);
    assert_all_workers_alive(&pool);
    let (report, m) = shut_down(pool);
    assert_eq!((report.failed, report.panicked), (1, 1));
    assert_eq!(drop_panics(&m), 1, "{m:?}");
}

fn retried_error_that_panics_when_dropped(workers: usize) {
    let pool = pool(workers);
    let bombs = counter();
    let b = bombs.clone();
    let h = pool
        .submit_task(
            Task::fallible(move || -> Result<u32, BombError> { Err(BombError(Bomb(b.clone()))) })
                .retry(Retry::fixed(2, Duration::ZERO)),
        )
        .unwrap();
    let last_error = match wait(h) {
        Err(TaskError::Failed { attempts, error }) => {
            assert_eq!(attempts, 2);
            error
        }
        other => panic!("expected Failed, got {other:?}"),
    };
    // The first attempt's error was dropped by the engine.
    assert_eq!(bombs.load(Ordering::SeqCst), 1);
    // The last error is ours: dropping it panics here, in the test's thread.
    let defused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(last_error)));
    assert!(defused.is_err());
    assert_eq!(bombs.load(Ordering::SeqCst), 2);
    assert_all_workers_alive(&pool);
    // The task's closure holds a counter clone, not a bomb: no more drops.
    let (report, m) = shut_down(pool);
    assert_eq!((report.failed, report.retried), (1, 1));
    assert_eq!(drop_panics(&m), 1, "{m:?}");
}

fn callback_captures_that_panic_when_dropped(workers: usize) {
    let pool = pool(workers);
    let bombs = counter();
    let bomb = Bomb(bombs.clone());
    let (tx, rx) = mpsc::channel();
    let h = pool
        .submit_task(Task::new(|| 3).on_complete(move |r| {
            let _keep = &bomb;
            tx.send(*r.as_ref().unwrap()).unwrap();
        }))
        .unwrap();
    assert_eq!(wait(h).ok(), Some(3));
    assert_eq!(rx.recv_timeout(LIMIT), Ok(3));
    assert_eq!(bombs.load(Ordering::SeqCst), 1);
    assert_all_workers_alive(&pool);
    let (_report, m) = shut_down(pool);
    // The captures are dropped when the callback returns, inside its catch.
    assert_eq!(m.callback_panics + drop_panics(&m), 1, "{m:?}");
}

/// A waker whose `wake` and `drop` panic, registered by polling a handle.
fn waker_that_panics_when_woken_or_dropped(workers: usize) {
    static WAKES: AtomicUsize = AtomicUsize::new(0);
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    fn clone(p: *const ()) -> RawWaker {
        RawWaker::new(p, &VTABLE)
    }
    fn wake(_: *const ()) {
        WAKES.fetch_add(1, Ordering::SeqCst);
        panic!("{INTENTIONAL}: a waker panics");
    }
    fn drop_waker(_: *const ()) {
        DROPS.fetch_add(1, Ordering::SeqCst);
        panic!("{INTENTIONAL}: a waker's destructor panics");
    }
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, drop_waker);

    let pool = pool(workers);
    let gate = Gate::default();
    let g = gate.clone();
    let mut h = pool.submit(move || g.wait()).unwrap();
    // SAFETY: the vtable's functions ignore the data pointer.
    let waker = std::mem::ManuallyDrop::new(unsafe { Waker::from_raw(clone(std::ptr::null())) });
    let mut cx = Context::from_waker(&waker);
    let wakes_before = WAKES.load(Ordering::SeqCst);
    let drops_before = DROPS.load(Ordering::SeqCst);
    assert!(std::pin::Pin::new(&mut h).poll(&mut cx).is_pending());
    gate.open();
    // The slot is marked finished before the stored waker is woken, so wait
    // for the wake itself.
    wait_until("the stored waker to be woken", || {
        WAKES.load(Ordering::SeqCst) > wakes_before
    });
    assert!(h.is_finished());
    assert!(matches!(
        std::pin::Pin::new(&mut h).poll(&mut cx),
        Poll::Ready(Ok(()))
    ));
    // The stored clone's destructor panics, inside a catch: here, or on the
    // worker if it still holds the task when the handle goes.
    drop(h);
    wait_until("the stored waker to be dropped", || {
        DROPS.load(Ordering::SeqCst) > drops_before
    });
    assert_all_workers_alive(&pool);
    let (_report, m) = shut_down(pool);
    assert!(m.callback_panics + drop_panics(&m) >= 2, "{m:?}");
}

use std::future::Future;

fn output_dropped_with_the_last_handle(workers: usize) {
    let pool = pool(workers);
    let bombs = counter();
    let b = bombs.clone();
    let h = pool.submit(move || Bomb(b)).unwrap();
    wait_until("the task to finish", || h.is_finished());
    // The output's destructor panics, inside a catch: here, or on the
    // worker if it still holds the task for a moment after finishing it.
    drop(h);
    wait_until("the output to be dropped", || {
        bombs.load(Ordering::SeqCst) > 0
    });
    assert_eq!(bombs.load(Ordering::SeqCst), 1);
    assert_all_workers_alive(&pool);
    let (_report, m) = shut_down(pool);
    assert_eq!(drop_panics(&m), 1, "{m:?}");
}

/// `join` on a worker: while it helps (its `b` stolen, or `b` still under a
/// newer job in its deque) it runs a task whose output, with no handle
/// left, panics when dropped. The panic must not unwind past the join
/// while its stack job is still in the deque or held by a thief.
fn join_helping_loop_runs_a_job_that_drops_a_bomb(workers: usize) {
    let pool = pool(workers);
    let bombs = counter();
    let inner = pool.clone();
    let bombs_in = bombs.clone();
    let h = pool
        .submit(move || {
            let b_started = AtomicUsize::new(0);
            let (pool, bombs) = (&inner, &bombs_in);
            let (ra, rb) = runq::join(
                || {
                    if pool.workers() > 1 {
                        // Let the other worker steal `b` first.
                        let start = std::time::Instant::now();
                        while b_started.load(Ordering::SeqCst) == 0 && start.elapsed() < LIMIT {
                            std::thread::yield_now();
                        }
                    }
                    // Two tasks: the second takes the worker's "next task"
                    // slot and pushes the first onto its deque, above `b`
                    // (if still there), where the helping loop finds it.
                    for _ in 0..2 {
                        let bomb_count = bombs.clone();
                        drop(pool.submit(move || Bomb(bomb_count)).unwrap());
                    }
                    1
                },
                || {
                    b_started.store(1, Ordering::SeqCst);
                    // A thief holds `b` until the bomb went off.
                    let start = std::time::Instant::now();
                    while bombs.load(Ordering::SeqCst) == 0 && start.elapsed() < LIMIT {
                        std::thread::yield_now();
                    }
                    2
                },
            );
            ra + rb
        })
        .unwrap();
    assert_eq!(wait(h).ok(), Some(3));
    wait_until("both outputs to be dropped", || {
        bombs.load(Ordering::SeqCst) == 2
    });
    assert_all_workers_alive(&pool);
    let (_report, m) = shut_down(pool);
    assert_eq!(drop_panics(&m), 2, "{m:?}");
}

/// The pool-level dead-letter hook goes with the pool: dropping the last
/// clone (here on this thread, after the workers are joined) drops the
/// hook's captures, whose panic must stay inside the pool's drop.
fn dead_letter_hook_whose_captures_panic_when_the_pool_drops_it(workers: usize) {
    quiet_intentional_panics();
    let bombs = counter();
    let bomb = Bomb(bombs.clone());
    let letters = counter();
    let l = letters.clone();
    let pool = Pool::builder()
        .workers(workers)
        .pin_workers(false)
        .on_dead_letter(move |_| {
            let _keep = &bomb;
            l.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .expect("build pool");
    let h = pool
        .submit_task(Task::<u8>::fallible(|| Err("for good")))
        .unwrap();
    assert!(matches!(
        wait(h),
        Err(TaskError::Failed { attempts: 1, .. })
    ));
    // The hook runs before the task counts as finished; shutdown waits.
    let (report, _) = shut_down(pool.clone());
    assert_eq!(report.failed, 1);
    assert_eq!(letters.load(Ordering::SeqCst), 1);
    assert_eq!(
        bombs.load(Ordering::SeqCst),
        0,
        "the pool still holds its hook"
    );
    bounded("dropping the last pool", move || drop(pool));
    assert_eq!(bombs.load(Ordering::SeqCst), 1, "the hook was dropped once");
}

/// Deadlines of finished tasks do not pile up in the timer: waves of
/// short tasks with a 60 s deadline leave a bounded number of entries.
#[test]
#[cfg_attr(
    miri,
    ignore = "twenty thousand tasks; the bound is a property of the heap's clean-up"
)]
fn deadlines_of_finished_tasks_do_not_pile_up() {
    let pool = pool(2);
    const WAVE: usize = 500;
    for _ in 0..40 {
        let handles: Vec<_> = (0..WAVE)
            .map(|i| {
                pool.submit_task(Task::new(move || i).deadline(Duration::from_secs(60)))
                    .unwrap()
            })
            .collect();
        for h in handles {
            assert!(wait(h).is_ok());
        }
    }
    let m = pool.metrics();
    // 20,000 deadlines were set; at most one wave is live at a time, so the
    // heap is cleaned up whenever it reaches the clean-up floor (1024).
    assert!(m.timer_entries <= 2 * 1024, "{m:?}");
    let (report, _) = shut_down(pool);
    assert_eq!(report.completed, 40 * WAVE as u64);
}

/// A deadline's callback that blocks holds up no other task's timer.
#[test]
fn a_blocking_expiry_callback_does_not_stall_the_timer() {
    let pool = pool(2);
    let fired = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let f = fired.clone();
    let expiring = pool
        .submit_task(
            Task::new(|| ())
                .delay(Duration::from_secs(3600))
                .deadline(Duration::from_millis(1))
                .on_complete(move |r| {
                    let on_worker = runq::current_worker().is_some();
                    // Blocks until a later delayed task ran (or the limit).
                    let start = std::time::Instant::now();
                    while f.load(Ordering::SeqCst) == 0 && start.elapsed() < LIMIT {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let _ = tx.send((
                        matches!(r, Err(TaskError::Expired)),
                        on_worker,
                        f.load(Ordering::SeqCst),
                    ));
                }),
        )
        .unwrap();
    // Only once the expiry is under way, a delayed task that must still fire.
    wait_until("the expiry", || expiring.status() == runq::Status::Expired);
    let f = fired.clone();
    let delayed = pool
        .submit_task(
            Task::new(move || f.store(1, Ordering::SeqCst)).delay(Duration::from_millis(1)),
        )
        .unwrap();
    let (expired, on_worker, seen) = rx.recv_timeout(2 * LIMIT).unwrap();
    assert!(expired, "the task expired");
    assert!(on_worker, "the expiry callback ran on a worker");
    assert_eq!(seen, 1, "the delayed task fired while the callback blocked");
    assert!(wait(delayed).is_ok());
    assert!(matches!(wait(expiring), Err(TaskError::Expired)));
    shut_down(pool);
}

/// `shutdown_now` resolves delayed tasks on the workers, not the timer.
#[test]
fn shutdown_now_runs_cancel_callbacks_on_workers() {
    let pool = pool(2);
    let (tx, rx) = mpsc::channel();
    let h = pool
        .submit_task(
            Task::new(|| ())
                .delay(Duration::from_secs(3600))
                .on_complete(move |r| {
                    let _ = tx.send((
                        matches!(r, Err(TaskError::Cancelled)),
                        runq::current_worker().is_some(),
                    ));
                }),
        )
        .unwrap();
    let report = bounded("shutdown_now", move || pool.shutdown_now());
    assert_eq!(report.cancelled, 1, "{report:?}");
    assert_eq!(rx.recv_timeout(LIMIT), Ok((true, true)));
    assert!(matches!(wait(h), Err(TaskError::Cancelled)));
}
