//! Small instruments the workloads share: a countdown to wait for the last
//! task, a busy wait, latency histograms and CPU time of the engine threads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Counts tasks down to zero; the waiter sleeps on a condvar, so it takes
/// no CPU from the workers while they run.
#[derive(Debug)]
pub struct Countdown {
    left: AtomicU64,
    hits: AtomicU64,
    /// When the last hit came; `None` until then.
    done: Mutex<Option<Instant>>,
    cv: Condvar,
}

impl Countdown {
    /// A countdown that opens after `n` hits.
    pub fn new(n: u64) -> Arc<Countdown> {
        Arc::new(Countdown {
            left: AtomicU64::new(n),
            hits: AtomicU64::new(0),
            done: Mutex::new((n == 0).then(Instant::now)),
            cv: Condvar::new(),
        })
    }

    /// One task done.
    pub fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            let now = Instant::now();
            *self.done.lock().expect("countdown lock") = Some(now);
            self.cv.notify_all();
        }
    }

    /// Blocks until the count reached zero; returns when the last task
    /// counted itself out (so the waiter's own wake-up is not measured).
    pub fn wait(&self) -> Instant {
        let mut done = self.done.lock().expect("countdown lock");
        loop {
            if let Some(at) = *done {
                return at;
            }
            done = self.cv.wait(done).expect("countdown lock");
        }
    }

    /// Blocks until the count reached zero or `timeout` passed; true when
    /// it reached zero.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut done = self.done.lock().expect("countdown lock");
        while done.is_none() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            done = self
                .cv
                .wait_timeout(done, deadline - now)
                .expect("countdown lock")
                .0;
        }
        true
    }

    /// How many hits so far (more than `n` means a task ran twice).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Acquire)
    }
}

/// Keeps the CPU busy for `d`, the way a short CPU-bound task does.
pub fn spin_for(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// A latency histogram in nanoseconds, 1 ns to 100 s, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// Records one latency, clamped into the histogram's range.
pub fn record(hist: &Mutex<Histogram<u64>>, d: Duration) {
    let ns = (d.as_nanos() as u64).clamp(1, 100_000_000_000);
    hist.lock()
        .expect("histogram lock")
        .record(ns)
        .expect("value in range");
}

/// CPU time used so far by every thread of this process except the caller,
/// read from `/proc/self/task/*/schedstat` (nanoseconds on a CPU). `None`
/// where that file does not exist (not Linux, or no scheduler statistics).
pub fn others_cpu_time() -> Option<Duration> {
    let me = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|f| f.to_os_string()));
    let mut total = 0u64;
    let mut seen = false;
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        if Some(entry.file_name()) == me {
            continue;
        }
        // A thread may exit between the listing and the read: skip it.
        if let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) {
            if let Some(ns) = text
                .split_whitespace()
                .next()
                .and_then(|f| f.parse::<u64>().ok())
            {
                total += ns;
                seen = true;
            }
        }
    }
    (seen || me.is_some()).then_some(Duration::from_nanos(total))
}
