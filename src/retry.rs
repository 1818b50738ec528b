//! Retry policies and backoff.
//!
//! A policy says how many times a fallible task may run (`attempts` counts
//! runs, the first included) and how long to wait before each re-run. The
//! wait happens in the pool's timer, never in a worker: a backing-off task
//! holds no thread.
//!
//! A predicate ([`Retry::retry_if`]) may refuse a further attempt for an
//! error that retrying cannot fix: the task then ends `Failed` at once, with
//! no backoff wait, and becomes a dead letter (see `dead_letter`).

use std::error::Error;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

/// How a backoff delay is randomized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// Exactly the nominal delay.
    None,
    /// Half the nominal delay fixed, half uniformly random: never sooner
    /// than half the nominal delay. The default.
    #[default]
    Equal,
    /// Uniformly random between zero and the nominal delay.
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    Fixed,
    Exponential,
}

/// When and how often a failing task is run again.
///
/// ```
/// use runq::{Retry, Jitter};
/// use std::time::Duration;
/// let policy = Retry::exponential(5, Duration::from_millis(10))
///     .max_delay(Duration::from_millis(200))
///     .jitter(Jitter::Full);
/// assert_eq!(policy.attempts(), 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    attempts: u32,
    base: Duration,
    curve: Curve,
    max_delay: Option<Duration>,
    jitter: Jitter,
    retry_if: Option<RetryIf>,
}

type Predicate = dyn Fn(&(dyn Error + 'static)) -> bool + Send + Sync + 'static;

/// A [`Retry::retry_if`] predicate. Two policies are equal only if they
/// share the same predicate (a clone of one policy).
#[derive(Clone)]
struct RetryIf(Arc<Predicate>);

impl PartialEq for RetryIf {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for RetryIf {}

impl fmt::Debug for RetryIf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RetryIf(..)")
    }
}

impl Default for Retry {
    fn default() -> Self {
        Retry::none()
    }
}

impl Retry {
    /// Run once, never again.
    ///
    /// ```
    /// use runq::{Pool, Retry, Task, TaskError};
    /// let pool = Pool::builder().workers(1).build()?;
    /// let h = pool.submit_task(Task::fallible(|| Err::<u8, _>("no")).retry(Retry::none()))?;
    /// assert!(matches!(h.wait(), Err(TaskError::Failed { attempts: 1, .. })));
    /// assert_eq!(Retry::none().attempts(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn none() -> Retry {
        Retry {
            attempts: 1,
            base: Duration::ZERO,
            curve: Curve::Fixed,
            max_delay: None,
            jitter: Jitter::Equal,
            retry_if: None,
        }
    }

    /// Up to `attempts` runs with `delay` between them (0 is taken as 1).
    pub fn fixed(attempts: u32, delay: Duration) -> Retry {
        Retry {
            attempts: attempts.max(1),
            base: delay,
            curve: Curve::Fixed,
            ..Retry::none()
        }
    }

    /// Up to `attempts` runs; the delay before run `n + 1` is
    /// `base * 2^(n - 1)` (so `base`, `2 * base`, `4 * base`, ...).
    pub fn exponential(attempts: u32, base: Duration) -> Retry {
        Retry {
            attempts: attempts.max(1),
            base,
            curve: Curve::Exponential,
            ..Retry::none()
        }
    }

    /// Caps every nominal delay at `d`.
    pub fn max_delay(mut self, d: Duration) -> Retry {
        self.max_delay = Some(d);
        self
    }

    /// Picks the jitter mode (default [`Jitter::Equal`]).
    pub fn jitter(mut self, jitter: Jitter) -> Retry {
        self.jitter = jitter;
        self
    }

    /// Retries only errors for which `pred` returns true; on false (or if
    /// `pred` panics) the task ends [`TaskError::Failed`](crate::TaskError::Failed)
    /// at once, with no further attempt and no backoff wait. A panic in the
    /// task body reaches `pred` as an error whose text is the panic message.
    ///
    /// ```
    /// use runq::{Pool, Retry, Task, TaskError};
    /// use std::time::Duration;
    /// let pool = Pool::builder().workers(1).build()?;
    /// let h = pool.submit_task(
    ///     Task::fallible(|| Err::<(), _>("permanent: bad input"))
    ///         .retry(Retry::fixed(5, Duration::from_millis(1))
    ///             .retry_if(|e| !e.to_string().starts_with("permanent"))),
    /// )?;
    /// assert!(matches!(h.wait(), Err(TaskError::Failed { attempts: 1, .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn retry_if<P>(mut self, pred: P) -> Retry
    where
        P: Fn(&(dyn Error + 'static)) -> bool + Send + Sync + 'static,
    {
        self.retry_if = Some(RetryIf(Arc::new(pred)));
        self
    }

    /// Whether `error` may be retried: true without a predicate; false if
    /// the predicate says so or panics.
    pub(crate) fn allows(&self, error: &(dyn Error + 'static)) -> bool {
        match &self.retry_if {
            None => true,
            Some(p) => catch_unwind(AssertUnwindSafe(|| (p.0)(error))).unwrap_or(false),
        }
    }

    /// Whether a predicate is set (a panic then needs an error value).
    pub(crate) fn has_predicate(&self) -> bool {
        self.retry_if.is_some()
    }

    /// How many runs the policy allows, the first included.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The nominal (un-jittered) delay after failed run number `run` (1-based).
    pub fn nominal_delay(&self, run: u32) -> Duration {
        let d = match self.curve {
            Curve::Fixed => self.base,
            Curve::Exponential => {
                let shift = run.saturating_sub(1).min(31);
                self.base.saturating_mul(1u32 << shift)
            }
        };
        match self.max_delay {
            Some(cap) => d.min(cap),
            None => d,
        }
    }

    /// The delay to actually wait after failed run `run`, jitter applied.
    pub(crate) fn delay_after(&self, run: u32) -> Duration {
        let nominal = self.nominal_delay(run);
        match self.jitter {
            Jitter::None => nominal,
            Jitter::Equal => {
                let half = nominal / 2;
                half + random_upto(nominal - half)
            }
            Jitter::Full => random_upto(nominal),
        }
    }
}

/// A uniformly random duration in `[0, max]`.
fn random_upto(max: Duration) -> Duration {
    let nanos = max.as_nanos().min(u64::MAX as u128) as u64;
    let r = crate::scheduler::random_u64();
    Duration::from_nanos(match nanos.checked_add(1) {
        Some(range) => r % range,
        None => r, // [0, u64::MAX]: every value
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_range_even_at_the_largest_delay() {
        for max in [Duration::ZERO, Duration::from_nanos(1), Duration::MAX] {
            for _ in 0..100 {
                assert!(random_upto(max) <= max);
            }
        }
        for jitter in [Jitter::None, Jitter::Equal, Jitter::Full] {
            let p = Retry::exponential(u32::MAX, Duration::MAX).jitter(jitter);
            for run in [1, 2, 40, u32::MAX] {
                assert!(p.delay_after(run) <= p.nominal_delay(run));
            }
        }
    }

    #[test]
    fn exponential_doubles_and_caps() {
        let p =
            Retry::exponential(6, Duration::from_millis(10)).max_delay(Duration::from_millis(50));
        let got: Vec<_> = (1..=5).map(|n| p.nominal_delay(n).as_millis()).collect();
        assert_eq!(got, vec![10, 20, 40, 50, 50]);
    }

    #[test]
    fn equal_jitter_never_below_half() {
        let p = Retry::fixed(3, Duration::from_millis(10));
        for _ in 0..1000 {
            let d = p.delay_after(1);
            assert!(
                d >= Duration::from_millis(5) && d <= Duration::from_millis(10),
                "{d:?}"
            );
        }
    }

    #[test]
    fn full_jitter_stays_within_nominal() {
        let p = Retry::fixed(3, Duration::from_millis(10)).jitter(Jitter::Full);
        for _ in 0..1000 {
            assert!(p.delay_after(1) <= Duration::from_millis(10));
        }
    }

    #[test]
    fn zero_attempts_means_one_run() {
        assert_eq!(Retry::fixed(0, Duration::ZERO).attempts(), 1);
        assert_eq!(Retry::exponential(0, Duration::ZERO).attempts(), 1);
    }

    #[test]
    fn huge_exponent_saturates() {
        let p = Retry::exponential(100, Duration::from_secs(1));
        assert!(p.nominal_delay(99) >= Duration::from_secs(1 << 30));
    }
}
