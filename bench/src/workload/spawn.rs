//! tokio's scheduler benchmarks re-expressed for plain closures, and
//! remote_spawn contention.
//!
//! Timing starts right before the first submission and stops when the
//! last task has run; each run first warms the engine with a small burst.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use super::Outcome;
use crate::engine::{Engine, Spawner};
use crate::measure::Countdown;

/// Tasks in the warm-up burst before each measured run.
const WARM_UP_TASKS: u64 = 1_000;

/// Starts the engine's threads and fills its caches.
pub(super) fn warm_up(spawner: &Spawner) {
    let cd = Countdown::new(WARM_UP_TASKS);
    for _ in 0..WARM_UP_TASKS {
        let cd = cd.clone();
        spawner.spawn(move || cd.hit());
    }
    cd.wait();
    if let Spawner::Runq(pool, _) = spawner {
        *super::WARM_UP_WAIT.lock().expect("baseline lock") = Some(super::pool_wait(pool));
    }
}

pub(super) fn many_local(engine: &Engine, n: u64) -> Outcome {
    let spawner = engine.spawner();
    warm_up(spawner);
    let cd = Countdown::new(n);
    let start = Instant::now();
    let (inner, theirs) = (spawner.clone(), cd.clone());
    spawner.spawn(move || {
        for _ in 0..n {
            let cd = theirs.clone();
            inner.spawn(move || cd.hit());
        }
    });
    let end = cd.wait();
    Outcome::time(end - start, n, cd.hits())
}

pub(super) fn many_remote_idle(engine: &Engine, n: u64) -> Outcome {
    let spawner = engine.spawner();
    warm_up(spawner);
    let cd = Countdown::new(n);
    let start = Instant::now();
    for _ in 0..n {
        let cd = cd.clone();
        spawner.spawn(move || cd.hit());
    }
    let end = cd.wait();
    Outcome::time(end - start, n, cd.hits())
}

/// A task that resubmits itself until `stop`; `started` counts first runs.
fn busy(
    spawner: Spawner,
    stop: Arc<AtomicBool>,
    started: Arc<Countdown>,
    first: bool,
    ended: Arc<Countdown>,
) {
    if first {
        started.hit();
    }
    if stop.load(Ordering::Acquire) {
        ended.hit();
        return;
    }
    let next = spawner.clone();
    spawner.spawn(move || busy(next, stop, started, false, ended));
}

pub(super) fn many_remote_busy(engine: &Engine, n: u64, stall_limit: Duration) -> Outcome {
    let spawner = engine.spawner();
    warm_up(spawner);
    let workers = engine.workers() as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Countdown::new(workers);
    let ended = Countdown::new(workers);
    for _ in 0..workers {
        let (next, stop, started, ended) = (
            spawner.clone(),
            stop.clone(),
            started.clone(),
            ended.clone(),
        );
        spawner.spawn(move || busy(next, stop, started, true, ended));
    }
    started.wait();
    let cd = Countdown::new(n);
    let start = Instant::now();
    for _ in 0..n {
        let cd = cd.clone();
        spawner.spawn(move || cd.hit());
    }
    let in_time = cd.wait_timeout(stall_limit);
    let by_then = cd.hits();
    stop.store(true, Ordering::Release);
    // Stopped busy tasks let starved remote tasks through: all must run.
    let end = cd.wait();
    ended.wait();
    let mut outcome = Outcome::time(end - start, n, cd.hits());
    if !in_time {
        outcome.stalled = Some(by_then as f64 / n.max(1) as f64);
    }
    outcome
}

/// One hop of a chain: count it, then spawn the next while any are left.
fn hop(spawner: Spawner, left: u64, cd: Arc<Countdown>) {
    cd.hit();
    if left > 1 {
        let next = spawner.clone();
        spawner.spawn(move || hop(next, left - 1, cd));
    }
}

pub(super) fn ping_pong(engine: &Engine, pings: u64, rounds: u64) -> Outcome {
    let spawner = engine.spawner();
    warm_up(spawner);
    // Each ping is three tasks: the ping, the pong it spawns, and the reply
    // the pong spawns back.
    const TASKS_PER_PING: u64 = 3;
    let mut done = 0;
    let start = Instant::now();
    let mut end = start;
    for _ in 0..rounds {
        let cd = Countdown::new(pings * TASKS_PER_PING);
        for _ in 0..pings {
            let (next, cd) = (spawner.clone(), cd.clone());
            spawner.spawn(move || hop(next, TASKS_PER_PING, cd));
        }
        end = cd.wait();
        done += cd.hits();
    }
    Outcome::time(end - start, pings * rounds * TASKS_PER_PING, done)
}

pub(super) fn chained(engine: &Engine, n: u64) -> Outcome {
    let spawner = engine.spawner();
    warm_up(spawner);
    let cd = Countdown::new(n);
    let start = Instant::now();
    let (next, theirs) = (spawner.clone(), cd.clone());
    spawner.spawn(move || hop(next, n, theirs));
    let end = cd.wait();
    Outcome::time(end - start, n, cd.hits())
}

pub(super) fn yield_many(engine: &Engine, tasks: u64, yields: u64) -> Outcome {
    let spawner = engine.spawner();
    warm_up(spawner);
    // A task that yields `yields` times runs `yields + 1` times.
    let runs = yields + 1;
    let cd = Countdown::new(tasks * runs);
    let start = Instant::now();
    for _ in 0..tasks {
        let (next, cd) = (spawner.clone(), cd.clone());
        spawner.spawn(move || hop(next, runs, cd));
    }
    let end = cd.wait();
    Outcome::time(end - start, tasks * runs, cd.hits())
}

pub(super) fn remote_contended(engine: &Engine, total: u64, submitters: usize) -> Outcome {
    let spawner = engine.spawner();
    warm_up(spawner);
    let submitters = submitters.max(1);
    let cd = Countdown::new(total);
    let gate = Barrier::new(submitters + 1);
    // The clock starts when the first submitter leaves the gate (taken on
    // the submitters: this thread may not be scheduled for a while) and
    // stops when the last task ran.
    let start = thread::scope(|s| {
        let threads: Vec<_> = (0..submitters as u64)
            .map(|i| {
                // Spread the remainder over the first threads.
                let share = total / submitters as u64 + u64::from(i < total % submitters as u64);
                let (spawner, cd, gate) = (spawner.clone(), cd.clone(), &gate);
                s.spawn(move || {
                    gate.wait();
                    let start = Instant::now();
                    for _ in 0..share {
                        let cd = cd.clone();
                        spawner.spawn(move || cd.hit());
                    }
                    start
                })
            })
            .collect();
        gate.wait();
        threads
            .into_iter()
            .map(|t| t.join().expect("submitter thread"))
            .min()
            .expect("at least one submitter")
    });
    let elapsed = cd.wait() - start;
    Outcome::time(elapsed, total, cd.hits())
}
