//! Start order: on a one-worker pool, tasks submitted from outside at one
//! priority start in the order they were submitted (FIFO).

use std::sync::{Arc, Mutex};

use runq::{Pool, Priority, Task};

mod common;

use common::limit_10s::{occupy, wait};
use common::scaled;

/// Tasks per run: enough to catch a LIFO or stealing mix-up, few enough that
/// no starvation bound (16 High, every 32nd pick) comes into play when a
/// single lane is used. (Under Miri, fewer: still enough to tell FIFO from
/// LIFO.)
const TASKS: usize = scaled(200);

fn one_worker() -> Pool {
    Pool::builder().workers(1).build().unwrap()
}

type Log = Arc<Mutex<Vec<usize>>>;

fn recorder(log: &Log, i: usize) -> impl FnOnce() + Send + 'static {
    let log = log.clone();
    move || log.lock().unwrap().push(i)
}

/// Queues `TASKS` tasks at `priority` behind a blocked worker, then lets
/// them run, and returns the order they started in.
fn start_order_when_queued(priority: Priority) -> Vec<usize> {
    let pool = one_worker();
    let (gate, blocker) = occupy(&pool);
    let log = Log::default();
    let handles: Vec<_> = (0..TASKS)
        .map(|i| {
            pool.submit_task(Task::new(recorder(&log, i)).priority(priority))
                .unwrap()
        })
        .collect();
    gate.open();
    wait(blocker).unwrap();
    for h in handles {
        wait(h).unwrap();
    }
    let order = log.lock().unwrap().clone();
    order
}

#[test]
fn high_tasks_start_in_submission_order() {
    assert_eq!(
        start_order_when_queued(Priority::High),
        (0..TASKS).collect::<Vec<_>>()
    );
}

#[test]
fn normal_tasks_start_in_submission_order() {
    assert_eq!(
        start_order_when_queued(Priority::Normal),
        (0..TASKS).collect::<Vec<_>>()
    );
}

#[test]
fn low_tasks_start_in_submission_order() {
    assert_eq!(
        start_order_when_queued(Priority::Low),
        (0..TASKS).collect::<Vec<_>>()
    );
}

#[test]
fn submit_keeps_fifo_order_while_the_worker_is_busy_running() {
    // No gate: the worker drains while we submit.
    let pool = one_worker();
    let log = Log::default();
    let handles: Vec<_> = (0..TASKS)
        .map(|i| {
            let record = recorder(&log, i);
            pool.submit(record).unwrap()
        })
        .collect();
    for h in handles {
        wait(h).unwrap();
    }
    assert_eq!(*log.lock().unwrap(), (0..TASKS).collect::<Vec<_>>());
}

#[test]
fn spawn_keeps_fifo_order() {
    let pool = one_worker();
    let (gate, blocker) = occupy(&pool);
    let log = Log::default();
    for i in 0..TASKS {
        pool.spawn(recorder(&log, i)).unwrap();
    }
    // A marker submitted last starts last.
    let marker = pool.submit(recorder(&log, TASKS)).unwrap();
    gate.open();
    wait(blocker).unwrap();
    wait(marker).unwrap();
    assert_eq!(*log.lock().unwrap(), (0..=TASKS).collect::<Vec<_>>());
}

#[test]
fn spawn_and_submit_interleaved_keep_fifo_order() {
    let pool = one_worker();
    let (gate, blocker) = occupy(&pool);
    let log = Log::default();
    let mut handles = Vec::new();
    for i in 0..TASKS {
        if i % 2 == 0 {
            pool.spawn(recorder(&log, i)).unwrap();
        } else {
            handles.push(pool.submit(recorder(&log, i)).unwrap());
        }
    }
    gate.open();
    wait(blocker).unwrap();
    for h in handles {
        wait(h).unwrap();
    }
    assert_eq!(*log.lock().unwrap(), (0..TASKS).collect::<Vec<_>>());
}

#[test]
fn batch_members_start_in_order() {
    let pool = one_worker();
    let (gate, blocker) = occupy(&pool);
    let log = Log::default();
    let tasks: Vec<Task<()>> = (0..TASKS).map(|i| Task::new(recorder(&log, i))).collect();
    let handles = pool.submit_batch(tasks).unwrap();
    gate.open();
    wait(blocker).unwrap();
    for h in handles {
        wait(h).unwrap();
    }
    assert_eq!(*log.lock().unwrap(), (0..TASKS).collect::<Vec<_>>());
}

#[test]
fn submissions_from_several_threads_keep_each_threads_order() {
    // With several submitters the global interleaving is theirs to pick, but
    // each submitter's own tasks still start in its order.
    let pool = one_worker();
    let (gate, blocker) = occupy(&pool);
    let log: Arc<Mutex<Vec<(usize, usize)>>> = Arc::default();
    let per_thread = scaled(100);
    let submitters: Vec<_> = (0..3)
        .map(|t| {
            let pool = pool.clone();
            let log = log.clone();
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|i| {
                        let log = log.clone();
                        pool.submit(move || log.lock().unwrap().push((t, i)))
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let handles: Vec<_> = submitters
        .into_iter()
        .flat_map(|s| s.join().unwrap())
        .collect();
    gate.open();
    wait(blocker).unwrap();
    for h in handles {
        wait(h).unwrap();
    }
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 3 * per_thread);
    for t in 0..3 {
        let mine: Vec<usize> = log
            .iter()
            .filter(|(o, _)| *o == t)
            .map(|&(_, i)| i)
            .collect();
        assert_eq!(mine, (0..per_thread).collect::<Vec<_>>(), "thread {t}");
    }
}
