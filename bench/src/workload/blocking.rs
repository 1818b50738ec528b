//! Tasks that block among tasks that compute, and bursts of them with idle
//! gaps between: what an elastic pool is for.
//!
//! A blocking task sleeps [`BLOCK`]; a CPU task spins for `Size::work`.
//! Each engine is told about the blocking share the way it is meant to be
//! (see `Spawner::spawn_blocking`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::spawn::warm_up;
use super::{Outcome, Size};
use crate::engine::{Engine, Spawner};
use crate::measure::{spin_for, Countdown};

/// How long a blocking task blocks: a short read from a disk or a quick
/// call to another service.
pub const BLOCK: Duration = Duration::from_millis(1);

/// How often the footprint sampler counts the process's threads.
const SAMPLE: Duration = Duration::from_millis(1);

/// Submits `n` tasks from this thread, every `block_every`-th a blocking
/// one, and returns when all ran.
fn mix(spawner: &Spawner, n: u64, block_every: u64, work: Duration) -> (Duration, u64) {
    let cd = Countdown::new(n);
    let start = Instant::now();
    for i in 0..n {
        let cd = cd.clone();
        if i % block_every == 0 {
            spawner.spawn_blocking(move || {
                thread::sleep(BLOCK);
                cd.hit();
            });
        } else {
            spawner.spawn(move || {
                spin_for(work);
                cd.hit();
            });
        }
    }
    let end = cd.wait();
    (end - start, cd.hits())
}

/// `mix_tasks` tasks, every `block_every`-th blocking: time until all ran.
pub(super) fn blocking_mix(engine: &Engine, size: &Size) -> Outcome {
    let spawner = engine.spawner();
    warm_up(spawner);
    let (took, done) = mix(spawner, size.mix_tasks, size.block_every, size.work);
    Outcome::time(took, size.mix_tasks, done)
}

/// What the bursty workload measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bursty {
    /// The bursts' completion times, summed (the gaps left out).
    Time,
    /// Thread-seconds: the engine's threads integrated over the whole run,
    /// gaps included.
    Footprint,
}

/// `bursts` bursts of the blocking mix, `burst_gap` of idle time after
/// each; a sampler thread counts the process's threads meanwhile.
pub(super) fn bursty(engine: &Engine, size: &Size, what: Bursty) -> Outcome {
    let spawner = engine.spawner();
    warm_up(spawner);
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut thread_seconds = 0.0;
            let mut last = Instant::now();
            while !stop.load(Ordering::Acquire) {
                thread::sleep(SAMPLE);
                let now = Instant::now();
                // Every thread but this sampler and the submitting thread.
                let engine_threads = thread_count().saturating_sub(2);
                thread_seconds += engine_threads as f64 * (now - last).as_secs_f64();
                last = now;
            }
            thread_seconds
        })
    };
    let mut busy = Duration::ZERO;
    let mut done = 0;
    for _ in 0..size.bursts {
        let (took, hits) = mix(spawner, size.burst_tasks, size.block_every, size.work);
        busy += took;
        done += hits;
        thread::sleep(size.burst_gap);
    }
    stop.store(true, Ordering::Release);
    let thread_seconds = sampler.join().expect("the sampler does not panic");
    let expected = size.bursts * size.burst_tasks;
    match what {
        Bursty::Time => Outcome::time(busy, expected, done),
        Bursty::Footprint => Outcome::new(thread_seconds, expected, done),
    }
}

/// Threads of this process (Linux; elsewhere 0).
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}
