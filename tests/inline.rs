//! Inline pools: every submission has reached a terminal state when
//! `submit` returns, on the caller's thread, with delays and backoffs on a
//! virtual clock.

use std::error::Error;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runq::{Jitter, Pool, Priority, Retry, Status, SubmitError, Task, TaskError, WhenFull};

type TestResult = Result<(), Box<dyn Error>>;

const SEC: Duration = Duration::from_secs(1);

fn inline() -> Pool {
    Pool::builder()
        .inline()
        .build()
        .expect("an inline pool builds")
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[test]
fn every_submission_is_finished_when_submit_returns_on_the_callers_thread() -> TestResult {
    let pool = inline();
    let me = std::thread::current().id();
    let h = pool.submit(move || std::thread::current().id() == me)?;
    assert!(h.is_finished());
    assert!(h.wait()?);
    assert_eq!(pool.workers(), 0);
    let ran = Arc::new(AtomicU32::new(0));
    let r = ran.clone();
    pool.spawn(move || {
        r.fetch_add(1, Ordering::SeqCst);
    })?;
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    Ok(())
}

#[test]
fn long_delays_and_backoffs_cost_no_real_time() -> TestResult {
    let pool = inline();
    let delayed = pool.submit_task(Task::new(|| "an hour later").delay(3600 * SEC))?;
    assert_eq!(delayed.status(), Status::Succeeded);
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let retried = pool.submit_task(
        Task::fallible(move || {
            if r.fetch_add(1, Ordering::SeqCst) < 4 {
                Err("not yet")
            } else {
                Ok("fifth time")
            }
        })
        .retry(Retry::exponential(5, 600 * SEC)),
    )?;
    assert!(retried.is_finished());
    assert_eq!(retried.wait()?, "fifth time");
    assert_eq!(runs.load(Ordering::SeqCst), 5);
    assert_eq!(pool.metrics().retried, 4);
    Ok(())
}

#[test]
fn a_deadline_before_the_delay_expires_the_task() -> TestResult {
    let pool = inline();
    let log = Log::default();
    let l = log.clone();
    let h = pool.submit_task(Task::new(|| 1).delay(10 * SEC).deadline(SEC).on_complete(
        move |r| l.push(format!("expired: {}", matches!(r, Err(TaskError::Expired)))),
    ))?;
    assert!(matches!(h.wait(), Err(TaskError::Expired)));
    assert_eq!(log.take(), ["expired: true"]);
    // Due before its deadline: runs.
    let h = pool.submit_task(Task::new(|| 2).delay(SEC).deadline(10 * SEC))?;
    assert_eq!(h.wait()?, 2);
    Ok(())
}

#[test]
fn tasks_spawned_from_a_task_run_after_it_before_the_outer_submit_returns() -> TestResult {
    let pool = inline();
    let log = Log::default();
    let (p, l) = (pool.clone(), log.clone());
    let outer = pool.submit_task(
        Task::new(move || {
            for (name, priority) in [
                ("low", Priority::Low),
                ("normal", Priority::Normal),
                ("high", Priority::High),
            ] {
                let l2 = l.clone();
                let h = p
                    .submit_task(Task::new(move || l2.push(name)).priority(priority))
                    .expect("open");
                // Queued, not run: the outer task is still running.
                assert!(!h.is_finished());
            }
            l.push("outer body");
        })
        .on_complete({
            let l = log.clone();
            move |_| l.push("outer callback")
        }),
    )?;
    assert!(outer.is_finished());
    assert_eq!(
        log.take(),
        ["outer body", "outer callback", "high", "normal", "low"]
    );
    Ok(())
}

#[test]
fn wait_inside_a_task_runs_the_awaited_task_at_once() -> TestResult {
    let pool = inline();
    let p = pool.clone();
    let h = pool.submit(move || {
        let child = p.submit(|| 20).expect("open");
        let later = p
            .submit_task(Task::new(|| 1).delay(60 * SEC))
            .expect("open");
        child.wait().expect("runs") + later.wait().expect("runs after its delay")
    })?;
    assert_eq!(h.wait()?, 21);
    Ok(())
}

#[test]
fn keys_guards_batches_and_callbacks_take_the_usual_paths() -> TestResult {
    let pool = inline();
    let log = Log::default();
    // A key is free again once the task ended (which is before submit returns).
    pool.submit_task(Task::new(|| 1).key("k"))?;
    pool.submit_task(Task::new(|| 1).key("k"))?;
    // But held while it runs.
    let p = pool.clone();
    let inner = pool.submit_task(
        Task::new(move || p.submit_task(Task::new(|| 0).key("busy")).err()).key("busy"),
    )?;
    assert!(matches!(inner.wait()?, Some(SubmitError::Duplicate(_))));
    let refused = pool.submit_task(Task::new(|| 1).guard(|| false))?;
    assert!(matches!(refused.wait(), Err(TaskError::Cancelled)));
    let tasks = (0..3)
        .map(|i| {
            let l = log.clone();
            Task::new(move || i).on_complete(move |r| l.push(format!("{}", r.as_ref().unwrap())))
        })
        .collect();
    let handles = pool.submit_batch(tasks)?;
    assert!(handles.iter().all(|h| h.is_finished()));
    assert_eq!(log.take(), ["0", "1", "2"]);
    Ok(())
}

#[test]
fn a_full_inline_pool_still_runs_every_submission() -> TestResult {
    let pool = Pool::builder()
        .inline()
        .capacity(1)
        .when_full(WhenFull::Reject)
        .build()?;
    for i in 0..5 {
        assert_eq!(pool.submit(move || i)?.wait()?, i);
    }
    // Submissions from inside take no permit, as on workers.
    let p = pool.clone();
    let h = pool.submit(move || {
        let hs: Vec<_> = (0..3)
            .map(|i| p.submit(move || i).expect("no permit needed"))
            .collect();
        hs.into_iter().map(|h| h.wait().expect("runs")).sum::<i32>()
    })?;
    assert_eq!(h.wait()?, 3);
    Ok(())
}

#[test]
fn panics_retries_and_metrics_match_a_pool_with_workers() -> TestResult {
    let pool = inline();
    let h = pool.submit(|| -> u32 { panic!("boom") })?;
    assert!(matches!(h.wait(), Err(TaskError::Panicked(_))));
    let h = pool.submit_task(
        Task::fallible(|| -> Result<u32, &str> { Err("always") })
            .retry(Retry::fixed(3, SEC).jitter(Jitter::Full)),
    )?;
    assert!(matches!(
        h.wait(),
        Err(TaskError::Failed { attempts: 3, .. })
    ));
    let report = pool.shutdown();
    assert_eq!(
        (
            report.submitted,
            report.failed,
            report.panicked,
            report.retried,
            report.in_flight
        ),
        (2, 2, 1, 2, 0)
    );
    assert!(matches!(pool.submit(|| 0), Err(SubmitError::ShutDown)));
    Ok(())
}

#[test]
fn submissions_from_several_threads_each_return_finished() -> TestResult {
    let pool = inline();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                (0..50).all(|i| {
                    let h = pool.submit(move || t * 100 + i).expect("open");
                    h.is_finished() && h.wait().ok() == Some(t * 100 + i)
                })
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().expect("no panic"));
    }
    assert_eq!(pool.metrics().completed, 200);
    Ok(())
}
