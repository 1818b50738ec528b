//! Task names, retry predicates and dead letters: which tasks become dead
//! letters (exactly once, after their handle is resolved, with name, key,
//! attempts and the last error), which do not, and what a panicking hook
//! or predicate does.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use runq::{DeadLetter, Pool, Retry, Status, Task, TaskError};

mod common;

use common::limit_10s::{quiet_intentional_panics, INTENTIONAL};
use common::limit_30s::{finish, wait_until, LIMIT};

type Letters = Arc<Mutex<Vec<DeadLetter>>>;

fn pool_with_hook(workers: usize) -> (Pool, Letters) {
    let letters: Letters = Arc::default();
    let sink = letters.clone();
    let pool = Pool::builder()
        .workers(workers)
        .pin_workers(false)
        .on_dead_letter(move |d| sink.lock().unwrap().push(d.clone()))
        .build()
        .unwrap();
    (pool, letters)
}

#[test]
fn a_task_whose_attempts_run_out_is_a_dead_letter_once_with_its_details() {
    let (pool, letters) = pool_with_hook(2);
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let h = pool
        .submit_task(
            Task::fallible(move || {
                Err::<(), _>(format!("bad {}", r.fetch_add(1, Ordering::SeqCst) + 1))
            })
            .retry(Retry::fixed(3, Duration::from_millis(1)))
            .name("resize-image")
            .key("img-7"),
        )
        .unwrap();
    let id = h.id();
    assert!(matches!(
        finish(h),
        Err(TaskError::Failed { attempts: 3, .. })
    ));
    pool.shutdown();
    let letters = letters.lock().unwrap();
    assert_eq!(
        *letters,
        vec![DeadLetter {
            id,
            name: Some("resize-image".into()),
            key: Some("img-7".into()),
            attempts: 3,
            error: "bad 3".into(),
        }]
    );
    let m = pool.metrics();
    assert_eq!((m.dead_lettered, m.failed, m.retried), (1, 1, 2));
}

#[test]
fn the_hook_runs_after_the_handle_is_resolved() {
    let (seen_tx, seen_rx) = mpsc::channel();
    let handle_slot: Arc<Mutex<Option<runq::Handle<()>>>> = Arc::default();
    let slot = handle_slot.clone();
    let pool = Pool::builder()
        .workers(1)
        .pin_workers(false)
        .on_dead_letter(move |_| {
            let status = slot.lock().unwrap().as_ref().map(|h| h.status());
            seen_tx.send(status).unwrap();
        })
        .build()
        .unwrap();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let h = pool
        .submit_task(Task::fallible(move || {
            go_rx.recv_timeout(LIMIT).unwrap();
            Err::<(), _>("no")
        }))
        .unwrap();
    *handle_slot.lock().unwrap() = Some(h);
    go_tx.send(()).unwrap();
    assert_eq!(seen_rx.recv_timeout(LIMIT).unwrap(), Some(Status::Failed));
    pool.shutdown();
    // The hook holds the slot, the handle holds the pool: break the cycle.
    drop(handle_slot.lock().unwrap().take());
}

#[test]
fn retry_if_false_ends_the_task_at_once_without_backoff() {
    let (pool, letters) = pool_with_hook(1);
    // A backoff far beyond the test's limit: only "no wait" passes.
    let h = pool
        .submit_task(
            Task::fallible(|| Err::<(), _>("permanent"))
                .retry(
                    Retry::fixed(10, Duration::from_secs(3600))
                        .retry_if(|e| e.to_string() != "permanent"),
                )
                .name("once"),
        )
        .unwrap();
    assert!(matches!(
        finish(h),
        Err(TaskError::Failed { attempts: 1, .. })
    ));
    pool.shutdown();
    let m = pool.metrics();
    assert_eq!(m.retried, 0);
    assert_eq!(m.dead_lettered, 1);
    let letters = letters.lock().unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].name.as_deref(), Some("once"));
    assert_eq!(letters[0].attempts, 1);
    assert_eq!(letters[0].error, "permanent");
}

#[test]
fn retry_if_sees_the_error_and_may_allow_every_attempt() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let pool = common::limit_30s::pool(1);
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let h = pool
        .submit_task(
            Task::fallible(move || {
                let n = r.fetch_add(1, Ordering::SeqCst) + 1;
                if n < 3 {
                    Err(format!("try {n}"))
                } else {
                    Ok(n)
                }
            })
            .retry(
                Retry::fixed(5, Duration::from_millis(1)).retry_if(move |e| {
                    s.lock().unwrap().push(e.to_string());
                    true
                }),
            ),
        )
        .unwrap();
    assert_eq!(finish(h).unwrap(), 3);
    assert_eq!(*seen.lock().unwrap(), vec!["try 1", "try 2"]);
}

#[test]
fn a_panicking_predicate_stops_the_retries() {
    quiet_intentional_panics();
    let (pool, letters) = pool_with_hook(1);
    let h =
        pool.submit_task(Task::fallible(|| Err::<(), _>("e")).retry(
            Retry::fixed(5, Duration::from_millis(1)).retry_if(|_| panic!("{INTENTIONAL}")),
        ))
        .unwrap();
    assert!(matches!(
        finish(h),
        Err(TaskError::Failed { attempts: 1, .. })
    ));
    pool.shutdown();
    assert_eq!(letters.lock().unwrap().len(), 1);
}

#[test]
fn a_panic_on_the_last_attempt_is_a_dead_letter_with_its_message() {
    quiet_intentional_panics();
    let (pool, letters) = pool_with_hook(1);
    let h = pool
        .submit_task(Task::new(|| -> () { panic!("{INTENTIONAL}: boom") }).name("p"))
        .unwrap();
    assert!(matches!(finish(h), Err(TaskError::Panicked(_))));
    // Panics reach retry_if as errors with the message as text.
    let h = pool
        .submit_task(
            Task::fallible(|| -> Result<(), &'static str> { panic!("{INTENTIONAL}: again") })
                .retry(
                    Retry::fixed(3, Duration::from_millis(1))
                        .retry_if(|e| !e.to_string().contains("again")),
                ),
        )
        .unwrap();
    assert!(matches!(
        finish(h),
        Err(TaskError::Failed { attempts: 1, .. })
    ));
    pool.shutdown();
    let letters = letters.lock().unwrap();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0].name.as_deref(), Some("p"));
    assert_eq!(letters[0].error, format!("{INTENTIONAL}: boom"));
    assert_eq!(letters[1].error, format!("{INTENTIONAL}: again"));
}

#[test]
fn a_panicking_hook_is_caught_and_counted() {
    quiet_intentional_panics();
    let pool = Pool::builder()
        .workers(1)
        .pin_workers(false)
        .on_dead_letter(|_| panic!("{INTENTIONAL}: hook"))
        .build()
        .unwrap();
    for _ in 0..3 {
        let h = pool
            .submit_task(Task::fallible(|| Err::<(), _>("x")))
            .unwrap();
        assert!(finish(h).is_err());
    }
    // The worker survived: it still runs tasks.
    assert_eq!(finish(pool.submit(|| 5).unwrap()).unwrap(), 5);
    pool.shutdown();
    let m = pool.metrics();
    assert_eq!((m.dead_lettered, m.callback_panics), (3, 3));
}

#[test]
fn successes_cancels_and_stopped_retries_are_not_dead_letters() {
    let (pool, letters) = pool_with_hook(1);
    finish(pool.submit(|| ()).unwrap()).unwrap();
    // A retry stopped by a cancel request while running.
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let h = pool
        .submit_task(
            Task::fallible(move || {
                started_tx.send(()).unwrap();
                go_rx.recv_timeout(LIMIT).unwrap();
                Err::<(), _>("stop me")
            })
            .retry(Retry::fixed(5, Duration::from_millis(1))),
        )
        .unwrap();
    started_rx.recv_timeout(LIMIT).unwrap();
    assert!(!h.cancel(), "it runs: cancel only stops the retries");
    go_tx.send(()).unwrap();
    assert!(matches!(
        finish(h),
        Err(TaskError::Failed { attempts: 1, .. })
    ));
    pool.shutdown();
    assert!(letters.lock().unwrap().is_empty());
    assert_eq!(pool.metrics().dead_lettered, 0);
}

#[test]
fn dead_letters_are_counted_without_a_hook() {
    let pool = common::limit_30s::pool(2);
    let hs: Vec<_> = (0..20)
        .map(|_| {
            pool.submit_task(Task::fallible(|| Err::<(), _>("x")))
                .unwrap()
        })
        .collect();
    for h in hs {
        assert!(finish(h).is_err());
    }
    wait_until("dead letters counted", || {
        pool.metrics().dead_lettered == 20
    });
}

#[test]
fn names_appear_in_the_debug_of_tasks_and_handles() {
    let pool = common::limit_30s::pool(1);
    let task = Task::new(|| 1).name("resize-image");
    assert!(format!("{task:?}").contains("\"resize-image\""));
    let h = pool.submit_task(task).unwrap();
    assert!(format!("{h:?}").contains("\"resize-image\""), "{h:?}");
    finish(h).unwrap();
    let h = pool.submit(|| 1).unwrap();
    assert!(format!("{h:?}").contains("name: None"), "{h:?}");
}
