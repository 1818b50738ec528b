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
//! resolve every fire entry `Cancelled` and refuse new ones.
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
use std::sync::{Arc as StdArc, Weak};
use std::time::{Duration, Instant};

use crate::scheduler::Shared;
use crate::slot::{CODE, DELAYED, QUEUED, RETRYING};
use crate::sync::{Arc, Condvar, Mutex, Ordering};
use crate::task::{Abort, Job};

/// Delays are capped at this (about 30 years) so `Instant` arithmetic never
/// overflows.
const MAX_DELAY: Duration = Duration::from_secs(1 << 30);

enum What {
    Fire(StdArc<dyn Job>),
    Expire(Weak<dyn Job>),
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
    /// Fire entries in the heap.
    fires: usize,
    /// No more entries are taken (shutdown_now, or the pool finished).
    stopped: bool,
}

pub(crate) struct Timer {
    state: Mutex<State>,
    cond: Condvar,
}

impl Timer {
    pub(crate) fn new() -> Timer {
        Timer {
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
        }
    }

    fn insert(&self, st: &mut State, due: Instant, what: What) {
        st.seq += 1;
        let earliest = st.heap.peek().is_none_or(|e| due < e.due);
        if matches!(what, What::Fire(_)) {
            st.fires += 1;
        }
        st.heap.push(Entry {
            due,
            seq: st.seq,
            what,
        });
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
        job: StdArc<dyn Job>,
    ) -> Result<(), StdArc<dyn Job>> {
        let due = shared.clock.now() + delay.min(MAX_DELAY);
        let mut st = self.state.lock();
        if st.stopped || shared.stopping_now() {
            return Err(job);
        }
        self.insert(&mut st, due, What::Fire(job));
        Ok(())
    }

    #[cfg(loom)]
    pub(crate) fn fire_after(
        &self,
        shared: &Shared,
        _delay: Duration,
        job: StdArc<dyn Job>,
    ) -> Result<(), StdArc<dyn Job>> {
        if shared.stopping_now() {
            return Err(job);
        }
        fire(shared, job);
        Ok(())
    }

    /// Resolves `job` `Expired` at `due` if it has not started by then.
    pub(crate) fn expire_at(&self, due: Instant, job: Weak<dyn Job>) {
        if cfg!(loom) {
            return;
        }
        let mut st = self.state.lock();
        if !st.stopped {
            self.insert(&mut st, due, What::Expire(job));
        }
    }

    /// Wakes the timer thread to re-check the pool's state.
    pub(crate) fn kick(&self) {
        let _guard = self.state.lock();
        self.cond.notify_all();
    }

    /// Tasks held (delayed or waiting for a retry). Entries of tasks
    /// cancelled meanwhile stay in the heap until due, so this counts the
    /// tasks still waiting, not the entries: O(entries), for metrics only.
    pub(crate) fn pending(&self) -> usize {
        let st = self.state.lock();
        st.heap
            .iter()
            .filter(|e| matches!(&e.what, What::Fire(job) if is_held(&**job)))
            .count()
    }
}

impl Timer {
    /// Stops taking entries and resolves every task the timer holds
    /// (delayed, or waiting for a retry) `Cancelled`: `shutdown_now`.
    pub(crate) fn cancel_all(&self, shared: &Shared) {
        let entries: Vec<Entry> = {
            let mut st = self.state.lock();
            st.stopped = true;
            st.fires = 0;
            st.heap.drain().collect()
        };
        for e in entries {
            if let What::Fire(job) = e.what {
                job.abort(shared, Abort::Cancelled);
            }
        }
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
                if matches!(entry.what, What::Fire(_)) {
                    st.fires -= 1;
                }
                entry
            };
            shared.clock.advance_to(entry.due);
            process(shared, entry.what);
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
fn process(shared: &Shared, what: What) {
    match what {
        What::Fire(job) => fire(shared, job),
        What::Expire(weak) => {
            if let Some(job) = weak.upgrade() {
                job.abort(shared, Abort::Expired);
            }
        }
    }
}

/// A fire entry is due: queue the task unless it was resolved meanwhile.
fn fire(shared: &Shared, job: StdArc<dyn Job>) {
    let state = &job.header().state;
    let mut s = state.load(Ordering::Acquire);
    loop {
        match s & CODE {
            DELAYED => match state.compare_exchange_weak(
                s,
                (s & !CODE) | QUEUED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(x) => s = x,
            },
            RETRYING => break,
            _ => return, // cancelled (or resolved) while waiting
        }
    }
    let priority = job.header().priority;
    shared.push(job, priority);
}

/// The body of the timer thread.
pub(crate) fn run_timer(shared: Arc<Shared>) {
    let timer = &shared.timer;
    let mut st = timer.state.lock();
    loop {
        if shared.stopping_now() && !st.heap.is_empty() {
            drop(st);
            timer.cancel_all(&shared);
            st = timer.state.lock();
            continue;
        }
        if shared.stopping_now() {
            st.stopped = true;
        }
        if shared.is_finished() {
            st.stopped = true;
            st.heap.clear();
            return;
        }
        let now = shared.clock.now();
        let next_due = st.heap.peek().map(|e| e.due);
        match next_due {
            Some(due) if due <= now => {
                let Some(entry) = st.heap.pop() else { continue };
                if matches!(entry.what, What::Fire(_)) {
                    st.fires -= 1;
                }
                drop(st);
                process(&shared, entry.what);
                st = timer.state.lock();
            }
            Some(due) => st = timer.cond.wait_until(st, due),
            None => st = timer.cond.wait(st),
        }
    }
}
