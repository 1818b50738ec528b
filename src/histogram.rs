//! Latency histograms: [`Histogram`] (the snapshot users read) and the
//! per-worker [`Recorder`] the hot path writes.
//!
//! # Buckets
//!
//! Fixed, on a 1-2-5 log scale from 1 µs to 10 s ([`BOUNDS_NANOS`]), plus
//! one overflow bucket: CPU-bound tasks live in microseconds (Prometheus's
//! default buckets start at 5 ms), and 1-2-5 boundaries give readable `le`
//! labels. A bucket holds the values `v` with `previous bound < v <= bound`
//! (Prometheus's `le` is inclusive). Neighbouring bounds differ by a factor
//! of 2 or 2.5, so a quantile read from the buckets is accurate to one
//! bucket: the true value lies in the bucket whose upper bound is returned.
//!
//! # Recording without a shared cache line
//!
//! Each worker owns one `Recorder` per histogram inside its cache-padded
//! counter block (see `metrics`), and is its only writer: a record is a
//! plain load and store of the bucket, the sum and (rarely) the maximum, no
//! read-modify-write. Work recorded off the pool (a task run in the caller)
//! goes to the shared block with `fetch_add`. Values arrive in stamp units
//! (see `stamp`); the bucket bounds are converted to stamp units once per
//! process, so the hot path does no conversion and no division: one
//! leading-zero count, one row of a table by octave and two comparisons
//! pick the bucket, without a branch. A snapshot sums the blocks with
//! relaxed loads and converts to nanoseconds.
//!
//! What a record costs, counted in instructions (valgrind's cachegrind:
//! this VM gives `perf` no hardware counters) on runq-bench's
//! `chained_spawn`, one worker: both histograms, the two stamps and the
//! boundary hand-over add about 80 to 90 instructions to the 650 of an
//! empty spawned task (137 before the table by octave, the worker index
//! passed down instead of looked up, and the attempt's stamps kept out of
//! a closure around the task's body).

use std::time::Duration;

use crate::stamp::Calibration;
use crate::sync::stat::AtomicU64;
use crate::sync::Ordering;

/// The upper bounds of the finite buckets, in nanoseconds: 1-2-5 steps from
/// 1 µs to 10 s (see the module docs for why).
pub(crate) const BOUNDS_NANOS: [u64; FINITE] = [
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    500_000_000,
    1_000_000_000,
    2_000_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// The same bounds as Prometheus `le` labels (seconds).
pub(crate) const BOUNDS_LE: [&str; FINITE] = [
    "1e-06", "2e-06", "5e-06", "1e-05", "2e-05", "5e-05", "0.0001", "0.0002", "0.0005", "0.001",
    "0.002", "0.005", "0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1", "2", "5", "10",
];

/// Finite buckets.
pub(crate) const FINITE: usize = 22;
/// All buckets: the finite ones and the overflow (`+Inf`).
pub(crate) const BUCKETS: usize = FINITE + 1;

/// A latency histogram: how many values fell in each of its buckets (1 µs
/// to 10 s on a 1-2-5 scale, and above), their sum and their maximum.
///
/// ```
/// use runq::Pool;
/// let pool = Pool::builder().workers(1).build()?;
/// for _ in 0..10 {
///     pool.submit(|| ())?.wait()?;
/// }
/// let m = pool.metrics();
/// assert_eq!(m.queue_wait_normal.count(), 10);
/// assert_eq!(m.run_time.count(), 10);
/// assert!(m.run_time.quantile(0.5) <= m.run_time.quantile(0.99));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Histogram {
    buckets: [u64; BUCKETS],
    sum_nanos: u64,
    max_nanos: u64,
}

impl Histogram {
    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().fold(0u64, |a, b| a.wrapping_add(*b))
    }

    /// The sum of the values recorded.
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_nanos)
    }

    /// The largest value recorded (zero when empty).
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max_nanos)
    }

    /// The `q`-quantile (`q` in `[0, 1]`; 0.99 is the 99th percentile),
    /// accurate to one bucket: the upper bound of the bucket that holds it,
    /// or the maximum when that is smaller (so above 10 s, the maximum).
    /// Zero when empty; `q` outside `[0, 1]` is clamped, NaN is taken as 0.
    pub fn quantile(&self, q: f64) -> Duration {
        let count = self.count();
        if count == 0 {
            return Duration::ZERO;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        // The rank of the value asked for, 1-based: at least the first.
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0u64;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let upper = BOUNDS_NANOS.get(i).copied().unwrap_or(u64::MAX);
                return Duration::from_nanos(upper.min(self.max_nanos));
            }
        }
        self.max()
    }

    /// What was recorded between an `earlier` snapshot of the same
    /// histogram and this one: counts and sum are the differences; the
    /// maximum stays this snapshot's (an upper bound: the maximum of an
    /// interval is not kept). Useful to read quantiles per interval.
    ///
    /// ```
    /// use runq::Pool;
    /// let pool = Pool::builder().workers(1).build()?;
    /// pool.submit(|| ())?.wait()?;
    /// let before = pool.metrics().run_time;
    /// pool.submit(|| ())?.wait()?;
    /// pool.submit(|| ())?.wait()?;
    /// assert_eq!(pool.metrics().run_time.since(&before).count(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let mut h = self.clone();
        for (a, b) in h.buckets.iter_mut().zip(earlier.buckets.iter()) {
            *a = a.saturating_sub(*b);
        }
        h.sum_nanos = h.sum_nanos.saturating_sub(earlier.sum_nanos);
        h
    }

    /// Cumulative counts: for each finite bucket its `le` label and the
    /// values at or below it, then `("+Inf", count)`.
    pub(crate) fn cumulative(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let mut seen = 0u64;
        self.buckets.iter().enumerate().map(move |(i, n)| {
            seen = seen.wrapping_add(*n);
            (BOUNDS_LE.get(i).copied().unwrap_or("+Inf"), seen)
        })
    }

    /// Sum in seconds, for the Prometheus text.
    pub(crate) fn sum_seconds(&self) -> f64 {
        self.sum_nanos as f64 / 1e9
    }

    /// Adds another histogram's values: to see several lanes, or several
    /// pools, as one.
    ///
    /// ```
    /// use runq::{Histogram, Pool};
    /// let pool = Pool::builder().workers(1).build()?;
    /// pool.submit(|| ())?.wait()?;
    /// let m = pool.metrics();
    /// let mut all = Histogram::default();
    /// for lane in [&m.queue_wait_high, &m.queue_wait_normal, &m.queue_wait_low] {
    ///     all.merge(lane);
    /// }
    /// assert_eq!(all.count(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a = a.wrapping_add(*b);
        }
        self.sum_nanos = self.sum_nanos.wrapping_add(other.sum_nanos);
        self.max_nanos = self.max_nanos.max(other.max_nanos);
    }

    /// A histogram of known values, for tests.
    #[cfg(test)]
    pub(crate) fn of_nanos(values: &[u64]) -> Histogram {
        let mut h = Histogram::default();
        for &v in values {
            h.buckets[bucket_of_nanos(v)] += 1;
            h.sum_nanos += v;
            h.max_nanos = h.max_nanos.max(v);
        }
        h
    }
}

/// The bucket of a value in nanoseconds (the reference the tick-based
/// look-up is tested against).
#[cfg(test)]
pub(crate) fn bucket_of_nanos(v: u64) -> usize {
    BOUNDS_NANOS.iter().position(|&b| v <= b).unwrap_or(FINITE)
}

/// The bucket bounds in stamp units, and for each octave of a value
/// (the position of its highest set bit, 0 to 64) the bucket of its
/// smallest value and the bounds inside it. Built once per process from
/// the stamp calibration.
#[derive(Debug)]
pub(crate) struct Buckets {
    /// The finite bounds (the reference `index` is tested against).
    #[cfg_attr(not(test), allow(dead_code))]
    bounds: [u64; FINITE],
    /// Indexed by octave (a power of two in length: the mask in `index`
    /// drops the bounds check).
    octaves: [Octave; 128],
}

/// One octave `[2^(k-1), 2^k)` of values: the bucket of its lowest value,
/// and the (at most two) bounds inside it, `u64::MAX` where there are fewer.
#[derive(Debug, Clone, Copy)]
struct Octave {
    first: u64,
    steps: [u64; 2],
}

impl Buckets {
    pub(crate) fn new(cal: &Calibration) -> Buckets {
        let bounds = BOUNDS_NANOS.map(|ns| cal.ticks_of_nanos(ns).max(1));
        let mut octaves = [Octave {
            first: FINITE as u64,
            steps: [u64::MAX; 2],
        }; 128];
        for (k, octave) in octaves.iter_mut().enumerate().take(65) {
            // Values of octave k lie in [low, high] (octave 0 is v = 0).
            let low = if k == 0 { 0 } else { 1u64 << (k - 1) };
            let high = if k == 0 {
                0
            } else {
                low.wrapping_mul(2).wrapping_sub(1).max(low)
            };
            let first = bounds.iter().position(|&b| b >= low).unwrap_or(FINITE);
            let inside: Vec<u64> = bounds[first..]
                .iter()
                .copied()
                .take_while(|&b| b < high)
                .collect();
            // Neighbouring bounds differ by a factor of 2 or more (less a
            // tick of rounding), so at most two lie inside one octave.
            assert!(inside.len() <= 2, "bucket bounds too close: {bounds:?}");
            octave.first = first as u64;
            for (step, b) in octave.steps.iter_mut().zip(inside) {
                *step = b;
            }
        }
        Buckets { bounds, octaves }
    }

    /// The bucket of `v` (stamp units), without a branch: the bucket of
    /// the lowest value of `v`'s octave, one step up for each bound of the
    /// octave that `v` exceeds.
    #[inline]
    pub(crate) fn index(&self, v: u64) -> usize {
        let octave = &self.octaves[(64 - v.leading_zeros()) as usize & 127];
        let up = (v > octave.steps[0]) as u64 + (v > octave.steps[1]) as u64;
        (octave.first + up) as usize
    }
}

// A bucket index masked with 31 stays in `Recorder::buckets`.
const _: () = assert!(BUCKETS <= 32);

/// One histogram's counters in one block.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    /// The first [`BUCKETS`] are used; the array is a power of two in
    /// length so a masked index needs no bounds check.
    buckets: [AtomicU64; 32],
    /// In stamp units.
    sum: AtomicU64,
    max: AtomicU64,
}

impl Recorder {
    /// Records `v` (stamp units) in bucket `i`. `exclusive`: the calling
    /// thread is this block's only writer, so plain loads and stores do.
    #[inline]
    pub(crate) fn record(&self, i: usize, v: u64, exclusive: bool) {
        if exclusive {
            let b = &self.buckets[i & 31];
            b.store(b.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
            self.sum.store(
                self.sum.load(Ordering::Relaxed).wrapping_add(v),
                Ordering::Relaxed,
            );
            if v > self.max.load(Ordering::Relaxed) {
                self.max.store(v, Ordering::Relaxed);
            }
        } else {
            self.record_shared(i, v);
        }
    }

    /// [`record`](Self::record) from a thread outside the pool (a task run
    /// in the caller): out of the workers' hot path.
    #[cold]
    #[inline(never)]
    fn record_shared(&self, i: usize, v: u64) {
        self.buckets[i & 31].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
        self.max.fetch_max(v, Ordering::Relaxed);
    }

    /// Adds this block's values to `into`, converted to nanoseconds.
    pub(crate) fn add_to(&self, into: &mut Histogram, cal: &Calibration) {
        let mut h = Histogram::default();
        for (a, b) in h.buckets.iter_mut().zip(self.buckets.iter()) {
            *a = b.load(Ordering::Relaxed);
        }
        h.sum_nanos = cal.to_nanos(self.sum.load(Ordering::Relaxed));
        h.max_nanos = cal.to_nanos(self.max.load(Ordering::Relaxed));
        into.merge(&h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_labels_agree() {
        for (ns, le) in BOUNDS_NANOS.iter().zip(BOUNDS_LE.iter()) {
            let secs: f64 = le.parse().unwrap();
            assert_eq!((secs * 1e9).round() as u64, *ns, "{le}");
        }
        for w in BOUNDS_NANOS.windows(2) {
            assert!(w[1] >= 2 * w[0]);
        }
    }

    #[test]
    fn tick_lookup_matches_the_reference_at_every_edge() {
        let cal = crate::stamp::calibrate();
        let b = Buckets::new(cal);
        let mut probes = vec![0u64, 1, 2, 3, u64::MAX, u64::MAX / 2];
        for &bound in &b.bounds {
            probes.extend([bound - 1, bound, bound + 1]);
        }
        for shift in 0..64 {
            probes.extend([1u64 << shift, (1u64 << shift) - 1]);
        }
        for v in probes {
            let want = b.bounds.iter().position(|&x| v <= x).unwrap_or(FINITE);
            assert_eq!(b.index(v), want, "value {v}");
        }
    }

    #[test]
    fn tick_lookup_is_exact_at_any_clock_rate() {
        // Counters from 100 MHz to 5 GHz, and plain nanoseconds: the
        // octave table must place every edge as the reference does.
        for ns_per_tick in [10.0, 1.0, 0.5, 0.37, 1.0 / 3.0, 0.29, 0.2] {
            let cal = Calibration::with_ns_per_tick(ns_per_tick);
            let b = Buckets::new(&cal);
            let mut probes = vec![0u64, 1, 2, 3, u64::MAX, u64::MAX / 2];
            for &bound in &b.bounds {
                probes.extend([bound - 1, bound, bound + 1, bound * 2, bound / 2]);
            }
            for shift in 0..64 {
                probes.extend([1u64 << shift, (1u64 << shift) - 1, (3u64 << shift) / 2]);
            }
            for v in probes {
                let want = b.bounds.iter().position(|&x| v <= x).unwrap_or(FINITE);
                assert_eq!(b.index(v), want, "value {v} at {ns_per_tick} ns per tick");
            }
        }
    }

    #[test]
    fn quantiles_of_known_inputs_fall_in_the_right_bucket() {
        // 90 values of 3 µs, 9 of 150 µs, 1 of 4 ms.
        let mut v = vec![3_000u64; 90];
        v.extend([150_000u64; 9]);
        v.push(4_000_000);
        let h = Histogram::of_nanos(&v);
        assert_eq!(h.count(), 100);
        assert_eq!(
            h.sum(),
            Duration::from_nanos(90 * 3_000 + 9 * 150_000 + 4_000_000)
        );
        // 3 µs lies in (2 µs, 5 µs]: the quantile is that bucket's bound.
        assert_eq!(h.quantile(0.5), Duration::from_micros(5));
        assert_eq!(h.quantile(0.9), Duration::from_micros(5));
        assert_eq!(h.quantile(0.91), Duration::from_micros(200));
        assert_eq!(h.quantile(0.99), Duration::from_micros(200));
        // The top value: its bucket is (2 ms, 5 ms], capped by the max.
        assert_eq!(h.quantile(1.0), Duration::from_millis(4));
        assert_eq!(h.quantile(0.0), Duration::from_micros(5));
        assert_eq!(h.quantile(f64::NAN), Duration::from_micros(5));
        assert_eq!(h.quantile(7.0), Duration::from_millis(4));
        assert_eq!(h.max(), Duration::from_millis(4));
    }

    #[test]
    fn every_quantile_is_within_one_bucket_of_the_truth() {
        let mut values: Vec<u64> = (0..2000u64)
            .map(|i| (i * i * 7919) % 30_000_000_000)
            .collect();
        let h = Histogram::of_nanos(&values);
        values.sort_unstable();
        for q in [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0] {
            let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
            let truth = values[rank - 1];
            let got = h.quantile(q).as_nanos() as u64;
            let bucket = bucket_of_nanos(truth);
            let lower = if bucket == 0 {
                0
            } else {
                BOUNDS_NANOS[bucket - 1]
            };
            assert!(
                got >= truth && (got <= BOUNDS_NANOS.get(bucket).copied().unwrap_or(u64::MAX)),
                "q {q}: {got} vs {truth}"
            );
            assert!(got > lower || truth == 0, "q {q}");
        }
    }

    #[test]
    fn values_above_ten_seconds_overflow_and_report_the_maximum() {
        let h = Histogram::of_nanos(&[1, 20_000_000_000]);
        assert_eq!(h.quantile(1.0), Duration::from_secs(20));
        assert_eq!(h.quantile(0.5), Duration::from_micros(1));
        let cum: Vec<_> = h.cumulative().collect();
        assert_eq!(cum.len(), BUCKETS);
        assert_eq!(cum[0], ("1e-06", 1));
        assert_eq!(cum[FINITE - 1], ("10", 1));
        assert_eq!(cum[FINITE], ("+Inf", 2));
    }

    #[test]
    fn since_subtracts_an_earlier_snapshot() {
        let early = Histogram::of_nanos(&[3_000, 3_000]);
        let late = Histogram::of_nanos(&[3_000, 3_000, 3_000, 400_000]);
        let d = late.since(&early);
        assert_eq!(d.count(), 2);
        assert_eq!(d.sum(), Duration::from_nanos(403_000));
        assert_eq!(d.quantile(1.0), Duration::from_micros(400));
        assert_eq!(early.since(&late).count(), 0);
    }

    #[test]
    fn empty_histogram_reads_zero() {
        let h = Histogram::default();
        assert_eq!(h.count(), 0);
        assert_eq!(h.quantile(0.99), Duration::ZERO);
        assert_eq!(h.sum(), Duration::ZERO);
    }

    #[test]
    fn recorders_merge_into_one_histogram() {
        let cal = crate::stamp::calibrate();
        let b = Buckets::new(cal);
        let (r1, r2) = (Recorder::default(), Recorder::default());
        let v = cal.ticks_of_nanos(3_000);
        r1.record(b.index(v), v, true);
        r2.record(b.index(v), v, false);
        let mut h = Histogram::default();
        r1.add_to(&mut h, cal);
        r2.add_to(&mut h, cal);
        assert_eq!(h.count(), 2);
        assert_eq!(h.quantile(0.5), Duration::from_micros(5).min(h.max()));
    }
}
