//! One facade over `std` and `loom`.
//!
//! Every atomic, cell, thread and futex the engine uses comes from here, so
//! the same protocol code runs in production and under the loom models in
//! `loom-tests/` (built with `RUSTFLAGS="--cfg loom"`). No other module
//! imports `std::sync::atomic` or `std::thread` directly.
//!
//! The work queues come from [`deque`]: crossbeam-deque in production, a
//! loom-mutex twin under loom. `parking_lot` locks (keys, the thread list,
//! the timer) stay real under loom: they are only held around code with no
//! loom operation inside, and the timer thread does not exist under loom.

pub(crate) mod deque;
mod futex;

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
