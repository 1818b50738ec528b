//! Delayed tasks, retry backoffs and deadlines.
//!
//! One timer thread per pool keeps a min-heap of due times behind a mutex
//! and sleeps on a condition variable until the earliest one (or until a new
//! earlier entry, a shutdown or the end of the pool wakes it): no polling,
//! no CPU while nothing is due. A single thread was chosen over a wheel
//! driven by the workers because workers park when idle, and a delayed task
//! must start on time in an otherwise idle pool.
//!
//! Entries:
//! - **fire**: a delayed task (DELAYED → QUEUED when due) or a task waiting
//!   for a retry (stays RETRYING); when due it is pushed to its lane. A task
//!   cancelled meanwhile is a stale entry and is dropped.
//! - **expire**: a weak reference to a task with a deadline; when due, a task
//!   still QUEUED or DELAYED resolves `Expired` (a worker that dequeues a task
//!   past its deadline does the same, so a late task never runs either way).
//!
//! `shutdown()` lets the timer run until the pool is finished, so delayed
//! tasks and pending retries run at their time; `shutdown_now()` makes it
//! hand every fire entry to the workers, which resolve them `Cancelled`, and
//! refuse new ones.
//!
//! # No user code on the timer thread
//!
//! A callback that blocks must not hold up other tasks' delays, retries and
//! deadlines. So the timer never runs a task's callback: an expiring task
//! with a callback is queued in the High lane, where the worker that takes
//! it finds the deadline passed and resolves it `Expired` (a task without
//! one is resolved here at once, so it expires on time even when every
//! worker is busy), and under `shutdown_now` every fire entry is queued for
//! the workers to cancel. What the timer drops (entries of tasks that ended
//! meanwhile) holds user values, whose destructors' panics are caught and
//! counted (see `unwind`).
//!
//! # Entries of finished tasks
//!
//! A finished task's entries are stale: an expire entry whose task ended,
//! a fire entry whose task was cancelled. They are not searched for when
//! the task ends (a heap has no cheap removal); instead an insertion that
//! finds the heap at twice its size after the last clean-up (and at least
//! [`COMPACT_FLOOR`]) drops every stale entry in one pass. That costs O(1)
//! amortized per insertion and keeps the heap within twice the live
//! entries (plus the floor), however long the deadlines and however high
//! the throughput. The counts `metrics()` reads are atomics kept beside the
//! heap, so it never takes the timer's lock.
//!
//! Due times come from the pool's clock (`clock.rs`): the real clock on a
//! pool with workers, a virtual one on inline and manual pools, whose
//! executor (`manual.rs`) moves it and processes due entries itself instead
//! of running this thread.
//!
//! Under loom there is no timer thread (loom has no clock): a fire entry is
//! processed at once and deadlines are only checked by workers.

// Under loom only the immediate-fire path exists.
#![cfg_attr(loom, allow(dead_code))]

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::cell::{CellArc, CellWeak};
use crate::scheduler::{JobRef, Shared};
use crate::slot::{CODE, DELAYED, QUEUED, RETRYING, TIMED};
use crate::sync::stat::AtomicU64;
use crate::sync::{Arc, Condvar, Mutex, Ordering};
use crate::task::{Abort, Job};
use crate::unwind::counted;

/// Delays are capped at this (about 30 years) so `Instant` arithmetic never
/// overflows.
const MAX_DELAY: Duration = Duration::from_secs(1 << 30);

/// The heap size below which no clean-up runs: a pass over a thousand
/// entries is a few microseconds, so smaller heaps are not worth scanning.
const COMPACT_FLOOR: usize = 1024;

enum What {
    Fire(CellArc<dyn Job>),
    Expire(CellWeak<dyn Job>),
}

struct Entry {
    due: Instant,
    seq: u64,
    what: What,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed, so the max-heap pops the earliest entry first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Entry>,
    seq: u64,
    /// The heap size at which the next insertion cleans up stale entries.
    compact_at: usize,
    /// No more entries are taken (shutdown_now, or the pool finished).
    stopped: bool,
}

impl State {
    /// Mirrors the heap's length into the atomic `metrics()` reads.
    fn publish(&self, timer: &Timer) {
        timer
            .entries
            .store(self.heap.len() as u64, Ordering::Relaxed);
    }
}

pub(crate) struct Timer {
    state: Mutex<State>,
    cond: Condvar,
    /// Tasks whose state word holds TIMED (see `slot.rs`).
    held: AtomicU64,
    /// A copy of the heap's length, for `metrics()`.
    entries: AtomicU64,
}

/// References to tasks taken out of the heap under its lock, to be dropped
/// after it is released (their destructors are user code).
type Stale = Vec<CellArc<dyn Job>>;

/// Is this task resolved (its entries stale)?
fn is_resolved(job: &dyn Job) -> bool {
    let code = job.header().state.load(Ordering::Acquire) & CODE;
    !matches!(code, QUEUED | DELAYED | RETRYING | crate::slot::RUNNING)
}

impl Timer {
    pub(crate) fn new() -> Timer {
        Timer {
            state: Mutex::new(State {
                compact_at: COMPACT_FLOOR,
                ..State::default()
            }),
            cond: Condvar::new(),
            held: AtomicU64::new(0),
            entries: AtomicU64::new(0),
        }
    }

    fn insert(&self, st: &mut State, due: Instant, what: What, stale: &mut Stale) {
        if st.heap.len() >= st.compact_at {
            compact(st, stale);
        }
        st.seq += 1;
        let earliest = st.heap.peek().is_none_or(|e| due < e.due);
        st.heap.push(Entry {
            due,
            seq: st.seq,
            what,
        });
        st.publish(self);
        if earliest {
            self.cond.notify_one();
        }
    }

    /// Queues `job` after `delay`. Hands it back if the timer no longer
    /// takes entries (`shutdown_now`): the caller resolves it.
    #[cfg(not(loom))]
    pub(crate) fn fire_after(
        &self,
        shared: &Shared,
        delay: Duration,
        job: CellArc<dyn Job>,
    ) -> Result<(), CellArc<dyn Job>> {
        let due = shared.clock.now() + delay.min(MAX_DELAY);
        let mut stale = Stale::new();
        let mut st = self.state.lock();
        if st.stopped || shared.stopping_now() {
            return Err(job);
        }
        self.insert(&mut st, due, What::Fire(job), &mut stale);
        drop(st);
        counted(shared, move || drop(stale));
        Ok(())
    }

    #[cfg(loom)]
    pub(crate) fn fire_after(
        &self,
        shared: &Shared,
        _delay: Duration,
        job: CellArc<dyn Job>,
    ) -> Result<(), CellArc<dyn Job>> {
        if shared.stopping_now() {
            return Err(job);
        }
        fire(shared, job);
        Ok(())
    }

    /// Resolves `job` `Expired` at `due` if it has not started by then.
    pub(crate) fn expire_at(&self, shared: &Shared, due: Instant, job: CellWeak<dyn Job>) {
        if cfg!(loom) {
            return;
        }
        let mut stale = Stale::new();
        let mut st = self.state.lock();
        if !st.stopped {
            self.insert(&mut st, due, What::Expire(job), &mut stale);
        }
        drop(st);
        counted(shared, move || drop(stale));
    }

    /// Wakes the timer thread to re-check the pool's state.
    pub(crate) fn kick(&self) {
        let _guard = self.state.lock();
        self.cond.notify_all();
    }

    /// A task is about to get TIMED.
    pub(crate) fn hold(&self) {
        self.held.fetch_add(1, Ordering::Relaxed);
    }

    /// Whoever cleared a task's TIMED.
    pub(crate) fn release(&self) {
        self.held.fetch_sub(1, Ordering::Relaxed);
    }

    /// Tasks held (delayed or waiting for a retry): one atomic load, so
    /// `metrics()` never takes the timer's lock.
    pub(crate) fn pending(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Entries in the heap, stale ones included.
    pub(crate) fn entries(&self) -> u64 {
        self.entries.load(Ordering::Relaxed)
    }
}

/// Drops every stale entry: expire entries of tasks that ended (or whose
/// allocation is gone) and fire entries of tasks resolved meanwhile. Task
/// references taken out go to `stale`, for the caller to drop unlocked.
fn compact(st: &mut State, stale: &mut Stale) {
    let entries = std::mem::take(&mut st.heap).into_vec();
    let mut live = Vec::with_capacity(entries.len());
    for e in entries {
        match e.what {
            What::Fire(job) if is_resolved(&*job) => {
                stale.push(job);
            }
            What::Expire(ref weak) => {
                if let Some(job) = weak.upgrade() {
                    if !is_resolved(&*job) {
                        live.push(e);
                    }
                    stale.push(job);
                }
            }
            What::Fire(_) => live.push(e),
        }
    }
    st.heap = BinaryHeap::from(live);
    st.compact_at = (2 * st.heap.len()).max(COMPACT_FLOOR);
}

impl Timer {
    /// Stops taking entries and resolves every task the timer holds
    /// (delayed, or waiting for a retry) `Cancelled`: `shutdown_now`.
    pub(crate) fn cancel_all(&self, shared: &Shared) {
        let entries: Vec<Entry> = {
            let mut st = self.state.lock();
            st.stopped = true;
            let entries = st.heap.drain().collect();
            st.publish(self);
            entries
        };
        counted(shared, || {
            for e in entries {
                if let What::Fire(job) = e.what {
                    job.abort(shared, Abort::Cancelled);
                }
            }
        });
    }

    /// For pools without a timer thread (inline and manual): processes, in
    /// due order, every entry due at or before `limit`, moving the pool's
    /// clock to each entry's due time before it (so a deadline passes, and
    /// an expiry callback runs, at its own time).
    pub(crate) fn run_due(&self, shared: &Shared, limit: Instant) {
        loop {
            let entry = {
                let mut st = self.state.lock();
                if st.heap.peek().is_none_or(|e| e.due > limit) {
                    return;
                }
                let Some(entry) = st.heap.pop() else { return };
                st.publish(self);
                entry
            };
            shared.clock.advance_to(entry.due);
            counted(shared, || process(shared, entry.what, false));
        }
    }

    /// When the earliest fire entry of a task still waiting for it comes
    /// due (entries of tasks cancelled meanwhile do not count).
    pub(crate) fn next_fire(&self) -> Option<Instant> {
        let st = self.state.lock();
        st.heap
            .iter()
            .filter(|e| matches!(&e.what, What::Fire(job) if is_held(&**job)))
            .map(|e| e.due)
            .min()
    }
}

/// Whether a fire entry's task still waits for it.
fn is_held(job: &dyn Job) -> bool {
    matches!(
        job.header().state.load(Ordering::Relaxed) & CODE,
        DELAYED | RETRYING
    )
}

/// A due entry: queue a fired task, or expire a task that has not started.
/// On the timer thread (`offload`) an expiring task with a callback goes to
/// a worker (see `expire`); a pool without threads resolves it here, on
/// the thread that drives it.
fn process(shared: &Shared, what: What, offload: bool) {
    match what {
        What::Fire(job) => fire(shared, job),
        What::Expire(weak) => {
            if let Some(job) = weak.upgrade() {
                if offload {
                    expire(shared, job);
                } else {
                    job.abort(shared, Abort::Expired);
                }
            }
        }
    }
}

/// A fire entry is due: queue the task unless it was resolved meanwhile.
fn fire(shared: &Shared, job: CellArc<dyn Job>) {
    let state = &job.header().state;
    let mut s = state.load(Ordering::Acquire);
    loop {
        let next = match s & CODE {
            DELAYED => (s & !(CODE | TIMED)) | QUEUED,
            RETRYING => s & !TIMED,
            _ => return, // cancelled (or resolved) while waiting
        };
        match state.compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break,
            Err(x) => s = x,
        }
    }
    if s & TIMED != 0 {
        shared.timer.release();
    }
    let priority = job.header().priority;
    shared.push(job, priority);
}

/// A deadline is due: resolve the task `Expired` if it has not started.
/// One with a callback goes to a worker instead (module docs), which finds
/// the deadline passed when it takes the task.
fn expire(shared: &Shared, job: CellArc<dyn Job>) {
    let code = job.header().state.load(Ordering::Acquire) & CODE;
    if !matches!(code, QUEUED | DELAYED) {
        return;
    }
    if job.has_callback() {
        shared.lanes.high.push(JobRef::Task(job.into_thin()));
        shared.notify_one();
    } else {
        job.abort(shared, Abort::Expired);
    }
}

/// The body of the timer thread.
pub(crate) fn run_timer(shared: Arc<Shared>) {
    let timer = &shared.timer;
    let mut st = timer.state.lock();
    loop {
        if shared.stopping_now() && !st.heap.is_empty() {
            let entries: Vec<Entry> = st.heap.drain().collect();
            st.stopped = true;
            st.publish(timer);
            drop(st);
            // The workers cancel what is still waiting (and run the
            // callbacks): `execute` resolves every task `Cancelled` now.
            counted(&shared, || {
                for e in entries {
                    if let What::Fire(job) = e.what {
                        if !is_resolved(&*job) {
                            let priority = job.header().priority;
                            shared.push(job, priority);
                        }
                    }
                }
            });
            st = timer.state.lock();
            continue;
        }
        if shared.stopping_now() {
            st.stopped = true;
        }
        if shared.is_finished() {
            st.stopped = true;
            let entries = std::mem::take(&mut st.heap);
            st.publish(timer);
            drop(st);
            counted(&shared, move || drop(entries));
            return;
        }
        let now = shared.clock.now();
        let next_due = st.heap.peek().map(|e| e.due);
        match next_due {
            Some(due) if due <= now => {
                let Some(entry) = st.heap.pop() else { continue };
                st.publish(timer);
                drop(st);
                counted(&shared, || process(&shared, entry.what, true));
                st = timer.state.lock();
            }
            Some(due) => st = timer.cond.wait_until(st, due),
            None => st = timer.cond.wait(st),
        }
    }
}
