//! Latency histograms: one value per attempt in the right lane, exact
//! counts once the pool is shut down, and values that are at least the
//! waits and runs the test arranged (lower bounds only: wall time has no
//! upper bound on a loaded machine).

use std::thread;
use std::time::Duration;

use runq::{Pool, Priority, Retry, Task, WhenFull};

mod common;

use common::limit_30s::{finish, occupy_worker, pool};

#[test]
fn every_attempt_is_counted_once_in_its_lane() {
    let pool = pool(3);
    let n = common::scaled(3000);
    let mut hs = Vec::new();
    for i in 0..n {
        let p = [Priority::High, Priority::Normal, Priority::Low][i % 3];
        hs.push(pool.submit_task(Task::new(|| ()).priority(p)).unwrap());
    }
    // Tasks spawned on workers, into their own deques.
    let inner = pool.clone();
    let spawner = pool
        .submit(move || {
            for _ in 0..100 {
                inner.spawn(|| ()).unwrap();
            }
        })
        .unwrap();
    let flaky = pool
        .submit_task(
            Task::fallible(|| Err::<(), _>("no"))
                .priority(Priority::Low)
                .retry(Retry::fixed(3, Duration::from_millis(1))),
        )
        .unwrap();
    for h in hs {
        finish(h).unwrap();
    }
    finish(spawner).unwrap();
    assert!(finish(flaky).is_err());
    pool.shutdown();
    let m = pool.metrics();
    let third = (n / 3) as u64;
    assert_eq!(m.queue_wait_high.count(), third);
    assert_eq!(m.queue_wait_normal.count(), third + 1 + 100);
    assert_eq!(m.queue_wait_low.count(), third + 3);
    assert_eq!(m.run_time.count(), n as u64 + 1 + 100 + 3);
    let q = &m.run_time;
    assert!(q.quantile(0.5) <= q.quantile(0.99) && q.quantile(0.99) <= q.max());
    assert!(q.sum() <= q.max() * q.count() as u32);
}

#[test]
fn a_task_held_behind_a_busy_worker_shows_the_wait() {
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let h = pool
        .submit_task(Task::new(|| ()).priority(Priority::High))
        .unwrap();
    thread::sleep(Duration::from_millis(30));
    drop(release);
    finish(blocker).unwrap();
    finish(h).unwrap();
    let m = pool.metrics();
    assert_eq!(m.queue_wait_high.count(), 1);
    assert!(
        m.queue_wait_high.max() >= Duration::from_millis(30),
        "{m:?}"
    );
    // Accurate to one bucket: the p100 is at least the true value.
    assert!(m.queue_wait_high.quantile(1.0) >= Duration::from_millis(30));
    // The blocker ran at least as long as the sleep.
    assert!(m.run_time.max() >= Duration::from_millis(30));
}

#[test]
fn run_time_covers_the_body() {
    let pool = pool(2);
    for _ in 0..3 {
        finish(
            pool.submit(|| thread::sleep(Duration::from_millis(5)))
                .unwrap(),
        )
        .unwrap();
    }
    let m = pool.metrics();
    assert_eq!(m.run_time.count(), 3);
    assert!(m.run_time.sum() >= Duration::from_millis(15));
    assert!(m.run_time.quantile(0.0) >= Duration::from_millis(5));
}

#[test]
fn tasks_run_in_the_caller_are_recorded_too() {
    let pool = Pool::builder()
        .workers(1)
        .pin_workers(false)
        .capacity(1)
        .when_full(WhenFull::RunInCaller)
        .build()
        .unwrap();
    let (blocker, release) = occupy_worker(&pool);
    // The blocker holds the only permit only while queued: fill the queue.
    let queued = pool.submit(|| ()).unwrap();
    let inline = pool.submit(|| 7).unwrap();
    assert_eq!(finish(inline).unwrap(), 7);
    drop(release);
    finish(blocker).unwrap();
    finish(queued).unwrap();
    pool.shutdown();
    let m = pool.metrics();
    assert_eq!(m.run_time.count(), 3);
    assert_eq!(m.queue_wait_normal.count(), 3);
}
