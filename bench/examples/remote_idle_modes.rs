//! Which mode each run of spawn_many_remote_idle falls into.
//!
//! One outside thread submits `N` empty tasks to a fresh 2-worker pool
//! (after the same 1,000-task warm-up as runq-bench), then waits for them.
//! Each run prints its wall time, how long the submissions took, how many
//! tasks each worker ran, the pool's futex wake-ups and the Normal queue
//! wait p50. Runs where one worker ran nearly everything (the other was
//! never woken) are the fast mode; runs split between both workers, with a
//! queue wait of milliseconds, are the slow one (see the README's
//! "An honest reading").
//!
//! `cargo run --release -p runq-bench --example remote_idle_modes -- [N] [RUNS]`

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

const WARM_UP_TASKS: u64 = 1_000;

/// Tasks run per worker in the current run, indexed by `runq::current_worker`.
static RAN: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

fn parse(arg: Option<String>, default: u64) -> Result<u64, String> {
    match arg {
        None => Ok(default),
        Some(s) => s.parse().map_err(|e| format!("{s:?} is not a count: {e}")),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n = parse(args.next(), 50_000)?;
    let runs = parse(args.next(), 20)?;
    for _ in 0..runs {
        let pool = runq::Pool::builder().workers(2).build()?;
        let left = Arc::new(AtomicUsize::new(WARM_UP_TASKS as usize));
        for _ in 0..WARM_UP_TASKS {
            let left = left.clone();
            pool.spawn(move || {
                left.fetch_sub(1, Ordering::AcqRel);
            })?;
        }
        while left.load(Ordering::Acquire) != 0 {
            std::thread::yield_now();
        }
        for ran in &RAN {
            ran.store(0, Ordering::Relaxed);
        }
        let before = pool.metrics();
        let left = Arc::new(AtomicUsize::new(n as usize));
        let start = Instant::now();
        for _ in 0..n {
            let left = left.clone();
            pool.spawn(move || {
                if let Some(i) = runq::current_worker() {
                    RAN[i % RAN.len()].fetch_add(1, Ordering::Relaxed);
                }
                left.fetch_sub(1, Ordering::AcqRel);
            })?;
        }
        let submitted = start.elapsed();
        while left.load(Ordering::Acquire) != 0 {
            std::thread::yield_now();
        }
        let wall = start.elapsed();
        let after = pool.metrics();
        let ran: Vec<u64> = RAN.iter().map(|r| r.load(Ordering::Relaxed)).collect();
        println!(
            "{:6.2} ms (submitting {:6.2} ms)  tasks per worker {:?}  wake-ups {:3}  queue wait p50 {:?}",
            wall.as_secs_f64() * 1e3,
            submitted.as_secs_f64() * 1e3,
            ran,
            after.wakes - before.wakes,
            after.queue_wait_normal.quantile(0.5),
        );
        pool.shutdown();
    }
    Ok(())
}
