//! Elastic workers: a pool between `workers` and `max_workers` threads, and
//! `block_in_place`. Every wait here is on the pool's own state (its worker
//! counts, a gate, a handle), never on a time window; the short keep-alives
//! only make the tests quick, and no assertion depends on them.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::limit_10s::{bounded, wait, Gate, LIMIT};
use common::limit_30s::wait_until;
use common::{scaled, threads_named};
use runq::{block_in_place, BuildError, Pool, MAX_WORKERS};

fn elastic(floor: usize, max: usize, keep_alive: Duration, name: &str) -> Pool {
    Pool::builder()
        .workers(floor)
        .max_workers(max)
        .keep_alive(keep_alive)
        .pin_workers(false)
        .thread_name(name)
        .build()
        .unwrap()
}

/// Submits `n` tasks that each report their start and then wait on `gate`.
fn gated(pool: &Pool, n: usize, gate: &Gate) -> (Vec<runq::Handle<()>>, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    let handles = (0..n)
        .map(|_| {
            let (tx, gate) = (tx.clone(), gate.clone());
            pool.submit(move || {
                tx.send(()).unwrap();
                gate.wait();
            })
            .unwrap()
        })
        .collect();
    (handles, rx)
}

#[test]
fn a_burst_grows_the_pool_to_its_ceiling_and_idle_brings_it_back_to_the_floor() {
    let pool = elastic(1, 4, Duration::from_millis(20), "el-burst");
    assert_eq!(pool.metrics().live_workers, 1);
    // Four tasks that all hold their worker: only four threads can run them
    // at once, so all four start only if the pool grew to its ceiling.
    let gate = Gate::default();
    let (handles, started) = gated(&pool, 4, &gate);
    for _ in 0..4 {
        started.recv_timeout(LIMIT).expect("a task never started");
    }
    let m = pool.metrics();
    assert_eq!((m.live_workers, m.peak_workers), (4, 4));
    assert_eq!(m.workers, 1, "the floor is what was configured");
    gate.open();
    for h in handles {
        wait(h).unwrap();
    }
    wait_until("the pool to shrink to its floor", || {
        pool.metrics().live_workers == 1
    });
    let m = pool.metrics();
    assert_eq!((m.workers_started, m.workers_retired), (4, 3));
    assert_eq!(m.peak_workers, 4, "never above the ceiling");
    // The retired threads end too (the floor worker and the timer stay).
    wait_until("the retired threads to end", || {
        cfg!(miri) || threads_named("el-burst-") == 2
    });
    pool.shutdown();
}

#[test]
fn the_pool_never_grows_past_its_ceiling() {
    let pool = elastic(1, 3, Duration::from_secs(3600), "el-ceiling");
    let gate = Gate::default();
    let (handles, started) = gated(&pool, 6, &gate);
    for _ in 0..3 {
        started.recv_timeout(LIMIT).expect("a task never started");
    }
    // Three run, three wait: the ceiling holds however long they wait.
    let m = pool.metrics();
    assert_eq!((m.live_workers, m.peak_workers), (3, 3));
    assert!(started.try_recv().is_err(), "a fourth task ran at once");
    gate.open();
    for h in handles {
        wait(h).unwrap();
    }
    assert_eq!(pool.metrics().peak_workers, 3);
    pool.shutdown();
}

#[test]
fn tasks_blocking_in_place_on_the_whole_floor_do_not_stop_other_tasks() {
    let pool = elastic(2, 3, Duration::from_secs(3600), "el-block");
    let gate = Gate::default();
    let (tx, started) = mpsc::channel();
    let blockers: Vec<_> = (0..2)
        .map(|_| {
            let (tx, gate) = (tx.clone(), gate.clone());
            pool.submit(move || {
                block_in_place(|| {
                    tx.send(()).unwrap();
                    gate.wait();
                })
            })
            .unwrap()
        })
        .collect();
    for _ in 0..2 {
        started.recv_timeout(LIMIT).unwrap();
    }
    // Both floor workers block; the queued tasks still run, on a stand-in.
    let ran = Arc::new(AtomicUsize::new(0));
    let others: Vec<_> = (0..20)
        .map(|i| {
            let ran = ran.clone();
            pool.submit(move || {
                ran.fetch_add(1, SeqCst);
                i
            })
            .unwrap()
        })
        .collect();
    for (i, h) in others.into_iter().enumerate() {
        assert_eq!(wait(h).unwrap(), i);
    }
    assert_eq!(ran.load(SeqCst), 20);
    let m = pool.metrics();
    assert!(m.peak_workers <= 3, "above the ceiling: {m:?}");
    gate.open();
    for h in blockers {
        wait(h).unwrap();
    }
    pool.shutdown();
}

#[test]
fn block_in_place_hands_off_work_its_task_queued_on_its_worker() {
    // The blocking task spawns a child first: the child sits in its
    // worker's "next task" slot, which nobody else sees. block_in_place
    // must hand it off, or it would wait for the blocked task.
    let pool = elastic(1, 2, Duration::from_secs(3600), "el-handoff");
    let inner = pool.clone();
    let (child_tx, child_rx) = mpsc::channel();
    let outer = pool
        .submit(move || {
            inner.spawn(move || child_tx.send(()).unwrap()).unwrap();
            block_in_place(|| child_rx.recv_timeout(LIMIT).is_ok())
        })
        .unwrap();
    assert!(
        wait(outer).unwrap(),
        "the child never ran while its parent blocked"
    );
    pool.shutdown();
}

#[test]
fn after_block_in_place_the_pool_returns_to_its_size() {
    let pool = elastic(1, 2, Duration::from_millis(10), "el-return");
    let gate = Gate::default();
    let (tx, started) = mpsc::channel();
    let g = gate.clone();
    let blocker = pool
        .submit(move || {
            block_in_place(|| {
                tx.send(()).unwrap();
                g.wait();
            })
        })
        .unwrap();
    started.recv_timeout(LIMIT).unwrap();
    // Work arriving while the floor blocks starts a stand-in.
    wait(pool.submit(|| ()).unwrap()).unwrap();
    assert_eq!(pool.metrics().live_workers, 2);
    gate.open();
    wait(blocker).unwrap();
    wait_until("the stand-in to retire", || {
        pool.metrics().live_workers == 1
    });
    assert_eq!(pool.metrics().workers_retired, 1);
    pool.shutdown();
}

#[test]
fn block_in_place_outside_a_pool_or_on_a_fixed_pool_just_runs_f() {
    assert_eq!(block_in_place(|| 7), 7);
    let fixed = Pool::builder()
        .workers(1)
        .pin_workers(false)
        .build()
        .unwrap();
    let h = fixed
        .submit(|| {
            let inside = block_in_place(runq::current_worker);
            (inside, runq::current_worker())
        })
        .unwrap();
    // A fixed pool has no stand-in to start: f runs on the worker as is.
    assert_eq!(wait(h).unwrap(), (Some(0), Some(0)));
    let m = fixed.metrics();
    assert_eq!(
        (m.live_workers, m.peak_workers, m.workers_started),
        (1, 1, 1)
    );
    fixed.shutdown();
}

#[test]
fn block_in_place_detaches_the_thread_and_nesting_and_panics_reattach_it() {
    let pool = elastic(1, 2, Duration::from_millis(10), "el-nest");
    let h = pool
        .submit(|| {
            let before = runq::current_worker();
            let nested = block_in_place(|| {
                let inside = runq::current_worker();
                (inside, block_in_place(|| 5))
            });
            let caught = catch_unwind(AssertUnwindSafe(|| {
                block_in_place(|| panic!("runq-test: intentional panic inside block_in_place"))
            }));
            (before, nested, caught.is_err(), runq::current_worker())
        })
        .unwrap();
    let (before, nested, caught, after) = wait(h).unwrap();
    assert!(before.is_some());
    assert_eq!(nested, (None, 5), "inside f the thread is not a worker");
    assert!(caught, "the panic reached the caller");
    assert_eq!(after, before, "the worker is back after a panic");
    // The blocked count came back down: the pool shrinks to its floor.
    wait_until("the pool to shrink to its floor", || {
        pool.metrics().live_workers == 1
    });
    assert!(wait(pool.submit(|| 1).unwrap()).is_ok());
    pool.shutdown();
}

#[test]
fn zero_keep_alive_retires_a_worker_above_the_floor_once_out_of_work() {
    let pool = elastic(1, 2, Duration::ZERO, "el-zero");
    let gate = Gate::default();
    let (handles, started) = gated(&pool, 2, &gate);
    for _ in 0..2 {
        started.recv_timeout(LIMIT).unwrap();
    }
    assert_eq!(pool.metrics().live_workers, 2);
    gate.open();
    for h in handles {
        wait(h).unwrap();
    }
    wait_until("the pool to shrink to its floor", || {
        pool.metrics().live_workers == 1
    });
    pool.shutdown();
}

#[test]
fn many_grow_and_shrink_cycles_run_every_task_once() {
    let pool = elastic(1, 4, Duration::ZERO, "el-cycles");
    let runs = Arc::new(AtomicUsize::new(0));
    let rounds = scaled(50);
    for _ in 0..rounds {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let runs = runs.clone();
                pool.submit(move || {
                    runs.fetch_add(1, SeqCst);
                    block_in_place(|| std::hint::black_box(0));
                })
                .unwrap()
            })
            .collect();
        for h in handles {
            wait(h).unwrap();
        }
    }
    let report = pool.shutdown();
    assert_eq!(runs.load(SeqCst), rounds * 16);
    assert_eq!(report.submitted, (rounds * 16) as u64);
    assert_eq!(report.completed, report.submitted);
    assert!(pool.metrics().peak_workers <= 4);
    // A joined thread can stay listed for a moment after its join.
    common::wait_threads_gone("el-cycles-");
}

#[test]
fn shutdown_joins_every_worker_of_a_grown_pool() {
    for now in [false, true] {
        let name = if now { "el-shutnow" } else { "el-shut" };
        let pool = elastic(1, 4, Duration::from_secs(3600), name);
        let gate = Gate::default();
        let (handles, started) = gated(&pool, 4, &gate);
        for _ in 0..4 {
            started.recv_timeout(LIMIT).unwrap();
        }
        let (p, g) = (pool.clone(), gate.clone());
        let report = bounded("shutdown", move || {
            common::limit_10s::open_when_shut_down(&g, &p);
            if now {
                p.shutdown_now()
            } else {
                p.shutdown()
            }
        });
        assert_eq!(report.submitted, 4);
        assert_eq!(report.completed, 4, "running tasks finish either way");
        for h in handles {
            wait(h).unwrap();
        }
        common::wait_threads_gone(&format!("{name}-"));
    }
}

#[test]
fn max_workers_below_workers_is_a_build_error() {
    let err = Pool::builder()
        .workers(4)
        .max_workers(2)
        .build()
        .unwrap_err();
    assert!(
        matches!(err, BuildError::MaxBelowWorkers { workers: 4, max: 2 }),
        "{err:?}"
    );
    assert!(!err.to_string().is_empty());
    let manual = Pool::builder().workers(4).max_workers(3).build_manual();
    assert!(matches!(manual, Err(BuildError::MaxBelowWorkers { .. })));
}

#[test]
fn max_workers_above_the_limit_is_a_build_error() {
    for n in [MAX_WORKERS + 1, usize::MAX] {
        let err = Pool::builder()
            .workers(1)
            .max_workers(n)
            .build()
            .unwrap_err();
        match err {
            BuildError::TooManyWorkers { requested, max } => {
                assert_eq!((requested, max), (n, MAX_WORKERS));
            }
            other => panic!("expected TooManyWorkers, got {other:?}"),
        }
    }
}

#[test]
fn max_equal_to_workers_is_a_fixed_pool() {
    let pool = Pool::builder()
        .workers(2)
        .max_workers(2)
        .keep_alive(Duration::ZERO)
        .pin_workers(false)
        .build()
        .unwrap();
    let gate = Gate::default();
    let (handles, started) = gated(&pool, 3, &gate);
    for _ in 0..2 {
        started.recv_timeout(LIMIT).unwrap();
    }
    assert_eq!(pool.metrics().live_workers, 2);
    gate.open();
    for h in handles {
        wait(h).unwrap();
    }
    let m = pool.metrics();
    assert_eq!(
        (m.peak_workers, m.workers_started, m.workers_retired),
        (2, 2, 0)
    );
    pool.shutdown();
}

#[test]
fn inline_and_manual_pools_accept_and_ignore_the_elastic_settings() {
    let inline = Pool::builder()
        .workers(1)
        .max_workers(8)
        .keep_alive(Duration::ZERO)
        .inline()
        .build()
        .unwrap();
    let h = inline.submit(|| block_in_place(|| 3)).unwrap();
    assert_eq!(h.wait().unwrap(), 3);
    let m = inline.metrics();
    assert_eq!((m.live_workers, m.workers_started), (0, 0));
    let (manual, driver) = Pool::builder()
        .workers(1)
        .max_workers(8)
        .build_manual()
        .unwrap();
    let h = manual.submit(|| block_in_place(|| 4)).unwrap();
    driver.run_until_idle();
    assert_eq!(h.wait().unwrap(), 4);
    assert_eq!(manual.metrics().live_workers, 0);
}

#[test]
fn the_prometheus_worker_gauge_reports_live_workers() {
    let pool = elastic(1, 2, Duration::from_secs(3600), "el-prom");
    let gate = Gate::default();
    let (handles, started) = gated(&pool, 2, &gate);
    for _ in 0..2 {
        started.recv_timeout(LIMIT).unwrap();
    }
    let text = pool.metrics().to_prometheus();
    assert!(
        text.contains("runq_workers{pool=\"el-prom\"} 2\n"),
        "{text}"
    );
    gate.open();
    for h in handles {
        wait(h).unwrap();
    }
    pool.shutdown();
}
