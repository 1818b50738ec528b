//! Submit-to-start latency: into an idle pool, and High probes into a
//! saturated one.
//!
//! A probe captures the instant right before its submission and records,
//! as the first thing it does, how long ago that was. The outcome's value
//! is the p50; the histogram keeps every probe.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::spawn::warm_up;
use super::{Outcome, Size};
use crate::engine::Engine;
use crate::measure::{latency_histogram, record, spin_for, Countdown};

/// How long the load workload waits for the backlog to fill, or to drain,
/// before it gives up on an engine.
const LOAD_LIMIT: Duration = Duration::from_secs(30);

fn p50_seconds(hist: &hdrhistogram::Histogram<u64>) -> f64 {
    if hist.is_empty() {
        f64::NAN
    } else {
        hist.value_at_quantile(0.5) as f64 * 1e-9
    }
}

pub(super) fn wake(engine: &Engine, probes: u64, gap: Duration) -> Outcome {
    let spawner = engine.spawner();
    warm_up(spawner);
    let hist = Arc::new(Mutex::new(latency_histogram()));
    let mut ran = 0;
    for _ in 0..probes {
        thread::sleep(gap);
        let cd = Countdown::new(1);
        let (theirs, h) = (cd.clone(), hist.clone());
        let submitted = Instant::now();
        spawner.spawn(move || {
            record(&h, submitted.elapsed());
            theirs.hit();
        });
        cd.wait();
        ran += cd.hits();
    }
    let hist = hist.lock().expect("histogram lock").clone();
    let mut outcome = Outcome::new(p50_seconds(&hist), probes, ran);
    outcome.latency = Some(hist);
    outcome
}

/// Waits until `cond` holds, checking every 100 µs, for at most `limit`.
fn wait_for(limit: Duration, cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_micros(100));
    }
    true
}

pub(super) fn under_load(engine: &Engine, size: &Size) -> Outcome {
    let spawner = engine.spawner();
    warm_up(spawner);
    let backlog = size.backlog_per_worker * engine.workers() as u64;
    let work = size.work;
    let queued = Arc::new(AtomicU64::new(0));
    let worked = Arc::new(AtomicU64::new(0));
    let stop = AtomicBool::new(false);
    let probes = (size.load.as_nanos() / size.load_probe_gap.as_nanos().max(1)).max(1) as u64;
    let probed = Countdown::new(probes);
    let hist = Arc::new(Mutex::new(latency_histogram()));

    let (fed, drained) = thread::scope(|s| {
        // The feeder keeps `backlog` Normal tasks waiting or running.
        let feeder = s.spawn(|| {
            let mut fed = 0u64;
            while !stop.load(Ordering::Acquire) {
                if queued.load(Ordering::Acquire) < backlog {
                    queued.fetch_add(1, Ordering::AcqRel);
                    fed += 1;
                    let (queued, worked) = (queued.clone(), worked.clone());
                    spawner.spawn(move || {
                        spin_for(work);
                        worked.fetch_add(1, Ordering::AcqRel);
                        queued.fetch_sub(1, Ordering::AcqRel);
                    });
                } else {
                    thread::sleep(Duration::from_micros(100));
                }
            }
            fed
        });
        wait_for(LOAD_LIMIT, || queued.load(Ordering::Acquire) >= backlog);
        let start = Instant::now();
        for i in 1..=probes {
            let due = start + size.load_probe_gap * i as u32;
            thread::sleep(due.saturating_duration_since(Instant::now()));
            let (cd, h) = (probed.clone(), hist.clone());
            let submitted = Instant::now();
            spawner.spawn_high(move || {
                record(&h, submitted.elapsed());
                cd.hit();
            });
        }
        stop.store(true, Ordering::Release);
        let fed = feeder.join().expect("feeder thread");
        let drained = wait_for(LOAD_LIMIT, || worked.load(Ordering::Acquire) >= fed);
        (fed, drained)
    });
    assert!(
        drained,
        "{}: the load did not drain within {LOAD_LIMIT:?}",
        engine.kind()
    );
    probed.wait();
    let hist = hist.lock().expect("histogram lock").clone();
    let done = probed.hits() + worked.load(Ordering::Acquire);
    let mut outcome = Outcome::new(p50_seconds(&hist), probes + fed, done);
    outcome.latency = Some(hist);
    outcome
}
