//! The pool's clock: the one place the engine reads the time.
//!
//! Every time stamp the task lifecycle uses (when a delayed task or a retry
//! comes due, when a deadline passes, whether a dequeued task is past its
//! deadline) comes from [`Clock::now`]. A pool with worker threads reads the
//! real monotonic clock; an inline or manual pool (see `manual.rs`) reads a
//! virtual one that only moves when its executor moves it, so a ten-minute
//! backoff costs nothing and a test can say exactly when a task comes due.
//! Nothing else in the lifecycle knows which kind of pool it serves.
//!
//! Virtual time is an offset from the [`Instant`] the pool was built at, so
//! both kinds hand out plain `Instant`s and the timer's heap, the tasks'
//! deadlines and their comparisons are the same code for both. The offset
//! only grows.
//!
//! Handle timeouts (`Handle::wait_timeout`) are about the caller's patience,
//! not the task's schedule: they stay on the real clock in every mode.

use std::time::{Duration, Instant};

use crate::sync::Mutex;

/// Real or virtual time; see the module docs.
#[derive(Debug)]
pub(crate) struct Clock {
    /// `None`: the real clock.
    virtual_time: Option<VirtualTime>,
}

#[derive(Debug)]
struct VirtualTime {
    /// The instant virtual time started from.
    start: Instant,
    /// Virtual time elapsed since `start`. A mutex, not an atomic: only the
    /// test-mode executors read it, off any hot path, and it keeps loom out
    /// of the picture.
    elapsed: Mutex<Duration>,
}

impl Clock {
    /// The real monotonic clock.
    pub(crate) fn real() -> Clock {
        Clock { virtual_time: None }
    }

    /// A virtual clock standing at zero; it moves only by [`advance_to`](Self::advance_to).
    pub(crate) fn virtual_clock() -> Clock {
        Clock {
            virtual_time: Some(VirtualTime {
                start: Instant::now(),
                elapsed: Mutex::new(Duration::ZERO),
            }),
        }
    }

    /// The current time.
    #[inline]
    pub(crate) fn now(&self) -> Instant {
        match &self.virtual_time {
            None => Instant::now(),
            Some(v) => v.start + *v.elapsed.lock(),
        }
    }

    /// Virtual time elapsed since the clock was made (zero for the real clock).
    pub(crate) fn elapsed(&self) -> Duration {
        self.virtual_time
            .as_ref()
            .map_or(Duration::ZERO, |v| *v.elapsed.lock())
    }

    /// Moves a virtual clock forward to `t` (never back). No effect on the
    /// real clock.
    pub(crate) fn advance_to(&self, t: Instant) {
        if let Some(v) = &self.virtual_time {
            let target = t.saturating_duration_since(v.start);
            let mut elapsed = v.elapsed.lock();
            if target > *elapsed {
                *elapsed = target;
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn virtual_time_moves_only_forward_and_only_when_told() {
        let clock = Clock::virtual_clock();
        let t0 = clock.now();
        assert_eq!(clock.now(), t0);
        clock.advance_to(t0 + Duration::from_secs(30));
        assert_eq!(clock.now(), t0 + Duration::from_secs(30));
        assert_eq!(clock.elapsed(), Duration::from_secs(30));
        clock.advance_to(t0 + Duration::from_secs(1));
        assert_eq!(clock.elapsed(), Duration::from_secs(30));
    }

    #[test]
    fn the_real_clock_ignores_advances() {
        let clock = Clock::real();
        let before = Instant::now();
        clock.advance_to(before + Duration::from_secs(3600));
        assert!(clock.now() < before + Duration::from_secs(3600));
        assert_eq!(clock.elapsed(), Duration::ZERO);
    }
}
