//! Completion callbacks: `on_complete` runs exactly once whatever the
//! terminal state, sees the same result the handle gets, runs before any
//! `wait()` returns, and a panicking callback is caught and counted without
//! touching the task's result or the worker.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runq::{Retry, Status, Task, TaskError};

mod common;

use common::limit_30s::{finish, occupy_worker, pool, wait_until};
use common::scaled;

/// What a callback saw, in a form tests can compare.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Ok(String),
    Panicked(String),
    Failed(u32, String),
    Cancelled,
    Expired,
    ShutDown,
    Other(String),
}

fn seen<T: std::fmt::Debug>(r: &Result<T, TaskError>) -> Seen {
    match r {
        Ok(v) => Seen::Ok(format!("{v:?}")),
        Err(TaskError::Panicked(m)) => Seen::Panicked(m.clone()),
        Err(TaskError::Failed { attempts, error }) => Seen::Failed(*attempts, error.to_string()),
        Err(TaskError::Cancelled) => Seen::Cancelled,
        Err(TaskError::Expired) => Seen::Expired,
        Err(TaskError::ShutDown) => Seen::ShutDown,
        Err(e) => Seen::Other(e.to_string()),
    }
}

/// Records every call of a callback.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    fn attach<T: std::fmt::Debug + Send + 'static>(&self, task: Task<T>) -> Task<T> {
        let log = self.clone();
        task.on_complete(move |r| log.0.lock().unwrap().push(seen(r)))
    }
    fn calls(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

#[test]
fn callback_runs_once_with_the_value_on_success() {
    let pool = pool(2);
    let log = Log::default();
    let h = pool.submit_task(log.attach(Task::new(|| 42u32))).unwrap();
    assert_eq!(finish(h).unwrap(), 42);
    assert_eq!(log.calls(), vec![Seen::Ok("42".into())]);
}

#[test]
fn callback_runs_before_wait_returns() {
    let pool = pool(2);
    for i in 0..scaled(500) {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let h = pool
            .submit_task(Task::new(move || i).on_complete(move |_| {
                d.store(true, Ordering::SeqCst);
            }))
            .unwrap();
        assert_eq!(finish(h).unwrap(), i);
        assert!(
            done.load(Ordering::SeqCst),
            "task {i}: wait() returned before the callback ran"
        );
    }
}

#[test]
fn wait_does_not_return_while_a_slow_callback_runs() {
    // A slow callback: wait() must not return while it is still running.
    let pool = pool(1);
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let h = pool
        .submit_task(Task::new(|| ()).on_complete(move |_| {
            std::thread::sleep(Duration::from_millis(100));
            d.store(true, Ordering::SeqCst);
        }))
        .unwrap();
    finish(h).unwrap();
    assert!(done.load(Ordering::SeqCst), "wait() returned mid-callback");
}

#[test]
fn callback_sees_the_final_failure() {
    let pool = pool(1);
    let log = Log::default();
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let task = Task::<()>::fallible(move || {
        let n = r.fetch_add(1, Ordering::SeqCst) + 1;
        Err(format!("e{n}"))
    })
    .retry(Retry::fixed(3, Duration::from_millis(1)));
    let h = pool.submit_task(log.attach(task)).unwrap();
    assert!(matches!(
        finish(h),
        Err(TaskError::Failed { attempts: 3, .. })
    ));
    assert_eq!(
        log.calls(),
        vec![Seen::Failed(3, "e3".into())],
        "one call, after the last attempt"
    );
}

#[test]
fn callback_sees_a_panic() {
    let pool = pool(1);
    let log = Log::default();
    let h = pool
        .submit_task(log.attach(Task::<u8>::new(|| panic!("kaboom"))))
        .unwrap();
    assert!(matches!(finish(h), Err(TaskError::Panicked(_))));
    let calls = log.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(
        matches!(&calls[0], Seen::Panicked(m) if m.contains("kaboom")),
        "{calls:?}"
    );
}

#[test]
fn callback_runs_once_for_a_cancelled_queued_task() {
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let log = Log::default();
    let h = pool.submit_task(log.attach(Task::new(|| 1u8))).unwrap();
    assert!(h.cancel());
    drop(release);
    finish(blocker).unwrap();
    assert!(matches!(finish(h), Err(TaskError::Cancelled)));
    pool.shutdown();
    assert_eq!(log.calls(), vec![Seen::Cancelled]);
}

#[test]
fn callback_runs_once_for_a_cancelled_delayed_task() {
    let pool = pool(1);
    let log = Log::default();
    let h = pool
        .submit_task(log.attach(Task::new(|| 1u8).delay(Duration::from_secs(3600))))
        .unwrap();
    assert!(h.cancel());
    assert!(matches!(finish(h), Err(TaskError::Cancelled)));
    pool.shutdown();
    assert_eq!(log.calls(), vec![Seen::Cancelled]);
}

#[test]
fn callback_runs_once_for_a_task_cancelled_while_retrying() {
    let pool = pool(1);
    let log = Log::default();
    let h = pool
        .submit_task(log.attach(
            Task::<u8>::fallible(|| Err("x")).retry(Retry::fixed(5, Duration::from_secs(3600))),
        ))
        .unwrap();
    wait_until("the retry wait", || h.status() == Status::Retrying);
    assert!(log.calls().is_empty(), "callback ran before the task ended");
    assert!(h.cancel());
    assert!(matches!(finish(h), Err(TaskError::Cancelled)));
    pool.shutdown();
    assert_eq!(log.calls(), vec![Seen::Cancelled]);
}

#[test]
fn callback_runs_once_for_an_expired_task() {
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let log = Log::default();
    let h = pool
        .submit_task(log.attach(Task::new(|| 1u8).deadline(Duration::from_millis(10))))
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    drop(release);
    finish(blocker).unwrap();
    assert!(matches!(finish(h), Err(TaskError::Expired)));
    pool.shutdown();
    assert_eq!(log.calls(), vec![Seen::Expired]);
}

#[test]
fn callback_runs_once_for_a_task_cancelled_by_shutdown_now() {
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let logs: Vec<Log> = (0..10).map(|_| Log::default()).collect();
    let handles: Vec<_> = logs
        .iter()
        .map(|log| pool.submit_task(log.attach(Task::new(|| 0u8))).unwrap())
        .collect();
    let p = pool.clone();
    let stopper = std::thread::spawn(move || p.shutdown_now());
    wait_until("shutdown to begin", || pool.is_shut_down());
    drop(release);
    let report = stopper.join().unwrap();
    finish(blocker).unwrap();
    for (log, h) in logs.iter().zip(handles) {
        assert!(matches!(finish(h), Err(TaskError::Cancelled)));
        assert_eq!(log.calls(), vec![Seen::Cancelled]);
    }
    assert_eq!(report.cancelled, 10, "{report:?}");
}

#[test]
fn callback_result_matches_what_wait_returns() {
    let pool = pool(2);
    let logs: Vec<Log> = (0..scaled(100)).map(|_| Log::default()).collect();
    let handles: Vec<_> = logs
        .iter()
        .enumerate()
        .map(|(i, log)| {
            let task = match i % 4 {
                0 => Task::new(move || i),
                1 => Task::new(move || -> usize { panic!("p{i}") }),
                2 => Task::fallible(move || Err::<usize, _>(format!("f{i}"))),
                _ => Task::new(move || i).delay(Duration::from_millis(1)),
            };
            pool.submit_task(log.attach(task)).unwrap()
        })
        .collect();
    for (i, (log, h)) in logs.iter().zip(handles).enumerate() {
        let from_wait = seen(&finish(h));
        assert_eq!(log.calls(), vec![from_wait], "task {i}");
    }
}

#[test]
fn panicking_callback_is_caught_and_counted() {
    let pool = pool(1);
    let h = pool
        .submit_task(Task::new(|| 9).on_complete(|_| panic!("callback panics")))
        .unwrap();
    assert_eq!(
        finish(h).unwrap(),
        9,
        "the callback's panic changed the result"
    );
    // The worker survives: the next task runs on the same single worker.
    assert_eq!(finish(pool.submit(|| 10).unwrap()).unwrap(), 10);
    let report_metrics = pool.metrics();
    assert_eq!(report_metrics.callback_panics, 1, "{report_metrics:?}");
    let report = pool.shutdown();
    assert_eq!(report.completed, 2, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
}

#[test]
fn panicking_callback_on_cancel_does_not_escape_cancel() {
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let h = pool
        .submit_task(Task::new(|| 1).on_complete(|_| panic!("callback panics on cancel")))
        .unwrap();
    assert!(h.cancel());
    assert!(matches!(finish(h), Err(TaskError::Cancelled)));
    drop(release);
    finish(blocker).unwrap();
    assert_eq!(pool.metrics().callback_panics, 1);
}

#[test]
fn dropped_handle_still_gets_its_callback() {
    let pool = pool(2);
    let log = Log::default();
    drop(pool.submit_task(log.attach(Task::new(|| 5u8))).unwrap());
    pool.shutdown();
    assert_eq!(log.calls(), vec![Seen::Ok("5".into())]);
}

#[test]
fn callbacks_of_many_concurrent_tasks_each_run_once() {
    const TASKS: usize = scaled(2000);
    let pool = pool(4);
    let counts: Arc<Vec<AtomicU32>> = Arc::new((0..TASKS).map(|_| AtomicU32::new(0)).collect());
    let handles: Vec<_> = (0..TASKS)
        .map(|i| {
            let c = counts.clone();
            pool.submit_task(Task::new(move || i).on_complete(move |_| {
                c[i].fetch_add(1, Ordering::SeqCst);
            }))
            .unwrap()
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        if i % 3 == 0 {
            let _ = h.cancel();
        }
        drop(h);
    }
    pool.shutdown();
    for (i, c) in counts.iter().enumerate() {
        assert_eq!(c.load(Ordering::SeqCst), 1, "callback of task {i}");
    }
}
