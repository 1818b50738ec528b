//! The engine room: the state all workers share, and the order a worker
//! looks for work.
//!
//! A worker looks, in order: the High lane (see [`lanes`] for the starvation
//! bounds), its own deque, the Normal injector (stealing a batch into its
//! deque), the other workers' deques (starting at a random one), the Low
//! lane; then it spins briefly, re-searching; then it parks on the
//! [`sleep`] event count.
//!
//! # Lifecycle word
//!
//! `Lifecycle::state` counts the tasks that are accepted and not yet
//! terminal, times two, with bit 0 = CLOSED. A submitter adds two *before*
//! checking CLOSED (and takes them back if it was set), so once `shutdown`
//! has set CLOSED, every accepted task is already counted and no new one can
//! slip in. The pool is finished when the word equals CLOSED exactly: closed
//! and nothing in flight. Workers and the timer exit then, and whoever moves
//! the word to that value wakes them all. The loom model
//! `shutdown_racing_submit` checks this.

pub(crate) mod lanes;
pub(crate) mod sleep;
pub(crate) mod worker;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc as StdArc;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::builder::WhenFull;
use crate::metrics::{Counters, Event, Stats};
use crate::sync::{thread, AtomicBool, AtomicUsize, Ordering};
use crate::task::{Job, Priority};
use crate::timer::Timer;
use lanes::{Admission, Lanes};
use sleep::EventCount;
use worker::WorkerThread;

/// What the queues carry.
pub(crate) enum JobRef {
    /// A submitted task: one attempt of it.
    Task(StdArc<dyn Job>),
    /// A scope spawn or a cold `join`: a boxed closure whose borrows are
    /// kept alive by a caller that waits for it (see `scope.rs`, `join.rs`).
    Heap(Box<dyn FnOnce(&Shared) + Send + 'static>),
    /// The second half of a `join` on a worker, living on that worker's stack.
    Stack(worker::StackRef),
}

/// What every worker, handle and pool clone shares.
pub(crate) struct Shared {
    pub(crate) lanes: Lanes,
    pub(crate) sleep: EventCount,
    pub(crate) stats: Stats,
    pub(crate) admission: Admission,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) timer: Timer,
    pub(crate) keys: Mutex<HashSet<String>>,
    pub(crate) threads: Mutex<Vec<thread::JoinHandle<()>>>,
    pub(crate) workers: usize,
    pub(crate) pinned: AtomicUsize,
    pub(crate) when_full: WhenFull,
    pub(crate) name: String,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The counter block of the calling thread.
    #[inline]
    pub(crate) fn stats_here(&self) -> &Counters {
        self.stats
            .block(WorkerThread::current_of(self).map(|w| w.index))
    }

    /// Wakes one sleeping worker, if any.
    #[inline]
    pub(crate) fn notify_one(&self) {
        if self.sleep.notify_one() {
            self.stats_here().add(Event::Wake, 1);
        }
    }

    /// Wakes every sleeping worker (and helping waiter).
    pub(crate) fn notify_all(&self) {
        if self.sleep.notify_all() {
            self.stats_here().add(Event::Wake, 1);
        }
    }

    /// Queues a task that is ready to run. From one of this pool's workers,
    /// Normal work goes to that worker's deque; otherwise to the lane's
    /// injector.
    pub(crate) fn push(&self, job: StdArc<dyn Job>, priority: Priority) {
        let job = JobRef::Task(job);
        match priority {
            Priority::High => self.lanes.high.push(job),
            Priority::Low => self.lanes.low.push(job),
            Priority::Normal => match WorkerThread::current_of(self) {
                Some(w) => w.push_local(job),
                None => self.lanes.normal.push(job),
            },
        }
        self.notify_one();
    }

    /// Queues a task now or, after `delay`, through the timer. Under
    /// `shutdown_now` the timer refuses and the task is resolved Cancelled.
    pub(crate) fn schedule(&self, job: StdArc<dyn Job>, delay: Duration, priority: Priority) {
        if delay.is_zero() {
            return self.push(job, priority);
        }
        if let Err(job) = self.timer.fire_after(self, delay, job) {
            job.abort(self, crate::task::Abort::Cancelled);
        }
    }

    pub(crate) fn release_key(&self, key: &str) {
        self.keys.lock().remove(key);
    }

    /// A task reached its terminal state.
    #[inline]
    pub(crate) fn task_finished(&self) {
        if self.lifecycle.leave(1) {
            self.on_finished();
        }
    }

    /// The pool is closed and nothing is in flight: wake everyone who waits
    /// for that (workers, the timer, blocked submitters).
    pub(crate) fn on_finished(&self) {
        self.notify_all();
        self.timer.kick();
        self.admission.wake_all();
    }

    #[inline]
    pub(crate) fn stopping_now(&self) -> bool {
        self.lifecycle.now.load(Ordering::Acquire)
    }
}

/// In-flight count and the CLOSED bit; see the module docs.
pub(crate) struct Lifecycle {
    state: CachePadded<AtomicUsize>,
    /// `shutdown_now` was called: queued tasks are cancelled, not run.
    pub(crate) now: AtomicBool,
}

const CLOSED: usize = 1;
const ONE: usize = 2;

impl Lifecycle {
    pub(crate) fn new() -> Lifecycle {
        Lifecycle {
            state: CachePadded::new(AtomicUsize::new(0)),
            now: AtomicBool::new(false),
        }
    }

    /// Counts `n` tasks in, unless the pool is closed.
    #[inline]
    pub(crate) fn try_enter(&self, n: usize) -> Result<(), bool> {
        let prev = self.state.fetch_add(ONE * n, Ordering::SeqCst);
        if prev & CLOSED != 0 {
            // Err(true): our withdrawal finished the pool; the caller wakes.
            return Err(self.leave(n));
        }
        Ok(())
    }

    /// Counts `n` tasks out. True when this made the pool finished.
    #[inline]
    pub(crate) fn leave(&self, n: usize) -> bool {
        let prev = self.state.fetch_sub(ONE * n, Ordering::SeqCst);
        prev - ONE * n == CLOSED
    }

    /// Closes intake. True when nothing was in flight (already finished).
    pub(crate) fn close(&self) -> bool {
        let prev = self.state.fetch_or(CLOSED, Ordering::SeqCst);
        prev == 0 || prev == CLOSED
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::SeqCst) & CLOSED != 0
    }

    /// Closed and nothing in flight.
    pub(crate) fn is_finished(&self) -> bool {
        self.state.load(Ordering::SeqCst) == CLOSED
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.state.load(Ordering::Relaxed) / ONE
    }
}

/// A fast thread-local random number (xorshift64*), for steal victims and
/// jitter. Not for anything that needs unpredictability.
pub(crate) fn random_u64() -> u64 {
    crate::sync::thread_local!(
        // loom's `thread_local!` takes no `const` initializer.
        #[allow(clippy::missing_const_for_thread_local)]
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new(0));
    STATE.with(|s| {
        let mut x = s.get();
        if x == 0 && cfg!(loom) {
            // loom replays executions: the sequence must be the same each time.
            x = 0x9E37_79B9_7F4A_7C15;
        } else if x == 0 {
            // Seed from the thread's stack address and the clock.
            let local = 0u8;
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            x = (&local as *const u8 as u64) ^ nanos ^ 0x9E37_79B9_7F4A_7C15;
            if x == 0 {
                x = 1;
            }
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}
