//! [`Builder`]: every knob of a pool, validated once in [`Builder::build`].

use std::collections::HashSet;
use std::time::Duration;

use crate::sync::deque::Worker;

use crate::clock::Clock;
use crate::dead_letter::{DeadLetter, DeadLetterHook};
use crate::error::BuildError;
use crate::latch::CountLatch;
use crate::manual::{Driven, ManualDriver};
use crate::metrics::Stats;
use crate::pool::Pool;
use crate::scheduler::elastic::Crew;
use crate::scheduler::lanes::{Admission, Lanes};
use crate::scheduler::sleep::Sleep;
use crate::scheduler::{JobRef, Lifecycle, Shared};
use crate::sync::{Arc, AtomicUsize, Mutex};
use crate::timer::Timer;

/// The largest accepted `workers(n)` and `max_workers(n)`. Far above any
/// core count runq is meant for; a larger value is almost certainly a bug in
/// the caller.
pub const MAX_WORKERS: usize = 512;

/// The default [`Builder::keep_alive`]: long enough that a pool seeing a
/// burst every few seconds keeps its threads instead of starting and
/// retiring one per burst (tokio's blocking pool and Java's
/// `ThreadPoolExecutor` examples use 10 s and 60 s), short enough that an
/// idle service gives its threads back within seconds.
pub(crate) const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);

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
    max_workers: Option<usize>,
    keep_alive: Duration,
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
            max_workers: None,
            keep_alive: DEFAULT_KEEP_ALIVE,
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

    /// The most worker threads the pool may run (default: [`workers`](Self::workers),
    /// a fixed-size pool). Above `workers` the pool is *elastic*: `workers`
    /// threads always run, and the pool starts more, up to `n`, when work
    /// waits and no worker is free to take it, or while tasks block in
    /// [`block_in_place`](crate::block_in_place); a worker above the floor
    /// retires after [`keep_alive`](Self::keep_alive) without work. Below
    /// `workers` is [`BuildError::MaxBelowWorkers`] (with `workers` unset
    /// the floor is the core count); above [`MAX_WORKERS`] is
    /// [`BuildError::TooManyWorkers`]. Inline and manual pools check it and
    /// otherwise ignore it. The README's "Elastic workers" says when it
    /// pays and what it costs.
    ///
    /// ```
    /// use runq::Pool;
    /// use std::time::Duration;
    /// let pool = Pool::builder()
    ///     .workers(1)
    ///     .max_workers(4)
    ///     .keep_alive(Duration::from_secs(2))
    ///     .build()?;
    /// assert_eq!(pool.workers(), 1); // the floor
    /// assert_eq!(pool.metrics().live_workers, 1);
    /// # Ok::<(), runq::BuildError>(())
    /// ```
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = Some(n);
        self
    }

    /// How long a worker above the floor of an elastic pool stays without
    /// work before it retires (default 10 s). Zero: it retires as soon as it
    /// runs out of work, so the pool never idles above its floor, at the
    /// price of a thread start per burst. Ignored
    /// by a fixed-size pool, which never retires a worker, and by inline
    /// and manual pools.
    pub fn keep_alive(mut self, d: Duration) -> Self {
        self.keep_alive = d;
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
        let pool = Pool::from_shared(self.shared(0, 0, Some(Driven::new(false))));
        Ok((pool.clone(), ManualDriver::new(pool)))
    }

    /// Every setting checked; the floor and the ceiling of workers.
    fn validate(&self) -> Result<(usize, usize), BuildError> {
        let n = self.workers.unwrap_or_else(|| num_cpus::get().max(1));
        if n == 0 {
            return Err(BuildError::ZeroWorkers);
        }
        let max = self.max_workers.unwrap_or(n);
        for requested in [n, max] {
            if requested > MAX_WORKERS {
                return Err(BuildError::TooManyWorkers {
                    requested,
                    max: MAX_WORKERS,
                });
            }
        }
        if max < n {
            return Err(BuildError::MaxBelowWorkers { workers: n, max });
        }
        if self.capacity == Some(0) {
            return Err(BuildError::ZeroCapacity);
        }
        if self.thread_name.contains('\0') {
            return Err(BuildError::InvalidThreadName(self.thread_name.clone()));
        }
        Ok((n, max))
    }

    /// The state a pool shares: with `floor` workers always running and a
    /// slot (deque, counters) for each of `max`, or with no worker and the
    /// `driven` executor (pass 0 and 0).
    fn shared(&self, floor: usize, max: usize, driven: Option<Driven>) -> Arc<Shared> {
        let locals: Vec<Worker<JobRef>> = (0..max).map(|_| Worker::new_lifo()).collect();
        let cores = if self.pin && max > 0 && !cfg!(loom) {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        let clock = if driven.is_some() {
            Clock::virtual_clock()
        } else {
            Clock::real()
        };
        Arc::new(Shared {
            lanes: Lanes::new(&locals, floor),
            sleep: Sleep::new(max, max > floor),
            searching: crossbeam_utils::CachePadded::new(AtomicUsize::new(0)),
            stats: Stats::new(max),
            admission: Admission::new(self.capacity),
            lifecycle: Lifecycle::new(),
            timer: Timer::new(),
            clock,
            driven,
            keys: Mutex::new(HashSet::new()),
            crew: Crew::new(
                locals,
                floor,
                self.keep_alive,
                cores,
                self.thread_name.clone(),
            ),
            workers: floor,
            pinned: AtomicUsize::new(0),
            when_full: self.when_full,
            name: self.thread_name.clone(),
            dead_letter: self.dead_letter.clone(),
        })
    }

    /// Starts the workers. Returns once every worker is running. (With
    /// [`inline`](Self::inline): builds an inline pool, which has none.)
    pub fn build(self) -> Result<Pool, BuildError> {
        let (n, max) = self.validate()?;
        if self.inline {
            return Ok(Pool::from_shared(self.shared(
                0,
                0,
                Some(Driven::new(true)),
            )));
        }
        let shared = self.shared(n, max, None);
        let started = Arc::new(CountLatch::new(n));
        if let Err(e) = shared.crew.start_floor(&shared, n, &started) {
            return Err(abandon(&shared, e));
        }
        #[cfg(not(loom))]
        {
            let s = shared.clone();
            let spawned = crate::sync::thread::Builder::new()
                .name(format!("{}-timer", self.thread_name))
                .spawn(move || crate::timer::run_timer(s));
            match spawned {
                Ok(h) => shared.crew.adopt(h),
                Err(e) => return Err(abandon(&shared, e)),
            }
        }
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
fn abandon(shared: &Shared, e: std::io::Error) -> BuildError {
    shared.lifecycle.close();
    drop(shared.crew.close());
    shared.on_finished();
    shared.crew.join_all();
    BuildError::Spawn(e)
}
