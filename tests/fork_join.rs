//! Fork-join: `Pool::join`, `runq::join` inside and outside a pool, scopes
//! that borrow the caller's stack, panics carried back to the caller, and
//! nested submit-then-wait on a one-worker pool.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use runq::{Pool, TaskError};

mod common;

use common::limit_10s::{bounded, quiet_intentional_panics, wait, INTENTIONAL};
use common::scaled;

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

fn fib(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = runq::join(|| fib(n - 1), || fib(n - 2));
    a + b
}

/// The `fib` argument for a test that natively uses `n`: fib(n) makes about
/// 1.6^n joins, far too many to interpret, so under Miri it is 10 less.
const fn fib_arg(n: u64) -> u64 {
    if cfg!(miri) {
        n - 10
    } else {
        n
    }
}

fn fib_plain(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib_plain(n - 1) + fib_plain(n - 2)
    }
}

#[test]
fn pool_join_returns_both_results() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let (a, b) = bounded("pool.join", move || pool.join(|| 1 + 1, || "two"));
    assert_eq!((a, b), (2, "two"));
}

#[test]
fn pool_join_runs_both_sides_on_the_pool() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let (a, b) = bounded("pool.join", move || {
        pool.join(runq::current_worker, runq::current_worker)
    });
    assert!(matches!(a, Some(0 | 1)), "left side ran on {a:?}");
    assert!(matches!(b, Some(0 | 1)), "right side ran on {b:?}");
}

#[test]
fn pool_join_borrows_the_callers_stack() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let data: Vec<u64> = (1..=1000).collect();
    let (left, right) = data.split_at(500);
    let (a, b) = pool.join(|| left.iter().sum::<u64>(), || right.iter().sum::<u64>());
    assert_eq!(a + b, 500_500);
    let mut buf = [0u8; 64];
    let (lo, hi) = buf.split_at_mut(32);
    pool.join(|| lo.fill(1), || hi.fill(2));
    assert!(buf[..32].iter().all(|&x| x == 1));
    assert!(buf[32..].iter().all(|&x| x == 2));
}

#[test]
fn runq_join_outside_a_pool_runs_a_then_b_in_the_caller() {
    let me = thread::current().id();
    let step = AtomicUsize::new(0);
    let (a, b) = runq::join(
        || {
            assert_eq!(thread::current().id(), me);
            step.fetch_add(1, Ordering::SeqCst)
        },
        || {
            assert_eq!(thread::current().id(), me);
            step.fetch_add(1, Ordering::SeqCst)
        },
    );
    assert_eq!((a, b), (0, 1), "a runs first, then b");
}

#[test]
fn runq_join_inside_a_task_stays_on_the_same_pool() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let h = pool
        .submit(|| {
            runq::join(
                || {
                    (
                        runq::current_worker(),
                        thread::current().name().map(String::from),
                    )
                },
                || {
                    (
                        runq::current_worker(),
                        thread::current().name().map(String::from),
                    )
                },
            )
        })
        .unwrap();
    let ((wa, na), (wb, nb)) = wait(h).unwrap();
    assert!(matches!(wa, Some(0 | 1)) && matches!(wb, Some(0 | 1)));
    for name in [na, nb] {
        let name = name.unwrap();
        assert!(name.starts_with("runq-"), "ran on thread {name}");
    }
}

#[test]
fn recursive_join_computes_fib() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let h = pool.submit(|| fib(fib_arg(22))).unwrap();
    assert_eq!(wait(h).unwrap(), fib_plain(fib_arg(22)));
    // The same function outside any pool runs sequentially in the caller.
    assert_eq!(fib(fib_arg(15)), fib_plain(fib_arg(15)));
}

#[test]
fn recursive_join_completes_on_a_one_worker_pool() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let h = pool.submit(|| fib(fib_arg(18))).unwrap();
    assert_eq!(wait(h).unwrap(), fib_plain(fib_arg(18)));
    let (a, b) = bounded("pool.join on one worker", move || {
        pool.join(|| fib(fib_arg(12)), || fib(fib_arg(13)))
    });
    assert_eq!((a, b), (fib_plain(fib_arg(12)), fib_plain(fib_arg(13))));
}

#[test]
fn pool_join_propagates_a_panic_from_either_side() {
    quiet_intentional_panics();
    let pool = Pool::builder().workers(2).build().unwrap();
    let left = panic::catch_unwind(AssertUnwindSafe(|| {
        pool.join(|| -> u8 { panic!("{INTENTIONAL}: left") }, || 2)
    }));
    let payload = left.expect_err("join must re-raise the left panic");
    assert!(panic_message(&*payload).contains("left"));
    let right = panic::catch_unwind(AssertUnwindSafe(|| {
        pool.join(|| 1, || -> u8 { panic!("{INTENTIONAL}: right") })
    }));
    let payload = right.expect_err("join must re-raise the right panic");
    assert!(panic_message(&*payload).contains("right"));
    // The pool lives on.
    assert_eq!(pool.join(|| 3, || 4), (3, 4));
}

#[test]
fn join_waits_for_the_other_side_before_propagating_a_panic() {
    quiet_intentional_panics();
    let pool = Pool::builder().workers(2).build().unwrap();
    let finished = AtomicBool::new(false);
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        pool.join(
            || -> u8 { panic!("{INTENTIONAL}: early") },
            || {
                thread::sleep(Duration::from_millis(50));
                finished.store(true, Ordering::SeqCst);
            },
        )
    }));
    assert!(result.is_err());
    assert!(
        finished.load(Ordering::SeqCst),
        "join returned while the other side could still touch borrowed data"
    );
}

#[test]
fn runq_join_outside_a_pool_propagates_a_panic() {
    quiet_intentional_panics();
    let result = panic::catch_unwind(|| runq::join(|| 1, || -> u8 { panic!("{INTENTIONAL}: b") }));
    assert!(panic_message(&*result.unwrap_err()).contains("b"));
}

#[test]
fn runq_join_panic_inside_a_task_fails_that_task() {
    quiet_intentional_panics();
    let pool = Pool::builder().workers(2).build().unwrap();
    let h = pool
        .submit(|| runq::join(|| -> u8 { panic!("{INTENTIONAL}: inner") }, || 2))
        .unwrap();
    match wait(h) {
        Err(TaskError::Panicked(msg)) => assert!(msg.contains("inner"), "message: {msg}"),
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_eq!(wait(pool.submit(|| 5).unwrap()).unwrap(), 5);
}

#[test]
fn scope_spawns_may_borrow_the_callers_stack() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let mut data = vec![0u32; 1000];
    let total = AtomicUsize::new(0);
    pool.scope(|s| {
        for (i, chunk) in data.chunks_mut(100).enumerate() {
            let total = &total;
            s.spawn(move |_| {
                for x in chunk.iter_mut() {
                    *x = i as u32;
                }
                total.fetch_add(chunk.len(), Ordering::SeqCst);
            });
        }
    });
    assert_eq!(total.load(Ordering::SeqCst), 1000);
    for (i, chunk) in data.chunks(100).enumerate() {
        assert!(chunk.iter().all(|&x| x == i as u32));
    }
}

#[test]
fn scope_returns_the_value_of_its_body() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let v = pool.scope(|s| {
        s.spawn(|_| ());
        17
    });
    assert_eq!(v, 17);
}

#[test]
fn scope_waits_for_every_spawn_including_nested_ones() {
    const OUTER: usize = scaled(10);
    const INNER: usize = scaled(10);
    let pool = Pool::builder().workers(2).build().unwrap();
    let count = AtomicUsize::new(0);
    pool.scope(|s| {
        for _ in 0..OUTER {
            s.spawn(|s| {
                thread::sleep(Duration::from_millis(5));
                count.fetch_add(1, Ordering::SeqCst);
                for _ in 0..INNER {
                    s.spawn(|_| {
                        thread::sleep(Duration::from_millis(1));
                        count.fetch_add(1, Ordering::SeqCst);
                    });
                }
            });
        }
    });
    assert_eq!(count.load(Ordering::SeqCst), OUTER * (1 + INNER));
}

#[test]
fn scope_inside_a_task_completes_on_a_one_worker_pool() {
    const SPAWNS: usize = scaled(50);
    let pool = Pool::builder().workers(1).build().unwrap();
    let inner = pool.clone();
    let h = pool
        .submit(move || {
            let hits = AtomicUsize::new(0);
            inner.scope(|s| {
                for _ in 0..SPAWNS {
                    s.spawn(|_| {
                        hits.fetch_add(1, Ordering::SeqCst);
                    });
                }
            });
            hits.into_inner()
        })
        .unwrap();
    assert_eq!(wait(h).unwrap(), SPAWNS);
}

#[test]
fn scope_propagates_a_panic_after_the_other_spawns_finish() {
    quiet_intentional_panics();
    let pool = Pool::builder().workers(2).build().unwrap();
    let done = AtomicUsize::new(0);
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        pool.scope(|s| {
            for i in 0..20 {
                let done = &done;
                s.spawn(move |_| {
                    if i == 7 {
                        panic!("{INTENTIONAL}: spawn 7");
                    }
                    thread::sleep(Duration::from_millis(1));
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
        })
    }));
    let payload = result.expect_err("scope must re-raise the panic");
    assert!(panic_message(&*payload).contains("spawn 7"));
    assert_eq!(done.load(Ordering::SeqCst), 19, "every other spawn ran");
    assert_eq!(pool.scope(|_| 1), 1, "the pool lives on");
}

#[test]
fn scope_propagates_a_panic_of_its_body() {
    quiet_intentional_panics();
    let pool = Pool::builder().workers(2).build().unwrap();
    let ran = AtomicBool::new(false);
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        pool.scope(|s| -> u8 {
            s.spawn(|_| {
                thread::sleep(Duration::from_millis(20));
                ran.store(true, Ordering::SeqCst);
            });
            panic!("{INTENTIONAL}: body");
        })
    }));
    assert!(result.is_err());
    assert!(
        ran.load(Ordering::SeqCst),
        "the spawn finished before the panic left the scope"
    );
}

#[test]
fn nested_submit_then_wait_completes_on_a_one_worker_pool() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let inner = pool.clone();
    let h = pool
        .submit(move || {
            let child = inner.submit(|| 5).unwrap();
            child.wait().unwrap() + 1
        })
        .unwrap();
    assert_eq!(wait(h).unwrap(), 6);
}

#[test]
fn deeply_nested_submit_then_wait_completes_on_a_one_worker_pool() {
    fn chain(pool: Pool, depth: u32) -> u32 {
        if depth == 0 {
            return 0;
        }
        let next = pool.clone();
        let h = pool.submit(move || chain(next, depth - 1)).unwrap();
        h.wait().unwrap() + 1
    }
    let pool = Pool::builder().workers(1).build().unwrap();
    let p = pool.clone();
    let depth = if cfg!(miri) { 10 } else { 50 };
    let h = pool.submit(move || chain(p, depth)).unwrap();
    assert_eq!(wait(h).unwrap(), depth);
}

#[test]
fn nested_wait_on_a_fan_out_completes_on_a_one_worker_pool() {
    const CHILDREN: u64 = scaled(100) as u64;
    let pool = Pool::builder().workers(1).build().unwrap();
    let inner = pool.clone();
    let h = pool
        .submit(move || {
            let children: Vec<_> = (0..CHILDREN)
                .map(|i| inner.submit(move || i).unwrap())
                .collect();
            children.into_iter().map(|c| c.wait().unwrap()).sum::<u64>()
        })
        .unwrap();
    assert_eq!(wait(h).unwrap(), CHILDREN * (CHILDREN - 1) / 2);
}
