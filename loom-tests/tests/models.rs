//! loom models of runq's protocols, run against the real engine: the pool,
//! its workers and its waiters are loom threads, and every atomic, cell and
//! futex goes through runq's `src/sync` facade.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p runq-loom-tests --release`.
//! Each model says what property it checks; loom reports a lost wake-up as a
//! deadlock (every thread blocked), and a double run or a lost task as a
//! failed assertion.
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use loom::sync::atomic::{
    AtomicBool,
    Ordering::{Acquire, Release},
};
use loom::thread;
use runq::{Pool, Priority, Retry, Status, SubmitError, Task, TaskError};

/// Runs `f` under loom with a preemption bound of 2 (unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise), first with a futex that only
/// wakes when told, then with one that also returns spuriously. Prints how
/// many executions each pass explored and how long it took, after the
/// model's name.
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    model_capped(None, f);
}

/// As [`model`], with the preemption bound at most `cap` (whatever
/// `LOOM_MAX_PREEMPTIONS` says), for a model with more threads.
fn model_capped<F: Fn() + Sync + Send + 'static>(cap: Option<usize>, f: F) {
    let f = Arc::new(f);
    for spurious in [false, true] {
        runq::__loom::spurious_wakeups(spurious);
        let mut b = loom::model::Builder::new();
        let bound = b.preemption_bound.unwrap_or(2);
        b.preemption_bound = Some(cap.map_or(bound, |c| bound.min(c)));
        let g = f.clone();
        let runs = Arc::new(AtomicUsize::new(0));
        let n = runs.clone();
        let start = std::time::Instant::now();
        b.check(move || {
            n.fetch_add(1, SeqCst);
            g()
        });
        // Named: CI runs two models at a time, so lines interleave.
        eprintln!(
            "  {}: spurious wake-ups {}: {} executions in {:.1?}",
            std::thread::current().name().unwrap_or("model"),
            if spurious { "on" } else { "off" },
            runs.load(SeqCst),
            start.elapsed()
        );
    }
    runq::__loom::spurious_wakeups(false);
}

/// As [`model`], with `Builder::build` waiting for every worker to start, as
/// it always does outside loom. The other models skip that wait (see
/// `runq::__loom::wait_for_start`): it is a three-thread rendezvous that
/// would multiply every model's executions, so this one checks it alone.
fn model_waiting_for_start<F: Fn() + Sync + Send + 'static>(f: F) {
    runq::__loom::wait_for_start(true);
    model(f);
    runq::__loom::wait_for_start(false);
}

fn pool(workers: usize) -> Pool {
    Pool::builder()
        .workers(workers)
        .pin_workers(false)
        .build()
        .unwrap()
}

#[test]
fn build_waits_for_two_workers_to_start() {
    // `build` returns once both workers passed the start latch (loom
    // reports a deadlock if the rendezvous can hang), and the pool shuts
    // down cleanly from there.
    model_waiting_for_start(|| {
        let p = pool(2);
        assert_eq!(p.metrics().workers, 2);
        assert_eq!(p.shutdown().submitted, 0);
    });
}

#[test]
fn sleep_submit_racing_park_one_worker_normal_runs_the_task() {
    model(|| {
        let p = pool(1);
        let h = p.submit(|| 7).unwrap();
        assert_eq!(h.wait().unwrap(), 7);
    });
}

#[test]
fn sleep_submit_racing_park_one_worker_high_runs_the_task() {
    model(|| {
        let p = pool(1);
        let h = p
            .submit_task(Task::new(|| 8).priority(Priority::High))
            .unwrap();
        assert_eq!(h.wait().unwrap(), 8);
    });
}

#[test]
fn sleep_one_worker_a_raced_wake_does_not_swallow_the_next() {
    // The second submit (from another thread) must find the worker, however
    // the first one's wake-up raced the worker's running that task and
    // going to sleep.
    model(|| {
        let p = pool(1);
        let a = p.submit(|| 1).unwrap();
        let p2 = p.clone();
        let t = thread::spawn(move || p2.submit(|| 2).unwrap().wait().unwrap());
        assert_eq!(a.wait().unwrap(), 1);
        assert_eq!(t.join().unwrap(), 2);
    });
}

#[test]
fn sleep_and_lanes_two_workers_high_and_normal_each_run_once() {
    // Two workers race to take a High and a Normal task pushed while they
    // start, run and go to sleep: no wake-up is lost, and each task is
    // taken exactly once.
    model(|| {
        let p = pool(2);
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let high = p
            .submit_task(Task::new(move || r.fetch_add(1, SeqCst)).priority(Priority::High))
            .unwrap();
        let r = runs.clone();
        let normal = p.submit(move || r.fetch_add(10, SeqCst)).unwrap();
        high.wait().unwrap();
        normal.wait().unwrap();
        drop(p);
        assert_eq!(runs.load(SeqCst), 11, "each task ran exactly once");
    });
}

#[test]
fn sleep_one_worker_two_submitters_every_task_runs() {
    model(|| {
        let p = pool(1);
        let p2 = p.clone();
        let t = thread::spawn(move || {
            p2.submit_task(Task::new(|| 1).priority(Priority::High))
                .unwrap()
        });
        let b = p.submit(|| 2).unwrap();
        let a = t.join().unwrap();
        assert_eq!(a.wait().unwrap() + b.wait().unwrap(), 3);
    });
}

#[test]
fn sleep_two_workers_two_submitters_racing_claims_run_both() {
    // Each worker sleeps on its own futex word and a notifier claims one
    // before waking it. Under loom every thread reports the same CPU, so
    // both submitters prefer the same sleeping worker: the one that loses
    // the claim must look again and wake the other (or see it awake), and
    // neither task may wait forever. Four threads: one preemption (at two,
    // the model runs for many minutes on the 2-core machine).
    model_capped(Some(1), || {
        let p = pool(2);
        let p2 = p.clone();
        let t = thread::spawn(move || p2.submit(|| 1).unwrap());
        let b = p.submit(|| 2).unwrap();
        let a = t.join().unwrap();
        assert_eq!(a.wait().unwrap() + b.wait().unwrap(), 3);
    });
}

#[test]
fn slot_complete_racing_cancel_has_exactly_one_outcome() {
    model(|| {
        let p = pool(1);
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let h = p
            .submit(move || {
                r.fetch_add(1, SeqCst);
                5
            })
            .unwrap();
        let cancelled = h.cancel();
        let out = h.wait();
        drop(p);
        if cancelled {
            assert!(matches!(out, Err(TaskError::Cancelled)));
            assert_eq!(ran.load(SeqCst), 0, "a cancelled task ran");
        } else {
            assert_eq!(out.unwrap(), 5);
            assert_eq!(ran.load(SeqCst), 1);
        }
    });
}

#[test]
fn slot_callback_runs_once_before_wait_returns() {
    model(|| {
        let p = pool(1);
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let h = p
            .submit_task(Task::new(|| 3).on_complete(move |r| {
                assert!(matches!(r, Ok(3) | Err(TaskError::Cancelled)));
                c.fetch_add(1, SeqCst);
            }))
            .unwrap();
        let c2 = h.cancel();
        let out = h.wait();
        assert_eq!(
            calls.load(SeqCst),
            1,
            "callback must have run exactly once before wait returned"
        );
        assert_eq!(c2, out.is_err());
    });
}

/// Counts drops of the value it holds.
struct DropCount(Arc<AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn slot_handle_drop_racing_completion_drops_the_output_once() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let p = pool(1);
        let d = drops.clone();
        let h = p.submit(move || DropCount(d)).unwrap();
        let t = thread::spawn(move || drop(h));
        t.join().unwrap();
        let report = p.shutdown();
        assert_eq!(report.completed, 1);
        assert_eq!(
            drops.load(SeqCst),
            1,
            "output dropped once, not leaked, not twice"
        );
    });
}

#[test]
fn lanes_high_burst_gives_a_waiting_normal_task_its_turn() {
    // Under loom `HIGH_BURST` is 1: once a worker took one High task, a
    // Normal task that is waiting goes before the next High one. A gate
    // task holds the only worker until all three are queued.
    model(|| {
        let p = pool(1);
        let (started, open) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (s, o) = (started.clone(), open.clone());
        let gate = p
            .submit(move || {
                s.store(true, Release);
                while !o.load(Acquire) {
                    thread::yield_now();
                }
            })
            .unwrap();
        while !started.load(Acquire) {
            thread::yield_now();
        }
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = |tag: &'static str| {
            let order = order.clone();
            move || order.lock().unwrap().push(tag)
        };
        let h1 = Task::new(record("H1")).priority(Priority::High);
        let h2 = Task::new(record("H2")).priority(Priority::High);
        let handles = [
            p.submit_task(h1).unwrap(),
            p.submit_task(h2).unwrap(),
            p.submit(record("N")).unwrap(),
        ];
        open.store(true, Release);
        gate.wait().unwrap();
        for h in handles {
            h.wait().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["H1", "N", "H2"]);
    });
}

#[test]
fn shutdown_racing_submit_is_rejected_or_runs_never_both() {
    model(|| {
        let p = pool(1);
        let ran = Arc::new(AtomicUsize::new(0));
        let (p2, r2) = (p.clone(), ran.clone());
        let t = thread::spawn(move || p2.submit(move || r2.fetch_add(1, SeqCst)));
        let report = p.shutdown();
        let submitted = t.join().unwrap();
        match submitted {
            Ok(h) => {
                assert!(h.wait().is_ok());
                assert_eq!(ran.load(SeqCst), 1);
                assert_eq!(report.completed, 1);
            }
            Err(e) => {
                assert_eq!(e, SubmitError::ShutDown);
                assert_eq!(ran.load(SeqCst), 0, "a refused task ran");
                assert_eq!(report.submitted, 0);
            }
        }
    });
}

#[test]
fn shutdown_now_racing_a_running_task_lets_it_finish() {
    model(|| {
        let p = pool(1);
        let h = p.submit(|| 9).unwrap();
        let report = p.shutdown_now();
        match h.wait() {
            Ok(v) => assert_eq!(v, 9),
            Err(e) => assert!(matches!(e, TaskError::Cancelled)),
        }
        assert_eq!(report.submitted, report.completed + report.cancelled);
    });
}

#[test]
fn nested_wait_on_one_worker_completes() {
    model(|| {
        let p = pool(1);
        let inner = p.clone();
        let h = p
            .submit(move || inner.submit(|| 2).unwrap().wait().unwrap() + 1)
            .unwrap();
        assert_eq!(h.wait().unwrap(), 3);
    });
}

#[test]
fn lifo_slot_one_worker_two_spawned_children_each_run_once() {
    // A task spawns two children from its worker: the first goes into the
    // "next task" slot with no wake-up, the second displaces it into the
    // deque (and notifies). Both run exactly once, and the worker never
    // parks with a child in its slot, however the outside waiter's waits
    // interleave.
    model(|| {
        let p = pool(1);
        let inner = p.clone();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let h = p
            .submit(move || {
                let (a, b) = (r.clone(), r.clone());
                inner
                    .spawn(move || {
                        a.fetch_add(1, SeqCst);
                    })
                    .unwrap();
                inner.submit(move || b.fetch_add(10, SeqCst)).unwrap()
            })
            .unwrap();
        h.wait().unwrap().wait().unwrap();
        drop(p);
        assert_eq!(runs.load(SeqCst), 11, "each child ran exactly once");
    });
}

#[test]
fn lifo_slot_two_workers_a_slotted_child_runs_without_a_wake() {
    // The child goes into the slot of the worker that runs its parent, and
    // no wake-up is sent for it: it must still run, whether the other
    // worker sleeps through or not.
    model(|| {
        let p = pool(2);
        let inner = p.clone();
        let h = p.submit(move || inner.submit(|| 5).unwrap()).unwrap();
        assert_eq!(h.wait().unwrap().wait().unwrap(), 5);
    });
}

#[test]
fn join_on_a_worker_returns_both_halves() {
    model(|| {
        let p = pool(2);
        let h = p.submit(|| runq::join(|| 1, || 2)).unwrap();
        assert_eq!(h.wait().unwrap(), (1, 2));
    });
}

#[test]
fn cancel_racing_retry_resolves_once() {
    model(|| {
        let p = pool(1);
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let h = p
            .submit_task(
                Task::fallible(move || {
                    if r.fetch_add(1, SeqCst) == 0 {
                        Err("first attempt fails")
                    } else {
                        Ok(1)
                    }
                })
                .retry(Retry::fixed(2, std::time::Duration::ZERO)),
            )
            .unwrap();
        let cancelled = h.cancel();
        let out = h.wait();
        let n = runs.load(SeqCst);
        if cancelled {
            assert!(matches!(out, Err(TaskError::Cancelled)));
            assert!(
                n <= 1,
                "cancelled while waiting for its retry, yet ran again"
            );
        } else {
            // Too late to cancel: the first run's failure stands if the
            // cancel landed during it (no retry), else the retry succeeds.
            assert!(
                matches!(out, Ok(1) | Err(TaskError::Failed { attempts: 1, .. })),
                "{out:?}"
            );
        }
        assert!(n <= 2);
    });
}

#[test]
fn key_release_racing_duplicate_submit_never_overlaps() {
    model(|| {
        let p = pool(1);
        let running = Arc::new(AtomicUsize::new(0));
        let task = |running: Arc<AtomicUsize>| {
            Task::new(move || {
                assert_eq!(
                    running.fetch_add(1, SeqCst),
                    0,
                    "two tasks with one key overlapped"
                );
                running.fetch_sub(1, SeqCst);
            })
            .key("k")
        };
        let first = p.submit_task(task(running.clone())).unwrap();
        let (p2, r2) = (p.clone(), running.clone());
        let t = thread::spawn(move || match p2.submit_task(task(r2)) {
            Ok(h) => {
                h.wait().unwrap();
                true
            }
            Err(SubmitError::Duplicate(k)) => {
                assert_eq!(k, "k");
                false
            }
            Err(e) => panic!("unexpected {e:?}"),
        });
        first.wait().unwrap();
        let second_ran = t.join().unwrap();
        let report = p.shutdown();
        assert_eq!(report.completed, 1 + second_ran as u64);
    });
}

#[test]
fn blocked_submitter_is_released_by_a_start() {
    model(|| {
        let p = Pool::builder()
            .workers(1)
            .pin_workers(false)
            .capacity(1)
            .build()
            .unwrap();
        let a = p.submit(|| 1).unwrap();
        let b = p.submit(|| 2).unwrap(); // may block until `a` starts
        assert_eq!(a.wait().unwrap() + b.wait().unwrap(), 3);
    });
}

#[test]
fn status_is_terminal_after_wait() {
    model(|| {
        let p = pool(1);
        let h = p.submit(|| ()).unwrap();
        let id = h.id();
        let s = h.status();
        assert!(matches!(
            s,
            Status::Queued | Status::Running | Status::Succeeded
        ));
        while !h.is_finished() {
            thread::yield_now();
        }
        assert_eq!(h.status(), Status::Succeeded);
        assert_eq!(h.id(), id);
        h.wait().unwrap();
    });
}

/// An elastic pool: one worker always, two at most, and a zero keep-alive,
/// so a second worker starts when a push finds nobody free and retires as
/// soon as it runs dry (the models need no clock).
fn elastic_pool() -> Pool {
    Pool::builder()
        .workers(1)
        .max_workers(2)
        .keep_alive(std::time::Duration::ZERO)
        .pin_workers(false)
        .build()
        .unwrap()
}

#[test]
fn elastic_retiring_worker_racing_a_submission_runs_the_task() {
    // The first spawn may start a second worker (the floor worker is still
    // starting or busy); with a zero keep-alive it retires as soon as it
    // finds no work, racing the second submission, which may claim it as
    // the sleeper to wake. A wake-up it absorbs on its way out must be
    // passed on: the second task runs (a lost wake-up is a loom deadlock),
    // and each runs once.
    model(|| {
        let p = elastic_pool();
        let runs = Arc::new(AtomicUsize::new(0));
        let (a, b) = (runs.clone(), runs.clone());
        p.spawn(move || {
            a.fetch_add(1, SeqCst);
        })
        .unwrap();
        // Waited for before the shutdown, whose wake-everyone would
        // otherwise rescue a lost wake-up.
        p.submit(move || b.fetch_add(10, SeqCst))
            .unwrap()
            .wait()
            .unwrap();
        let report = p.shutdown();
        assert_eq!(runs.load(SeqCst), 11, "each task ran exactly once");
        assert_eq!(report.completed, 2);
    });
}

#[test]
fn elastic_start_racing_shutdown_leaves_no_thread() {
    // A submission from another thread may start a worker while the pool
    // shuts down: the start either comes before the shutdown's last look
    // (and the thread is joined) or finds the pool closed and starts
    // nothing. Once both returned, no thread handle is left unjoined and no
    // start is pending.
    model(|| {
        let p = elastic_pool();
        let p2 = p.clone();
        let t = thread::spawn(move || p2.submit(|| 1).map(|h| h.wait().unwrap()));
        let report = p.shutdown();
        let submitted = t.join().unwrap();
        assert_eq!(runq::__loom::unjoined(&p), 0, "a thread was left behind");
        assert_eq!(report.submitted, submitted.is_ok() as u64);
    });
}

#[test]
fn elastic_block_in_place_racing_completion_runs_every_task() {
    // A task queues a child in its worker's "next task" slot, then blocks in
    // place: the child must be handed off (the floor's only worker is the
    // blocked one) and run, on a stand-in or on the worker once it is back,
    // while the stand-in may retire at any point. The shutdown waits for
    // both (or refuses the child, if it closed intake first).
    model(|| {
        let p = elastic_pool();
        let inner = p.clone();
        let ran = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (r, acc) = (ran.clone(), accepted.clone());
        p.spawn(move || {
            let child = inner.spawn(move || {
                r.fetch_add(1, SeqCst);
            });
            acc.store(child.is_ok() as usize, SeqCst);
            runq::block_in_place(|| ());
        })
        .unwrap();
        let report = p.shutdown();
        let accepted = accepted.load(SeqCst);
        assert_eq!(report.completed, 1 + accepted as u64);
        assert_eq!(ran.load(SeqCst), accepted, "an accepted child ran once");
    });
}

#[test]
fn injector_push_racing_take_through_the_overflow_keeps_fifo() {
    // A ring of two and four pushes: the later ones overflow unless the
    // taker freed slots first, and the taker may refill the ring while the
    // producer still pushes. The taker's values and those left after both
    // threads end together are each job once, oldest first.
    model(|| {
        let q = Arc::new(runq::__loom::Injector::with_capacity(2));
        let producer = {
            let q = q.clone();
            thread::spawn(move || (0..4).for_each(|v| q.push(v)))
        };
        let taker = {
            let q = q.clone();
            thread::spawn(move || (0..3).filter_map(|_| q.pop()).collect::<Vec<_>>())
        };
        producer.join().unwrap();
        let mut got = taker.join().unwrap();
        got.extend(std::iter::from_fn(|| q.pop()));
        assert_eq!(got, [0, 1, 2, 3]);
        assert!(q.is_empty());
    });
}

#[test]
fn injector_two_takers_refilling_from_the_overflow_take_each_job_once() {
    // Two jobs in the ring, two in the overflow: both takers race for the
    // head and for the refill. Each gets its jobs oldest first, and no job
    // is lost or taken twice.
    model(|| {
        let q = Arc::new(runq::__loom::Injector::with_capacity(2));
        (0..4).for_each(|v| q.push(v));
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                thread::spawn(move || (0..2).filter_map(|_| q.pop()).collect::<Vec<_>>())
            })
            .collect();
        let mut all = Vec::new();
        for t in takers {
            let got = t.join().unwrap();
            assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
            all.extend(got);
        }
        all.extend(std::iter::from_fn(|| q.pop()));
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2, 3]);
        assert!(q.is_empty());
    });
}
