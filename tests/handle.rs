//! Handles: `wait_timeout` gives the handle back when time is up, `id()` is
//! unique within a pool, `Status` only moves forward, a handle is a future,
//! and dropping a handle detaches the task without losing it.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use runq::{Handle, Jitter, Retry, Status, Task, TaskError};

mod common;

use common::limit_30s::{finish, occupy_worker, pool, LIMIT};
use common::scaled;

/// Where a status sits in the forward order: Queued/Delayed, then
/// Running/Retrying, then one terminal state.
fn stage(s: Status) -> u8 {
    match s {
        Status::Queued | Status::Delayed => 0,
        Status::Running | Status::Retrying => 1,
        s if s.is_terminal() => 2,
        s => panic!("unknown status {s:?}"),
    }
}

/// Samples `h.status()` until it is terminal and returns the distinct
/// consecutive values seen.
fn sample_statuses<T: Send + 'static>(h: &Handle<T>) -> Vec<Status> {
    let start = Instant::now();
    let mut seen = vec![h.status()];
    loop {
        let s = h.status();
        if s != *seen.last().unwrap() {
            seen.push(s);
        }
        if s.is_terminal() {
            // A terminal state is final: keep sampling a little to see it stay.
            for _ in 0..scaled(1000) {
                assert_eq!(h.status(), s, "left terminal state {s:?}: {seen:?}");
            }
            return seen;
        }
        assert!(
            start.elapsed() < LIMIT,
            "never reached a terminal state: {seen:?}"
        );
        std::hint::spin_loop();
    }
}

fn assert_moves_forward(seen: &[Status]) {
    for w in seen.windows(2) {
        assert!(
            stage(w[0]) <= stage(w[1]),
            "went back from {:?} to {:?}: {seen:?}",
            w[0],
            w[1]
        );
    }
    assert!(seen.last().unwrap().is_terminal(), "{seen:?}");
    assert_eq!(
        seen.iter().filter(|s| s.is_terminal()).count(),
        1,
        "more than one terminal state: {seen:?}"
    );
}

#[test]
fn wait_timeout_gives_the_handle_back_when_time_is_up() {
    let pool = pool(1);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let h = pool
        .submit(move || {
            let _ = release_rx.recv_timeout(LIMIT);
            99
        })
        .unwrap();
    let id = h.id();
    let started = Instant::now();
    let h = match h.wait_timeout(Duration::from_millis(50)) {
        Ok(r) => panic!("resolved while blocked: {r:?}"),
        Err(h) => h,
    };
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "gave up early"
    );
    assert_eq!(h.id(), id, "the same handle came back");
    assert!(!h.is_finished());
    drop(release_tx);
    assert_eq!(finish(h).unwrap(), 99);
}

#[test]
fn wait_timeout_on_a_finished_task_returns_its_result() {
    let pool = pool(1);
    let h = pool.submit(|| "done").unwrap();
    let start = Instant::now();
    while !h.is_finished() {
        assert!(start.elapsed() < LIMIT);
        std::thread::sleep(Duration::from_millis(1));
    }
    match h.wait_timeout(Duration::ZERO) {
        Ok(Ok(v)) => assert_eq!(v, "done"),
        Ok(Err(e)) => panic!("{e}"),
        Err(_) => panic!("a finished task timed out"),
    }
}

#[test]
fn wait_timeout_can_be_retried_many_times() {
    let pool = pool(1);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let mut h = pool
        .submit(move || {
            let _ = release_rx.recv_timeout(LIMIT);
        })
        .unwrap();
    for _ in 0..5 {
        h = h
            .wait_timeout(Duration::from_millis(5))
            .expect_err("resolved while blocked");
    }
    drop(release_tx);
    finish(h).unwrap();
}

#[test]
fn task_ids_are_unique_within_a_pool() {
    let pool = pool(2);
    let mut ids = HashSet::new();
    let mut handles = Vec::new();
    for i in 0..scaled(500) as u32 {
        let h = match i % 3 {
            0 => pool.submit(move || i).unwrap(),
            1 => pool.submit_task(Task::new(move || i)).unwrap(),
            _ => pool
                .submit_batch(vec![Task::new(move || i)])
                .unwrap()
                .pop()
                .unwrap(),
        };
        assert!(ids.insert(h.id()), "id {} handed out twice", h.id());
        handles.push(h);
    }
    for h in handles {
        let id = h.id();
        finish(h).unwrap();
        assert!(ids.contains(&id));
    }
    // Ids are not reused after tasks finish either.
    for i in 0..scaled(100) as u32 {
        let h = pool.submit(move || i).unwrap();
        assert!(ids.insert(h.id()), "id {} reused", h.id());
        finish(h).unwrap();
    }
}

#[test]
fn task_ids_are_unique_across_submitting_threads() {
    const PER_THREAD: usize = scaled(250);
    let pool = pool(2);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                (0..PER_THREAD)
                    .map(|i| {
                        let h = pool.submit(move || i).unwrap();
                        let id = h.id();
                        finish(h).unwrap();
                        id.as_u64()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for t in threads {
        for id in t.join().unwrap() {
            assert!(ids.insert(id), "id {id} handed out twice");
        }
    }
    assert_eq!(ids.len(), 4 * PER_THREAD);
}

#[test]
fn status_moves_only_forward_through_delay_and_retries() {
    // Each attempt holds `Running` until the sampler below has seen it (a
    // gate, not a time window), so no schedule can hide that state. The
    // delay and the backoff are the windows in which `Delayed` and
    // `Retrying` are visible; the sampler only has to look once in 200 ms.
    let pool = pool(1);
    let runs = Arc::new(AtomicU32::new(0));
    let arrived = Arc::new(AtomicU32::new(0));
    let (r, a) = (runs.clone(), arrived.clone());
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let h = pool
        .submit_task(
            Task::fallible(move || {
                a.fetch_add(1, Ordering::SeqCst);
                go_rx.recv().expect("the sampler opens each attempt's gate");
                let n = r.fetch_add(1, Ordering::SeqCst) + 1;
                if n < 3 {
                    Err("not yet")
                } else {
                    Ok(n)
                }
            })
            .delay(Duration::from_millis(200))
            .retry(Retry::fixed(3, Duration::from_millis(200)).jitter(Jitter::None)),
        )
        .unwrap();
    let start = Instant::now();
    let mut seen = vec![h.status()];
    let mut opened = 0;
    loop {
        let s = h.status();
        if s != *seen.last().unwrap() {
            seen.push(s);
        }
        // One gate per attempt, opened once the sampler has seen `Running`
        // and the attempt waits at its gate.
        if s == Status::Running && arrived.load(Ordering::SeqCst) > opened {
            go_tx.send(()).unwrap();
            opened += 1;
        }
        if s.is_terminal() {
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "never reached a terminal state: {seen:?}"
        );
        std::hint::spin_loop();
    }
    assert_moves_forward(&seen);
    assert_eq!(seen[0], Status::Delayed, "{seen:?}");
    assert!(seen.contains(&Status::Running), "{seen:?}");
    assert!(seen.contains(&Status::Retrying), "{seen:?}");
    assert_eq!(*seen.last().unwrap(), Status::Succeeded, "{seen:?}");
    assert_eq!(opened, 3, "one gate per attempt: {seen:?}");
    assert_eq!(finish(h).unwrap(), 3);
}

#[test]
fn status_moves_only_forward_for_each_terminal_state() {
    // Under Miri, one round of every kind of task, with one cancel.
    const TASKS: u32 = if cfg!(miri) { 12 } else { 60 };
    let pool = pool(2);
    for i in 0..TASKS {
        let task: Task<u32> = match i % 6 {
            0 => Task::new(move || i),
            1 => Task::new(|| panic!("status panic")),
            2 => Task::fallible(|| Err::<u32, _>("no"))
                .retry(Retry::fixed(2, Duration::from_millis(2))),
            3 => Task::new(move || i).delay(Duration::from_millis(3)),
            4 => Task::new(move || i).guard(|| false),
            _ => Task::new(move || i).deadline(Duration::ZERO),
        };
        let h = pool.submit_task(task).unwrap();
        if i % 12 == 7 {
            let _ = h.cancel();
        }
        let seen = sample_statuses(&h);
        assert_moves_forward(&seen);
        let last = *seen.last().unwrap();
        let expected = match finish(h) {
            Ok(_) => Status::Succeeded,
            Err(TaskError::Cancelled) => Status::Cancelled,
            Err(TaskError::Expired) => Status::Expired,
            Err(_) => Status::Failed,
        };
        assert_eq!(
            last, expected,
            "task {i}: status disagrees with the result: {seen:?}"
        );
    }
}

#[test]
fn status_sampled_by_many_threads_moves_forward_under_load() {
    let pool = pool(2);
    let handles: Vec<_> = (0..scaled(40) as u32)
        .map(|i| {
            let task = Task::fallible(move || {
                if i % 2 == 0 {
                    Err("odd one out")
                } else {
                    Ok(i)
                }
            })
            .retry(Retry::fixed(3, Duration::from_millis(1)));
            Arc::new(pool.submit_task(task).unwrap())
        })
        .collect();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let handles = handles.clone();
            std::thread::spawn(move || {
                for h in &handles {
                    assert_moves_forward(&sample_statuses(h));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a sampler saw status move backwards");
    }
}

#[test]
fn queued_task_reports_queued_then_running() {
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let h = pool
        .submit(move || {
            started_tx.send(()).unwrap();
            let _ = go_rx.recv_timeout(LIMIT);
        })
        .unwrap();
    assert_eq!(h.status(), Status::Queued);
    drop(release);
    started_rx.recv_timeout(LIMIT).unwrap();
    assert_eq!(h.status(), Status::Running);
    assert!(!h.is_finished());
    drop(go_tx);
    finish(blocker).unwrap();
    let start = Instant::now();
    while !h.is_finished() {
        assert!(start.elapsed() < LIMIT);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(h.status(), Status::Succeeded);
    assert!(h.status().is_terminal());
    finish(h).unwrap();
}

#[test]
fn is_finished_agrees_with_a_terminal_status() {
    let pool = pool(2);
    for i in 0..scaled(200) as u32 {
        let h = pool.submit(move || i).unwrap();
        loop {
            let fin = h.is_finished();
            let s = h.status();
            // Once is_finished() is true the status read after it is terminal.
            if fin {
                assert!(s.is_terminal(), "finished but status {s:?}");
                break;
            }
            std::hint::spin_loop();
        }
        assert_eq!(finish(h).unwrap(), i);
    }
}

#[test]
fn dropping_a_handle_detaches_without_losing_the_task() {
    const TASKS: usize = scaled(100);
    let pool = pool(2);
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..TASKS {
        let r = ran.clone();
        drop(
            pool.submit(move || {
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap(),
        );
    }
    let report = pool.shutdown();
    assert_eq!(ran.load(Ordering::SeqCst), TASKS);
    assert_eq!(report.completed, TASKS as u64, "{report:?}");
}

#[test]
fn nested_submit_and_wait_on_a_one_worker_pool_completes() {
    let pool = pool(1);
    let p = pool.clone();
    let h = pool
        .submit(move || {
            let inner = p.submit(|| 20).unwrap();
            let deeper = {
                let p2 = p.clone();
                p.submit(move || p2.submit(|| 1).unwrap().wait().unwrap() + 1)
                    .unwrap()
            };
            inner.wait().unwrap() + deeper.wait().unwrap() * 10
        })
        .unwrap();
    assert_eq!(finish(h).unwrap(), 40);
}

/// A waker that unparks the thread that polls.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls a future to completion on this thread, panicking after `LIMIT`.
fn block_on<F: Future + Unpin>(mut f: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let start = Instant::now();
    loop {
        if let Poll::Ready(v) = Pin::new(&mut f).poll(&mut cx) {
            return v;
        }
        assert!(start.elapsed() < LIMIT, "future never resolved");
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

#[test]
fn handle_is_a_future_that_resolves_to_the_result() {
    let pool = pool(2);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let h = pool
        .submit(move || {
            let _ = release_rx.recv_timeout(LIMIT);
            5
        })
        .unwrap();
    // The task cannot finish before the release: the first poll is pending
    // and registers the waker; the release then comes from another thread.
    let mut h = h;
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    assert!(Pin::new(&mut h)
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    let releaser = std::thread::spawn(move || drop(release_tx));
    assert_eq!(block_on(h).unwrap(), 5);
    releaser.join().unwrap();
    let failing = pool.submit_task(Task::<u8>::fallible(|| Err("e"))).unwrap();
    assert!(matches!(
        block_on(failing),
        Err(TaskError::Failed { attempts: 1, .. })
    ));
}

#[test]
fn wait_timeout_on_a_worker_helps_but_takes_no_job_after_its_timeout() {
    // Worker 0 is held; on the other worker a task queues twenty jobs of at
    // least 5 ms each on its own deque and waits 20 ms for the held task.
    // The waiter helps by running those jobs, and it looks at the clock
    // before each: the k-th job it takes begins at least 5k ms after the
    // first one, which began after the call, so at most four (k = 0..=3)
    // can be taken before the timeout however slow the machine. A waiter
    // that did not look between jobs would run all twenty first.
    const JOBS: usize = 20;
    let pool = pool(2);
    let (held, release) = occupy_worker(&pool);
    let held_id = held.id();
    let p = pool.clone();
    let waiter = pool
        .submit(move || {
            let returned = Arc::new(AtomicBool::new(false));
            let helped = Arc::new(AtomicUsize::new(0));
            let jobs: Vec<_> = (0..JOBS)
                .map(|_| {
                    let (returned, helped) = (returned.clone(), helped.clone());
                    p.submit(move || {
                        if !returned.load(Ordering::SeqCst) {
                            helped.fetch_add(1, Ordering::SeqCst);
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    })
                    .unwrap()
                })
                .collect();
            let back = held.wait_timeout(Duration::from_millis(20));
            returned.store(true, Ordering::SeqCst);
            for j in jobs {
                finish(j).unwrap();
            }
            (back.map(|_| ()), helped.load(Ordering::SeqCst))
        })
        .unwrap();
    let (back, helped) = finish(waiter).unwrap();
    let held = back.expect_err("the held task cannot have finished");
    assert_eq!(held.id(), held_id, "the same handle came back");
    assert!(!held.is_finished());
    assert!(
        helped <= 4,
        "the waiter ran {helped} jobs of 5 ms in a 20 ms timeout"
    );
    drop(release);
    finish(held).unwrap();
}
