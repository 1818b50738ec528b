//! What an engine costs besides running tasks: CPU while nearly idle, and
//! heap allocations per task.

use std::thread;
use std::time::{Duration, Instant};

use super::spawn::warm_up;
use super::Outcome;
use crate::alloc;
use crate::engine::Engine;
use crate::measure::{others_cpu_time, Countdown};

/// Quiet time before the idle window, so the warm-up's spinning is over.
const SETTLE: Duration = Duration::from_millis(50);

pub(super) fn idle(engine: &Engine, window: Duration, tick: Duration) -> Outcome {
    let spawner = engine.spawner();
    warm_up(spawner);
    thread::sleep(SETTLE);
    let ticks = (window.as_nanos() / tick.as_nanos().max(1)).max(1) as u64;
    let cd = Countdown::new(ticks);
    // This thread's own timer loop is left out: only the engine's threads
    // (and any other thread of the process, idle here) are counted.
    let cpu0 = others_cpu_time();
    let start = Instant::now();
    for i in 1..=ticks {
        let due = start + tick * i as u32;
        thread::sleep(due.saturating_duration_since(Instant::now()));
        let cd = cd.clone();
        spawner.spawn(move || cd.hit());
    }
    cd.wait();
    let wall = start.elapsed();
    let cpu1 = others_cpu_time();
    match (cpu0, cpu1) {
        (Some(a), Some(b)) => Outcome::new(
            b.saturating_sub(a).as_secs_f64() / wall.as_secs_f64(),
            ticks,
            cd.hits(),
        ),
        _ => {
            let mut outcome = Outcome::new(f64::NAN, ticks, cd.hits());
            outcome.note = Some("no per-thread CPU times (/proc/self/task/*/schedstat)");
            outcome
        }
    }
}

pub(super) fn allocations(engine: &Engine, n: u64) -> Outcome {
    let spawner = engine.spawner();
    warm_up(spawner);
    // One unmeasured burst as large as the measured one: an engine that
    // recycles its task cells (runq) counts as warm once it holds the cells
    // such a burst needs. Without it, whichever runq engine ran first in the
    // process paid for its cells (0.66 to 0.93 allocations per task, and
    // 0.02 for the other).
    let warm = Countdown::new(n);
    for _ in 0..n {
        let warm = warm.clone();
        spawner.spawn(move || warm.hit());
    }
    warm.wait();
    let cd = Countdown::new(n);
    let tasks: Vec<_> = (0..n).map(|_| cd.clone()).collect();
    let installed = alloc::installed();
    alloc::start();
    for cd in tasks {
        spawner.spawn(move || cd.hit());
    }
    cd.wait();
    let count = alloc::stop();
    let mut outcome = Outcome::new(count as f64 / n as f64, n, cd.hits());
    if !installed {
        outcome.value = f64::NAN;
        outcome.note = Some("the counting allocator is not the global allocator");
    }
    outcome
}
