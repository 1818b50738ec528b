//! Bounded admission: `capacity(n)` limits the tasks queued from outside the
//! pool, `when_full` picks what a submitter meets when the queue is full,
//! `try_submit_task` never blocks, and submissions from inside the pool never
//! block and do not count against the capacity.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use runq::{Pool, Retry, Status, SubmitError, Task, TaskError, WhenFull};

mod common;

use common::limit_10s::{occupy, wait, wait_until, Gate, LIMIT};
use common::scaled;

fn bounded_pool(capacity: usize, policy: WhenFull) -> Pool {
    Pool::builder()
        .workers(1)
        .capacity(capacity)
        .when_full(policy)
        .build()
        .unwrap()
}

fn flag() -> (Arc<AtomicBool>, impl FnOnce() + Send + 'static) {
    let f = Arc::new(AtomicBool::new(false));
    let g = f.clone();
    (f, move || g.store(true, Ordering::SeqCst))
}

#[test]
fn reject_refuses_once_capacity_tasks_are_queued() {
    let pool = bounded_pool(2, WhenFull::Reject);
    let (gate, blocker) = occupy(&pool);
    let a = pool.submit(|| 1).unwrap();
    let b = pool.submit(|| 2).unwrap();
    let (ran, set) = flag();
    assert_eq!(pool.submit(set).unwrap_err(), SubmitError::Full);
    let (ran2, set2) = flag();
    assert_eq!(pool.spawn(set2).unwrap_err(), SubmitError::Full);
    let (ran3, set3) = flag();
    assert_eq!(
        pool.submit_task(Task::new(set3)).unwrap_err(),
        SubmitError::Full
    );
    gate.open();
    wait(blocker).unwrap();
    assert_eq!(wait(a).unwrap() + wait(b).unwrap(), 3);
    // Room again once the queue drained.
    assert_eq!(wait(pool.submit(|| 4).unwrap()).unwrap(), 4);
    let report = pool.shutdown();
    for f in [ran, ran2, ran3] {
        assert!(!f.load(Ordering::SeqCst), "a rejected task ran");
    }
    assert_eq!(
        report.submitted, 4,
        "rejected tasks are not counted as submitted"
    );
    assert_eq!(report.completed, 4);
}

#[test]
fn capacity_counts_queued_tasks_not_running_ones() {
    let pool = bounded_pool(1, WhenFull::Reject);
    let (gate, blocker) = occupy(&pool);
    // The running blocker does not hold the single slot.
    let h = pool.submit(|| ()).unwrap();
    assert_eq!(pool.submit(|| ()).unwrap_err(), SubmitError::Full);
    gate.open();
    wait(blocker).unwrap();
    wait(h).unwrap();
}

#[test]
fn a_cancelled_task_frees_its_slot() {
    let pool = bounded_pool(1, WhenFull::Reject);
    let (gate, _blocker) = occupy(&pool);
    let h = pool.submit(|| ()).unwrap();
    assert_eq!(pool.submit(|| ()).unwrap_err(), SubmitError::Full);
    assert!(h.cancel());
    let h2 = pool
        .submit(|| 2)
        .expect("the cancelled task's slot is free");
    gate.open();
    assert_eq!(wait(h2).unwrap(), 2);
}

#[test]
fn batch_under_reject_is_all_or_nothing() {
    let pool = bounded_pool(3, WhenFull::Reject);
    let (gate, blocker) = occupy(&pool);
    let ran = Arc::new(AtomicUsize::new(0));
    let tasks = |n: usize| -> Vec<Task<()>> {
        (0..n)
            .map(|_| {
                let ran = ran.clone();
                Task::new(move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect()
    };
    assert_eq!(pool.submit_batch(tasks(5)).unwrap_err(), SubmitError::Full);
    assert_eq!(
        pool.metrics().submitted,
        1,
        "none of the batch was accepted"
    );
    let handles = pool.submit_batch(tasks(3)).unwrap();
    gate.open();
    wait(blocker).unwrap();
    for h in handles {
        wait(h).unwrap();
    }
    assert_eq!(ran.load(Ordering::SeqCst), 3);
}

#[test]
fn block_waits_for_room_then_accepts() {
    let pool = bounded_pool(1, WhenFull::Block);
    let (gate, blocker) = occupy(&pool);
    let queued = pool.submit(|| 1).unwrap();
    let (tx, rx) = mpsc::channel();
    let submitter = {
        let pool = pool.clone();
        thread::spawn(move || {
            let result = pool.submit(|| 2);
            tx.send(()).unwrap();
            result
        })
    };
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "submit returned while the queue was full"
    );
    gate.open();
    rx.recv_timeout(LIMIT)
        .expect("the blocked submitter was never let in");
    let h = submitter.join().unwrap().unwrap();
    wait(blocker).unwrap();
    assert_eq!(wait(queued).unwrap() + wait(h).unwrap(), 3);
}

#[test]
fn block_is_the_default_policy() {
    let pool = Pool::builder().workers(1).capacity(1).build().unwrap();
    let (gate, blocker) = occupy(&pool);
    let _queued = pool.submit(|| ()).unwrap();
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    thread::spawn(move || tx.send(p.submit(|| ()).map(|_| ())).unwrap());
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    gate.open();
    rx.recv_timeout(LIMIT).unwrap().unwrap();
    wait(blocker).unwrap();
}

#[test]
fn many_blocked_submitters_all_get_in() {
    const PER_SUBMITTER: usize = scaled(25);
    let pool = bounded_pool(2, WhenFull::Block);
    let (gate, blocker) = occupy(&pool);
    let count = Arc::new(AtomicUsize::new(0));
    let submitters: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            let count = count.clone();
            thread::spawn(move || {
                (0..PER_SUBMITTER)
                    .map(|_| {
                        let count = count.clone();
                        pool.submit(move || {
                            count.fetch_add(1, Ordering::SeqCst);
                        })
                        .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(50));
    gate.open();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let hs: Vec<_> = submitters
            .into_iter()
            .flat_map(|s| s.join().unwrap())
            .collect();
        tx.send(hs).unwrap();
    });
    let handles = rx.recv_timeout(LIMIT).expect("submitters stuck");
    wait(blocker).unwrap();
    for h in handles {
        wait(h).unwrap();
    }
    assert_eq!(count.load(Ordering::SeqCst), 4 * PER_SUBMITTER);
}

#[test]
fn a_blocked_submitter_gets_shut_down_when_the_pool_stops() {
    let pool = bounded_pool(1, WhenFull::Block);
    let (gate, blocker) = occupy(&pool);
    let _queued = pool.submit(|| ()).unwrap();
    let (tx, rx) = mpsc::channel();
    {
        let pool = pool.clone();
        thread::spawn(move || tx.send(pool.submit(|| ()).map(|_| ())).unwrap());
    }
    thread::sleep(Duration::from_millis(50));
    let (done_tx, done_rx) = mpsc::channel();
    {
        let pool = pool.clone();
        thread::spawn(move || done_tx.send(pool.shutdown_now()).unwrap());
    }
    // The queue must stay full until shutdown_now has begun; only then may
    // the blocker finish.
    wait_until("shutdown_now to begin", || pool.is_shut_down());
    let outcome = rx.recv_timeout(Duration::from_millis(500));
    gate.open();
    let outcome = outcome
        .or_else(|_| rx.recv_timeout(LIMIT))
        .expect("the blocked submitter hung through shutdown");
    assert_eq!(outcome.unwrap_err(), SubmitError::ShutDown);
    done_rx.recv_timeout(LIMIT).expect("shutdown_now hung");
    wait(blocker).unwrap();
}

#[test]
fn run_in_caller_runs_the_task_on_the_submitting_thread() {
    let pool = bounded_pool(1, WhenFull::RunInCaller);
    let (gate, blocker) = occupy(&pool);
    let queued = pool.submit(|| thread::current().id()).unwrap();
    let me = thread::current().id();
    let h = pool
        .submit(|| (thread::current().id(), runq::current_worker()))
        .unwrap();
    assert!(h.is_finished(), "ran inline: finished when submit returns");
    assert_eq!(h.status(), Status::Succeeded);
    assert_eq!(wait(h).unwrap(), (me, None));
    let (ran, set) = flag();
    pool.spawn(set).unwrap();
    assert!(ran.load(Ordering::SeqCst), "spawn ran inline too");
    gate.open();
    wait(blocker).unwrap();
    assert_ne!(
        wait(queued).unwrap(),
        me,
        "the queued task ran on the worker"
    );
    let report = pool.shutdown();
    assert_eq!(report.submitted, 4);
    assert_eq!(report.completed, 4);
}

/// A delay is kept when the task runs in the caller: the caller waits it
/// out (a lower bound, which no machine speed can break).
#[test]
fn run_in_caller_keeps_the_delay() {
    let pool = bounded_pool(1, WhenFull::RunInCaller);
    let (gate, blocker) = occupy(&pool);
    let queued = pool.submit(|| ()).unwrap();
    let delay = Duration::from_millis(30);
    let submitted_at = std::time::Instant::now();
    let h = pool
        .submit_task(Task::new(std::time::Instant::now).delay(delay))
        .unwrap();
    assert!(h.is_finished(), "ran inline");
    let started_at = wait(h).unwrap();
    assert!(
        started_at.duration_since(submitted_at) >= delay,
        "started {:?} after submission, before its delay of {delay:?}",
        started_at.duration_since(submitted_at)
    );
    gate.open();
    wait(blocker).unwrap();
    wait(queued).unwrap();
}

#[test]
fn run_in_caller_catches_a_panic_in_the_handle() {
    let pool = bounded_pool(1, WhenFull::RunInCaller);
    let (gate, blocker) = occupy(&pool);
    let _queued = pool.submit(|| ()).unwrap();
    let h = pool
        .submit(|| -> u8 { std::panic::resume_unwind(Box::new("runq-test: intentional")) })
        .unwrap();
    assert!(matches!(wait(h), Err(TaskError::Panicked(_))));
    gate.open();
    wait(blocker).unwrap();
    let report = pool.shutdown();
    assert_eq!(report.panicked, 1);
    assert_eq!(report.failed, 1);
}

#[test]
fn try_submit_task_never_blocks_and_hands_the_task_back() {
    let pool = bounded_pool(1, WhenFull::Block);
    let (gate, blocker) = occupy(&pool);
    let _queued = pool.try_submit_task(Task::new(|| 0)).unwrap();
    let (tx, rx) = mpsc::channel();
    {
        let pool = pool.clone();
        thread::spawn(move || tx.send(pool.try_submit_task(Task::new(|| 41 + 1))).unwrap());
    }
    let err = rx
        .recv_timeout(LIMIT)
        .expect("try_submit_task blocked on a full queue")
        .expect_err("the queue is full");
    assert_eq!(err.error, SubmitError::Full);
    let task = err.into_task();
    gate.open();
    wait(blocker).unwrap();
    let h = pool
        .submit_task(task)
        .expect("the returned task can be resubmitted");
    assert_eq!(
        wait(h).unwrap(),
        42,
        "the returned task is the original one"
    );
}

#[test]
fn try_submit_task_under_reject_hands_the_task_back() {
    let pool = bounded_pool(1, WhenFull::Reject);
    let (gate, blocker) = occupy(&pool);
    let _queued = pool.submit(|| ()).unwrap();
    let err = pool.try_submit_task(Task::new(|| "again")).unwrap_err();
    assert_eq!(err.error, SubmitError::Full);
    gate.open();
    wait(blocker).unwrap();
    let other = Pool::builder().workers(1).build().unwrap();
    let h = other.submit_task(err.task).unwrap();
    assert_eq!(wait(h).unwrap(), "again");
}

#[test]
fn submissions_from_inside_the_pool_never_block() {
    const CHILDREN: u64 = scaled(100) as u64;
    for policy in [WhenFull::Block, WhenFull::Reject, WhenFull::RunInCaller] {
        let pool = bounded_pool(1, policy);
        let inner = pool.clone();
        let h = pool
            .submit(move || {
                let children: Vec<_> = (0..CHILDREN)
                    .map(|i| {
                        inner
                            .submit(move || i)
                            .expect("inside submissions are accepted")
                    })
                    .collect();
                children.into_iter().map(|c| c.wait().unwrap()).sum::<u64>()
            })
            .unwrap();
        assert_eq!(wait(h).unwrap(), CHILDREN * (CHILDREN - 1) / 2);
    }
}

#[test]
fn inside_submissions_do_not_count_against_capacity() {
    let pool = bounded_pool(1, WhenFull::Reject);
    let gate = Gate::default();
    let (spawned_tx, spawned_rx) = mpsc::channel();
    let inner = pool.clone();
    let g = gate.clone();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let outer = pool
        .submit(move || {
            for _ in 0..20 {
                let c = c.clone();
                inner
                    .spawn(move || {
                        c.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap();
            }
            spawned_tx.send(()).unwrap();
            g.wait();
        })
        .unwrap();
    spawned_rx.recv_timeout(LIMIT).unwrap();
    // Twenty inside tasks are queued, yet one outside slot is still free.
    let h = pool
        .submit(|| 1)
        .expect("inside tasks took the outside slot");
    assert_eq!(pool.submit(|| 2).unwrap_err(), SubmitError::Full);
    gate.open();
    wait(outer).unwrap();
    assert_eq!(wait(h).unwrap(), 1);
    pool.shutdown();
    assert_eq!(count.load(Ordering::SeqCst), 20);
}

#[test]
fn inside_submissions_go_through_while_the_outside_queue_is_full() {
    let pool = Pool::builder()
        .workers(2)
        .capacity(1)
        .when_full(WhenFull::Block)
        .build()
        .unwrap();
    // Occupy both workers so the outside slot stays full.
    let (g1, b1) = occupy(&pool);
    let gate = Gate::default();
    let (started_tx, started_rx) = mpsc::channel();
    let inner = pool.clone();
    let g = gate.clone();
    let outer = pool
        .submit(move || {
            started_tx.send(()).unwrap();
            g.wait();
            let hs: Vec<_> = (0..10).map(|i| inner.submit(move || i).unwrap()).collect();
            hs.into_iter().map(|h| h.wait().unwrap()).sum::<i32>()
        })
        .unwrap();
    started_rx.recv_timeout(LIMIT).unwrap();
    let queued = pool.submit(|| 0).unwrap();
    gate.open();
    assert_eq!(wait(outer).unwrap(), 45);
    g1.open();
    wait(b1).unwrap();
    wait(queued).unwrap();
}

/// Capacity bounds the outside submissions that have not started yet. A
/// task that has run once and waits for its retry holds no capacity, and
/// its retry takes none when it is queued again.
#[test]
fn a_task_waiting_for_a_retry_holds_no_capacity() {
    let pool = bounded_pool(1, WhenFull::Reject);
    let retrying = pool
        .submit_task(
            Task::<()>::fallible(|| Err("again")).retry(Retry::fixed(2, Duration::from_secs(3600))),
        )
        .unwrap();
    wait_until("the first attempt to fail", || {
        retrying.status() == Status::Retrying
    });
    // The blocker started, so it gave its permit back; the queued task
    // takes the only one, which the retrying task would have held.
    let (gate, blocker) = occupy(&pool);
    let queued = pool.submit(|| 7).unwrap();
    assert_eq!(
        pool.submit(|| 8).unwrap_err(),
        SubmitError::Full,
        "the capacity of one is still enforced"
    );
    assert!(retrying.cancel());
    assert!(matches!(wait(retrying), Err(TaskError::Cancelled)));
    gate.open();
    wait(blocker).unwrap();
    assert_eq!(wait(queued).unwrap(), 7);
}
