//! Stress: a million tasks (a hundred thousand in debug builds) from four
//! threads, across all three priorities, mixing `spawn` and `submit`, some
//! panicking and some cancelled. Whatever the schedule, the ledger must
//! balance: every accepted task reaches exactly one terminal state, ran at
//! most once (exactly once unless cancelled), had its callback run once, and
//! the counts in `Metrics` and `ShutdownReport` add up to what the
//! submitters saw.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use runq::{Handle, Pool, Priority, ShutdownReport, Task, TaskError};

/// Tasks in total: at least a million in release builds; debug builds use a
/// tenth so that a plain `cargo test` stays quick, and Miri a few hundred.
const TOTAL: usize = if cfg!(miri) {
    400
} else if cfg!(debug_assertions) {
    100_000
} else {
    1_000_000
};

/// Submitting threads.
const THREADS: usize = 4;

/// Handles a submitter keeps before it waits for them (bounds memory and
/// keeps submitters from running arbitrarily far ahead of the workers).
const WINDOW: usize = 4096;

/// How long a single wait may take before it counts as a hang.
const LIMIT: Duration = Duration::from_secs(30);

/// How long the final shutdown may take.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(300);

/// What the test decides for task `g`, from its index alone.
struct Plan {
    spawn: bool,
    priority: Priority,
    panics: bool,
    cancel: bool,
    callback: bool,
}

fn plan(g: usize) -> Plan {
    let spawn = g % 4 == 0;
    Plan {
        spawn,
        priority: match g % 3 {
            0 => Priority::High,
            1 => Priority::Normal,
            _ => Priority::Low,
        },
        panics: g % 37 == 0,
        cancel: !spawn && g % 11 == 0,
        callback: !spawn && g % 2 == 1,
    }
}

/// What one submitter saw.
#[derive(Default, Debug)]
struct Tally {
    ok: u64,
    panicked: u64,
    cancelled: u64,
}

struct Ledger {
    runs: Vec<AtomicU8>,
    callbacks: Vec<AtomicU8>,
    /// 1 where `cancel()` answered true.
    cancelled: Vec<AtomicU8>,
}

fn body(ledger: &Arc<Ledger>, g: usize, panics: bool) -> impl FnOnce() -> usize + Send + 'static {
    let ledger = ledger.clone();
    move || {
        ledger.runs[g].fetch_add(1, Ordering::Relaxed);
        if panics {
            // Not through the panic hook: a million hook calls would only
            // slow the test down and flood its output.
            panic::resume_unwind(Box::new("runq-test: intentional"));
        }
        g
    }
}

fn settle(ledger: &Ledger, tally: &mut Tally, pending: &mut Vec<(usize, Handle<usize>)>) {
    for (g, h) in pending.drain(..) {
        let result = match h.wait_timeout(LIMIT) {
            Ok(r) => r,
            Err(h) => panic!(
                "task {g} ({}) still {:?} after {LIMIT:?}",
                h.id(),
                h.status()
            ),
        };
        let p = plan(g);
        match result {
            Ok(v) => {
                assert_eq!(v, g, "task {g} returned another task's value");
                assert!(!p.panics, "task {g} should have panicked");
                tally.ok += 1;
            }
            Err(TaskError::Panicked(_)) => {
                assert!(p.panics, "task {g} panicked unexpectedly");
                tally.panicked += 1;
            }
            Err(TaskError::Cancelled) => {
                assert_eq!(
                    ledger.cancelled[g].load(Ordering::Relaxed),
                    1,
                    "task {g} resolved Cancelled though cancel() said false"
                );
                tally.cancelled += 1;
            }
            Err(e) => panic!("task {g}: unexpected outcome {e:?}"),
        }
    }
}

fn submitter(pool: Pool, ledger: Arc<Ledger>, t: usize) -> Tally {
    let per_thread = TOTAL / THREADS;
    let mut tally = Tally::default();
    let mut pending = Vec::with_capacity(WINDOW);
    for i in 0..per_thread {
        let g = t * per_thread + i;
        let p = plan(g);
        if p.spawn {
            let f = body(&ledger, g, p.panics);
            pool.spawn(move || {
                f();
            })
            .expect("spawn refused");
            continue;
        }
        let mut task = Task::new(body(&ledger, g, p.panics)).priority(p.priority);
        if p.callback {
            let ledger = ledger.clone();
            task = task.on_complete(move |_| {
                ledger.callbacks[g].fetch_add(1, Ordering::Relaxed);
            });
        }
        let h = if g % 2 == 0 {
            pool.submit_task(task).expect("submit_task refused")
        } else {
            let h = pool.submit_batch(vec![task]).expect("submit_batch refused");
            h.into_iter().next().unwrap()
        };
        if p.cancel && h.cancel() {
            ledger.cancelled[g].store(1, Ordering::Relaxed);
        }
        pending.push((g, h));
        if pending.len() == WINDOW {
            settle(&ledger, &mut tally, &mut pending);
        }
    }
    settle(&ledger, &mut tally, &mut pending);
    tally
}

fn shutdown_bounded(pool: &Pool) -> ShutdownReport {
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    thread::spawn(move || {
        let _ = tx.send(panic::catch_unwind(AssertUnwindSafe(|| p.shutdown())));
    });
    match rx.recv_timeout(SHUTDOWN_LIMIT) {
        Ok(Ok(report)) => report,
        Ok(Err(payload)) => panic::resume_unwind(payload),
        Err(_) => panic!("shutdown did not return within {SHUTDOWN_LIMIT:?}"),
    }
}

#[test]
fn every_task_of_a_million_reaches_exactly_one_terminal_state() {
    let pool = Pool::builder().workers(4).build().unwrap();
    let ledger = Arc::new(Ledger {
        runs: (0..TOTAL).map(|_| AtomicU8::new(0)).collect(),
        callbacks: (0..TOTAL).map(|_| AtomicU8::new(0)).collect(),
        cancelled: (0..TOTAL).map(|_| AtomicU8::new(0)).collect(),
    });
    let submitters: Vec<_> = (0..THREADS)
        .map(|t| {
            let pool = pool.clone();
            let ledger = ledger.clone();
            thread::spawn(move || submitter(pool, ledger, t))
        })
        .collect();
    let mut seen = Tally::default();
    for s in submitters {
        let t = s
            .join()
            .unwrap_or_else(|payload| panic::resume_unwind(payload));
        seen.ok += t.ok;
        seen.panicked += t.panicked;
        seen.cancelled += t.cancelled;
    }
    let report = shutdown_bounded(&pool);
    let m = pool.metrics();

    // The ledger, task by task.
    let mut expected_cancelled = 0u64;
    let mut expected_panicked = 0u64;
    let mut spawned_panicked = 0u64;
    let mut with_handles = 0u64;
    for g in 0..TOTAL {
        let p = plan(g);
        if !p.spawn {
            with_handles += 1;
        }
        let runs = ledger.runs[g].load(Ordering::Relaxed);
        let cancelled = ledger.cancelled[g].load(Ordering::Relaxed) == 1;
        if cancelled {
            assert_eq!(runs, 0, "task {g} ran after cancel() said it never would");
            expected_cancelled += 1;
        } else {
            assert_eq!(runs, 1, "task {g} ran {runs} times");
            if p.panics {
                expected_panicked += 1;
                if p.spawn {
                    spawned_panicked += 1;
                }
            }
        }
        if p.callback {
            assert_eq!(
                ledger.callbacks[g].load(Ordering::Relaxed),
                1,
                "task {g}: callback count"
            );
        }
    }
    let total = TOTAL as u64;
    let expected_completed = total - expected_cancelled - expected_panicked;

    // What the submitters saw through their handles.
    assert_eq!(seen.ok + seen.panicked + seen.cancelled, with_handles);
    assert_eq!(seen.cancelled, expected_cancelled);
    assert_eq!(seen.panicked + spawned_panicked, expected_panicked);
    assert!(expected_cancelled > 0, "the mix cancelled nothing");
    assert!(expected_panicked > 0, "the mix panicked nothing");

    // The report.
    assert_eq!(report.submitted, total, "{report:?}");
    assert_eq!(report.completed, expected_completed, "{report:?}");
    assert_eq!(report.failed, expected_panicked, "{report:?}");
    assert_eq!(report.panicked, expected_panicked, "{report:?}");
    assert_eq!(report.cancelled, expected_cancelled, "{report:?}");
    assert_eq!(report.expired, 0, "{report:?}");
    assert_eq!(report.retried, 0, "{report:?}");
    assert_eq!(report.in_flight, 0, "{report:?}");
    assert_eq!(
        report.submitted,
        report.completed + report.failed + report.cancelled + report.expired
    );

    // The metrics agree with the report, and nothing is left anywhere.
    assert_eq!(m.submitted, report.submitted, "{m:?}");
    assert_eq!(m.completed, report.completed, "{m:?}");
    assert_eq!(m.failed, report.failed, "{m:?}");
    assert_eq!(m.panicked, report.panicked, "{m:?}");
    assert_eq!(m.cancelled, report.cancelled, "{m:?}");
    assert_eq!(m.expired, 0, "{m:?}");
    assert_eq!(
        m.queued_high + m.queued_normal + m.queued_low + m.delayed + m.in_flight,
        0,
        "{m:?}"
    );
    assert!(pool.is_shut_down());
}
