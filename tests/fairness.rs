//! Fair intake and the "next task" slot: tasks that keep spawning from
//! inside the pool cannot starve submissions from outside, and a task that
//! keeps spawning its successor cannot starve the rest of its worker's deque.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};

use runq::Pool;

mod common;

use common::limit_10s::{wait, LIMIT};
use common::scaled;

/// Outside submissions queued behind a respawning task.
const OUTSIDE: usize = scaled(100);

fn one_worker() -> Pool {
    Pool::builder().workers(1).build().unwrap()
}

/// Counts its runs and spawns itself again until `stop`; its first run
/// first waits for `go`.
fn respawner(
    pool: Pool,
    runs: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    go: Option<mpsc::Receiver<()>>,
) {
    if let Some(go) = go {
        go.recv_timeout(LIMIT).expect("the test opens the gate");
    }
    runs.fetch_add(1, SeqCst);
    if !stop.load(SeqCst) {
        let next = pool.clone();
        pool.spawn(move || respawner(next, runs, stop, None))
            .unwrap();
    }
}

#[test]
fn outside_submissions_alternate_with_a_task_that_respawns_itself() {
    let pool = one_worker();
    let runs = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (open, go) = mpsc::channel();
    {
        let (p, r, s) = (pool.clone(), runs.clone(), stop.clone());
        pool.spawn(move || respawner(p, r, s, Some(go))).unwrap();
    }
    // The worker is held inside the respawner's first run while every
    // outside task is queued, so all of them wait in the injector together.
    let seen: Arc<Mutex<Vec<usize>>> = Arc::default();
    let handles: Vec<_> = (0..OUTSIDE)
        .map(|_| {
            let (seen, runs) = (seen.clone(), runs.clone());
            pool.submit(move || seen.lock().unwrap().push(runs.load(SeqCst)))
                .unwrap()
        })
        .collect();
    open.send(()).unwrap();
    for h in handles {
        wait(h).unwrap();
    }
    stop.store(true, SeqCst);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), OUTSIDE);
    // Fair intake: the worker alternates between its own task and the
    // queue of outside submissions, so the respawner ran at most once
    // between two outside tasks (with the old one-in-61 look at the queue,
    // about sixty times).
    for pair in seen.windows(2) {
        assert!(
            pair[1] - pair[0] <= 1,
            "respawner ran {} times between two outside tasks: {seen:?}",
            pair[1] - pair[0]
        );
    }
    assert!(
        seen[0] <= 2,
        "first outside task waited for {} respawns",
        seen[0]
    );
    pool.shutdown();
}

#[test]
fn the_next_task_slot_gives_the_deque_a_turn_after_three_runs() {
    let pool = one_worker();
    let chain = Arc::new(AtomicUsize::new(0));
    let other_ran_after = Arc::new(Mutex::new(None));
    let (p, c, o) = (pool.clone(), chain.clone(), other_ran_after.clone());
    let h = pool
        .submit(move || {
            // `other` goes into the slot, then the chain's first link
            // displaces it into the deque.
            let (c2, o2) = (c.clone(), o.clone());
            p.spawn(move || *o2.lock().unwrap() = Some(c2.load(SeqCst)))
                .unwrap();
            fn link(pool: Pool, chain: Arc<AtomicUsize>, other: Arc<Mutex<Option<usize>>>) {
                let n = chain.fetch_add(1, SeqCst) + 1;
                // Bounded, so that a starving slot ends the test instead of hanging it.
                if other.lock().unwrap().is_none() && n < 10_000 {
                    let next = pool.clone();
                    pool.spawn(move || link(next, chain, other)).unwrap();
                }
            }
            let next = p.clone();
            p.spawn(move || link(next, c, o)).unwrap();
        })
        .unwrap();
    wait(h).unwrap();
    pool.shutdown();
    let after = other_ran_after
        .lock()
        .unwrap()
        .expect("the displaced task ran");
    // LIFO_BURST (src/scheduler/lanes.rs) is 3: three links from the slot,
    // then the deque's task.
    assert!(after <= 3, "the displaced task waited for {after} links");
}

#[test]
fn every_task_of_a_spawn_chain_runs_once_on_a_two_worker_pool() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let total = scaled(10_000);
    fn link(pool: Pool, runs: Arc<AtomicUsize>, left: usize, done: mpsc::Sender<()>) {
        runs.fetch_add(1, SeqCst);
        if left > 1 {
            let next = pool.clone();
            pool.spawn(move || link(next, runs, left - 1, done))
                .unwrap();
        } else {
            done.send(()).unwrap();
        }
    }
    let (p, r) = (pool.clone(), runs.clone());
    let (done, last) = mpsc::channel();
    pool.spawn(move || link(p, r, total, done)).unwrap();
    last.recv_timeout(LIMIT).expect("the chain reaches its end");
    let report = pool.shutdown();
    assert_eq!(runs.load(SeqCst), total);
    assert_eq!(report.completed, total as u64);
}
