//! Delays (a task never starts before `submit + delay`) and deadlines (a task
//! not started within its deadline resolves `Expired` and never runs, also
//! when it is found late in a worker's deque).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runq::{Pool, Status, Task, TaskError};

mod common;

use common::limit_30s::{finish, occupy_worker, pool, TestPool, LIMIT};

#[test]
fn delayed_task_never_starts_before_its_delay() {
    let pool = pool(2);
    let delay = Duration::from_millis(100);
    let mut handles = Vec::new();
    for _ in 0..10 {
        let submitted = Instant::now();
        let h = pool
            .submit_task(Task::new(move || submitted.elapsed()).delay(delay))
            .unwrap();
        handles.push(h);
    }
    for h in handles {
        let waited = finish(h).unwrap();
        assert!(
            waited >= delay,
            "started {waited:?} after submit, delay was {delay:?}"
        );
    }
}

#[test]
fn delayed_task_reports_delayed_until_due() {
    let pool = pool(1);
    let delay = Duration::from_millis(300);
    let submitted = Instant::now();
    let h = pool.submit_task(Task::new(|| 7).delay(delay)).unwrap();
    let status = h.status();
    if submitted.elapsed() < delay {
        assert_eq!(status, Status::Delayed);
        assert!(!h.is_finished());
        assert!(pool.metrics().delayed >= 1);
    }
    assert_eq!(finish(h).unwrap(), 7);
    assert!(submitted.elapsed() >= delay);
}

#[test]
fn zero_delay_runs_like_an_ordinary_task() {
    let pool = pool(1);
    let h = pool
        .submit_task(Task::new(|| 5).delay(Duration::ZERO))
        .unwrap();
    assert_eq!(finish(h).unwrap(), 5);
}

#[test]
fn a_delayed_task_does_not_hold_a_worker() {
    let pool = pool(1);
    let delayed_start = Arc::new(Mutex::new(None));
    let ds = delayed_start.clone();
    let delayed = pool
        .submit_task(
            Task::new(move || *ds.lock().unwrap() = Some(Instant::now()))
                .delay(Duration::from_secs(1)),
        )
        .unwrap();
    let quick = pool.submit(Instant::now).unwrap();
    let quick_ran = finish(quick).unwrap();
    finish(delayed).unwrap();
    let delayed_ran = delayed_start.lock().unwrap().expect("delayed task ran");
    assert!(
        quick_ran < delayed_ran,
        "the ready task waited behind the delayed one"
    );
}

#[test]
fn delayed_tasks_due_sooner_are_not_held_behind_later_ones() {
    let pool = pool(1);
    let late = pool
        .submit_task(Task::new(Instant::now).delay(Duration::from_secs(2)))
        .unwrap();
    let submitted = Instant::now();
    let soon = pool
        .submit_task(Task::new(Instant::now).delay(Duration::from_millis(20)))
        .unwrap();
    let soon_ran = finish(soon).unwrap();
    assert!(soon_ran >= submitted + Duration::from_millis(20));
    let late_ran = finish(late).unwrap();
    assert!(soon_ran < late_ran, "a 20ms delay ran after a 2s delay");
}

#[test]
fn task_not_started_by_its_deadline_expires_and_never_runs() {
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let h = pool
        .submit_task(
            Task::new(move || r.store(true, Ordering::SeqCst)).deadline(Duration::from_millis(50)),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    drop(release);
    finish(blocker).unwrap();
    let id = h.id();
    match finish(h) {
        Err(TaskError::Expired) => {}
        other => panic!("task {id}: expected Expired, got {other:?}"),
    }
    let report = pool.shutdown();
    assert!(!ran.load(Ordering::SeqCst), "an expired task ran");
    assert_eq!(report.expired, 1, "{report:?}");
}

#[test]
fn expired_status_is_reported_and_stays() {
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let h = pool
        .submit_task(Task::new(|| ()).deadline(Duration::from_millis(20)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(80));
    drop(release);
    finish(blocker).unwrap();
    let start = Instant::now();
    while !h.is_finished() {
        assert!(start.elapsed() < LIMIT, "expired task never resolved");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(h.status(), Status::Expired);
    assert!(h.status().is_terminal());
    assert!(!h.cancel(), "a finished task cannot be cancelled");
    assert_eq!(h.status(), Status::Expired);
}

#[test]
fn task_started_in_time_is_unaffected_by_its_deadline() {
    let pool = pool(2);
    let h = pool
        .submit_task(Task::new(|| 11).deadline(Duration::from_secs(3600)))
        .unwrap();
    assert_eq!(finish(h).unwrap(), 11);
    assert_eq!(pool.shutdown().expired, 0);
}

#[test]
fn deadline_expires_while_the_task_sits_in_a_worker_deque() {
    // A submission from inside a task lands in that worker's own deque; on a
    // one-worker pool it stays there until the submitting task returns.
    let pool = pool(1);
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let p = pool.clone();
    let outer = pool
        .submit(move || {
            let inner = p
                .submit_task(
                    Task::new(move || r.store(true, Ordering::SeqCst))
                        .deadline(Duration::from_millis(30)),
                )
                .expect("submit from inside the pool");
            std::thread::sleep(Duration::from_millis(150));
            inner
        })
        .unwrap();
    let inner = finish(outer).unwrap();
    match finish(inner) {
        Err(TaskError::Expired) => {}
        other => panic!("expected Expired, got {other:?}"),
    }
    pool.shutdown();
    assert!(
        !ran.load(Ordering::SeqCst),
        "a task found late in a deque ran"
    );
}

#[test]
fn deadline_shorter_than_delay_expires_without_running() {
    let pool = pool(1);
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let h = pool
        .submit_task(
            Task::new(move || r.store(true, Ordering::SeqCst))
                .delay(Duration::from_millis(100))
                .deadline(Duration::from_millis(20)),
        )
        .unwrap();
    match finish(h) {
        Err(TaskError::Expired) => {}
        other => panic!("expected Expired, got {other:?}"),
    }
    pool.shutdown();
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn deadline_counts_from_submission_not_from_the_end_of_a_delay() {
    let pool = pool(1);
    let h = pool
        .submit_task(
            Task::new(|| 1)
                .delay(Duration::from_millis(30))
                .deadline(Duration::from_secs(3600)),
        )
        .unwrap();
    assert_eq!(finish(h).unwrap(), 1);
}

#[test]
fn expiry_among_many_queued_tasks_is_exact() {
    // Half the tasks carry a deadline that has passed by the time the only
    // worker is freed: exactly those expire and the rest run.
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let ran = Arc::new(AtomicU32::new(0));
    let mut handles = Vec::new();
    for i in 0..40 {
        let r = ran.clone();
        let mut t = Task::new(move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        if i % 2 == 0 {
            t = t.deadline(Duration::from_millis(10));
        }
        handles.push((i, pool.submit_task(t).unwrap()));
    }
    std::thread::sleep(Duration::from_millis(60));
    drop(release);
    finish(blocker).unwrap();
    for (i, h) in handles {
        match (i % 2, finish(h)) {
            (0, Err(TaskError::Expired)) | (1, Ok(())) => {}
            (_, other) => panic!("task {i}: unexpected {other:?}"),
        }
    }
    let report = pool.shutdown();
    assert_eq!(ran.load(Ordering::SeqCst), 20);
    assert_eq!(report.expired, 20, "{report:?}");
}

/// CPU time (in clock ticks) used so far by this process's threads whose
/// name starts with `prefix`; `None` where /proc is not available.
fn cpu_ticks_of_threads(prefix: &str) -> Option<u64> {
    let dir = std::fs::read_dir("/proc/self/task").ok()?;
    let mut total = 0;
    for entry in dir.filter_map(Result::ok) {
        let named =
            std::fs::read_to_string(entry.path().join("comm")).is_ok_and(|c| c.starts_with(prefix));
        if !named {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the parenthesised name start at field 3 (state);
        // utime and stime are fields 14 and 15.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        total += fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    }
    Some(total)
}

#[test]
#[cfg_attr(
    miri,
    ignore = "reads per-thread CPU time from /proc, which Miri's isolation forbids; an interpreted thread's CPU time says nothing of a native one's"
)]
fn pool_holding_only_delayed_and_retrying_tasks_stays_idle() {
    // The timer sleeps until the next due time and workers park: a pool that
    // only holds far-off work burns (next to) no CPU.
    let pool = TestPool(
        Pool::builder()
            .workers(2)
            .pin_workers(false)
            .thread_name("idlet")
            .build()
            .unwrap(),
    );
    let delayed = pool
        .submit_task(Task::new(|| ()).delay(Duration::from_secs(3600)))
        .unwrap();
    let retrying = pool
        .submit_task(
            Task::<()>::fallible(|| Err("later"))
                .retry(runq::Retry::fixed(2, Duration::from_secs(3600))),
        )
        .unwrap();
    let start = Instant::now();
    while retrying.status() != Status::Retrying {
        assert!(start.elapsed() < LIMIT, "the first attempt never ended");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Once the spin windows have passed the pool uses no CPU at all: look
    // for a stretch of 600 ms in which its threads used (next to) none. A
    // polling loop would use about 60 ticks per thread in every stretch and
    // never pass; a slow machine only makes the first stretches busy.
    if cpu_ticks_of_threads("idlet-").is_none() {
        return; // no /proc: nothing to measure here
    }
    let start = Instant::now();
    loop {
        let before = cpu_ticks_of_threads("idlet-").unwrap();
        std::thread::sleep(Duration::from_millis(600));
        let used = cpu_ticks_of_threads("idlet-").unwrap() - before;
        if used <= 10 {
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "an idle pool kept using CPU ({used} ticks in the last 600ms)"
        );
    }
    assert!(delayed.cancel());
    assert!(retrying.cancel());
    pool.shutdown();
}

#[test]
fn huge_delay_and_deadline_do_not_overflow() {
    let pool = pool(1);
    let far = pool
        .submit_task(Task::new(|| ()).delay(Duration::MAX))
        .unwrap();
    assert_eq!(far.status(), Status::Delayed);
    assert!(far.cancel());
    assert!(matches!(finish(far), Err(TaskError::Cancelled)));
    let h = pool
        .submit_task(Task::new(|| 3).deadline(Duration::MAX))
        .unwrap();
    assert_eq!(finish(h).unwrap(), 3);
    pool.shutdown();
}
