//! The three lanes and admission control.
//!
//! # Lanes
//!
//! - **High**: one global FIFO [`Injector`] (runq's own ring, `sync/injector.rs`).
//!   Every worker looks here first.
//! - **Normal**: a global FIFO injector for tasks submitted from outside the
//!   pool, plus one LIFO deque per worker for work spawned from inside (and
//!   for `join`, which pops its second half back from the same end).
//! - **Low**: one global FIFO injector, taken when nothing else is runnable.
//!
//! Starvation bounds (checked by `tests/priority.rs`):
//! - after [`HIGH_BURST`] High tasks in a row, a worker takes one Normal job
//!   before the next High one, if a Normal job waits;
//! - every [`LOW_EVERY`]-th time a worker looks for work it takes a waiting
//!   Low task first, so a Low task waits behind at most `LOW_EVERY - 1`
//!   other jobs per worker;
//! - after a job of its own (its "next task" slot, its deque, or a steal) a
//!   worker looks at the Normal injector first, so work spawned from inside
//!   the pool cannot starve work submitted from outside: while both wait,
//!   they alternate;
//! - a worker runs at most [`LIFO_BURST`] tasks in a row from its "next
//!   task" slot before it gives its deque a turn.
//!
//! Ordering: tasks submitted from outside the pool at one priority are taken
//! from their injector in FIFO order, one at a time (never moved in batches
//! into a worker's LIFO deque), so on a one-worker pool they also *start* in
//! submission order. With N workers they are taken in submission order but
//! not necessarily started in it: a worker that took an earlier task can be
//! descheduled before the task begins while the others take and run later
//! ones, so no count of later tasks that may start first holds. Work
//! spawned from inside a task goes to that worker's LIFO deque and has no
//! order guarantee.
//!
//! # Admission
//!
//! `capacity(n)` bounds the tasks submitted from outside the pool that are
//! accepted and not yet started (queued or delayed). A task holds a permit
//! from acceptance until it is claimed to run or resolved without running;
//! the state word's ADMITTED bit makes the release happen exactly once.
//! Submissions from inside the pool take no permit and never block: a
//! worker blocked on its own pool's capacity could deadlock it.
//!
//! A released permit wakes one blocked submitter, not all of them: one
//! permit lets one single-task submitter in, and waking the rest would only
//! send them back to sleep. A woken submitter that finds the permit taken
//! (by a submission that did not have to wait) sleeps again until the next
//! release, which wakes one again. Only while a batch waits for several
//! permits does a release wake every waiter, so that the batch cannot
//! swallow the one wake-up a single-task submitter behind it needed.

use crate::sync::deque::{Injector, Stealer, Worker};
use crossbeam_utils::CachePadded;

use super::JobRef;
use crate::error::SubmitError;
use crate::sync::{fence, AtomicUsize, EventCount, Ordering};

/// High tasks a worker takes in a row before it gives a waiting Normal job a
/// turn. Small enough that Normal work still flows under a High flood, large
/// enough that a burst of urgent tasks is not interleaved one-for-one.
/// (1 under loom, so that a model of a few tasks reaches the bound.)
pub(crate) const HIGH_BURST: u32 = if cfg!(loom) { 1 } else { 16 };

/// Every this many searches a worker takes a waiting Low task first.
pub(crate) const LOW_EVERY: u32 = 32;

/// Tasks a worker runs in a row from its "next task" slot before its deque
/// gets a turn. tokio's LIFO slot uses the same bound (3 polls per tick);
/// chained_spawn and ping_pong run no slower with 3 than with 16 in
/// runq-bench, and the smaller the bound the sooner a respawning pair lets
/// the rest of the deque through.
pub(crate) const LIFO_BURST: u32 = 3;

/// Jobs the Normal injector's ring holds before it overflows into a locked
/// queue: 4 MiB of address space per pool (a cache line per slot),
/// resident only as far as a backlog ever reached (see `sync/injector.rs`).
/// spawn_many_remote_idle queues tens of thousands of tasks behind its one
/// submitter on a busy host; with an 8192-job ring it spent 5% of its
/// samples growing and locking the overflow. (Small under Miri, so its
/// runs go through the ring's wrap and the overflow.)
const NORMAL_RING: usize = if cfg!(miri) { 4 } else { 1 << 16 };

/// The same for the High and Low lanes, which see far less traffic (16 KiB
/// each, cleared when allocated: blocks this small come from the heap).
const SIDE_RING: usize = if cfg!(miri) { 2 } else { 256 };

pub(crate) struct Lanes {
    pub(crate) high: Injector<JobRef>,
    pub(crate) normal: Injector<JobRef>,
    pub(crate) low: Injector<JobRef>,
    /// One stealer per worker slot (see `elastic`), live or vacant.
    stealers: Box<[Stealer<JobRef>]>,
    /// An elastic pool's slots ever used (the lowest are taken first): the
    /// stealers past it were never live, so searches skip them. `None` for
    /// a fixed-size pool, where every slot is live.
    span: Option<CachePadded<AtomicUsize>>,
}

impl Lanes {
    /// Lanes with a stealer per deque of `locals`, the first `floor` of
    /// them live from the start.
    pub(crate) fn new(locals: &[Worker<JobRef>], floor: usize) -> Lanes {
        Lanes {
            high: Injector::with_capacity(SIDE_RING),
            normal: Injector::with_capacity(NORMAL_RING),
            low: Injector::with_capacity(SIDE_RING),
            stealers: locals.iter().map(Worker::stealer).collect(),
            span: (locals.len() > floor).then(|| CachePadded::new(AtomicUsize::new(floor))),
        }
    }

    /// The stealers of the slots that may hold work. A vacant slot's deque
    /// is empty (its last worker handed its work off), and a slot beyond
    /// the span was never used; a stale span only delays a steal, never
    /// strands a job, since every worker drains its own deque before it
    /// parks.
    #[inline]
    pub(crate) fn live_stealers(&self) -> &[Stealer<JobRef>] {
        match &self.span {
            None => &self.stealers,
            Some(span) => &self.stealers[..span.load(Ordering::Relaxed)],
        }
    }

    /// Slot `index` is about to go live.
    pub(crate) fn widen(&self, index: usize) {
        if let Some(span) = &self.span {
            span.fetch_max(index + 1, Ordering::Relaxed);
        }
    }

    /// Jobs waiting in the Normal lane (injector and all deques).
    pub(crate) fn normal_len(&self) -> usize {
        self.normal.len() + self.live_stealers().iter().map(Stealer::len).sum::<usize>()
    }

    /// Is any lane visibly non-empty?
    pub(crate) fn has_work(&self) -> bool {
        !self.high.is_empty()
            || !self.normal.is_empty()
            || !self.low.is_empty()
            || self.live_stealers().iter().any(|s| !s.is_empty())
    }
}

/// The capacity bound on tasks submitted from outside the pool.
pub(crate) struct Admission {
    /// `usize::MAX` means unbounded: no counting at all.
    capacity: usize,
    queued: CachePadded<AtomicUsize>,
    waiters: EventCount,
    /// Blocked submissions that need more than one permit (batches).
    batch_waiters: AtomicUsize,
    /// Times a blocked submitter woke up (tests count the wake-ups one
    /// release causes).
    #[cfg(test)]
    pub(crate) wakeups: AtomicUsize,
}

impl Admission {
    pub(crate) fn new(capacity: Option<usize>) -> Admission {
        Admission {
            capacity: capacity.unwrap_or(usize::MAX),
            queued: CachePadded::new(AtomicUsize::new(0)),
            waiters: EventCount::new(),
            batch_waiters: AtomicUsize::new(0),
            #[cfg(test)]
            wakeups: AtomicUsize::new(0),
        }
    }

    #[inline]
    pub(crate) fn is_bounded(&self) -> bool {
        self.capacity != usize::MAX
    }

    /// Takes `n` permits. With `block`, waits for room (giving up with
    /// `ShutDown` when `closed()` becomes true); without, fails with `Full`.
    pub(crate) fn acquire(
        &self,
        n: usize,
        block: bool,
        closed: impl Fn() -> bool,
    ) -> Result<(), SubmitError> {
        if !self.is_bounded() {
            return Ok(());
        }
        if n > self.capacity {
            return Err(SubmitError::Full);
        }
        loop {
            let q = self.queued.load(Ordering::Relaxed);
            if q + n <= self.capacity {
                if self
                    .queued
                    .compare_exchange_weak(q, q + n, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(());
                }
                continue;
            }
            if !block {
                return Err(SubmitError::Full);
            }
            // A batch announces itself before it re-checks the room, so a
            // release that could not see it has made room it then sees.
            if n > 1 {
                self.batch_waiters.fetch_add(1, Ordering::SeqCst);
            }
            let key = self.waiters.prepare();
            let outcome = if closed() {
                self.waiters.cancel();
                Some(Err(SubmitError::ShutDown))
            } else if self.queued.load(Ordering::SeqCst) + n <= self.capacity {
                self.waiters.cancel();
                None
            } else {
                self.waiters.park(key);
                #[cfg(test)]
                self.wakeups.fetch_add(1, Ordering::SeqCst);
                None
            };
            if n > 1 {
                self.batch_waiters.fetch_sub(1, Ordering::SeqCst);
            }
            if let Some(e) = outcome {
                return e;
            }
        }
    }

    /// Returns `n` permits and wakes as many blocked submitters (all of
    /// them while a batch waits; see the module docs).
    pub(crate) fn release(&self, n: usize) {
        if !self.is_bounded() {
            return;
        }
        self.queued.fetch_sub(n, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.batch_waiters.load(Ordering::SeqCst) > 0 {
            self.waiters.notify_all();
            return;
        }
        for _ in 0..n {
            if !self.waiters.notify_one_fenced() {
                break;
            }
        }
    }

    /// Wakes every blocked submitter (shutdown).
    pub(crate) fn wake_all(&self) {
        self.waiters.notify_all();
    }
}

#[cfg(all(test, target_os = "linux", not(miri), not(loom)))]
#[path = "lanes_tests.rs"]
mod tests;
