//! [`Builder`]: every knob of a pool, validated once in [`Builder::build`].

use std::collections::HashSet;

use crate::sync::deque::Worker;

use crate::clock::Clock;
use crate::dead_letter::{DeadLetter, DeadLetterHook};
use crate::error::BuildError;
use crate::latch::CountLatch;
use crate::manual::{Driven, ManualDriver};
use crate::metrics::Stats;
use crate::pool::Pool;
use crate::scheduler::lanes::{Admission, Lanes};
use crate::scheduler::sleep::EventCount;
use crate::scheduler::worker::run_worker;
use crate::scheduler::{JobRef, Lifecycle, Shared};
use crate::sync::{thread, Arc, AtomicUsize, Mutex};
use crate::timer::Timer;

/// The largest accepted `workers(n)`. Far above any core count runq is
/// meant for; a larger value is almost certainly a bug in the caller.
pub const MAX_WORKERS: usize = 512;

/// What a submission from outside the pool does when the queue is at capacity.
///
/// ```
/// use runq::{Pool, SubmitError, Task, WhenFull};
/// use std::sync::mpsc;
/// let pool = Pool::builder().workers(1).capacity(1).when_full(WhenFull::Reject).build()?;
/// // Occupy the worker, then fill the one place in the queue.
/// let (started_tx, started) = mpsc::channel();
/// let (release, gate) = mpsc::channel::<()>();
/// let busy = pool.submit(move || { started_tx.send(()).unwrap(); gate.recv().ok(); })?;
/// started.recv()?;
/// let queued = pool.submit(|| 1)?;
/// assert!(matches!(pool.submit(|| 2), Err(SubmitError::Full))); // Reject
/// let back = pool.try_submit_task(Task::new(|| 3)).unwrap_err(); // never blocks
/// assert!(matches!(back.error, SubmitError::Full));
/// release.send(())?;
/// busy.wait()?;
/// assert_eq!(queued.wait()?, 1);
///
/// // RunInCaller: at capacity, the submitting thread runs the task itself.
/// let inline = Pool::builder().workers(1).capacity(1).when_full(WhenFull::RunInCaller).build()?;
/// let (started_tx, started) = mpsc::channel();
/// let (release, gate) = mpsc::channel::<()>();
/// let busy = inline.submit(move || { started_tx.send(()).unwrap(); gate.recv().ok(); })?;
/// started.recv()?;
/// let _queued = inline.submit(|| ())?;
/// let here = inline.submit(std::thread::current)?;
/// assert!(here.is_finished());
/// assert_eq!(here.wait()?.id(), std::thread::current().id());
/// release.send(())?;
/// busy.wait()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Wait until there is room (or the pool shuts down). The default.
    #[default]
    Block,
    /// Fail at once with [`SubmitError::Full`](crate::SubmitError::Full).
    Reject,
    /// Run the task on the submitting thread; its handle is already
    /// finished when `submit` returns. A task with a delay is run after
    /// the submitting thread has slept through it (the delay is kept, so
    /// the caller is held back for that long).
    RunInCaller,
}

/// Configures and builds a [`Pool`].
///
/// ```
/// use runq::{Pool, WhenFull};
/// let pool = Pool::builder()
///     .workers(2)
///     .pin_workers(false)
///     .capacity(1024)
///     .when_full(WhenFull::Reject)
///     .thread_name("render")
///     .build()?;
/// assert_eq!(pool.workers(), 2);
/// # Ok::<(), runq::BuildError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    workers: Option<usize>,
    pin: bool,
    capacity: Option<usize>,
    when_full: WhenFull,
    thread_name: String,
    dead_letter: Option<DeadLetterHook>,
    inline: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// All defaults: one worker per core, pinned on Linux, unbounded.
    pub fn new() -> Builder {
        Builder {
            workers: None,
            pin: cfg!(target_os = "linux"),
            capacity: None,
            when_full: WhenFull::Block,
            thread_name: "runq".to_owned(),
            dead_letter: None,
            inline: false,
        }
    }

    /// Number of worker threads (default: the number of cores). 0, or more
    /// than [`MAX_WORKERS`], is a [`BuildError`].
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Pin worker `i` to core `i` (default on Linux). Best effort: workers
    /// beyond the core count, or on systems that refuse, run unpinned, and
    /// [`Metrics::pinned_workers`](crate::Metrics::pinned_workers) says how
    /// many were pinned.
    pub fn pin_workers(mut self, on: bool) -> Self {
        self.pin = on;
        self
    }

    /// Most tasks submitted from outside the pool that may wait at once
    /// (queued or delayed). 0 is a [`BuildError`]. Default: unbounded.
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = Some(n);
        self
    }

    /// What a submission does when the pool is at capacity (default [`WhenFull::Block`]).
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// Worker threads are named `{prefix}-{index}`, the timer `{prefix}-timer`
    /// (default prefix `runq`).
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name = prefix.into();
        self
    }

    /// Calls `hook` once for every task that fails for good: it ends
    /// `Failed` with its attempts used up, or because its policy's
    /// [`retry_if`](crate::Retry::retry_if) refused another attempt (not
    /// when a cancel or `shutdown_now` stopped its retries). The hook runs
    /// on the thread that resolved the task, after the task's handle is
    /// resolved; a panic in it is caught and counted in
    /// [`Metrics::callback_panics`](crate::Metrics::callback_panics).
    /// [`Metrics::dead_lettered`](crate::Metrics::dead_lettered) counts
    /// dead letters, hook or not.
    ///
    /// ```
    /// use runq::{DeadLetter, Pool, Task};
    /// use std::sync::{Arc, Mutex};
    /// let dead = Arc::new(Mutex::new(Vec::<DeadLetter>::new()));
    /// let sink = dead.clone();
    /// let pool = Pool::builder()
    ///     .workers(1)
    ///     .on_dead_letter(move |d| sink.lock().unwrap().push(d.clone()))
    ///     .build()?;
    /// let h = pool.submit_task(Task::fallible(|| Err::<(), _>("disk full")).name("save"))?;
    /// assert!(h.wait().is_err());
    /// pool.shutdown();
    /// let dead = dead.lock().unwrap();
    /// assert_eq!(dead[0].name.as_deref(), Some("save"));
    /// assert_eq!(dead[0].error, "disk full");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_dead_letter<F>(mut self, hook: F) -> Self
    where
        F: Fn(&DeadLetter) + Send + Sync + 'static,
    {
        self.dead_letter = Some(DeadLetterHook::new(hook));
        self
    }

    /// Makes [`build`](Self::build) return an *inline* pool, for tests: it
    /// starts no thread, and every submission runs to a terminal state on
    /// the calling thread before `submit` returns. Delays and retry backoffs
    /// move the pool's virtual clock instead of sleeping (a ten-minute
    /// backoff costs nothing), and deadlines are measured on that clock.
    /// Everything else (keys, guards, batches, callbacks, retries, panics,
    /// metrics, shutdown) takes the same code as on workers; the `manual`
    /// module docs list the few differences (`join` and `scope` run their
    /// closures one after the other, priorities are strict). The worker
    /// settings are checked as usual and otherwise ignored.
    ///
    /// ```
    /// use runq::{Pool, Retry, Task, Jitter};
    /// use std::time::Duration;
    ///
    /// let pool = Pool::builder().inline().build()?;
    /// let h = pool.submit_task(
    ///     Task::fallible({
    ///         let mut calls = 0;
    ///         move || { calls += 1; if calls < 3 { Err("down") } else { Ok(calls) } }
    ///     })
    ///     .retry(Retry::fixed(3, Duration::from_secs(600)).jitter(Jitter::None)),
    /// )?;
    /// assert!(h.is_finished()); // two ten-minute backoffs, no time spent
    /// assert_eq!(h.wait()?, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn inline(mut self) -> Self {
        self.inline = true;
        self
    }

    /// Builds a *manual* pool, for tests, and the [`ManualDriver`] that runs
    /// it: no thread starts, and nothing runs until the driver says so
    /// (see [`ManualDriver`] for the exact semantics). Hand the pool to the
    /// code under test; keep the driver in the test. With
    /// [`inline`](Self::inline) this is [`BuildError::InlineAndManual`].
    ///
    /// ```
    /// use runq::Pool;
    /// let (pool, driver) = Pool::builder().build_manual()?;
    /// let h = pool.submit(|| 2 + 2)?;
    /// assert!(!h.is_finished());
    /// assert_eq!(driver.run_until_idle(), 1);
    /// assert_eq!(h.wait()?, 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build_manual(self) -> Result<(Pool, ManualDriver), BuildError> {
        if self.inline {
            return Err(BuildError::InlineAndManual);
        }
        self.validate()?;
        let pool = Pool::from_shared(self.shared(&[], Some(Driven::new(false))));
        Ok((pool.clone(), ManualDriver::new(pool)))
    }

    /// Every setting checked; the number of workers.
    fn validate(&self) -> Result<usize, BuildError> {
        let n = self.workers.unwrap_or_else(|| num_cpus::get().max(1));
        if n == 0 {
            return Err(BuildError::ZeroWorkers);
        }
        if n > MAX_WORKERS {
            return Err(BuildError::TooManyWorkers {
                requested: n,
                max: MAX_WORKERS,
            });
        }
        if self.capacity == Some(0) {
            return Err(BuildError::ZeroCapacity);
        }
        if self.thread_name.contains('\0') {
            return Err(BuildError::InvalidThreadName(self.thread_name.clone()));
        }
        Ok(n)
    }

    /// The state a pool shares: with a worker deque per entry of `locals`,
    /// or with no worker and the `driven` executor.
    fn shared(&self, locals: &[Worker<JobRef>], driven: Option<Driven>) -> Arc<Shared> {
        let n = locals.len();
        let clock = if driven.is_some() {
            Clock::virtual_clock()
        } else {
            Clock::real()
        };
        Arc::new(Shared {
            lanes: Lanes::new(locals),
            sleep: EventCount::new(),
            searching: crossbeam_utils::CachePadded::new(AtomicUsize::new(0)),
            stats: Stats::new(n),
            admission: Admission::new(self.capacity),
            lifecycle: Lifecycle::new(),
            timer: Timer::new(),
            clock,
            driven,
            keys: Mutex::new(HashSet::new()),
            threads: Mutex::new(Vec::with_capacity(n + 1)),
            workers: n,
            pinned: AtomicUsize::new(0),
            when_full: self.when_full,
            name: self.thread_name.clone(),
            dead_letter: self.dead_letter.clone(),
        })
    }

    /// Starts the workers. Returns once every worker is running. (With
    /// [`inline`](Self::inline): builds an inline pool, which has none.)
    pub fn build(self) -> Result<Pool, BuildError> {
        let n = self.validate()?;
        if self.inline {
            return Ok(Pool::from_shared(self.shared(&[], Some(Driven::new(true)))));
        }
        let locals: Vec<Worker<JobRef>> = (0..n).map(|_| Worker::new_lifo()).collect();
        let shared = self.shared(&locals, None);
        let cores = if self.pin && !cfg!(loom) {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        let started = Arc::new(CountLatch::new(n));
        let mut handles = Vec::with_capacity(n + 1);
        for (i, local) in locals.into_iter().enumerate() {
            let (s, st, core) = (shared.clone(), started.clone(), cores.get(i).copied());
            let spawned = thread::Builder::new()
                .name(format!("{}-{i}", self.thread_name))
                .spawn(move || run_worker(s, i, local, core, st));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => return Err(abandon(&shared, handles, e)),
            }
        }
        #[cfg(not(loom))]
        {
            let s = shared.clone();
            let spawned = thread::Builder::new()
                .name(format!("{}-timer", self.thread_name))
                .spawn(move || crate::timer::run_timer(s));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => return Err(abandon(&shared, handles, e)),
            }
        }
        *shared.threads.lock() = handles;
        if waits_for_start() {
            started.latch.wait_blocking();
        }
        Ok(Pool::from_shared(shared))
    }
}

/// Whether `build` waits for its workers to start: always, except under
/// loom, where only the models that ask do (see `__loom::wait_for_start`).
fn waits_for_start() -> bool {
    #[cfg(loom)]
    return WAIT_FOR_START.with(std::cell::Cell::get);
    #[cfg(not(loom))]
    true
}

// Per OS thread, like the futex twin's spurious-wake switch.
#[cfg(loom)]
std::thread_local!(pub(crate) static WAIT_FOR_START: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });

/// A thread failed to start: stop the ones that did and report the error.
fn abandon(shared: &Shared, handles: Vec<thread::JoinHandle<()>>, e: std::io::Error) -> BuildError {
    shared.lifecycle.close();
    shared.on_finished();
    for h in handles {
        let _ = h.join();
    }
    BuildError::Spawn(e)
}
