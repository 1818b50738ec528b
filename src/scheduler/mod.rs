//! The engine room: the state all workers share, and the order a worker
//! looks for work.
//!
//! A worker looks, in order: the High lane (see [`lanes`] for the starvation
//! bounds), its own deque, the Normal injector (stealing a batch into its
//! deque), the other workers' deques (starting at a random one), the Low
//! lane; then it spins briefly, re-searching; then it parks in the
//! [`sleep`] protocol, in its own futex slot.
//!
//! # Lifecycle: closing and draining
//!
//! A pool is *closed* once `shutdown` ran, and *finished* when it is closed
//! and no accepted task is still in flight. Workers and the timer exit then.
//! In-flight tasks are not kept in one shared counter (the submitter and the
//! worker would bounce its cache line on every task); they are the
//! difference of the per-thread `Submitted` counts and the per-thread
//! terminal counts of [`Stats`]:
//!
//! - a submitter adds to its own `Submitted` with a SeqCst read-modify-write
//!   *before* it loads `closed` (SeqCst), and takes the count back itself if
//!   it was closed;
//! - `close` stores `closed`, then fences. Every submission that saw the
//!   pool open counted itself before that fence in the SeqCst order, so sums
//!   read after it include every accepted task; later increments are only
//!   the refused ones, taken back on the same counter;
//! - `is_finished` reads all terminal counts first, then all `Submitted`
//!   counts. Terminal counts only grow, and after `close` the `Submitted`
//!   sums only exceed their final value, so the difference it computes is
//!   never below the true number in flight: zero means finished;
//! - whoever ends a task (its terminal count, a SeqCst read-modify-write,
//!   then a SeqCst load of `closed`) and sees the pool closed checks
//!   `is_finished` and wakes everyone. A
//!   worker about to park announces itself (`sleepers`), then checks
//!   `is_finished`: one of the two sees the other (the sleep module's
//!   argument). The loom model `shutdown_racing_submit` checks this.
//!
//! Why no fence sits between a count and the `closed` load: both are SeqCst
//! operations, so they keep their program order in the single SeqCst order
//! S. A load of `closed` that reads `false` precedes `close`'s
//! read-modify-write in S, so the count precedes it too, and so precedes
//! `close`'s fence; a load sequenced after a SeqCst fence sees every SeqCst
//! write that precedes the fence in S (C++20 [atomics.order]). On x86 the
//! locked add is itself the full barrier; the fence that stood here was a
//! second `mfence` per submission and per completion. Under loom, where
//! SeqCst loads are modelled as Acquire, `is_closed` is a read-modify-write:
//! `close`'s RMW then reads from it and synchronises with it, which gives
//! the same edge.

pub(crate) mod elastic;
pub(crate) mod lanes;
pub(crate) mod sleep;
pub(crate) mod worker;

use std::collections::HashSet;
use std::fmt;
use std::ptr::NonNull;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::builder::WhenFull;
use crate::cell::{CellArc, ThinJob};
use crate::clock::Clock;
use crate::dead_letter::{DeadLetter, DeadLetterHook};
use crate::manual::Driven;
use crate::metrics::{Counters, Event, Stats};
use crate::sync::{fence, AtomicBool, AtomicUsize, Mutex, Ordering};
use crate::task::{Job, Priority};
use crate::timer::Timer;
use elastic::Crew;
use lanes::{Admission, Lanes};
use sleep::Sleep;
use worker::WorkerThread;

/// What the queues carry: two words, the kind and one pointer (see
/// [`ThinJob`] for what a third word cost).
pub(crate) enum JobRef {
    /// A submitted task: one attempt of it.
    Task(ThinJob),
    /// A fire-and-forget task in a recycled cell (`Pool::spawn`).
    Spawned(crate::spawned::SpawnRef),
    /// A scope spawn or a cold `join`: a boxed closure whose borrows are
    /// kept alive by a caller that waits for it (see `scope.rs`, `join.rs`).
    Heap(HeapRef),
    /// The second half of a `join` on a worker, living on that worker's stack.
    Stack(worker::StackRef),
}

const _: () = assert!(std::mem::size_of::<JobRef>() == 2 * std::mem::size_of::<usize>());
const _: () = assert!(std::mem::size_of::<Option<JobRef>>() == std::mem::size_of::<JobRef>());

/// A boxed closure as one pointer: the box starts with the function that
/// runs (or, unrun, drops) it.
pub(crate) struct HeapRef(NonNull<()>);

/// Runs the job at the pointer with `Some`, drops it unrun with `None`;
/// either way frees its box.
type HeapFn = unsafe fn(NonNull<()>, Option<&Shared>);

#[repr(C)]
struct HeapJob<F> {
    call: HeapFn,
    f: F,
}

// SAFETY: the box holds a `Send` closure, and the `HeapRef` is its only
// reference.
unsafe impl Send for HeapRef {}

impl HeapRef {
    /// Boxes `f`.
    ///
    /// # Safety
    /// Whatever `f` borrows outlives its run (or its drop): the caller waits
    /// for it (see `scope.rs`, `join.rs`), since the job itself may be held
    /// by a queue for any time.
    pub(crate) unsafe fn new<F: FnOnce(&Shared) + Send>(f: F) -> HeapRef {
        /// # Safety
        /// `p` comes from `HeapRef::new` for this `F`, used once.
        unsafe fn call<F: FnOnce(&Shared)>(p: NonNull<()>, shared: Option<&Shared>) {
            // SAFETY: `new` made `p` with `Box::into_raw` of a `HeapJob<F>`.
            let job = unsafe { Box::from_raw(p.cast::<HeapJob<F>>().as_ptr()) };
            if let Some(shared) = shared {
                (job.f)(shared);
            }
        }
        let job = Box::new(HeapJob { call: call::<F>, f });
        // SAFETY: `Box::into_raw` is never null.
        HeapRef(unsafe { NonNull::new_unchecked(Box::into_raw(job)) }.cast())
    }

    /// Runs the closure.
    pub(crate) fn run(self, shared: &Shared) {
        let p = self.0;
        std::mem::forget(self);
        // SAFETY: `p` is a live box from `new`, whose first field is its
        // `call`; we gave up the only reference, so it is used once.
        unsafe { (*p.cast::<HeapFn>().as_ptr())(p, Some(shared)) }
    }
}

impl Drop for HeapRef {
    fn drop(&mut self) {
        // SAFETY: as in `run`; `drop` is the reference's last use.
        unsafe { (*self.0.cast::<HeapFn>().as_ptr())(self.0, None) }
    }
}

/// What every worker, handle and pool clone shares.
pub(crate) struct Shared {
    pub(crate) lanes: Lanes,
    pub(crate) sleep: Sleep,
    /// Workers spinning in search of work (not parked, not running a job).
    pub(crate) searching: CachePadded<AtomicUsize>,
    pub(crate) stats: Stats,
    pub(crate) admission: Admission,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) timer: Timer,
    /// Where the timer, deadlines and dispatch read the time.
    pub(crate) clock: Clock,
    /// The executor of an inline or manual pool (`manual.rs`); `None` for
    /// a pool with workers.
    pub(crate) driven: Option<Driven>,
    pub(crate) keys: Mutex<HashSet<String>>,
    /// The worker threads, their slots, and the elastic rule.
    pub(crate) crew: Crew,
    /// The floor: workers that always run.
    pub(crate) workers: usize,
    pub(crate) pinned: AtomicUsize,
    pub(crate) when_full: WhenFull,
    pub(crate) name: String,
    pub(crate) dead_letter: Option<DeadLetterHook>,
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
    /// The index of the calling thread if it is one of this pool's workers.
    #[inline]
    pub(crate) fn worker_here(&self) -> Option<usize> {
        WorkerThread::current_of(self).map(|w| w.index)
    }

    /// A task failed for good: count it and hand it to the hook.
    pub(crate) fn dead_letter(&self, letter: &DeadLetter) {
        let block = self.stats_here();
        block.add(Event::DeadLettered, 1);
        crate::trace::dead_letter(letter);
        if let Some(hook) = &self.dead_letter {
            if !hook.call(letter) {
                block.add(Event::CallbackPanic, 1);
            }
            crate::stamp::forget_boundary();
        }
    }

    /// The counter block of the calling thread.
    #[inline]
    pub(crate) fn stats_here(&self) -> &Counters {
        self.stats
            .block(WorkerThread::current_of(self).map(|w| w.index))
    }

    /// Wakes one sleeping worker, unless a worker is searching (it will
    /// find the new work, or pass the wake on when it stops searching; see
    /// `WorkerThread::main_loop`) or every sleeper already has a wake-up in
    /// flight (see the sleep module). With nobody searching or parked, an
    /// elastic pool may start a worker (the growth signal, see `elastic`);
    /// a fixed-size pool only tests an immutable field on that branch.
    #[inline]
    pub(crate) fn notify_one(&self) {
        fence(Ordering::SeqCst);
        if self.searching.load(Ordering::SeqCst) > 0 {
            return;
        }
        if self.sleep.notify_one_fenced() {
            self.stats_here().add(Event::Wake, 1);
        } else if self.crew.elastic.is_some() && self.sleep.is_empty() {
            self.crew.grow();
        }
    }

    /// A wake-up that only adds parallelism, never one progress depends on:
    /// ramping up (more work is visible than one worker runs; the push of
    /// every task already made its own [`notify_one`](Self::notify_one)), or
    /// offering a `join`'s second half (the joiner runs it itself if nobody
    /// steals it). So it skips the fence, and the wake, when a plain look
    /// shows a searching worker or no sleeper without a wake-up coming: on a
    /// busy pool it costs two loads instead of a fence.
    #[inline]
    pub(crate) fn nudge(&self) {
        if self.may_nudge() {
            self.notify_one();
        }
    }

    /// Would a [`nudge`](Self::nudge) wake anyone? Two plain loads; a
    /// caller that must look at something costlier to decide whether help
    /// is wanted looks after this.
    #[inline]
    pub(crate) fn may_nudge(&self) -> bool {
        self.searching.load(Ordering::Relaxed) == 0 && self.sleep.may_need_wake()
    }

    /// Wakes every sleeping worker (and helping waiter).
    pub(crate) fn notify_all(&self) {
        if self.sleep.notify_all() {
            self.stats_here().add(Event::Wake, 1);
        }
    }

    /// Queues a task that is ready to run. From one of this pool's workers,
    /// Normal work goes to that worker's "next task" slot (waking nobody
    /// unless it displaced an older task into the deque); otherwise to the
    /// lane's injector.
    pub(crate) fn push(&self, job: CellArc<dyn Job>, priority: Priority) {
        job.header()
            .ready
            .store(self.stats.clock().now(), Ordering::Relaxed);
        if let Some(driven) = &self.driven {
            return driven.push(job, priority);
        }
        self.push_ref(JobRef::Task(job.into_thin()), priority);
    }

    /// [`push`](Self::push) for any job the queues carry, on a pool with
    /// workers (not an inline or manual one). The caller stamped it ready.
    #[inline]
    pub(crate) fn push_ref(&self, job: JobRef, priority: Priority) {
        match priority {
            Priority::High => self.lanes.high.push(job),
            Priority::Low => self.lanes.low.push(job),
            Priority::Normal => match WorkerThread::current_of(self) {
                Some(w) => {
                    if !w.push_task(job) {
                        return;
                    }
                }
                None => self.lanes.normal.push(job),
            },
        }
        self.notify_one();
    }

    /// Queues a task now or, after `delay`, through the timer. Under
    /// `shutdown_now` the timer refuses and the task is resolved Cancelled.
    pub(crate) fn schedule(&self, job: CellArc<dyn Job>, delay: Duration, priority: Priority) {
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

    /// Counts `n` tasks (or an outside scope or join) in, unless the pool
    /// is closed. Must be paired with [`leave`](Self::leave) on the same
    /// thread, or, for tasks, with a terminal event.
    #[inline]
    pub(crate) fn enter(&self, n: usize) -> Result<(), ()> {
        let block = self.stats_here();
        // A SeqCst RMW, then a SeqCst load: no fence between (module docs).
        block.add(Event::Submitted, n as u64);
        if self.lifecycle.is_closed() {
            block.unsubmit(n as u64);
            self.check_finished();
            return Err(());
        }
        Ok(())
    }

    /// Takes back an [`enter`](Self::enter) of this thread.
    #[inline]
    pub(crate) fn leave(&self, n: usize) {
        self.stats_here().unsubmit(n as u64);
        self.check_finished();
    }

    /// A task reached its terminal state (`event` is one of the four).
    #[inline]
    pub(crate) fn task_finished(&self, event: Event) {
        self.stats_here().add(event, 1);
        self.check_finished();
    }

    /// After a count moved: if the pool is closed and now finished, wake
    /// everyone. The caller moved the count with a SeqCst read-modify-write,
    /// which the SeqCst `closed` load cannot pass (module docs).
    #[inline]
    fn check_finished(&self) {
        if self.lifecycle.is_closed() && self.is_finished() {
            self.on_finished();
        }
    }

    /// Closed, and no accepted task in flight.
    pub(crate) fn is_finished(&self) -> bool {
        if !self.lifecycle.is_closed() {
            return false;
        }
        let done = self.stats.terminal();
        self.stats.sum(Event::Submitted).wrapping_sub(done) == 0
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

/// The closed and stop-now flags; see the module docs.
pub(crate) struct Lifecycle {
    closed: AtomicBool,
    /// `shutdown_now` was called: queued tasks are cancelled, not run.
    pub(crate) now: AtomicBool,
}

impl Lifecycle {
    pub(crate) fn new() -> Lifecycle {
        Lifecycle {
            closed: AtomicBool::new(false),
            now: AtomicBool::new(false),
        }
    }

    /// Closes intake. (The caller then wakes everyone, behind a fence.)
    pub(crate) fn close(&self) {
        self.closed.fetch_or(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Reads the flag. Under loom it is read with a read-modify-write:
    /// loom models SeqCst loads as Acquire loads, which may return a value
    /// older than the SeqCst order allows, while an RMW always reads the
    /// latest. With real SeqCst semantics the load is exact (module docs).
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        if cfg!(loom) {
            self.closed.fetch_or(false, Ordering::SeqCst)
        } else {
            self.closed.load(Ordering::SeqCst)
        }
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
            // Seed from the thread's stack address and a process-wide
            // counter, so threads get different sequences.
            static SEEDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let local = 0u8;
            let n = SEEDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            x = (std::ptr::addr_of!(local).addr() as u64)
                ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ 0xD1B5_4A32_D192_ED03;
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
