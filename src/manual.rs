//! Test modes: inline and manual pools, the executor that runs them, and
//! the [`ManualDriver`].
//!
//! A pool built with [`Builder::inline`](crate::Builder::inline) or
//! [`Builder::build_manual`](crate::Builder::build_manual) starts no thread
//! at all. Its tasks go through the same lifecycle code as on a pool with
//! workers (admission, keys, the state word, guards, retries, the timer's
//! heap, deadlines, callbacks, metrics); only two things differ, and both
//! are chosen once, at build time:
//!
//! - **the clock** (`clock.rs`) is virtual: it stands still until the
//!   executor moves it, so delays, backoffs and deadlines cost no real time
//!   and happen at exact, repeatable instants;
//! - **the executor** is this module's [`Driven`] queue instead of the
//!   workers' lanes, and no timer thread runs: whoever drives the pool runs
//!   ready tasks and processes due timer entries.
//!
//! # The ready queue
//!
//! Three FIFO lanes, High, Normal and Low, taken in strict priority order:
//! a ready High task always runs before a ready Normal one, and tasks of one
//! priority run in the order they became ready (submission, a delay coming
//! due, a retry coming due). There is no work stealing and no starvation
//! bound to reason about: the order is a pure function of what was submitted
//! and when the clock moved. Every entry carries a sequence number, which is
//! how [`ManualDriver::run_pending`] runs what was ready when it was called
//! and nothing that those tasks make ready.
//!
//! # Inline pools
//!
//! A submission from outside the pool queues its task, then *drives* the
//! pool on the calling thread until nothing is left: it runs ready tasks in
//! the order above and, when none is ready, moves the virtual clock straight
//! to the next delayed task or retry that comes due (deadlines passing on
//! the way resolve their tasks `Expired`, at their time). So every
//! submission has reached a terminal state when `submit` returns.
//!
//! A submission made *while* the pool is driven (from a task, a callback or
//! a guard of the same pool) only queues its task: it runs after the task
//! that submitted it returns, in the queue's order, before the outermost
//! submission returns. [`Handle::wait`](crate::Handle::wait) on it inside
//! that task does not block: it drives the pool (as a worker helps while it
//! waits) until the task is finished.
//!
//! One drive runs at a time per pool; a second thread that submits while
//! another drives waits for it (the first drive runs the second thread's
//! task too, since it runs until nothing is left).
//!
//! # Manual pools
//!
//! Nothing runs until the [`ManualDriver`] says so; see its docs for the
//! exact semantics of each call.
//!
//! # What is the same, and what is not
//!
//! The same code as on workers: the task state machine, keys, guards,
//! batches, callbacks, retries and their policies, deadlines, panics
//! (caught per task), metrics counts, `shutdown`/`shutdown_now` outcomes.
//!
//! Different, by necessity: [`Pool::join`](crate::Pool::join),
//! [`runq::join`](crate::join) and [`Pool::scope`](crate::Pool::scope) run
//! their closures one after the other on the calling thread (there is no
//! other thread), the priority lanes have no starvation bounds (strict
//! priority instead), `WhenFull::Block` on a manual pool fails with `Full`
//! instead of blocking (nothing would ever make room while the caller
//! blocks), and [`Metrics::workers`](crate::Metrics::workers) is 0.

use crate::cell::CellArc;
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::pool::Pool;
use crate::scheduler::Shared;
use crate::slot::{is_waiting, wait_done, CODE, DONE, WAITER};
use crate::sync::stat::AtomicU64;
use crate::sync::{thread_local, Mutex, Ordering};
use crate::task::{Abort, Header, Job, Priority};

/// The most one [`ManualDriver::advance`] moves the clock: 2^31 seconds,
/// twice the timer's largest delay (2^30 s, see `timer.rs`), so any entry
/// the timer can hold comes due, while `Instant` arithmetic stays far from
/// overflowing.
const MAX_ADVANCE: Duration = Duration::from_secs(1 << 31);

/// The executor of an inline or manual pool: the ready queue and the drive
/// lock. See the module docs.
pub(crate) struct Driven {
    inline: bool,
    ready: Mutex<Ready>,
    /// Held for the whole of an inline drive: one drive at a time.
    drive: Mutex<()>,
    /// Tasks run so far (a count for the driver's return values only).
    runs: AtomicU64,
}

#[derive(Default)]
struct Ready {
    /// High, Normal, Low; each entry is (sequence number, task).
    lanes: [VecDeque<(u64, CellArc<dyn Job>)>; 3],
    /// The last sequence number handed out.
    seq: u64,
}

fn lane(priority: Priority) -> usize {
    match priority {
        Priority::High => 0,
        Priority::Normal => 1,
        Priority::Low => 2,
    }
}

/// Whether a queue entry's task still waits to run (entries of tasks
/// cancelled or expired while queued are left behind, and skipped).
fn is_live(job: &dyn Job) -> bool {
    is_waiting(job.header().state.load(Ordering::Acquire) & CODE)
}

thread_local! {
    /// The pool this thread drives right now, if any.
    // loom's `thread_local!` takes no `const` initializer.
    #[allow(clippy::missing_const_for_thread_local)]
    static DRIVING: std::cell::Cell<*const Shared> = std::cell::Cell::new(std::ptr::null());
}

/// Marks this thread as driving a pool until dropped (then restores what
/// was there: a task may drive another pool).
struct Driving(*const Shared);

impl Driving {
    fn enter(shared: &Shared) -> Driving {
        Driving(DRIVING.with(|d| d.replace(shared)))
    }
}

impl Drop for Driving {
    fn drop(&mut self) {
        DRIVING.with(|d| d.set(self.0));
    }
}

/// Whether this thread is driving `shared`'s pool right now (running one
/// of its tasks, callbacks or guards, or processing its timer).
pub(crate) fn driving_here(shared: &Shared) -> bool {
    // Only compared, never dereferenced.
    DRIVING.with(|d| std::ptr::eq(d.get(), shared))
}

impl Driven {
    pub(crate) fn new(inline: bool) -> Driven {
        Driven {
            inline,
            ready: Mutex::new(Ready::default()),
            drive: Mutex::new(()),
            runs: AtomicU64::new(0),
        }
    }

    /// True for a manual pool (false for an inline one).
    pub(crate) fn is_manual(&self) -> bool {
        !self.inline
    }

    /// Makes `job` ready.
    pub(crate) fn push(&self, job: CellArc<dyn Job>, priority: Priority) {
        let mut ready = self.ready.lock();
        ready.seq += 1;
        let seq = ready.seq;
        ready.lanes[lane(priority)].push_back((seq, job));
    }

    /// Ready tasks per lane (High, Normal, Low).
    pub(crate) fn depths(&self) -> [usize; 3] {
        let ready = self.ready.lock();
        ready
            .lanes
            .each_ref()
            .map(|q| q.iter().filter(|(_, j)| is_live(&**j)).count())
    }

    /// Takes the first entry, in priority order, made ready before `below`.
    fn pop(&self, below: u64) -> Option<CellArc<dyn Job>> {
        let mut ready = self.ready.lock();
        ready
            .lanes
            .iter_mut()
            .find(|q| q.front().is_some_and(|(seq, _)| *seq < below))
            .and_then(VecDeque::pop_front)
            .map(|(_, job)| job)
    }

    /// Runs the next ready task made ready before `below` (skipping stale
    /// entries). False when there is none.
    fn run_next(&self, shared: &crate::sync::Arc<Shared>, below: u64) -> bool {
        while let Some(job) = self.pop(below) {
            if !is_live(&*job) {
                continue;
            }
            // As a worker does: under `shutdown_now` a task is cancelled.
            if shared.stopping_now() {
                job.abort(shared, Abort::Cancelled);
            } else {
                job.run(shared, None);
            }
            self.runs.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Runs ready tasks (made ready before `below`) until none is left;
    /// returns how many ran, counting those that a task's own `wait` ran.
    fn run_below(&self, shared: &crate::sync::Arc<Shared>, below: u64) -> usize {
        let _here = Driving::enter(shared);
        let before = self.runs.load(Ordering::Relaxed);
        while self.run_next(shared, below) {}
        (self.runs.load(Ordering::Relaxed) - before) as usize
    }

    /// Runs until nothing is ready and, on an inline pool, nothing is
    /// waiting in the timer either (the clock jumps to each next due time),
    /// or until `until` is finished.
    fn drive(&self, shared: &crate::sync::Arc<Shared>, until: Option<&Header>) {
        loop {
            if until.is_some_and(Header::is_done) {
                return;
            }
            if self.run_next(shared, u64::MAX) {
                continue;
            }
            match shared.timer.next_fire().filter(|_| self.inline) {
                Some(due) => shared.timer.run_due(shared, due),
                None => return,
            }
        }
    }

    /// After an accepted submission: an inline pool drives itself, unless
    /// this thread drives it already (then the task waits its turn).
    pub(crate) fn submitted(&self, shared: &crate::sync::Arc<Shared>) {
        if self.inline && !driving_here(shared) {
            let _one = self.drive.lock();
            let _here = Driving::enter(shared);
            self.drive(shared, None);
        }
    }

    /// `Handle::wait` on a task of this pool, from a thread that is not one
    /// of its workers (it has none). Returns whether the task is finished.
    ///
    /// - Finished: true at once.
    /// - On the thread driving the pool (inside one of its tasks or
    ///   callbacks): runs ready tasks, and on an inline pool jumps the clock
    ///   to due retries and delays, until the task is finished or nothing
    ///   is left to run.
    /// - An inline pool, elsewhere: drives it until nothing is left.
    /// - A manual pool, elsewhere: with a `deadline`, sleeps until then (the
    ///   driver may run on another thread); without one, does not block.
    pub(crate) fn wait(
        &self,
        shared: &crate::sync::Arc<Shared>,
        header: &Header,
        deadline: Option<Instant>,
    ) -> bool {
        if header.is_done() {
            return true;
        }
        if driving_here(shared) {
            self.drive(shared, Some(header));
        } else if self.inline {
            let _one = self.drive.lock();
            let _here = Driving::enter(shared);
            self.drive(shared, None);
        } else if deadline.is_some() {
            return wait_done(&header.state, DONE, WAITER, deadline);
        }
        header.is_done()
    }

    /// `shutdown_now` (and dropping a [`ManualDriver`]): resolves every
    /// task that has not started, ready or held by the timer, `Cancelled`.
    pub(crate) fn cancel_all(&self, shared: &Shared) {
        shared.timer.cancel_all(shared);
        loop {
            let entries: Vec<CellArc<dyn Job>> = {
                let mut ready = self.ready.lock();
                ready
                    .lanes
                    .iter_mut()
                    .flat_map(|q| q.drain(..).map(|(_, job)| job))
                    .collect()
            };
            if entries.is_empty() {
                return;
            }
            for job in entries {
                job.abort(shared, Abort::Cancelled);
            }
        }
    }
}

/// The test's end of a manual pool: decides when its tasks run and when its
/// virtual clock moves. Made by [`Builder::build_manual`](crate::Builder::build_manual),
/// which hands the [`Pool`] to the code under test and this to the test.
///
/// A manual pool starts no thread. Submitting to it only queues: tasks run
/// on the thread that calls [`run_pending`](Self::run_pending) or
/// [`run_until_idle`](Self::run_until_idle), one at a time, in a fixed
/// order. Its clock is virtual and stands still until
/// [`advance`](Self::advance) moves it. So a test says exactly what has run
/// and what time it is at every step.
///
/// # Semantics
///
/// - **Ready** means queued and runnable now: submitted with no delay, or a
///   delay or retry backoff that has come due on the virtual clock. Ready
///   tasks run in strict priority order (High, then Normal, then Low) and,
///   within a priority, in the order they became ready.
/// - [`pending`](Self::pending) counts ready tasks. Delayed tasks and tasks
///   waiting for a retry are not ready until the clock reaches their time.
/// - [`run_pending`](Self::run_pending) runs the tasks that were ready when
///   it was called, and nothing they make ready (tasks they submit, or a
///   retry with no backoff): those wait for the next call, unless a task
///   waits for one (see below). It returns how many tasks it ran, those
///   run by a task's `wait` included. A task that failed and is retried
///   counts once per attempt, as each attempt is a run.
/// - [`run_until_idle`](Self::run_until_idle) runs ready tasks, including
///   the ones those make ready, until none is ready; it returns how many it
///   ran. It never moves the clock: delayed tasks stay delayed.
/// - [`advance(d)`](Self::advance) moves the clock forward by `d`. Timer
///   entries that come due meanwhile are processed in due order, the clock
///   standing at each one's time: a delayed task or a retry becomes ready
///   (it does not run yet), and a task whose deadline passes before it
///   started resolves `Expired` (its callback runs, on this thread). Only
///   a later `run_*` call runs what became ready. A delay of `d` comes due
///   after `advance(d)`, not before; a deadline of `d` passes at `d`.
/// - Tasks, their callbacks and guards all run on the thread that calls the
///   driver. A task that calls [`Handle::wait`](crate::Handle::wait) on
///   another task of the pool runs ready tasks until that one is finished,
///   as a worker does (and gets [`TaskError::NotDriven`](crate::TaskError::NotDriven)
///   if the task is not ready, say delayed).
/// - [`Handle::wait`](crate::Handle::wait) elsewhere never blocks on a
///   manual pool: a finished task returns its outcome, an unfinished one
///   returns `Err(TaskError::NotDriven)`, since no one would run it while
///   the caller blocks. (`wait_timeout` does sleep, for tests that drive
///   the pool from another thread.)
/// - [`Pool::shutdown`](crate::Pool::shutdown) stops intake and returns; the
///   tasks already accepted still wait for the driver.
///   [`Pool::shutdown_now`](crate::Pool::shutdown_now) cancels every task
///   that has not started, at once.
/// - **Dropping the driver** shuts the pool down as `shutdown_now` does:
///   every task that never ran (ready, delayed, or waiting for a retry)
///   resolves `Cancelled` and its callback runs, and later submissions fail
///   with [`SubmitError::ShutDown`](crate::SubmitError::ShutDown).
///
/// ```
/// use runq::{Pool, Task, Status};
/// use std::time::Duration;
///
/// let (pool, driver) = Pool::builder().build_manual()?;
/// let now = pool.submit(|| "now")?;
/// let later = pool.submit_task(Task::new(|| "later").delay(Duration::from_secs(30)))?;
/// assert_eq!(driver.pending(), 1);
/// assert_eq!(driver.run_pending(), 1);
/// assert_eq!(now.wait()?, "now");
///
/// driver.advance(Duration::from_secs(29));
/// assert_eq!(driver.pending(), 0);
/// assert_eq!(later.status(), Status::Delayed);
/// driver.advance(Duration::from_secs(1));
/// assert_eq!(driver.run_until_idle(), 1);
/// assert_eq!(later.wait()?, "later");
/// assert_eq!(driver.elapsed(), Duration::from_secs(30));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ManualDriver {
    pool: Pool,
}

impl ManualDriver {
    pub(crate) fn new(pool: Pool) -> ManualDriver {
        ManualDriver { pool }
    }

    fn driven(&self) -> &Driven {
        self.pool
            .shared()
            .driven
            .as_ref()
            .expect("a manual driver drives a manual pool")
    }

    /// Tasks ready to run now.
    pub fn pending(&self) -> usize {
        self.driven().depths().iter().sum()
    }

    /// Runs the tasks that are ready now, in order, and not the ones they
    /// make ready; returns how many ran.
    pub fn run_pending(&self) -> usize {
        let driven = self.driven();
        let below = driven.ready.lock().seq + 1;
        driven.run_below(self.pool.shared(), below)
    }

    /// Runs ready tasks until none is ready (without moving the clock);
    /// returns how many ran.
    pub fn run_until_idle(&self) -> usize {
        self.driven().run_below(self.pool.shared(), u64::MAX)
    }

    /// Moves the pool's virtual clock forward by `d` (at most 2^31 s at a
    /// time): delays and retry backoffs that come due make their tasks
    /// ready, deadlines that pass resolve their tasks `Expired`.
    pub fn advance(&self, d: Duration) {
        let shared = self.pool.shared();
        let now = shared.clock.now();
        let target = now.checked_add(d.min(MAX_ADVANCE)).unwrap_or(now);
        let _here = Driving::enter(shared);
        shared.timer.run_due(shared, target);
        shared.clock.advance_to(target);
    }

    /// Virtual time since the pool was built: the sum of all advances.
    pub fn elapsed(&self) -> Duration {
        self.pool.shared().clock.elapsed()
    }
}

impl Drop for ManualDriver {
    fn drop(&mut self) {
        self.pool.shutdown_now();
    }
}

impl fmt::Debug for ManualDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualDriver")
            .field("pending", &self.pending())
            .field("elapsed", &self.elapsed())
            .finish()
    }
}
