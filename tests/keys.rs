//! Idempotency keys: while a task with key `k` is queued, delayed, running or
//! waiting for a retry, another submission with `k` is refused with
//! `SubmitError::Duplicate(k)`; the key is released when the task reaches its
//! terminal state, before its callback runs.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use runq::{Handle, Pool, Retry, Status, SubmitError, Task, TaskError};

mod common;

use common::limit_30s::{finish, occupy_worker, pool, wait_until, TestPool, LIMIT};
use common::scaled;

/// A keyed task that records whether it ran.
fn keyed(key: &str, ran: &Arc<AtomicBool>) -> Task<()> {
    let r = ran.clone();
    Task::new(move || r.store(true, Ordering::SeqCst)).key(key)
}

fn assert_duplicate<T: Send + 'static>(res: Result<Handle<T>, SubmitError>, key: &str) {
    match res {
        Err(SubmitError::Duplicate(k)) => assert_eq!(k, key),
        other => panic!("expected Duplicate({key:?}), got {other:?}"),
    }
}

#[test]
fn duplicate_key_is_refused_while_the_first_is_queued() {
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let first_ran = Arc::new(AtomicBool::new(false));
    let second_ran = Arc::new(AtomicBool::new(false));
    let first = pool.submit_task(keyed("order-17", &first_ran)).unwrap();
    assert_duplicate(pool.submit_task(keyed("order-17", &second_ran)), "order-17");
    drop(release);
    finish(blocker).unwrap();
    finish(first).unwrap();
    let report = pool.shutdown();
    assert!(first_ran.load(Ordering::SeqCst));
    assert!(
        !second_ran.load(Ordering::SeqCst),
        "a refused duplicate ran"
    );
    assert_eq!(report.submitted, 2, "blocker and first only: {report:?}");
}

#[test]
fn duplicate_key_is_refused_while_the_first_is_running() {
    let pool = pool(2);
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let first = pool
        .submit_task(
            Task::new(move || {
                started_tx.send(()).unwrap();
                let _ = release_rx.recv_timeout(LIMIT);
            })
            .key("k"),
        )
        .unwrap();
    started_rx.recv_timeout(LIMIT).unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    assert_duplicate(pool.submit_task(keyed("k", &ran)), "k");
    drop(release_tx);
    finish(first).unwrap();
    pool.shutdown();
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn duplicate_key_is_refused_while_the_first_is_delayed() {
    let pool = pool(1);
    let ran = Arc::new(AtomicBool::new(false));
    let first = pool
        .submit_task(keyed("later", &ran).delay(Duration::from_secs(3600)))
        .unwrap();
    assert_duplicate(pool.submit_task(keyed("later", &ran)), "later");
    assert!(first.cancel());
    pool.shutdown();
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn duplicate_key_is_refused_while_the_first_waits_for_a_retry() {
    let pool = pool(1);
    let first = pool
        .submit_task(
            Task::<()>::fallible(|| Err("fail"))
                .retry(Retry::fixed(3, Duration::from_secs(3600)))
                .key("retrying"),
        )
        .unwrap();
    wait_until("the retry wait", || first.status() == Status::Retrying);
    let ran = Arc::new(AtomicBool::new(false));
    assert_duplicate(pool.submit_task(keyed("retrying", &ran)), "retrying");
    assert!(first.cancel());
    // Cancelled: the key is free again.
    pool.submit_task(keyed("retrying", &ran))
        .expect("key released by cancel")
        .wait_timeout(LIMIT)
        .expect("resubmitted task finished")
        .unwrap();
    assert!(ran.load(Ordering::SeqCst));
}

#[test]
fn key_is_released_after_success() {
    let pool = pool(2);
    for round in 0..scaled(50) {
        let ran = Arc::new(AtomicBool::new(false));
        let h = pool
            .submit_task(keyed("again", &ran))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        // wait() returning means the key was released (release comes first).
        finish(h).unwrap();
        assert!(ran.load(Ordering::SeqCst));
    }
}

#[test]
fn key_is_released_after_final_failure() {
    let pool = pool(1);
    let h = pool
        .submit_task(
            Task::<()>::fallible(|| Err("no"))
                .retry(Retry::fixed(2, Duration::from_millis(1)))
                .key("f"),
        )
        .unwrap();
    assert!(matches!(
        finish(h),
        Err(TaskError::Failed { attempts: 2, .. })
    ));
    let ran = Arc::new(AtomicBool::new(false));
    finish(
        pool.submit_task(keyed("f", &ran))
            .expect("key released after failure"),
    )
    .unwrap();
}

#[test]
fn key_is_released_after_a_panic() {
    let pool = pool(1);
    let h = pool
        .submit_task(Task::<()>::new(|| panic!("keyed panic")).key("p"))
        .unwrap();
    assert!(finish(h).is_err());
    let ran = Arc::new(AtomicBool::new(false));
    finish(
        pool.submit_task(keyed("p", &ran))
            .expect("key released after panic"),
    )
    .unwrap();
}

#[test]
fn key_is_released_after_cancel() {
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let ran = Arc::new(AtomicBool::new(false));
    let h = pool.submit_task(keyed("c", &ran)).unwrap();
    assert!(h.cancel());
    let again = pool
        .submit_task(keyed("c", &ran))
        .expect("key released by cancel");
    drop(release);
    finish(blocker).unwrap();
    assert!(matches!(finish(h), Err(TaskError::Cancelled)));
    finish(again).unwrap();
}

#[test]
fn key_is_released_after_expiry() {
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let ran = Arc::new(AtomicBool::new(false));
    let h = pool
        .submit_task(keyed("e", &ran).deadline(Duration::from_millis(10)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    drop(release);
    finish(blocker).unwrap();
    assert!(matches!(finish(h), Err(TaskError::Expired)));
    assert!(!ran.load(Ordering::SeqCst));
    finish(
        pool.submit_task(keyed("e", &ran))
            .expect("key released after expiry"),
    )
    .unwrap();
    assert!(ran.load(Ordering::SeqCst));
}

#[test]
fn key_can_be_resubmitted_from_its_own_callback() {
    let pool = pool(2);
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    let second_ran = Arc::new(AtomicBool::new(false));
    let s = second_ran.clone();
    let first = pool
        .submit_task(Task::new(|| 1).key("self").on_complete(move |_| {
            let again =
                p.submit_task(Task::new(move || s.store(true, Ordering::SeqCst)).key("self"));
            tx.send(again.map(|_| ()).map_err(|e| e.to_string()))
                .unwrap();
        }))
        .unwrap();
    assert_eq!(finish(first).unwrap(), 1);
    let resubmit = rx.recv_timeout(LIMIT).expect("callback ran");
    assert_eq!(
        resubmit,
        Ok(()),
        "the key was still held when the callback ran"
    );
    pool.shutdown();
    assert!(second_ran.load(Ordering::SeqCst));
}

#[test]
fn key_resubmitted_from_callback_of_a_cancelled_task_succeeds() {
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    let h = pool
        .submit_task(Task::new(|| ()).key("cb").on_complete(move |_| {
            let again = p.submit_task(Task::new(|| ()).key("cb"));
            tx.send(again.is_ok()).unwrap();
        }))
        .unwrap();
    assert!(h.cancel());
    assert!(
        rx.recv_timeout(LIMIT).expect("callback ran"),
        "key held during callback"
    );
    drop(release);
    finish(blocker).unwrap();
    pool.shutdown();
}

#[test]
fn distinct_keys_do_not_conflict() {
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let ran = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..scaled(20))
        .map(|i| pool.submit_task(keyed(&format!("k{i}"), &ran)).unwrap())
        .collect();
    drop(release);
    finish(blocker).unwrap();
    for h in handles {
        finish(h).unwrap();
    }
}

#[test]
fn concurrent_submissions_of_one_key_admit_exactly_one() {
    let pool = pool(1);
    for round in 0..scaled(50) {
        let (blocker, release) = occupy_worker(&pool);
        let runs = Arc::new(AtomicU32::new(0));
        let barrier = Arc::new(std::sync::Barrier::new(6));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let pool = pool.clone();
                let runs = runs.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    pool.submit_task(
                        Task::new(move || {
                            runs.fetch_add(1, Ordering::SeqCst);
                        })
                        .key("race"),
                    )
                })
            })
            .collect();
        let mut accepted = Vec::new();
        for t in threads {
            match t.join().unwrap() {
                Ok(h) => accepted.push(h),
                Err(SubmitError::Duplicate(k)) => assert_eq!(k, "race"),
                Err(e) => panic!("round {round}: unexpected {e}"),
            }
        }
        assert_eq!(accepted.len(), 1, "round {round}: one key, one admission");
        drop(release);
        finish(blocker).unwrap();
        for h in accepted {
            finish(h).unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "round {round}");
    }
}

#[test]
fn try_submit_hands_back_a_duplicate() {
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let ran = Arc::new(AtomicBool::new(false));
    let first = pool.try_submit_task(keyed("t", &ran)).unwrap();
    let err = pool
        .try_submit_task(keyed("t", &ran))
        .expect_err("duplicate accepted");
    assert_eq!(err.error, SubmitError::Duplicate("t".to_owned()));
    let task = err.into_task();
    drop(release);
    finish(blocker).unwrap();
    finish(first).unwrap();
    // The handed-back task is whole: it can be submitted once the key is free.
    ran.store(false, Ordering::SeqCst);
    finish(pool.submit_task(task).expect("key free")).unwrap();
    assert!(ran.load(Ordering::SeqCst));
}

#[test]
fn key_of_a_submission_refused_as_full_is_not_held() {
    let pool = TestPool(
        Pool::builder()
            .workers(1)
            .pin_workers(false)
            .capacity(1)
            .when_full(runq::WhenFull::Reject)
            .build()
            .unwrap(),
    );
    let (blocker, release) = occupy_worker(&pool);
    let filler = pool.submit(|| ()).unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    assert_eq!(
        pool.submit_task(keyed("full", &ran)).unwrap_err(),
        SubmitError::Full
    );
    let err = pool.try_submit_task(keyed("full", &ran)).unwrap_err();
    assert_eq!(err.error, SubmitError::Full);
    drop(release);
    finish(blocker).unwrap();
    finish(filler).unwrap();
    finish(
        pool.submit_task(keyed("full", &ran))
            .expect("a refused submission held its key"),
    )
    .unwrap();
}

#[test]
fn key_of_a_task_run_in_the_caller_is_released_after_it() {
    let pool = TestPool(
        Pool::builder()
            .workers(1)
            .pin_workers(false)
            .capacity(1)
            .when_full(runq::WhenFull::RunInCaller)
            .build()
            .unwrap(),
    );
    let (blocker, release) = occupy_worker(&pool);
    let filler = pool.submit(|| ()).unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let inline = pool.submit_task(keyed("inline", &ran)).unwrap();
    assert!(
        inline.is_finished(),
        "a full pool with RunInCaller runs it inline"
    );
    assert!(ran.load(Ordering::SeqCst));
    finish(inline).unwrap();
    let again = pool
        .submit_task(keyed("inline", &ran))
        .expect("key released after the inline run");
    drop(release);
    finish(blocker).unwrap();
    finish(filler).unwrap();
    finish(again).unwrap();
}
