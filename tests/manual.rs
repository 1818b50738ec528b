//! Manual pools: nothing runs until the driver says so, and the virtual clock
//! moves only by `advance`, so every assertion about *when* is exact.

use std::error::Error;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runq::{
    BuildError, DeadLetter, Jitter, ManualDriver, Pool, Priority, Retry, Status, SubmitError, Task,
    TaskError, WhenFull,
};

type TestResult = Result<(), Box<dyn Error>>;

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

fn manual() -> (Pool, ManualDriver) {
    Pool::builder()
        .build_manual()
        .expect("a manual pool builds")
}

/// A log the tasks and callbacks of a test append to, in order.
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

/// A fallible body that fails its first `failures` runs, counting runs.
fn flaky(failures: u32, runs: &Arc<AtomicU32>) -> impl FnMut() -> Result<u32, String> + Send {
    let runs = runs.clone();
    move || {
        let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= failures {
            Err(format!("attempt {n} failed"))
        } else {
            Ok(n)
        }
    }
}

#[test]
fn nothing_runs_until_the_driver_runs_it() -> TestResult {
    let (pool, driver) = manual();
    let ran = Arc::new(AtomicU32::new(0));
    let r = ran.clone();
    let h = pool.submit(move || r.fetch_add(1, Ordering::SeqCst) + 1)?;
    assert_eq!(pool.workers(), 0);
    assert_eq!(driver.pending(), 1);
    assert_eq!(h.status(), Status::Queued);
    assert_eq!(pool.metrics().queued_normal, 1);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(driver.run_pending(), 1);
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!((driver.pending(), driver.run_pending()), (0, 0));
    assert_eq!(h.wait()?, 1);
    Ok(())
}

#[test]
fn a_delayed_task_becomes_ready_exactly_when_its_delay_has_passed() -> TestResult {
    let (pool, driver) = manual();
    let h = pool.submit_task(Task::new(|| "late").delay(30 * SEC))?;
    assert_eq!(h.status(), Status::Delayed);
    assert_eq!(pool.metrics().delayed, 1);
    assert_eq!(driver.run_until_idle(), 0);
    driver.advance(30 * SEC - MS);
    assert_eq!(driver.pending(), 0);
    assert_eq!(h.status(), Status::Delayed);
    driver.advance(MS);
    assert_eq!(driver.elapsed(), 30 * SEC);
    assert_eq!(h.status(), Status::Queued);
    assert_eq!(driver.pending(), 1);
    // advance only makes it ready; running it is the driver's next step.
    assert!(!h.is_finished());
    assert_eq!(driver.run_pending(), 1);
    assert_eq!(h.wait()?, "late");
    Ok(())
}

#[test]
fn retries_come_due_exactly_after_each_backoff() -> TestResult {
    let (pool, driver) = manual();
    let runs = Arc::new(AtomicU32::new(0));
    let h = pool.submit_task(
        Task::fallible(flaky(3, &runs)).retry(Retry::exponential(4, 10 * SEC).jitter(Jitter::None)),
    )?;
    assert_eq!(driver.run_pending(), 1);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // Backoffs 10 s, 20 s, 40 s: each retry is ready at its time, not before.
    for backoff in [10 * SEC, 20 * SEC, 40 * SEC] {
        assert_eq!(h.status(), Status::Retrying);
        let before = runs.load(Ordering::SeqCst);
        driver.advance(backoff - MS);
        assert_eq!(driver.run_until_idle(), 0);
        driver.advance(MS);
        assert_eq!(driver.pending(), 1);
        assert_eq!(driver.run_pending(), 1);
        assert_eq!(runs.load(Ordering::SeqCst), before + 1);
    }
    assert_eq!(driver.elapsed(), 70 * SEC);
    assert_eq!(h.wait()?, 4);
    let m = pool.metrics();
    assert_eq!((m.retried, m.completed, m.failed), (3, 1, 0));
    Ok(())
}

#[test]
fn a_task_that_keeps_failing_ends_failed_after_its_last_attempt() -> TestResult {
    let (pool, driver) = manual();
    let runs = Arc::new(AtomicU32::new(0));
    let h = pool.submit_task(
        Task::fallible(flaky(u32::MAX, &runs)).retry(Retry::fixed(3, SEC).jitter(Jitter::None)),
    )?;
    driver.run_until_idle();
    driver.advance(SEC);
    driver.run_until_idle();
    driver.advance(SEC);
    driver.run_until_idle();
    match h.wait() {
        Err(TaskError::Failed { attempts, error }) => {
            assert_eq!(attempts, 3);
            assert_eq!(error.to_string(), "attempt 3 failed");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(driver.elapsed(), 2 * SEC);
    Ok(())
}

#[test]
fn a_dead_letter_is_sent_exactly_when_the_last_attempt_fails() -> TestResult {
    let dead = Log::default();
    let d = dead.clone();
    let (pool, driver) = Pool::builder()
        .on_dead_letter(move |l: &DeadLetter| {
            d.push(format!(
                "{:?} {:?} {} {}",
                l.name, l.key, l.attempts, l.error
            ))
        })
        .build_manual()?;
    let runs = Arc::new(AtomicU32::new(0));
    let h = pool.submit_task(
        Task::fallible(flaky(u32::MAX, &runs))
            .name("upload")
            .key("file-9")
            .retry(Retry::exponential(3, 10 * SEC).jitter(Jitter::None)),
    )?;
    driver.run_pending();
    driver.advance(10 * SEC);
    driver.run_pending();
    driver.advance(20 * SEC - MS);
    driver.run_pending();
    assert!(dead.take().is_empty());
    assert_eq!(h.status(), Status::Retrying);
    driver.advance(MS);
    assert_eq!(driver.run_pending(), 1);
    assert_eq!(
        dead.take(),
        [r#"Some("upload") Some("file-9") 3 attempt 3 failed"#]
    );
    assert!(matches!(
        h.wait(),
        Err(TaskError::Failed { attempts: 3, .. })
    ));
    // A retry predicate that refuses ends the task at once: no backoff waited.
    let permanent = pool.submit_task(
        Task::fallible(|| -> Result<u32, &str> { Err("gone") })
            .retry(Retry::fixed(5, SEC).retry_if(|e| e.to_string() != "gone")),
    )?;
    assert_eq!(driver.run_pending(), 1);
    assert!(permanent.is_finished());
    assert_eq!(dead.take().len(), 1);
    assert_eq!(pool.metrics().dead_lettered, 2);
    Ok(())
}

#[test]
fn a_deadline_passes_at_its_time_and_the_task_never_runs() -> TestResult {
    let (pool, driver) = manual();
    let log = Log::default();
    let (l1, l2) = (log.clone(), log.clone());
    let h = pool.submit_task(
        Task::new(move || l1.push("ran"))
            .deadline(5 * SEC)
            .on_complete(move |r| l2.push(format!("callback: {}", r.is_ok()))),
    )?;
    driver.advance(5 * SEC - MS);
    assert_eq!(h.status(), Status::Queued);
    driver.advance(MS);
    // The deadline passed during advance: resolved there, callback included.
    assert_eq!(h.status(), Status::Expired);
    assert_eq!(log.take(), ["callback: false"]);
    assert_eq!(driver.run_until_idle(), 0);
    assert!(matches!(h.wait(), Err(TaskError::Expired)));
    assert_eq!(pool.metrics().expired, 1);
    Ok(())
}

#[test]
fn a_task_run_before_its_deadline_succeeds() -> TestResult {
    let (pool, driver) = manual();
    let h = pool.submit_task(Task::new(|| 7).deadline(5 * SEC))?;
    driver.advance(5 * SEC - MS);
    assert_eq!(driver.run_pending(), 1);
    driver.advance(SEC);
    assert_eq!(h.wait()?, 7);
    Ok(())
}

#[test]
fn a_deadline_shorter_than_the_delay_expires_the_task_at_the_deadline() -> TestResult {
    let (pool, driver) = manual();
    let h = pool.submit_task(Task::new(|| 1).delay(10 * SEC).deadline(4 * SEC))?;
    driver.advance(4 * SEC - MS);
    assert_eq!(h.status(), Status::Delayed);
    driver.advance(MS);
    assert_eq!(h.status(), Status::Expired);
    driver.advance(10 * SEC);
    assert_eq!(driver.run_until_idle(), 0);
    assert!(matches!(h.wait(), Err(TaskError::Expired)));
    Ok(())
}

#[test]
fn a_key_is_held_from_submission_to_the_terminal_state() -> TestResult {
    let (pool, driver) = manual();
    let first = pool.submit_task(Task::new(|| 1).key("order-17").delay(SEC))?;
    let dup = pool.submit_task(Task::new(|| 2).key("order-17"));
    assert!(matches!(dup, Err(SubmitError::Duplicate(k)) if k == "order-17"));
    driver.advance(SEC);
    // Ready but not run: still held.
    assert!(pool.submit_task(Task::new(|| 2).key("order-17")).is_err());
    driver.run_pending();
    assert_eq!(first.wait()?, 1);
    let second = pool.submit_task(Task::new(|| 2).key("order-17"))?;
    driver.run_pending();
    assert_eq!(second.wait()?, 2);
    Ok(())
}

#[test]
fn a_key_is_held_while_a_task_waits_for_its_retry() -> TestResult {
    let (pool, driver) = manual();
    let runs = Arc::new(AtomicU32::new(0));
    let h = pool.submit_task(
        Task::fallible(flaky(1, &runs))
            .key("k")
            .retry(Retry::fixed(2, SEC).jitter(Jitter::None)),
    )?;
    driver.run_pending();
    assert_eq!(h.status(), Status::Retrying);
    assert!(pool.submit_task(Task::new(|| 0).key("k")).is_err());
    driver.advance(SEC);
    driver.run_pending();
    assert_eq!(h.wait()?, 2);
    assert!(pool.submit_task(Task::new(|| 0).key("k")).is_ok());
    Ok(())
}

#[test]
fn cancel_before_the_run_resolves_cancelled_and_frees_the_key() -> TestResult {
    let (pool, driver) = manual();
    let log = Log::default();
    let l = log.clone();
    let queued = pool.submit_task(Task::new(|| 1).key("a"))?;
    let delayed = pool.submit_task(
        Task::new(|| 2)
            .delay(SEC)
            .on_complete(move |r| l.push(format!("delayed cancelled: {}", r.is_err()))),
    )?;
    assert!(queued.cancel());
    assert!(delayed.cancel());
    assert_eq!(log.take(), ["delayed cancelled: true"]);
    assert_eq!(driver.pending(), 0);
    driver.advance(SEC);
    assert_eq!(driver.run_until_idle(), 0);
    assert!(matches!(queued.wait(), Err(TaskError::Cancelled)));
    assert!(matches!(delayed.wait(), Err(TaskError::Cancelled)));
    assert!(pool.submit_task(Task::new(|| 3).key("a")).is_ok());
    assert_eq!(pool.metrics().cancelled, 2);
    Ok(())
}

#[test]
fn cancel_while_waiting_for_a_retry_stops_the_retries() -> TestResult {
    let (pool, driver) = manual();
    let runs = Arc::new(AtomicU32::new(0));
    let h = pool.submit_task(
        Task::fallible(flaky(u32::MAX, &runs)).retry(Retry::fixed(5, SEC).jitter(Jitter::None)),
    )?;
    driver.run_pending();
    assert!(h.cancel());
    driver.advance(10 * SEC);
    assert_eq!(driver.run_until_idle(), 0);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(matches!(h.wait(), Err(TaskError::Cancelled)));
    Ok(())
}

#[test]
fn callbacks_run_on_the_driving_thread_in_completion_order() -> TestResult {
    let (pool, driver) = manual();
    let log = Log::default();
    let me = std::thread::current().id();
    for i in 0..3 {
        let l = log.clone();
        pool.submit_task(Task::new(move || i).on_complete(move |r| {
            assert_eq!(std::thread::current().id(), me);
            l.push(format!("done {}", r.as_ref().unwrap()));
        }))?;
    }
    assert!(log.take().is_empty());
    assert_eq!(driver.run_pending(), 3);
    assert_eq!(log.take(), ["done 0", "done 1", "done 2"]);
    Ok(())
}

#[test]
fn a_guard_is_evaluated_when_the_driver_runs_the_task() -> TestResult {
    let (pool, driver) = manual();
    let open = Arc::new(AtomicU32::new(0));
    let o = open.clone();
    let refused = pool.submit_task(Task::new(|| 1).guard(move || o.load(Ordering::SeqCst) == 1))?;
    let o = open.clone();
    let allowed = pool.submit_task(
        Task::new(|| 2)
            .delay(SEC)
            .guard(move || o.load(Ordering::SeqCst) == 1),
    )?;
    driver.run_pending();
    assert!(matches!(refused.wait(), Err(TaskError::Cancelled)));
    open.store(1, Ordering::SeqCst);
    driver.advance(SEC);
    driver.run_pending();
    assert_eq!(allowed.wait()?, 2);
    Ok(())
}

#[test]
fn a_batch_is_queued_whole_and_runs_in_order() -> TestResult {
    let (pool, driver) = manual();
    let log = Log::default();
    let tasks = (0..4)
        .map(|i| {
            let l = log.clone();
            Task::new(move || {
                l.push(format!("{i}"));
                i
            })
        })
        .collect();
    let handles = pool.submit_batch(tasks)?;
    assert_eq!(driver.pending(), 4);
    assert_eq!(driver.run_pending(), 4);
    assert_eq!(log.take(), ["0", "1", "2", "3"]);
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.wait()?, i);
    }
    // A batch with a duplicate key is refused whole, and nothing is queued.
    let bad = pool.submit_batch(vec![Task::new(|| 0).key("x"), Task::new(|| 1).key("x")]);
    assert!(matches!(bad, Err(SubmitError::Duplicate(_))));
    assert_eq!(driver.pending(), 0);
    Ok(())
}

#[test]
fn run_pending_runs_what_was_ready_and_not_what_it_spawns() -> TestResult {
    let (pool, driver) = manual();
    let log = Log::default();
    for name in ["a", "b"] {
        let (p, l) = (pool.clone(), log.clone());
        pool.spawn(move || {
            l.push(name);
            let l = l.clone();
            p.spawn(move || l.push(format!("{name}'s child")))
                .expect("the pool is open");
        })?;
    }
    assert_eq!(driver.run_pending(), 2);
    assert_eq!(log.take(), ["a", "b"]);
    assert_eq!(driver.pending(), 2);
    assert_eq!(driver.run_pending(), 2);
    assert_eq!(log.take(), ["a's child", "b's child"]);
    // run_until_idle follows the chain to its end.
    let (p, l) = (pool.clone(), log.clone());
    pool.spawn(move || {
        let (p2, l2) = (p.clone(), l.clone());
        p.spawn(move || {
            let l3 = l2.clone();
            p2.spawn(move || l3.push("3")).expect("open");
            l2.push("2");
        })
        .expect("open");
        l.push("1");
    })?;
    assert_eq!(driver.run_until_idle(), 3);
    assert_eq!(log.take(), ["1", "2", "3"]);
    Ok(())
}

#[test]
fn ready_tasks_run_in_strict_priority_order_then_fifo() -> TestResult {
    let (pool, driver) = manual();
    let log = Log::default();
    for (name, priority) in [
        ("low-1", Priority::Low),
        ("normal-1", Priority::Normal),
        ("high-1", Priority::High),
        ("normal-2", Priority::Normal),
        ("high-2", Priority::High),
        ("low-2", Priority::Low),
    ] {
        let l = log.clone();
        pool.submit_task(Task::new(move || l.push(name)).priority(priority))?;
    }
    let m = pool.metrics();
    assert_eq!((m.queued_high, m.queued_normal, m.queued_low), (2, 2, 2));
    assert_eq!(driver.run_pending(), 6);
    assert_eq!(
        log.take(),
        ["high-1", "high-2", "normal-1", "normal-2", "low-1", "low-2"]
    );
    Ok(())
}

#[test]
fn wait_on_a_task_nobody_runs_returns_not_driven_instead_of_hanging() -> TestResult {
    let (pool, driver) = manual();
    let h = pool.submit(|| 5)?;
    assert!(matches!(h.wait(), Err(TaskError::NotDriven)));
    // The task itself is untouched: it still runs when driven.
    assert_eq!(driver.run_pending(), 1);
    let h = pool.submit(|| 6)?;
    let h = h.wait_timeout(MS).expect_err("nobody runs it meanwhile");
    driver.run_pending();
    assert_eq!(h.wait()?, 6);
    Ok(())
}

#[test]
fn wait_inside_a_task_runs_the_awaited_task_as_a_worker_would() -> TestResult {
    let (pool, driver) = manual();
    let p = pool.clone();
    let outer = pool.submit(move || {
        let inner = p.submit(|| 20).expect("open");
        let delayed = p.submit_task(Task::new(|| 1).delay(SEC)).expect("open");
        // Ready: runs here. Delayed: nobody moves the clock from inside.
        let a = inner.wait().expect("ran inline");
        let b = delayed.wait();
        (a, matches!(b, Err(TaskError::NotDriven)))
    })?;
    // The outer task, and the inner one its wait ran.
    assert_eq!(driver.run_pending(), 2);
    assert_eq!(outer.wait()?, (20, true));
    Ok(())
}

#[test]
fn a_handle_polled_as_a_future_is_ready_once_the_driver_ran_it() -> TestResult {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let (pool, driver) = manual();
    let mut h = pool.submit(|| 11)?;
    let mut cx = Context::from_waker(Waker::noop());
    assert!(std::pin::Pin::new(&mut h).poll(&mut cx).is_pending());
    driver.run_pending();
    match std::pin::Pin::new(&mut h).poll(&mut cx) {
        Poll::Ready(r) => assert_eq!(r?, 11),
        Poll::Pending => panic!("the driver ran it"),
    }
    Ok(())
}

#[test]
fn block_on_a_full_manual_pool_fails_with_full_instead_of_blocking() -> TestResult {
    let (pool, driver) = Pool::builder()
        .capacity(2)
        .when_full(WhenFull::Block)
        .build_manual()?;
    pool.spawn(|| ())?;
    pool.spawn(|| ())?;
    assert!(matches!(pool.spawn(|| ()), Err(SubmitError::Full)));
    driver.run_pending();
    pool.spawn(|| ())?;
    Ok(())
}

#[test]
fn join_and_scope_run_on_the_calling_thread() -> TestResult {
    let (pool, driver) = manual();
    let (a, b) = pool.join(|| 1, || 2);
    assert_eq!(a + b, 3);
    let mut parts = [0u32; 3];
    pool.scope(|s| {
        for (i, p) in parts.iter_mut().enumerate() {
            s.spawn(move |_| *p = i as u32 + 1);
        }
    });
    assert_eq!(parts, [1, 2, 3]);
    let h = pool.submit(|| runq::join(|| 3, || 4))?;
    driver.run_pending();
    assert_eq!(h.wait()?, (3, 4));
    Ok(())
}

#[test]
fn panics_are_caught_and_counted() -> TestResult {
    let (pool, driver) = manual();
    let h = pool.submit(|| -> u32 { panic!("boom") })?;
    let ok = pool.submit(|| 1)?;
    assert_eq!(driver.run_pending(), 2);
    assert!(matches!(h.wait(), Err(TaskError::Panicked(m)) if m == "boom"));
    assert_eq!(ok.wait()?, 1);
    let m = pool.metrics();
    assert_eq!((m.panicked, m.failed, m.completed), (1, 1, 1));
    Ok(())
}

#[test]
fn shutdown_leaves_accepted_tasks_to_the_driver() -> TestResult {
    let (pool, driver) = manual();
    let queued = pool.submit(|| 1)?;
    let delayed = pool.submit_task(Task::new(|| 2).delay(SEC))?;
    let report = pool.shutdown();
    assert_eq!(report.in_flight, 2);
    assert!(matches!(pool.submit(|| 3), Err(SubmitError::ShutDown)));
    driver.run_pending();
    driver.advance(SEC);
    driver.run_pending();
    assert_eq!(queued.wait()?, 1);
    assert_eq!(delayed.wait()?, 2);
    let report = pool.shutdown();
    assert_eq!(
        (report.submitted, report.completed, report.in_flight),
        (2, 2, 0)
    );
    Ok(())
}

#[test]
fn shutdown_now_cancels_everything_not_started_with_callbacks() -> TestResult {
    let (pool, driver) = manual();
    let log = Log::default();
    let runs = Arc::new(AtomicU32::new(0));
    let retrying = pool.submit_task(
        Task::fallible(flaky(u32::MAX, &runs))
            .retry(Retry::fixed(3, SEC))
            .on_complete({
                let l = log.clone();
                move |r| l.push(format!("retrying: {}", r.is_err()))
            }),
    )?;
    driver.run_pending();
    let queued = pool.submit_task(Task::new(|| 1).on_complete({
        let l = log.clone();
        move |_| l.push("queued")
    }))?;
    let delayed = pool.submit_task(Task::new(|| 2).delay(SEC).on_complete({
        let l = log.clone();
        move |_| l.push("delayed")
    }))?;
    let report = pool.shutdown_now();
    let mut seen = log.take();
    seen.sort();
    assert_eq!(seen, ["delayed", "queued", "retrying: true"]);
    for h in [queued, delayed] {
        assert!(matches!(h.wait(), Err(TaskError::Cancelled)));
    }
    assert!(matches!(retrying.wait(), Err(TaskError::Cancelled)));
    assert_eq!((report.cancelled, report.in_flight), (3, 0));
    assert_eq!(report.submitted, 3);
    assert_eq!(driver.pending(), 0);
    Ok(())
}

#[test]
fn dropping_the_driver_cancels_what_never_ran_and_closes_the_pool() -> TestResult {
    let (pool, driver) = manual();
    let log = Log::default();
    let l = log.clone();
    let ran = pool.submit(|| 1)?;
    driver.run_pending();
    let never = pool.submit_task(Task::new(|| 2).on_complete(move |r| {
        l.push(format!(
            "cancelled: {}",
            matches!(r, Err(TaskError::Cancelled))
        ))
    }))?;
    let delayed = pool.submit_task(Task::new(|| 3).delay(SEC))?;
    drop(driver);
    assert_eq!(log.take(), ["cancelled: true"]);
    assert_eq!(ran.wait()?, 1);
    // Waiting on what never ran does not hang: it was cancelled.
    assert!(matches!(never.wait(), Err(TaskError::Cancelled)));
    assert!(matches!(delayed.wait(), Err(TaskError::Cancelled)));
    assert!(matches!(pool.submit(|| 4), Err(SubmitError::ShutDown)));
    let m = pool.metrics();
    assert_eq!((m.completed, m.cancelled, m.in_flight), (1, 2, 0));
    Ok(())
}

#[test]
fn inline_and_manual_together_is_a_build_error() {
    let r = Pool::builder().inline().build_manual();
    assert!(matches!(r, Err(BuildError::InlineAndManual)));
    assert!(matches!(
        Pool::builder().workers(0).build_manual(),
        Err(BuildError::ZeroWorkers)
    ));
    assert!(matches!(
        Pool::builder().capacity(0).build_manual(),
        Err(BuildError::ZeroCapacity)
    ));
}

#[test]
fn a_huge_advance_is_cut_not_a_panic() -> TestResult {
    let (pool, driver) = manual();
    let h = pool.submit_task(Task::new(|| 1).delay(Duration::from_secs(1 << 29)))?;
    driver.advance(Duration::MAX);
    driver.advance(Duration::MAX);
    driver.run_pending();
    assert_eq!(h.wait()?, 1);
    assert!(driver.elapsed() >= Duration::from_secs(1 << 31));
    Ok(())
}

#[test]
fn the_driver_and_pool_are_debug_and_the_driver_is_send() {
    fn is_send<T: Send>() {}
    is_send::<ManualDriver>();
    let (pool, driver) = manual();
    let text = format!("{driver:?} {pool:?}");
    assert!(text.contains("ManualDriver"));
    // The driver may move to another thread and drive from there.
    let h = pool.submit(|| 9).expect("open");
    std::thread::spawn(move || driver.run_until_idle())
        .join()
        .expect("no panic");
    assert_eq!(h.wait().ok(), Some(9));
}
