//! Cheap time stamps for the latency histograms.
//!
//! Every task is stamped when it becomes ready (pushed to a lane), when an
//! attempt starts and when it ends, so a stamp must cost next to nothing.
//! `Instant::now()` measures about 40 ns here (a VM on AMD EPYC, clock
//! source `tsc`, through the vDSO); the time-stamp counter itself about
//! 13 ns. So on x86-64 Linux, when the kernel's clock source is the TSC
//! (the kernel then vouches that it is invariant and synchronized across
//! cores), a stamp is the raw TSC, converted to nanoseconds with a factor
//! measured once per process against `Instant`. Elsewhere (other targets,
//! another clock source, Miri, loom) a stamp is nanoseconds since a process
//! epoch taken with `Instant`.
//!
//! Stamps from two cores may disagree by a few ticks: durations are
//! computed with a saturating subtraction.
//!
//! A worker reuses the end stamp of one attempt as the start stamp of the
//! next one when it found that job straight away ([`take_boundary`]); the
//! worker loop forgets it ([`forget_boundary`]) whenever time passes
//! unstamped in between (a spin, a park, a join or scope job). So a task
//! run back to back with another costs one clock read when it starts
//! running (none) and one when it ends; the other is taken when it becomes
//! ready.

use std::sync::OnceLock;
use std::time::Instant;

/// The conversion from stamps to nanoseconds, fixed once per process.
#[derive(Debug)]
pub(crate) struct Calibration {
    /// Stamps read the TSC (else: nanoseconds since `epoch`).
    tsc: bool,
    epoch: Instant,
    /// Nanoseconds per stamp unit.
    ns_per_tick: f64,
}

static CALIBRATION: OnceLock<Calibration> = OnceLock::new();

/// How long the TSC is compared with `Instant` once per process: 40 ns of
/// jitter on each end over 500 µs is an error below 2e-4, far inside one
/// histogram bucket (a factor of 2 to 2.5).
const CALIBRATION_WINDOW: std::time::Duration = std::time::Duration::from_micros(500);

/// Measures the stamp clock (once per process; later calls return at once).
pub(crate) fn calibrate() -> &'static Calibration {
    CALIBRATION.get_or_init(|| {
        let epoch = Instant::now();
        if !tsc_usable() {
            return Calibration {
                tsc: false,
                epoch,
                ns_per_tick: 1.0,
            };
        }
        let t0 = rdtsc();
        let i0 = Instant::now();
        while i0.elapsed() < CALIBRATION_WINDOW {
            std::hint::spin_loop();
        }
        let t1 = rdtsc();
        let i1 = Instant::now();
        let ticks = t1.wrapping_sub(t0);
        let nanos = (i1 - i0).as_nanos() as f64;
        if ticks == 0 || ticks > 1 << 48 {
            // A counter that did not move (or jumped): do not trust it.
            return Calibration {
                tsc: false,
                epoch,
                ns_per_tick: 1.0,
            };
        }
        Calibration {
            tsc: true,
            epoch,
            ns_per_tick: nanos / ticks as f64,
        }
    })
}

impl Calibration {
    /// A TSC calibration at `ns_per_tick`, for tests of the tick tables.
    #[cfg(test)]
    pub(crate) fn with_ns_per_tick(ns_per_tick: f64) -> Calibration {
        Calibration {
            tsc: true,
            epoch: Instant::now(),
            ns_per_tick,
        }
    }

    /// A stamp: now, in this calibration's units.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        if self.tsc {
            rdtsc()
        } else {
            self.epoch.elapsed().as_nanos() as u64
        }
    }

    /// A duration in stamp units as nanoseconds.
    #[inline]
    pub(crate) fn to_nanos(&self, ticks: u64) -> u64 {
        if self.tsc {
            (ticks as f64 * self.ns_per_tick) as u64
        } else {
            ticks
        }
    }

    /// Nanoseconds as stamp units (rounded to nearest).
    pub(crate) fn ticks_of_nanos(&self, nanos: u64) -> u64 {
        if self.tsc {
            (nanos as f64 / self.ns_per_tick).round() as u64
        } else {
            nanos
        }
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri), not(loom)))]
fn tsc_usable() -> bool {
    std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .is_ok_and(|s| s.trim() == "tsc")
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(miri), not(loom))))]
fn tsc_usable() -> bool {
    false
}

#[cfg(all(target_arch = "x86_64", not(miri), not(loom)))]
#[inline]
fn rdtsc() -> u64 {
    // SAFETY: RDTSC exists on every x86-64 CPU and only reads a counter;
    // it is called only after `tsc_usable` found the kernel using it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(all(target_arch = "x86_64", not(miri), not(loom))))]
#[inline]
fn rdtsc() -> u64 {
    0 // never called: `tsc_usable` is false here
}

// The last stamp this thread's worker took, for its next attempt's start,
// or `NONE`. Only attempts run by one of a pool's workers (the caller
// knows: `Stats::start_attempt` gets the worker's index) read and write
// it, so another thread's stamps are never reused. Under loom, model
// threads share OS threads: no reuse there.
const NONE: u64 = 0;
std::thread_local! {
    static BOUNDARY: std::cell::Cell<u64> = const { std::cell::Cell::new(NONE) };
}

/// A thread starts working for a pool: it has no stamp to reuse yet.
pub(crate) fn enter_worker() {
    forget_boundary();
}

/// The start stamp of an attempt on a worker: the worker's last stamp if
/// nothing unstamped happened since, else a fresh one.
#[inline]
pub(crate) fn take_boundary(cal: &Calibration) -> u64 {
    if cfg!(loom) {
        return cal.now();
    }
    match BOUNDARY.with(|b| b.replace(NONE)) {
        NONE => cal.now(),
        t => t,
    }
}

/// An attempt on a worker ended at `t`: the worker's next attempt may
/// start there.
#[inline]
pub(crate) fn set_boundary(t: u64) {
    // `NONE` is no stamp: a clock that reads 0 (the first nanosecond of
    // the epoch) is taken as 1.
    BOUNDARY.with(|b| b.set(t.max(1)));
}

/// Time passes unstamped on this worker (a spin, a park, user code after
/// the end stamp): the next attempt takes a fresh stamp.
#[inline]
pub(crate) fn forget_boundary() {
    BOUNDARY.with(|b| b.set(NONE));
}
