//! # runq
//!
//! A lock-free, work-stealing engine that runs CPU-bound tasks in the
//! background for latency-sensitive programs. Hand it a closure and get
//! control back at once; the task runs on a (pinned) worker thread, and its
//! outcome comes back through a [`Handle`] you can wait on, poll, `.await`,
//! or give a callback.
//!
//! ```
//! use runq::{Pool, Task, Priority, Retry, TaskError, SubmitError};
//! use std::time::Duration;
//!
//! let pool = Pool::builder().workers(2).build()?;
//!
//! // Fire and forget, or keep a handle.
//! pool.spawn(|| { /* background work */ })?;
//! let answer = pool.submit(|| 40 + 2)?;
//! assert_eq!(answer.wait()?, 42);
//!
//! // Options: priority, retries with backoff, delay, deadline, key, callback.
//! let (outcome_tx, outcome_rx) = std::sync::mpsc::channel();
//! let h = pool.submit_task(
//!     Task::fallible({
//!         let mut calls = 0;
//!         move || { calls += 1; if calls < 2 { Err("flaky") } else { Ok(calls) } }
//!     })
//!     .priority(Priority::High)
//!     .retry(Retry::exponential(3, Duration::from_millis(1)))
//!     .deadline(Duration::from_secs(600))
//!     .key("job-17")
//!     .on_complete(move |r| outcome_tx.send(r.is_ok()).unwrap()),
//! )?;
//! // While it is pending, the key is taken.
//! let dup = pool.submit_task(Task::new(|| 0).key("job-17"));
//! assert!(matches!(dup, Err(SubmitError::Duplicate(_))) || h.is_finished());
//! assert_eq!(h.wait()?, 2);
//! // The callback ran before `wait` returned (a panic in it would only be
//! // counted, so its verdict is sent out and checked here).
//! assert_eq!(outcome_rx.try_recv(), Ok(true));
//!
//! // Panics are caught per task.
//! let boom = pool.submit(|| -> u32 { panic!("boom") })?;
//! assert!(matches!(boom.wait(), Err(TaskError::Panicked(_))));
//!
//! // Fork-join and scopes, rayon-style.
//! let (a, b) = pool.join(|| 1, || 2);
//! assert_eq!(a + b, 3);
//!
//! let report = pool.shutdown();
//! assert_eq!(report.submitted, report.completed + report.failed + report.cancelled + report.expired);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Guarantees
//!
//! - **Every accepted task ends in exactly one terminal state**
//!   (`Succeeded`, `Failed`, `Cancelled`, `Expired`), its callback runs
//!   exactly once, and a refused submission never runs.
//! - **Ordering.** Tasks submitted from outside the pool at one priority
//!   start in submission order on a one-worker pool; with N workers, up to
//!   the N-way parallelism (see the `scheduler::lanes` docs).
//! - **Priorities.** High before Normal before Low, with bounded starvation:
//!   after 16 High tasks in a row a worker takes a waiting Normal one, and
//!   every 32nd search takes a waiting Low task first.
//! - **Fair intake.** Tasks that keep spawning from inside the pool cannot
//!   starve outside submissions: after each task of its own, a worker takes
//!   a waiting outside submission first.
//! - **Panics** never take a worker down: the task resolves
//!   [`TaskError::Panicked`] and [`Metrics::panicked`] counts it.
//! - **No deadlock on nested waits.** [`Handle::wait`] on a worker runs other
//!   jobs meanwhile, so submit-then-wait inside a task works on one worker.
//! - **Shutdown loses nothing.** [`Pool::shutdown`] runs everything accepted
//!   (delayed tasks and pending retries too); [`Pool::shutdown_now`] resolves
//!   what has not started as `Cancelled`. Dropping the last [`Pool`] clone
//!   is `shutdown()`, and never hangs, even on a worker thread.
//! - **Bad input is a typed error**: [`BuildError`], [`SubmitError`],
//!   [`TaskError`], never a panic or a hang.
//!
//! ## Testing code that uses a pool
//!
//! Two test modes run the same engine with no worker thread, on a virtual
//! clock: [`Builder::inline`] (every submission has finished when `submit`
//! returns; delays and backoffs cost no real time) and
//! [`Builder::build_manual`] (nothing runs until the [`ManualDriver`] says
//! so, and the clock moves only by [`ManualDriver::advance`]), so a test
//! can assert exactly what has run at each virtual instant.
//!
//! ```
//! use runq::{Pool, Task};
//! use std::time::Duration;
//!
//! let (pool, driver) = Pool::builder().build_manual()?;
//! let h = pool.submit_task(Task::new(|| "done").delay(Duration::from_secs(30)))?;
//! driver.advance(Duration::from_secs(30));
//! assert_eq!(driver.run_until_idle(), 1);
//! assert_eq!(h.wait()?, "done");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## What it costs
//!
//! [`Pool::spawn`] allocates nothing once the pool has run a few tasks: its
//! cell (the closure and two words) comes from a per-thread free list of
//! recycled 128-byte blocks, so a closure with up to 104 bytes of captures
//! is free; a larger one is boxed (one allocation). A task with a handle
//! ([`Pool::submit`], [`Pool::submit_task`]) keeps its closure, header and
//! result slot together in one cell, which comes from recycled 256-byte
//! blocks when it fits: with a small output type, up to 144 bytes of
//! captures (64 bytes always fit), so a steady stream of such submissions
//! allocates nothing; a larger cell takes one heap allocation. Each option
//! adds its own: one for a delay, deadline, callback, guard or retry
//! policy, two for a name, three for a key (the README's table, checked by
//! `tests/alloc_counts.rs`). The only shared atomic a
//! spawn from a task pays is one locked add on its own thread's counter:
//! the spawned task goes into its worker's "next task" slot, with no queue
//! operation and no wake-up. From outside the pool, a spawn adds a queue
//! push and a fence and a load to see whether a worker sleeps (and one
//! futex wake only if one does). A waiter outside the pool is woken by one
//! futex wake, and a completion with no waiter makes no syscall. Idle
//! workers spin for a few microseconds, then sleep on a futex and use no
//! CPU.

#![deny(missing_docs, unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations, unreachable_pub)]

mod builder;
mod cell;
mod clock;
mod dead_letter;
mod error;
mod handle;
mod histogram;
mod join;
mod latch;
mod manual;
mod metrics;
mod pool;
mod prometheus;
mod recycle;
mod retry;
mod scheduler;
mod scope;
mod slot;
mod spawned;
mod stamp;
mod sync;
mod task;
mod timer;
mod trace;
mod unwind;

#[cfg(all(test, not(loom)))]
mod unit_tests;

pub use builder::{Builder, WhenFull, MAX_WORKERS};
pub use dead_letter::DeadLetter;
pub use error::{BuildError, SubmitError, TaskError, TrySubmitError};
pub use handle::Handle;
pub use histogram::Histogram;
pub use join::join;
pub use manual::ManualDriver;
pub use metrics::{Metrics, ShutdownReport};
pub use pool::Pool;
pub use retry::{Jitter, Retry};
pub use scheduler::elastic::block_in_place;
pub use scope::Scope;
pub use task::{is_cancelled, Priority, Status, Task, TaskId};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The index of the worker running the calling code, if it runs on a pool's
/// worker thread.
///
/// ```
/// let pool = runq::Pool::builder().workers(2).build()?;
/// assert_eq!(runq::current_worker(), None); // not on a worker
/// let index = pool.submit(runq::current_worker)?.wait()?;
/// assert!(matches!(index, Some(0 | 1)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn current_worker() -> Option<usize> {
    scheduler::worker::WorkerThread::current().map(|w| w.index)
}

/// Hooks for the loom models in `loom-tests/`; only built with `--cfg loom`.
#[cfg(loom)]
#[doc(hidden)]
pub mod __loom {
    /// Makes every other futex wait return at once without a wake-up.
    pub fn spurious_wakeups(on: bool) {
        crate::sync::SPURIOUS.with(|s| s.set(on));
    }

    /// Makes `Builder::build` wait for every worker to start, as it always
    /// does outside loom. Off by default under loom: the start latch adds a
    /// three-thread rendezvous to every model, so one model checks it alone.
    pub fn wait_for_start(on: bool) {
        crate::builder::WAIT_FOR_START.with(|s| s.set(on));
    }

    /// The lanes' FIFO queue (`sync/injector.rs`), holding numbers,
    /// for models of its own.
    pub struct Injector(crate::sync::injector::Injector<usize>);

    impl std::fmt::Debug for Injector {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Injector").finish_non_exhaustive()
        }
    }

    impl Injector {
        /// A queue whose ring holds `capacity` values before it overflows.
        pub fn with_capacity(capacity: usize) -> Injector {
            Injector(crate::sync::injector::Injector::with_capacity(capacity))
        }

        /// Appends `value`.
        pub fn push(&self, value: usize) {
            self.0.push(value);
        }

        /// Takes the oldest value.
        pub fn pop(&self) -> Option<usize> {
            self.0.pop()
        }

        /// Is the queue empty?
        pub fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
    }

    /// Threads of `pool` not joined yet, and starts between reserving a
    /// slot and recording their thread: both 0 once a shutdown returned.
    pub fn unjoined(pool: &crate::Pool) -> usize {
        pool.shared().crew.unjoined()
    }
}
