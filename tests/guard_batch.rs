//! Guards (a check evaluated right before the task would run; false resolves
//! it `Cancelled` without running the body) and all-or-nothing batches
//! (every task admitted or none, and no task of a refused batch ever runs).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use runq::{Pool, SubmitError, Task, TaskError, WhenFull};

mod common;

use common::limit_30s::{finish, occupy_worker, pool, TestPool, LIMIT};
use common::scaled;

/// Counts body runs and callback calls of a group of tasks.
#[derive(Clone, Default)]
struct Tally {
    runs: Arc<AtomicU32>,
    callbacks: Arc<AtomicU32>,
}

impl Tally {
    fn task(&self, value: u32) -> Task<u32> {
        let runs = self.runs.clone();
        let callbacks = self.callbacks.clone();
        Task::new(move || {
            runs.fetch_add(1, Ordering::SeqCst);
            value
        })
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
fn guard_returning_false_cancels_without_running_the_body() {
    let pool = pool(1);
    let tally = Tally::default();
    let h = pool.submit_task(tally.task(1).guard(|| false)).unwrap();
    assert!(matches!(finish(h), Err(TaskError::Cancelled)));
    let report = pool.shutdown();
    assert_eq!(tally.runs(), 0, "the body ran although its guard said no");
    assert_eq!(
        tally.callbacks(),
        1,
        "the callback runs for a guarded-out task too"
    );
    assert_eq!(report.cancelled, 1, "{report:?}");
}

#[test]
fn guard_returning_true_runs_the_body() {
    let pool = pool(1);
    let tally = Tally::default();
    let h = pool.submit_task(tally.task(7).guard(|| true)).unwrap();
    assert_eq!(finish(h).unwrap(), 7);
    assert_eq!(tally.runs(), 1);
}

#[test]
fn guard_is_evaluated_right_before_running_not_at_submit() {
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let allowed = Arc::new(AtomicBool::new(true));
    let evaluated = Arc::new(AtomicU32::new(0));
    let (a, e) = (allowed.clone(), evaluated.clone());
    let tally = Tally::default();
    let h = pool
        .submit_task(tally.task(1).guard(move || {
            e.fetch_add(1, Ordering::SeqCst);
            a.load(Ordering::SeqCst)
        }))
        .unwrap();
    assert_eq!(
        evaluated.load(Ordering::SeqCst),
        0,
        "guard evaluated at submit"
    );
    // The state changes while the task waits: the guard must see the change.
    allowed.store(false, Ordering::SeqCst);
    drop(release);
    finish(blocker).unwrap();
    assert!(matches!(finish(h), Err(TaskError::Cancelled)));
    assert_eq!(evaluated.load(Ordering::SeqCst), 1);
    assert_eq!(tally.runs(), 0);
}

#[test]
fn guard_sees_state_that_became_true_while_queued() {
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let ready = Arc::new(AtomicBool::new(false));
    let r = ready.clone();
    let tally = Tally::default();
    let h = pool
        .submit_task(tally.task(3).guard(move || r.load(Ordering::SeqCst)))
        .unwrap();
    ready.store(true, Ordering::SeqCst);
    drop(release);
    finish(blocker).unwrap();
    assert_eq!(finish(h).unwrap(), 3);
}

#[test]
fn guard_of_a_delayed_task_runs_after_the_delay() {
    // The guard notes when it is asked; a lower bound only, which no
    // machine speed can break.
    let pool = pool(1);
    let delay = Duration::from_millis(100);
    let asked = Arc::new(Mutex::new(None));
    let a = asked.clone();
    let tally = Tally::default();
    let submitted = Instant::now();
    let h = pool
        .submit_task(tally.task(4).delay(delay).guard(move || {
            *a.lock().unwrap() = Some(Instant::now());
            true
        }))
        .unwrap();
    assert_eq!(finish(h).unwrap(), 4);
    let asked = asked.lock().unwrap().expect("the guard was asked");
    assert!(
        asked.duration_since(submitted) >= delay,
        "guard evaluated {:?} after submission, before the delay of {delay:?}",
        asked.duration_since(submitted)
    );
}

#[test]
fn batch_admits_every_task_and_returns_handles_in_order() {
    let pool = pool(2);
    let tally = Tally::default();
    let tasks: Vec<_> = (0..50).map(|i| tally.task(i)).collect();
    let handles = pool.submit_batch(tasks).unwrap();
    assert_eq!(handles.len(), 50);
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(finish(h).unwrap(), i as u32);
    }
    let report = pool.shutdown();
    assert_eq!(tally.runs(), 50);
    assert_eq!(tally.callbacks(), 50);
    assert_eq!(report.submitted, 50, "{report:?}");
}

#[test]
fn empty_batch_is_admitted() {
    let pool = pool(1);
    let handles = pool.submit_batch(Vec::<Task<u8>>::new()).unwrap();
    assert!(handles.is_empty());
}

#[test]
fn batch_with_a_key_already_pending_is_refused_whole() {
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let holder = pool.submit_task(Task::new(|| 0u32).key("taken")).unwrap();
    let tally = Tally::default();
    let batch = vec![
        tally.task(1).key("a"),
        tally.task(2),
        tally.task(3).key("taken"),
        tally.task(4).key("b"),
    ];
    match pool.submit_batch(batch) {
        Err(SubmitError::Duplicate(k)) => assert_eq!(k, "taken"),
        other => panic!("expected Duplicate(\"taken\"), got {other:?}"),
    }
    // The refused batch holds none of its keys.
    let other = Tally::default();
    let a = pool
        .submit_task(other.task(5).key("a"))
        .expect("key a is free");
    let b = pool
        .submit_task(other.task(6).key("b"))
        .expect("key b is free");
    drop(release);
    finish(blocker).unwrap();
    finish(holder).unwrap();
    finish(a).unwrap();
    finish(b).unwrap();
    let report = pool.shutdown();
    assert_eq!(tally.runs(), 0, "a task of a refused batch ran");
    assert_eq!(
        tally.callbacks(),
        0,
        "a task of a refused batch got a callback"
    );
    assert_eq!(report.submitted, 4, "blocker, holder, a, b: {report:?}");
}

#[test]
fn batch_with_a_key_repeated_inside_it_is_refused_whole() {
    let pool = pool(1);
    let tally = Tally::default();
    let batch = vec![
        tally.task(1).key("x"),
        tally.task(2),
        tally.task(3).key("x"),
    ];
    match pool.submit_batch(batch) {
        Err(SubmitError::Duplicate(k)) => assert_eq!(k, "x"),
        other => panic!("expected Duplicate(\"x\"), got {other:?}"),
    }
    let report = pool.shutdown();
    assert_eq!(tally.runs(), 0);
    assert_eq!(tally.callbacks(), 0);
    assert_eq!(report.submitted, 0, "{report:?}");
}

#[test]
fn batch_after_shutdown_is_refused_and_nothing_runs() {
    let pool = pool(1);
    pool.shutdown();
    let tally = Tally::default();
    match pool.submit_batch(vec![tally.task(1), tally.task(2)]) {
        Err(SubmitError::ShutDown) => {}
        other => panic!("expected ShutDown, got {other:?}"),
    }
    assert_eq!(tally.runs(), 0);
    assert_eq!(tally.callbacks(), 0);
}

#[test]
fn batch_larger_than_free_capacity_is_refused_whole_under_reject() {
    let pool = TestPool(
        Pool::builder()
            .workers(1)
            .pin_workers(false)
            .capacity(4)
            .when_full(WhenFull::Reject)
            .build()
            .unwrap(),
    );
    let (blocker, release) = occupy_worker(&pool);
    let queued = Tally::default();
    let first = pool
        .submit_batch(vec![queued.task(1), queued.task(2)])
        .expect("two fit in four");
    let refused = Tally::default();
    match pool.submit_batch((0..3).map(|i| refused.task(i)).collect()) {
        Err(SubmitError::Full) => {}
        other => panic!("expected Full, got {other:?}"),
    }
    // Exactly the free room still fits.
    let fits = pool
        .submit_batch(vec![queued.task(3), queued.task(4)])
        .expect("two more fit in four");
    drop(release);
    finish(blocker).unwrap();
    for h in first.into_iter().chain(fits) {
        finish(h).unwrap();
    }
    pool.shutdown();
    assert_eq!(queued.runs(), 4);
    assert_eq!(refused.runs(), 0, "a task of a refused batch ran");
    assert_eq!(refused.callbacks(), 0);
}

#[test]
fn batch_larger_than_the_whole_capacity_is_refused_under_reject() {
    let pool = TestPool(
        Pool::builder()
            .workers(1)
            .pin_workers(false)
            .capacity(3)
            .when_full(WhenFull::Reject)
            .build()
            .unwrap(),
    );
    let tally = Tally::default();
    match pool.submit_batch((0..4).map(|i| tally.task(i)).collect()) {
        Err(SubmitError::Full) => {}
        other => panic!("expected Full, got {other:?}"),
    }
    pool.shutdown();
    assert_eq!(tally.runs(), 0);
}

#[test]
fn batch_members_keep_their_own_settings() {
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let tally = Tally::default();
    let handles = pool
        .submit_batch(vec![
            tally.task(1),
            tally.task(2).guard(|| false),
            tally.task(3).deadline(Duration::from_millis(5)),
            tally.task(4).delay(Duration::from_millis(20)),
        ])
        .unwrap();
    std::thread::sleep(Duration::from_millis(40));
    let mut it = handles.into_iter();
    let (h1, h2, h3, h4) = (
        it.next().unwrap(),
        it.next().unwrap(),
        it.next().unwrap(),
        it.next().unwrap(),
    );
    drop(release);
    finish(blocker).unwrap();
    assert_eq!(finish(h1).unwrap(), 1);
    assert!(matches!(finish(h2), Err(TaskError::Cancelled)));
    assert!(matches!(finish(h3), Err(TaskError::Expired)));
    assert_eq!(finish(h4).unwrap(), 4);
    assert_eq!(tally.runs(), 2);
    assert_eq!(tally.callbacks(), 4);
}

#[test]
fn concurrent_batches_sharing_a_key_admit_one_batch() {
    let pool = pool(1);
    for round in 0..scaled(30) {
        let (blocker, release) = occupy_worker(&pool);
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let tallies: Vec<Tally> = (0..4).map(|_| Tally::default()).collect();
        let threads: Vec<_> = tallies
            .iter()
            .enumerate()
            .map(|(t, tally)| {
                let pool = pool.clone();
                let barrier = barrier.clone();
                let batch = vec![
                    tally.task(0).key(format!("own-{round}-{t}")),
                    tally.task(1).key("shared"),
                ];
                std::thread::spawn(move || {
                    barrier.wait();
                    pool.submit_batch(batch)
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let admitted = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(admitted, 1, "round {round}: {results:?}");
        drop(release);
        finish(blocker).unwrap();
        for (tally, res) in tallies.iter().zip(results) {
            match res {
                Ok(handles) => {
                    for h in handles {
                        finish(h).unwrap();
                    }
                    assert_eq!(tally.runs(), 2, "round {round}");
                }
                Err(e) => {
                    assert_eq!(e, SubmitError::Duplicate("shared".into()), "round {round}");
                    assert_eq!(tally.runs(), 0, "round {round}: refused batch ran");
                }
            }
        }
    }
}

#[test]
fn panicking_guard_resolves_the_task_without_running_it() {
    let pool = pool(1);
    let tally = Tally::default();
    let h = pool
        .submit_task(tally.task(1).guard(|| panic!("guard panics")))
        .unwrap();
    let res = finish(h);
    assert!(
        res.is_err(),
        "a task whose guard panicked succeeded: {res:?}"
    );
    // The worker survives and the body never ran.
    assert_eq!(finish(pool.submit(|| 2).unwrap()).unwrap(), 2);
    assert_eq!(tally.runs(), 0);
    assert_eq!(tally.callbacks(), 1);
}

#[test]
fn batch_that_can_never_fit_is_refused_even_under_block() {
    let pool = TestPool(
        Pool::builder()
            .workers(1)
            .pin_workers(false)
            .capacity(2)
            .when_full(WhenFull::Block)
            .build()
            .unwrap(),
    );
    let tally = Tally::default();
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    let batch: Vec<_> = (0..3).map(|i| tally.task(i)).collect();
    let submitter = std::thread::spawn(move || tx.send(p.submit_batch(batch).map(|_| ())));
    let res = match rx.recv_timeout(LIMIT) {
        Ok(res) => res,
        Err(_) => {
            pool.shutdown_now();
            panic!("a batch larger than the capacity blocked forever");
        }
    };
    submitter.join().unwrap().unwrap();
    assert_eq!(res, Err(SubmitError::Full));
    pool.shutdown();
    assert_eq!(tally.runs(), 0);
}

#[test]
fn blocked_batch_is_admitted_whole_once_room_frees_up() {
    let pool = TestPool(
        Pool::builder()
            .workers(1)
            .pin_workers(false)
            .capacity(2)
            .when_full(WhenFull::Block)
            .build()
            .unwrap(),
    );
    let (blocker, release) = occupy_worker(&pool);
    let first = pool.submit(|| 0u32).unwrap();
    let tally = Tally::default();
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    let batch = vec![tally.task(1), tally.task(2)];
    let submitter = std::thread::spawn(move || tx.send(p.submit_batch(batch)));
    // One slot is taken: the batch of two must wait, not half-enter.
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        rx.try_recv().is_err(),
        "a batch of two entered a queue with one free slot"
    );
    assert_eq!(tally.runs(), 0);
    drop(release);
    finish(blocker).unwrap();
    finish(first).unwrap();
    let handles = rx
        .recv_timeout(LIMIT)
        .expect("blocked batch never admitted")
        .expect("batch refused");
    submitter.join().unwrap().unwrap();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(finish(h).unwrap(), i as u32 + 1);
    }
}
