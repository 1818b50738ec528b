//! One facade over `std` and `loom`.
//!
//! Every atomic, cell, thread and futex the engine uses comes from here, so
//! the same protocol code runs in production and under the loom models in
//! `loom-tests/` (built with `RUSTFLAGS="--cfg loom"`). No other module
//! imports `std::sync::atomic` or `std::thread` directly.
//!
//! [`current_cpu`] says which CPU the caller runs on (a hint; a fixed value
//! under loom and Miri).
//!
//! The work queues come from [`deque`]: the workers' deques are
//! crossbeam-deque's in production, a loom-mutex twin under loom; the
//! lanes' FIFO queue is runq's own ring, [`injector`] (built on this
//! facade, and under the scheduler's loom models replaced by a twin too).
//!
//! The locks off the hot path (keys, the thread list, the timer, a scope's
//! panic slot) are [`Mutex`] and [`Condvar`] below: std's futex-based ones, which stay real under loom (they are only
//! held around code with no loom operation inside, and the timer thread does
//! not exist under loom). They are std's rather than parking_lot's because
//! parking_lot's contended path casts integers to pointers, which Miri's
//! strict-provenance mode (run in CI) rejects.

mod cpu;
pub(crate) mod deque;
mod event_count;
mod futex;
pub(crate) mod injector;

pub(crate) use cpu::current_cpu;
pub(crate) use event_count::EventCount;
pub(crate) use futex::Futex;
#[cfg(loom)]
pub(crate) use futex::SPURIOUS;

#[cfg(not(loom))]
mod imp {
    #[allow(unused_imports)]
    pub(crate) use std::sync::atomic::{
        fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };
    pub(crate) use std::sync::Arc;
    pub(crate) use std::sync::{Mutex as LockImpl, MutexGuard as LockGuard};
    pub(crate) use std::thread;
    pub(crate) use std::thread_local;

    /// `UnsafeCell` with loom's closure-based access API.
    #[derive(Debug, Default)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(value))
        }

        /// Runs `f` with a shared raw pointer to the value.
        #[inline]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Runs `f` with a unique raw pointer to the value.
        #[inline]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }

        /// Safe access through `&mut self`.
        #[inline]
        pub(crate) fn get_mut(&mut self) -> &mut T {
            self.0.get_mut()
        }
    }
}

#[cfg(loom)]
mod imp {
    #[allow(unused_imports)]
    pub(crate) use loom::sync::atomic::{
        fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };
    pub(crate) use loom::sync::Arc;
    pub(crate) use loom::sync::{Mutex as LockImpl, MutexGuard as LockGuard};
    pub(crate) use loom::thread;
    pub(crate) use loom::thread_local;

    /// loom's `UnsafeCell`, which checks every access against the model.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(loom::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) fn new(value: T) -> Self {
            UnsafeCell(loom::cell::UnsafeCell::new(value))
        }

        #[inline]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            self.0.with(f)
        }

        #[inline]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            self.0.with_mut(f)
        }

        #[inline]
        pub(crate) fn get_mut(&mut self) -> &mut T {
            // SAFETY: `&mut self` proves no other access exists.
            self.0.with_mut(|p| unsafe { &mut *p })
        }
    }
}

pub(crate) use imp::*;

/// Atomics for statistics only: counters that no protocol reads to decide
/// anything (Relaxed increments, summed for `metrics()`). They stay std
/// atomics under loom so the models do not explore interleavings of
/// bookkeeping that cannot affect correctness.
pub(crate) mod stat {
    pub(crate) use std::sync::atomic::AtomicU64;
}

/// Atomics for the reference counts of task cells (`cell`): std atomics
/// under loom too, as the cells' counts were when they were `std::sync::Arc`s
/// (loom's `Arc` cannot point to a trait object). The models check the
/// protocols on the state word; a count only decides who frees the memory,
/// with the same orderings as `Arc`.
pub(crate) mod refs {
    pub(crate) use std::sync::atomic::AtomicU32;
}

/// A mutex that ignores poisoning: every critical section in runq leaves its
/// data consistent (no user code runs inside one), so a panic elsewhere does
/// not make the data suspect.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    pub(crate) const fn new(value: T) -> Self {
        Mutex(std::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A mutex that loom models (std's outside loom), for a lock held around
/// loom operations: the crew's registry clones the pool's `Arc` and records
/// thread handles under it (see `scheduler/elastic.rs`). Ignores poisoning
/// like [`Mutex`].
pub(crate) struct Lock<T>(imp::LockImpl<T>);

impl<T> Lock<T> {
    pub(crate) fn new(value: T) -> Self {
        Lock(imp::LockImpl::new(value))
    }

    pub(crate) fn lock(&self) -> imp::LockGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A condition variable for [`Mutex`], ignoring poisoning likewise.
#[derive(Debug, Default)]
pub(crate) struct Condvar(std::sync::Condvar);

impl Condvar {
    pub(crate) const fn new() -> Self {
        Condvar(std::sync::Condvar::new())
    }

    pub(crate) fn wait<'a, T>(
        &self,
        guard: std::sync::MutexGuard<'a, T>,
    ) -> std::sync::MutexGuard<'a, T> {
        self.0
            .wait(guard)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn wait_until<'a, T>(
        &self,
        guard: std::sync::MutexGuard<'a, T>,
        deadline: std::time::Instant,
    ) -> std::sync::MutexGuard<'a, T> {
        let timeout = deadline.saturating_duration_since(std::time::Instant::now());
        self.0
            .wait_timeout(guard, timeout)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0)
    }

    pub(crate) fn notify_one(&self) {
        self.0.notify_one();
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}
