//! Bad input gets a typed error, never a panic or a hang: every public entry
//! point is walked with bad values — zero, huge, after shutdown, a full
//! queue under the reject policy, duplicate keys, and waits on handles of a
//! pool that is gone.

use std::error::Error;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use runq::{BuildError, Pool, Retry, Status, SubmitError, Task, TaskError, WhenFull, MAX_WORKERS};

mod common;

use common::limit_10s::{
    bounded_no_panic as bounded, occupy, open_when_shut_down, wait, Gate, LIMIT,
};

fn assert_is_error<E: Error + Send + Sync + 'static>(e: &E) {
    assert!(!e.to_string().is_empty(), "{e:?} has an empty message");
}

// ---- Builder ------------------------------------------------------------

#[test]
fn zero_workers_is_a_build_error() {
    let err = Pool::builder().workers(0).build().unwrap_err();
    assert!(matches!(err, BuildError::ZeroWorkers), "{err:?}");
    assert_is_error(&err);
}

#[test]
fn too_many_workers_is_a_build_error() {
    for n in [MAX_WORKERS + 1, usize::MAX] {
        let err = Pool::builder().workers(n).build().unwrap_err();
        match err {
            BuildError::TooManyWorkers { requested, max } => {
                assert_eq!(requested, n);
                assert_eq!(max, MAX_WORKERS);
            }
            ref other => panic!("expected TooManyWorkers, got {other:?}"),
        }
        assert_is_error(&err);
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "starts MAX_WORKERS (512) threads, which Miri takes minutes to interpret"
)]
fn the_maximum_worker_count_is_accepted() {
    let pool = Pool::builder()
        .workers(MAX_WORKERS)
        .pin_workers(false)
        .build()
        .unwrap();
    assert_eq!(pool.workers(), MAX_WORKERS);
    assert_eq!(wait(pool.submit(|| 1).unwrap()).unwrap(), 1);
    bounded("shutdown of the largest pool", move || pool.shutdown());
}

#[test]
fn zero_capacity_is_a_build_error() {
    let err = Pool::builder().capacity(0).build().unwrap_err();
    assert!(matches!(err, BuildError::ZeroCapacity), "{err:?}");
    assert_is_error(&err);
}

#[test]
fn a_huge_capacity_is_accepted() {
    let pool = Pool::builder()
        .workers(1)
        .capacity(usize::MAX)
        .build()
        .unwrap();
    assert_eq!(wait(pool.submit(|| 2).unwrap()).unwrap(), 2);
}

#[test]
fn a_thread_name_with_a_nul_byte_is_a_typed_error() {
    let result = bounded("build with a NUL in the thread name", || {
        Pool::builder().workers(1).thread_name("bad\0name").build()
    });
    assert!(
        matches!(&result, Err(runq::BuildError::InvalidThreadName(name)) if name == "bad\0name"),
        "{result:?}"
    );
}

#[test]
fn an_empty_thread_name_works() {
    let pool = Pool::builder().workers(1).thread_name("").build().unwrap();
    assert_eq!(wait(pool.submit(|| 4).unwrap()).unwrap(), 4);
}

#[test]
fn several_invalid_knobs_give_one_typed_error() {
    let err = Pool::builder().workers(0).capacity(0).build().unwrap_err();
    assert!(
        matches!(err, BuildError::ZeroWorkers | BuildError::ZeroCapacity),
        "{err:?}"
    );
}

// ---- After shutdown -----------------------------------------------------

#[test]
fn every_submission_after_shutdown_is_refused_and_never_runs() {
    let pool = Pool::builder().workers(1).build().unwrap();
    pool.shutdown();
    let ran = Arc::new(AtomicBool::new(false));
    let set = |ran: &Arc<AtomicBool>| {
        let ran = ran.clone();
        move || ran.store(true, Ordering::SeqCst)
    };
    assert_eq!(pool.spawn(set(&ran)).unwrap_err(), SubmitError::ShutDown);
    assert_eq!(pool.submit(set(&ran)).unwrap_err(), SubmitError::ShutDown);
    assert_eq!(
        pool.submit_task(Task::new(set(&ran))).unwrap_err(),
        SubmitError::ShutDown
    );
    let back = pool.try_submit_task(Task::new(|| 9)).unwrap_err();
    assert_eq!(back.error, SubmitError::ShutDown);
    assert_is_error(&back.error);
    assert_eq!(
        pool.submit_batch(vec![Task::new(set(&ran)), Task::new(set(&ran))])
            .unwrap_err(),
        SubmitError::ShutDown
    );
    assert!(!ran.load(Ordering::SeqCst), "a refused task ran");
    // The handed-back task is intact and runs elsewhere.
    let other = Pool::builder().workers(1).build().unwrap();
    assert_eq!(
        wait(other.submit_task(back.into_task()).unwrap()).unwrap(),
        9
    );
    assert_eq!(pool.metrics().submitted, 0);
}

#[test]
fn join_and_scope_after_shutdown_do_not_hang_or_panic() {
    let pool = Pool::builder().workers(1).build().unwrap();
    pool.shutdown();
    let p = pool.clone();
    let pair = bounded("join after shutdown", move || p.join(|| 1, || 2));
    assert_eq!(pair, (1, 2));
    let hits = bounded("scope after shutdown", move || {
        let hits = AtomicUsize::new(0);
        pool.scope(|s| {
            s.spawn(|_| {
                hits.fetch_add(1, Ordering::SeqCst);
            });
        });
        hits.into_inner()
    });
    assert_eq!(hits, 1);
}

#[test]
fn shutdown_called_from_inside_a_task_does_not_hang() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let inner = pool.clone();
    let h = pool.submit(move || inner.shutdown()).unwrap();
    let report = bounded("shutdown from a task", move || wait(h));
    assert!(report.is_ok(), "{report:?}");
    assert!(pool.is_shut_down());
    assert_eq!(pool.submit(|| ()).unwrap_err(), SubmitError::ShutDown);
}

// ---- Full queue ---------------------------------------------------------

#[test]
fn a_full_queue_under_reject_is_a_typed_error_everywhere() {
    let pool = Pool::builder()
        .workers(1)
        .capacity(1)
        .when_full(WhenFull::Reject)
        .build()
        .unwrap();
    let (gate, blocker) = occupy(&pool);
    let queued = pool.submit(|| ()).unwrap();
    assert_eq!(pool.spawn(|| ()).unwrap_err(), SubmitError::Full);
    assert_eq!(pool.submit(|| ()).unwrap_err(), SubmitError::Full);
    assert_eq!(
        pool.submit_task(Task::new(|| ())).unwrap_err(),
        SubmitError::Full
    );
    let back = pool.try_submit_task(Task::new(|| ())).unwrap_err();
    assert_eq!(back.error, SubmitError::Full);
    assert_is_error(&back.error);
    assert_eq!(
        pool.submit_batch(vec![Task::new(|| ())]).unwrap_err(),
        SubmitError::Full
    );
    gate.open();
    wait(blocker).unwrap();
    wait(queued).unwrap();
}

// ---- Keys ---------------------------------------------------------------

#[test]
fn a_duplicate_key_while_queued_is_refused() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let (gate, blocker) = occupy(&pool);
    let first = pool.submit_task(Task::new(|| 1).key("order-17")).unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let err = pool
        .submit_task(Task::new(move || r.store(true, Ordering::SeqCst)).key("order-17"))
        .unwrap_err();
    assert_eq!(err, SubmitError::Duplicate("order-17".to_owned()));
    assert_is_error(&err);
    let back = pool
        .try_submit_task(Task::new(|| 2).key("order-17"))
        .unwrap_err();
    assert_eq!(back.error, SubmitError::Duplicate("order-17".to_owned()));
    // A different key is fine.
    let other = pool.submit_task(Task::new(|| 3).key("order-18")).unwrap();
    gate.open();
    wait(blocker).unwrap();
    assert_eq!(wait(first).unwrap(), 1);
    assert_eq!(wait(other).unwrap(), 3);
    // Released once the first one finished.
    let again = pool
        .submit_task(Task::new(|| 4).key("order-17"))
        .expect("the key is free once the task has ended");
    assert_eq!(wait(again).unwrap(), 4);
    pool.shutdown();
    assert!(!ran.load(Ordering::SeqCst), "the refused duplicate ran");
}

#[test]
fn a_duplicate_key_while_running_is_refused() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let gate = Gate::default();
    let g = gate.clone();
    let (started_tx, started_rx) = mpsc::channel();
    let running = pool
        .submit_task(
            Task::new(move || {
                started_tx.send(()).unwrap();
                g.wait();
            })
            .key("k"),
        )
        .unwrap();
    started_rx.recv_timeout(LIMIT).unwrap();
    assert_eq!(
        pool.submit_task(Task::new(|| ()).key("k")).unwrap_err(),
        SubmitError::Duplicate("k".to_owned())
    );
    gate.open();
    wait(running).unwrap();
}

#[test]
fn a_duplicate_key_inside_one_batch_refuses_the_whole_batch() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let task = |key: &str| {
        let ran = ran.clone();
        Task::new(move || {
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .key(key)
    };
    let err = pool
        .submit_batch(vec![task("a"), task("b"), task("a")])
        .unwrap_err();
    assert_eq!(err, SubmitError::Duplicate("a".to_owned()));
    pool.shutdown();
    assert_eq!(ran.load(Ordering::SeqCst), 0, "a refused batch ran in part");
    assert_eq!(pool.metrics().submitted, 0);
}

#[test]
fn a_cancelled_task_releases_its_key() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let (gate, blocker) = occupy(&pool);
    let h = pool.submit_task(Task::new(|| 1).key("once")).unwrap();
    assert!(h.cancel());
    let again = pool
        .submit_task(Task::new(|| 2).key("once"))
        .expect("a cancelled task's key is free");
    gate.open();
    wait(blocker).unwrap();
    assert_eq!(wait(again).unwrap(), 2);
}

// ---- Handles of a pool that is gone ------------------------------------

#[test]
fn a_handle_outlives_its_dropped_pool() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let (gate, blocker) = occupy(&pool);
    let queued = pool.submit(|| 5).unwrap();
    let done = pool.submit(|| 6).unwrap();
    gate.open();
    bounded("drop of the pool", move || drop(pool));
    wait(blocker).unwrap();
    assert_eq!(wait(queued).unwrap(), 5);
    assert_eq!(wait(done).unwrap(), 6);
}

#[test]
fn waiting_on_a_queued_handle_after_shutdown_now_resolves_cancelled() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let (gate, blocker) = occupy(&pool);
    let queued = pool.submit(|| 5).unwrap();
    let delayed = pool
        .submit_task(Task::new(|| 6).delay(Duration::from_secs(3600)))
        .unwrap();
    open_when_shut_down(&gate, &pool);
    bounded("shutdown_now", move || {
        pool.shutdown_now();
        drop(pool);
    });
    wait(blocker).unwrap();
    let q = bounded("wait on a queued handle", move || queued.wait());
    assert!(
        matches!(q, Err(TaskError::Cancelled | TaskError::ShutDown)),
        "{q:?}"
    );
    let d = bounded("wait on a delayed handle", move || delayed.wait());
    assert!(
        matches!(d, Err(TaskError::Cancelled | TaskError::ShutDown)),
        "{d:?}"
    );
}

#[test]
fn cancel_and_status_on_handles_of_a_gone_pool_do_not_panic() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let h = pool.submit(|| 1).unwrap();
    bounded("drop of the pool", move || drop(pool));
    assert_eq!(h.status(), Status::Succeeded);
    assert!(!h.cancel());
    assert!(h.is_finished());
    assert_eq!(wait(h).unwrap(), 1);
}

// ---- Odd values ---------------------------------------------------------

#[test]
fn wait_timeout_zero_on_an_unfinished_task_hands_the_handle_back() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let (gate, blocker) = occupy(&pool);
    let h = pool.submit(|| 1).unwrap();
    let h = h.wait_timeout(Duration::ZERO).unwrap_err();
    gate.open();
    wait(blocker).unwrap();
    assert_eq!(wait(h).unwrap(), 1);
}

#[test]
fn wait_timeout_with_the_largest_duration_does_not_overflow() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let gate = Gate::default();
    let g = gate.clone();
    let h = pool
        .submit(move || {
            g.wait();
            7
        })
        .unwrap();
    // Unfinished until the gate opens: the wait computes its deadline from
    // the largest duration and then has to sleep.
    assert!(!h.is_finished());
    let opener = thread::spawn(move || gate.open());
    let r = bounded("wait_timeout(Duration::MAX)", move || {
        h.wait_timeout(Duration::MAX).map_err(|_| "timed out")
    });
    opener.join().unwrap();
    assert_eq!(r.unwrap().unwrap(), 7);
}

#[test]
fn the_largest_delay_does_not_overflow_and_can_be_cancelled() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let h = bounded("submit with delay(Duration::MAX)", move || {
        let h = pool
            .submit_task(Task::new(|| 1).delay(Duration::MAX))
            .unwrap();
        (pool, h)
    });
    let (pool, h) = h;
    assert_eq!(h.status(), Status::Delayed);
    assert!(h.cancel());
    assert!(matches!(wait(h), Err(TaskError::Cancelled)));
    bounded("shutdown", move || pool.shutdown());
}

#[test]
fn the_largest_deadline_does_not_overflow() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let h = bounded("submit with deadline(Duration::MAX)", move || {
        pool.submit_task(Task::new(|| 1).deadline(Duration::MAX))
            .unwrap()
    });
    assert_eq!(wait(h).unwrap(), 1);
}

#[test]
fn a_zero_deadline_resolves() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let (gate, blocker) = occupy(&pool);
    let h = pool
        .submit_task(Task::new(|| 1).deadline(Duration::ZERO))
        .unwrap();
    gate.open();
    wait(blocker).unwrap();
    assert!(matches!(wait(h), Err(TaskError::Expired)));
}

#[test]
fn zero_retry_attempts_mean_one_run() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let h = pool
        .submit_task(
            Task::fallible(move || -> Result<(), String> {
                r.fetch_add(1, Ordering::SeqCst);
                Err("no".into())
            })
            .retry(Retry::fixed(0, Duration::from_millis(1))),
        )
        .unwrap();
    match wait(h) {
        Err(TaskError::Failed { attempts, error }) => {
            assert_eq!(attempts, 1);
            assert_eq!(error.to_string(), "no");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn exponential_backoff_with_many_attempts_does_not_overflow() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let h = pool
        .submit_task(
            Task::fallible(move || -> Result<(), String> {
                r.fetch_add(1, Ordering::SeqCst);
                Err("again".into())
            })
            .retry(
                Retry::exponential(80, Duration::from_micros(100))
                    .max_delay(Duration::from_millis(1)),
            ),
        )
        .unwrap();
    match wait(h) {
        Err(TaskError::Failed { attempts, .. }) => assert_eq!(attempts, 80),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(runs.load(Ordering::SeqCst), 80);
}

#[test]
fn a_huge_backoff_does_not_overflow_and_the_retry_can_be_cancelled() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let h = pool
        .submit_task(
            Task::fallible(move || -> Result<(), String> {
                r.fetch_add(1, Ordering::SeqCst);
                Err("later".into())
            })
            .retry(Retry::exponential(u32::MAX, Duration::MAX)),
        )
        .unwrap();
    let start = std::time::Instant::now();
    while h.status() != Status::Retrying {
        assert!(start.elapsed() < LIMIT, "stuck in {:?}", h.status());
        thread::sleep(Duration::from_millis(1));
    }
    assert!(h.cancel(), "a task waiting for its retry can be cancelled");
    assert!(matches!(wait(h), Err(TaskError::Cancelled)));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // The one worker survived computing that delay: it still runs tasks.
    assert_eq!(wait(pool.submit(|| 5).unwrap()).unwrap(), 5);
    let report = bounded("shutdown", move || pool.shutdown());
    assert_eq!(report.completed, 1, "{report:?}");
    assert_eq!(report.cancelled, 1, "{report:?}");
}

#[test]
fn helpers_outside_a_pool_answer_sensibly() {
    assert_eq!(runq::current_worker(), None);
    assert!(!runq::is_cancelled());
}
