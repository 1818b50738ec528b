//! [`Pool`]: the handle users hold.

use std::fmt;
use std::sync::Arc as StdArc;
use std::time::Instant;

use crate::builder::{Builder, WhenFull};
use crate::cell::CellArc;
use crate::error::{BuildError, SubmitError, TrySubmitError};
use crate::handle::Handle;
use crate::metrics::{Event, Latency, Metrics, ShutdownReport};
use crate::scheduler::worker::WorkerThread;
use crate::scheduler::{JobRef, Shared};
use crate::scope::Scope;
use crate::slot::{ADMITTED, DELAYED, QUEUED, TIMED};
use crate::spawned::SpawnRef;
use crate::sync::Arc;
use crate::task::{Once, Priority, Task, TaskCell, TaskJob};
use crate::unwind::counted;

/// A pool of worker threads. Cheap to clone; every clone is the same pool.
/// (For tests, a pool may also run without threads, on a virtual clock: see
/// [`Builder::inline`] and [`Builder::build_manual`].)
///
/// Dropping the last clone shuts the pool down as [`Pool::shutdown`] does
/// (queued, delayed and retrying tasks still run). When that last clone is
/// dropped on one of the pool's own workers, intake closes and the workers
/// finish the remaining work and exit on their own; the drop does not wait.
///
/// ```
/// use runq::Pool;
/// let pool = Pool::builder().workers(2).build()?;
/// let h = pool.submit(|| (1..=10u64).sum::<u64>())?;
/// assert_eq!(h.wait()?, 55);
/// let report = pool.shutdown();
/// assert_eq!(report.completed, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Pool {
    inner: StdArc<PoolInner>,
}

/// The last `Pool` clone to go shuts the pool down.
///
/// Aligned to two cache lines, so that the `shared` pointer, read by every
/// call, sits apart from the `Arc`'s reference counts, written by every
/// clone and drop. Tasks that spawn their successors carry a `Pool` clone
/// each; with the pointer beside the counts, each call on a worker missed
/// the cache whenever another worker had cloned or dropped a handle since.
/// Measured 2026-12-03, four full `runq-bench` runs of each build,
/// alternated: yield_many's ratio to the best peer, median 1.01 before and
/// 0.77 after.
#[repr(align(128))]
struct PoolInner {
    shared: Arc<Shared>,
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        shutdown(&self.shared, false);
    }
}

/// A failed submission, with the task handed back.
type Refused<T> = (SubmitError, CellArc<dyn TaskJob<T>>);

impl Pool {
    /// A [`Builder`] with all defaults.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A pool with all defaults: one worker per core, pinned on Linux,
    /// unbounded queue.
    pub fn new() -> Result<Pool, BuildError> {
        Builder::new().build()
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Pool {
        Pool {
            inner: StdArc::new(PoolInner { shared }),
        }
    }

    #[inline]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// Number of worker threads that always run: the floor set by
    /// [`Builder::workers`]. (An elastic pool may run more, up to
    /// [`Builder::max_workers`]; [`Metrics::live_workers`] says how many
    /// run now.)
    pub fn workers(&self) -> usize {
        self.shared().workers
    }

    /// Runs `f` in the background, fire and forget. A panic in `f` is
    /// caught and counted in [`Metrics::panicked`].
    ///
    /// The task's cell comes from a recycled block (see the crate docs'
    /// "What it costs"): a closure of up to 104 bytes of captures costs no
    /// heap allocation once the pool has run a few tasks; a larger one is
    /// boxed (one allocation).
    pub fn spawn<F>(&self, f: F) -> Result<(), SubmitError>
    where
        F: FnOnce() + Send + 'static,
    {
        let shared = self.shared();
        if shared.driven.is_some() || cfg!(feature = "tracing") {
            // Inline and manual pools run or hold tasks through their
            // driver, and the tracing build gives every attempt a span with
            // the task's id: both take the general path.
            return self.submit_plain(f, false).map(drop);
        }
        self.enter(1)?;
        let admit = self.admit(1, true).inspect_err(|_| self.leave(1))?;
        self.accepted(1);
        let ready = shared.stats.clock().now();
        let job = SpawnRef::new(f, admit == Admit::Permit, ready);
        if admit == Admit::Inline {
            job.run(shared, shared.worker_here());
        } else {
            shared.push_ref(JobRef::Spawned(job), Priority::Normal);
        }
        Ok(())
    }

    /// Runs `f` in the background and returns a [`Handle`] to its result.
    ///
    /// The task's cell (closure, header and result slot) comes from a
    /// recycled block when it fits (see the crate docs' "What it costs"):
    /// a closure of 64 bytes of captures costs no heap allocation once the
    /// pool has run a few tasks; a larger cell gets its own allocation.
    pub fn submit<T, F>(&self, f: F) -> Result<Handle<T>, SubmitError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.submit_plain(f, true).map(expect_handle)
    }

    /// The hot path of `submit` (and of `spawn` on inline and manual pools):
    /// a closure with no options, so no key, delay or deadline to look at,
    /// and the state word is set before the cell is shared.
    #[inline]
    fn submit_plain<T, F>(&self, f: F, want_handle: bool) -> Result<Option<Handle<T>>, SubmitError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let shared = self.shared();
        self.enter(1)?;
        let admit = self.admit(1, true).inspect_err(|_| self.leave(1))?;
        self.accepted(1);
        let initial = if admit == Admit::Permit {
            QUEUED | ADMITTED
        } else {
            QUEUED
        };
        let cell = TaskCell::with_state(Once(Some(f)), initial).into_cell();
        let handle = want_handle.then(|| Handle::new(cell.clone(), shared.clone()));
        let job = cell.into_job();
        if admit == Admit::Inline {
            counted(shared, || job.run(shared, shared.worker_here()));
        } else {
            shared.push(job, Priority::Normal);
        }
        self.submitted();
        Ok(handle)
    }

    /// Submits a [`Task`] with its options. Blocks while the pool is at
    /// capacity under [`WhenFull::Block`].
    pub fn submit_task<T: Send + 'static>(&self, task: Task<T>) -> Result<Handle<T>, SubmitError> {
        self.submit_cell(task.into_job(), true, true)
            .map(expect_handle)
            .map_err(|(e, _)| e)
    }

    /// Submits a [`Task`] without ever blocking: when the pool is at
    /// capacity (whatever the policy) or refuses it, the task comes back
    /// inside the error, unrun.
    ///
    /// ```
    /// use runq::{Pool, SubmitError, Task};
    /// let pool = Pool::builder().workers(1).build()?;
    /// pool.shutdown();
    /// let refused = pool.try_submit_task(Task::new(|| 7)).unwrap_err();
    /// assert!(matches!(refused.error, SubmitError::ShutDown));
    /// let task = refused.into_task(); // unrun; could go to another pool
    /// let other = Pool::builder().workers(1).build()?;
    /// assert_eq!(other.try_submit_task(task).map_err(|e| e.error)?.wait()?, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_submit_task<T: Send + 'static>(
        &self,
        task: Task<T>,
    ) -> Result<Handle<T>, TrySubmitError<T>> {
        self.submit_cell(task.into_job(), false, true)
            .map(expect_handle)
            .map_err(|(error, cell)| TrySubmitError {
                error,
                task: Task { cell },
            })
    }

    /// Submits all of `tasks` or none of them: shutdown, keys (also
    /// duplicates within the batch) and capacity are checked for the whole
    /// batch first, and no task of a refused batch ever runs. Under
    /// [`WhenFull::Block`] it waits for room for the whole batch (a batch
    /// larger than the capacity is refused with `Full`); under
    /// [`WhenFull::RunInCaller`] a batch that does not fit runs in the caller.
    ///
    /// ```
    /// use runq::{Pool, SubmitError, Task};
    /// let pool = Pool::builder().workers(2).build()?;
    /// let handles = pool.submit_batch((1..=3u32).map(|i| Task::new(move || i * 10)).collect())?;
    /// let sum: u32 = handles.into_iter().map(|h| h.wait().unwrap()).sum();
    /// assert_eq!(sum, 60);
    /// // A duplicate key inside a batch refuses all of it.
    /// let dup = pool.submit_batch(vec![Task::new(|| 1).key("k"), Task::new(|| 2).key("k")]);
    /// assert!(matches!(dup, Err(SubmitError::Duplicate(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit_batch<T: Send + 'static>(
        &self,
        tasks: Vec<Task<T>>,
    ) -> Result<Vec<Handle<T>>, SubmitError> {
        let shared = self.shared();
        let n = tasks.len();
        if n == 0 {
            return if shared.lifecycle.is_closed() {
                Err(SubmitError::ShutDown)
            } else {
                Ok(Vec::new())
            };
        }
        let cells: Vec<CellArc<dyn TaskJob<T>>> = tasks.into_iter().map(Task::into_job).collect();
        self.enter(n)?;
        let keys: Vec<&str> = cells.iter().filter_map(|c| c.key()).collect();
        if !keys.is_empty() {
            let mut held = shared.keys.lock();
            let mut taken: Vec<&str> = Vec::with_capacity(keys.len());
            for k in &keys {
                if held.contains(*k) || taken.contains(k) {
                    for t in &taken {
                        held.remove(*t);
                    }
                    drop(held);
                    self.leave(n);
                    return Err(SubmitError::Duplicate((*k).to_owned()));
                }
                held.insert((*k).to_owned());
                taken.push(k);
            }
        }
        let admit = self.admit(n, true).inspect_err(|_| {
            for k in &keys {
                shared.release_key(k);
            }
            self.leave(n);
        })?;
        self.accepted(n);
        let handles = cells
            .into_iter()
            .map(|cell| {
                self.dispatch(cell, admit, true)
                    .expect("dispatch returns a handle when asked")
            })
            .collect();
        self.submitted();
        Ok(handles)
    }

    /// Counts `n` accepted tasks, before they are dispatched (so before any
    /// of them can end): `ShutdownReport::submitted` and
    /// `Metrics::submitted` read this count, which no terminal event
    /// touches, so their balance against the terminal counts is a check.
    #[inline]
    fn accepted(&self, n: usize) {
        self.shared().stats_here().add(Event::Accepted, n as u64);
    }

    /// After accepted tasks were dispatched: an inline pool runs them now
    /// (see `manual.rs`); a pool with workers has nothing to do.
    #[inline]
    fn submitted(&self) {
        let shared = self.shared();
        if let Some(driven) = &shared.driven {
            driven.submitted(shared);
        }
    }

    /// Counts tasks in, or refuses because the pool is closed.
    fn enter(&self, n: usize) -> Result<(), SubmitError> {
        self.shared().enter(n).map_err(|()| SubmitError::ShutDown)
    }

    fn leave(&self, n: usize) {
        self.shared().leave(n);
    }

    /// Takes `n` admission permits if the submission comes from outside the
    /// pool and the pool is bounded.
    fn admit(&self, n: usize, may_block: bool) -> Result<Admit, SubmitError> {
        let shared = self.shared();
        if !shared.admission.is_bounded()
            || WorkerThread::current_of(shared).is_some()
            || (shared.driven.is_some() && crate::manual::driving_here(shared))
        {
            return Ok(Admit::Free);
        }
        let policy = shared.when_full;
        // Nothing makes room on a manual pool while its caller blocks.
        let manual = shared.driven.as_ref().is_some_and(|d| d.is_manual());
        let block = may_block && policy == WhenFull::Block && !manual;
        match shared
            .admission
            .acquire(n, block, || shared.lifecycle.is_closed())
        {
            Ok(()) => Ok(Admit::Permit),
            Err(SubmitError::Full) if may_block && policy == WhenFull::RunInCaller => {
                Ok(Admit::Inline)
            }
            Err(e) => Err(e),
        }
    }

    fn submit_cell<T: Send + 'static>(
        &self,
        cell: CellArc<dyn TaskJob<T>>,
        may_block: bool,
        want_handle: bool,
    ) -> Result<Option<Handle<T>>, Refused<T>> {
        let shared = self.shared();
        if let Err(e) = self.enter(1) {
            return Err((e, cell));
        }
        if let Some(key) = cell.key() {
            if !shared.keys.lock().insert(key.to_owned()) {
                let key = key.to_owned();
                self.leave(1);
                return Err((SubmitError::Duplicate(key), cell));
            }
        }
        let admit = match self.admit(1, may_block) {
            Ok(a) => a,
            Err(e) => {
                if let Some(key) = cell.key() {
                    shared.release_key(key);
                }
                self.leave(1);
                return Err((e, cell));
            }
        };
        self.accepted(1);
        let handle = self.dispatch(cell, admit, want_handle);
        self.submitted();
        Ok(handle)
    }

    /// Sends an accepted task on its way: into the timer when delayed, run
    /// right here under `RunInCaller`, else into its lane.
    fn dispatch<T: Send + 'static>(
        &self,
        mut cell: CellArc<dyn TaskJob<T>>,
        admit: Admit,
        want_handle: bool,
    ) -> Option<Handle<T>> {
        let shared = self.shared();
        let delay = cell
            .delay()
            .filter(|d| !d.is_zero() && admit != Admit::Inline);
        // Run in the caller, the delay is waited out right here.
        let inline_delay = cell
            .delay()
            .filter(|d| !d.is_zero() && admit == Admit::Inline);
        let deadline = cell.deadline();
        let now = if delay.is_some() || deadline.is_some() {
            shared.clock.now()
        } else {
            // Only read by tasks with a delay or deadline.
            cached_now()
        };
        let mut initial = if delay.is_some() {
            // Counted in the timer's gauge until it leaves the timer.
            shared.timer.hold();
            DELAYED | TIMED
        } else {
            QUEUED
        };
        if admit == Admit::Permit {
            initial |= ADMITTED;
        }
        if let Some(c) = cell.get_mut() {
            c.prepare(now, initial);
        }
        let handle = want_handle.then(|| Handle::new(cell.clone(), shared.clone()));
        let job = cell.into_job();
        if let Some(d) = deadline {
            if let Some(due) = now.checked_add(d) {
                shared.timer.expire_at(shared, due, job.downgrade());
            }
        }
        let priority = job.header().priority;
        match (admit, delay) {
            (Admit::Inline, _) => {
                if let (Some(d), None) = (inline_delay, &shared.driven) {
                    std::thread::sleep(d);
                }
                counted(shared, || job.run(shared, shared.worker_here()))
            }
            (_, Some(d)) => shared.schedule(job, d, priority),
            (_, None) => shared.push(job, priority),
        }
        handle
    }

    /// Runs `a` and `b`, potentially in parallel, and returns both results.
    /// On one of this pool's workers this is [`runq::join`](crate::join);
    /// from elsewhere the join runs on a worker while the caller waits. A
    /// panic in either closure is re-raised here after both finished. After
    /// shutdown both run on the calling thread.
    pub fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        crate::join::join_in(self.shared(), a, b)
    }

    /// Runs `op` with a [`Scope`] whose spawned closures may borrow from the
    /// caller's stack; returns once all of them have finished. A panic in
    /// `op` or in a spawned closure is re-raised here after all finished.
    ///
    /// ```
    /// use runq::Pool;
    /// let pool = Pool::builder().workers(2).build()?;
    /// let mut parts = vec![0u64; 4];
    /// pool.scope(|s| {
    ///     for (i, part) in parts.iter_mut().enumerate() {
    ///         s.spawn(move |_| *part = (i as u64 + 1) * 10);
    ///     }
    /// });
    /// assert_eq!(parts, vec![10, 20, 30, 40]);
    /// # Ok::<(), runq::BuildError>(())
    /// ```
    pub fn scope<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&Scope<'scope>) -> R + Send,
        R: Send,
    {
        crate::scope::scope_in(self.shared(), op)
    }

    /// A snapshot of the pool's counters and queue depths. It reads one
    /// block of counters per worker, never the timer's lock.
    ///
    /// ```
    /// use runq::Pool;
    /// let pool = Pool::builder().workers(1).build()?;
    /// pool.submit(|| ())?.wait()?;
    /// assert_eq!(pool.metrics().submitted, 1);
    /// // While the pool runs the counts are a moment's estimate (a task's
    /// // terminal count lands just after its handle resolves); after
    /// // shutdown they are exact.
    /// pool.shutdown();
    /// let m = pool.metrics();
    /// assert_eq!((m.submitted, m.completed, m.in_flight, m.workers), (1, 1, 0, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn metrics(&self) -> Metrics {
        metrics(self.shared())
    }

    /// Stops intake, runs everything already accepted (delayed tasks and
    /// pending retries included, at their time), joins the workers and
    /// reports the final counts. Other clones get
    /// [`SubmitError::ShutDown`] from then on. Idempotent.
    ///
    /// Called on one of the pool's own workers it cannot join that worker:
    /// it closes intake and returns at once, and the workers exit when the
    /// accepted work is done.
    ///
    /// On a manual pool (see [`ManualDriver`](crate::ManualDriver)) it
    /// closes intake and returns: the tasks already accepted still wait for
    /// the driver, and the report counts them in `in_flight`. On an inline
    /// pool nothing is left to run.
    pub fn shutdown(&self) -> ShutdownReport {
        shutdown(self.shared(), false)
    }

    /// Stops intake, resolves every task that has not started (queued,
    /// delayed, waiting for a retry) as `Cancelled` (their callbacks run),
    /// lets running tasks finish (without further retries), joins the
    /// workers and reports. On an inline or manual pool the cancellations
    /// (and their callbacks) happen on the calling thread, before it returns.
    ///
    /// ```
    /// use runq::{Pool, Task, TaskError};
    /// use std::time::Duration;
    /// let pool = Pool::builder().workers(1).build()?;
    /// let later = pool.submit_task(Task::new(|| 1).delay(Duration::from_secs(3600)))?;
    /// let report = pool.shutdown_now(); // does not wait the hour
    /// assert_eq!(report.cancelled, 1);
    /// assert!(matches!(later.wait(), Err(TaskError::Cancelled)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown_now(&self) -> ShutdownReport {
        shutdown(self.shared(), true)
    }

    /// True once `shutdown`/`shutdown_now` was called (or the last clone dropped).
    ///
    /// ```
    /// use runq::{Pool, SubmitError};
    /// let pool = Pool::builder().workers(1).build()?;
    /// let clone = pool.clone();
    /// assert!(!clone.is_shut_down());
    /// pool.shutdown();
    /// assert!(clone.is_shut_down());
    /// assert!(matches!(clone.submit(|| ()), Err(SubmitError::ShutDown)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_shut_down(&self) -> bool {
        self.shared().lifecycle.is_closed()
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.shared();
        f.debug_struct("Pool")
            .field("name", &shared.name)
            .field("workers", &shared.workers)
            .field("shut_down", &shared.lifecycle.is_closed())
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    /// Unbounded pool, or a submission from inside it.
    Free,
    /// Holds an admission permit until it starts.
    Permit,
    /// At capacity under `RunInCaller`: run on the submitting thread.
    Inline,
}

fn expect_handle<T>(h: Option<Handle<T>>) -> Handle<T> {
    h.expect("a handle was asked for")
}

/// A time stamp for tasks that never read it (no delay, no deadline).
fn cached_now() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn metrics(shared: &Shared) -> Metrics {
    let s = &shared.stats;
    let [queued_high, queued_normal, queued_low] = match &shared.driven {
        Some(driven) => driven.depths(),
        None => [
            shared.lanes.high.len(),
            shared.lanes.normal_len(),
            shared.lanes.low.len(),
        ],
    };
    // The terminal counts first, then the accepted one: a task's
    // acceptance is counted before it can end, and the terminal counters
    // are read with SeqCst (acquire) loads, so every task seen ended is
    // also seen accepted and `in_flight` below cannot go negative. It
    // counts accepted tasks only: a submitter still blocked on capacity
    // and a `join` or `scope` from outside are in the scheduler's flow
    // count (which `shutdown` waits on) but are not tasks.
    let completed = s.sum(Event::Completed);
    let failed = s.sum(Event::Failed);
    let cancelled = s.sum(Event::Cancelled);
    let expired = s.sum(Event::Expired);
    let submitted = s.sum(Event::Accepted);
    let in_flight = submitted.saturating_sub(completed + failed + cancelled + expired);
    let census = shared.crew.census();
    Metrics {
        pool: shared.name.clone(),
        workers: shared.workers as u64,
        live_workers: census.live,
        peak_workers: census.peak,
        workers_started: census.started,
        workers_retired: census.retired,
        pinned_workers: shared.pinned.load(crate::sync::Ordering::Relaxed) as u64,
        submitted,
        completed,
        failed,
        panicked: s.sum(Event::Panicked),
        retried: s.sum(Event::Retried),
        cancelled,
        expired,
        callback_panics: s.sum(Event::CallbackPanic),
        drop_panics: s.sum(Event::DropPanic),
        stolen: s.sum(Event::Stolen),
        parks: s.sum(Event::Park),
        wakes: s.sum(Event::Wake),
        queued_high: queued_high as u64,
        queued_normal: queued_normal as u64,
        queued_low: queued_low as u64,
        delayed: shared.timer.pending(),
        timer_entries: shared.timer.entries(),
        in_flight,
        dead_lettered: s.sum(Event::DeadLettered),
        queue_wait_high: s.histogram(Latency::WaitHigh),
        queue_wait_normal: s.histogram(Latency::WaitNormal),
        queue_wait_low: s.histogram(Latency::WaitLow),
        run_time: s.histogram(Latency::Run),
    }
}

/// Shuts the pool down; see [`Pool::shutdown`] and [`Pool::shutdown_now`].
fn shutdown(shared: &Shared, now: bool) -> ShutdownReport {
    if now {
        shared
            .lifecycle
            .now
            .store(true, crate::sync::Ordering::SeqCst);
    }
    shared.lifecycle.close();
    // Wake everyone to look at the new state: idle workers (to drain or
    // exit), the timer, and submitters blocked on capacity (to give up).
    shared.on_finished();
    // Inside a task or callback of this pool, joining would wait for the
    // very work we are part of: return and let the workers finish alone.
    // An inline or manual pool has no thread to join: `shutdown_now`
    // cancels what has not started right here, and the report is final
    // once nothing is in flight (the driver may still run accepted tasks).
    let joined = match &shared.driven {
        Some(driven) => {
            if now {
                driven.cancel_all(shared);
            }
            shared.is_finished()
        }
        None => WorkerThread::current_of(shared).is_none() && !crate::task::in_task(),
    };
    // No worker starts from now on (see `elastic`); joining includes any
    // that started or retired meanwhile.
    drop(shared.crew.close());
    if joined {
        shared.crew.join_all();
    }
    let m = metrics(shared);
    // `submitted` is counted where tasks are accepted, independently of
    // the terminal counts: once the workers are joined, a balance that
    // does not hold is a lost or double-counted task.
    ShutdownReport {
        submitted: m.submitted,
        completed: m.completed,
        failed: m.failed,
        panicked: m.panicked,
        cancelled: m.cancelled,
        expired: m.expired,
        retried: m.retried,
        in_flight: if joined { 0 } else { m.in_flight },
    }
}
