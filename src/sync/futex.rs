//! The futex: a 32-bit atomic word that threads can sleep on.
//!
//! `wait(expected)` sleeps only while the word still holds `expected`, and
//! may return spuriously: every caller re-checks its condition in a loop.
//! `wake_one`/`wake_all` wake sleepers of this word; a wake with no sleeper
//! is a cheap syscall, so callers only wake after learning (from their own
//! protocol bits) that somebody announced a sleep.
//!
//! On Linux this is the `futex(2)` syscall with the private flag. Elsewhere
//! the `atomic-wait` crate provides the untimed calls and timed waits poll in
//! short sleeps. Under loom the twin below models the same contract with a
//! loom mutex and condvar (the value check and the sleep are atomic with
//! respect to a wake, as the kernel guarantees).

#[cfg(not(loom))]
mod imp {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    /// A 32-bit word threads can sleep on.
    #[derive(Debug, Default)]
    #[repr(transparent)]
    pub(crate) struct Futex(AtomicU32);

    impl std::ops::Deref for Futex {
        type Target = AtomicU32;
        #[inline]
        fn deref(&self) -> &AtomicU32 {
            &self.0
        }
    }

    impl Futex {
        pub(crate) const fn new(value: u32) -> Self {
            Futex(AtomicU32::new(value))
        }

        /// Sleeps while the word equals `expected` (spurious returns allowed).
        pub(crate) fn wait(&self, expected: u32) {
            sys::wait(&self.0, expected, None);
        }

        /// Sleeps while the word equals `expected`, until `deadline` at the latest.
        pub(crate) fn wait_until(&self, expected: u32, deadline: Instant) {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            sys::wait(&self.0, expected, Some(deadline - now));
        }

        /// Wakes one thread sleeping on this word.
        pub(crate) fn wake_one(&self) {
            sys::wake(&self.0, 1);
        }

        /// Wakes every thread sleeping on this word.
        pub(crate) fn wake_all(&self) {
            sys::wake(&self.0, i32::MAX);
        }

        /// Loads the word (shorthand used by tests).
        #[allow(dead_code)]
        pub(crate) fn value(&self) -> u32 {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[cfg(target_os = "linux")]
    mod sys {
        use super::*;

        pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
            let ts = timeout.map(|d| libc::timespec {
                tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            });
            let ts_ptr = ts
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: [1] `word` is a live `AtomicU32`, whose address the
            // kernel only reads atomically; [2] `ts_ptr` is null or points to
            // `ts`, which outlives the call. EINTR, EAGAIN and ETIMEDOUT are
            // all "return and let the caller re-check".
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    word.as_ptr(),
                    libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                    expected,
                    ts_ptr,
                );
            }
        }

        pub(super) fn wake(word: &AtomicU32, count: i32) {
            // SAFETY: FUTEX_WAKE only uses the address as a key; `word` is live.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    word.as_ptr(),
                    libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                    count,
                );
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    mod sys {
        use super::*;

        /// Longest single sleep of the timed fallback.
        const POLL: Duration = Duration::from_millis(1);

        pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
            match timeout {
                None => atomic_wait::wait(word, expected),
                Some(d) => {
                    let end = Instant::now() + d;
                    while word.load(Ordering::Acquire) == expected && Instant::now() < end {
                        std::thread::sleep(POLL.min(end.saturating_duration_since(Instant::now())));
                    }
                }
            }
        }

        pub(super) fn wake(word: &AtomicU32, count: i32) {
            if count == 1 {
                atomic_wait::wake_one(word);
            } else {
                atomic_wait::wake_all(word);
            }
        }
    }
}

#[cfg(loom)]
mod imp {
    use loom::sync::atomic::{AtomicU32, Ordering};
    use loom::sync::{Condvar, Mutex};
    use std::time::Instant;

    /// loom twin of the futex: the value check happens under `lock`, and a
    /// waker takes `lock` before notifying, so a store followed by a wake
    /// can never slip between a waiter's check and its sleep.
    #[derive(Debug)]
    pub(crate) struct Futex {
        word: AtomicU32,
        lock: Mutex<()>,
        cond: Condvar,
        spurious_turn: std::sync::atomic::AtomicBool,
    }

    // When set, every other `wait` returns without sleeping: the models run
    // once without and once with spurious wake-ups. (Per OS thread: loom runs
    // a model's threads as coroutines on the thread of the test that started it.)
    std::thread_local!(pub(crate) static SPURIOUS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });

    impl std::ops::Deref for Futex {
        type Target = AtomicU32;
        fn deref(&self) -> &AtomicU32 {
            &self.word
        }
    }

    impl Default for Futex {
        fn default() -> Self {
            Futex::new(0)
        }
    }

    impl Futex {
        pub(crate) fn new(value: u32) -> Self {
            Futex {
                word: AtomicU32::new(value),
                lock: Mutex::new(()),
                cond: Condvar::new(),
                spurious_turn: std::sync::atomic::AtomicBool::new(false),
            }
        }

        pub(crate) fn wait(&self, expected: u32) {
            if SPURIOUS.with(std::cell::Cell::get)
                && self
                    .spurious_turn
                    .fetch_xor(true, std::sync::atomic::Ordering::Relaxed)
            {
                // Every other wait returns at once, as a futex may.
                loom::thread::yield_now();
                return;
            }
            let guard = self.lock.lock().unwrap();
            // The kernel compares with the word's current value; a loom load
            // may return an older one, so read it with a read-modify-write,
            // which always sees the latest value.
            if self.word.fetch_add(0, Ordering::SeqCst) != expected {
                return;
            }
            drop(self.cond.wait(guard).unwrap());
        }

        /// loom has no clock: a timed wait is a spurious return.
        pub(crate) fn wait_until(&self, _expected: u32, _deadline: Instant) {
            loom::thread::yield_now();
        }

        pub(crate) fn wake_one(&self) {
            let _guard = self.lock.lock().unwrap();
            self.cond.notify_one();
        }

        pub(crate) fn wake_all(&self) {
            let _guard = self.lock.lock().unwrap();
            self.cond.notify_all();
        }

        #[allow(dead_code)]
        pub(crate) fn value(&self) -> u32 {
            self.word.load(Ordering::SeqCst)
        }
    }
}

pub(crate) use imp::Futex;
#[cfg(loom)]
pub(crate) use imp::SPURIOUS;
