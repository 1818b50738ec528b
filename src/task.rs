//! [`Task`]: what a user describes, and the single cell the queues carry.
//!
//! `Task::new(f)` puts one [`TaskCell`] holding the header (state word,
//! id, priority, attempt count), the result slot and the closure in a
//! recycled block (see `cell`: a [`CellArc`], no heap allocation for a
//! small closure once the pool is warm); builder methods fill in the
//! options while the cell is still unshared, and the rarely used ones
//! (retry, delay, deadline, key, callback, guard) live in a boxed `Extra`
//! so a plain task stays small. Submitting moves the cell into a queue as a
//! `CellArc<dyn Job>` and hands the caller a [`Handle`](crate::Handle) to
//! the same cell.
//!
//! The cells' reference counts are std atomics even under loom (see
//! `sync::refs`); loom still sees every access to the state word and to
//! the cells' `UnsafeCell`s, which is where the protocol lives.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::cell::{CellArc, Inner};
use crate::dead_letter::DeadLetter;
use crate::error::{panic_message, BoxError, TaskError};
use crate::metrics::{Event, Latency};
use crate::retry::Retry;
use crate::scheduler::Shared;
use crate::slot::*;
use crate::sync::{thread_local, Futex, Ordering, UnsafeCell};
use crate::unwind::{drop_payload, drop_quietly, Quiet};

/// Which lane a task waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Priority {
    /// The priority lane: checked by every worker before anything else.
    High,
    /// The global injector and the workers' deques. The default.
    #[default]
    Normal,
    /// Background work: taken when nothing else is runnable (and, to bound
    /// starvation, every so often regardless).
    Low,
}

/// Where a task is in its life. It only moves forward:
/// `Queued`/`Delayed` → `Running` ↔ `Retrying` → one terminal state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Waiting in a lane.
    Queued,
    /// Held by the timer until its delay passes.
    Delayed,
    /// A worker is running it.
    Running,
    /// It failed and waits for its next attempt.
    Retrying,
    /// It returned a value.
    Succeeded,
    /// It failed (or panicked) on its last attempt.
    Failed,
    /// It was cancelled before it ran.
    Cancelled,
    /// Its deadline passed before it started.
    Expired,
}

impl Status {
    /// True for the four terminal states.
    ///
    /// ```
    /// use runq::Status;
    /// assert!(Status::Succeeded.is_terminal() && Status::Expired.is_terminal());
    /// assert!(!Status::Retrying.is_terminal() && !Status::Queued.is_terminal());
    /// ```
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Status::Succeeded | Status::Failed | Status::Cancelled | Status::Expired
        )
    }

    pub(crate) fn from_word(s: u32) -> Status {
        match s & CODE {
            QUEUED => Status::Queued,
            DELAYED => Status::Delayed,
            RUNNING => Status::Running,
            RETRYING => Status::Retrying,
            SUCCEEDED => Status::Succeeded,
            FAILED => Status::Failed,
            CANCELLED => Status::Cancelled,
            _ => Status::Expired,
        }
    }
}

/// A task's identity, unique among all tasks of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(u64);

impl TaskId {
    /// The id as a number.
    pub fn as_u64(&self) -> u64 {
        self.0
    }

    /// A fresh id. Threads take blocks of ids from one global counter so the
    /// common case touches no shared cache line.
    pub(crate) fn next() -> TaskId {
        /// Ids handed to a thread at a time.
        const BLOCK: u64 = 1024;
        static NEXT_BLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        std::thread_local!(static RANGE: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) });
        RANGE.with(|r| {
            let (mut next, mut end) = r.get();
            if next == end {
                next = NEXT_BLOCK.fetch_add(1, std::sync::atomic::Ordering::Relaxed) * BLOCK;
                end = next + BLOCK;
            }
            r.set((next + 1, end));
            TaskId(next)
        })
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task#{}", self.0)
    }
}

/// Why a task is resolved without running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(loom, allow(dead_code))] // under loom only workers expire tasks
pub(crate) enum Abort {
    Cancelled,
    Expired,
}

/// What every queued task offers the scheduler, whatever its output type.
pub(crate) trait Job: Send + Sync + 'static {
    fn header(&self) -> &Header;
    /// Claims the task and runs one attempt (or resolves it, if it was
    /// cancelled or expired meanwhile). A stale queue entry does nothing.
    /// `me` is the reference the caller runs it through (a retry queues a
    /// clone of it): see `CellArc::run`. `worker`: this thread's index
    /// among the pool's workers, if it is one.
    fn run_attempt(
        &self,
        me: &CellArc<dyn Job>,
        shared: &crate::sync::Arc<Shared>,
        worker: Option<usize>,
    );
    /// Resolves a task that has not started (or waits for a retry).
    /// Returns true when this call resolved it.
    fn abort(&self, shared: &Shared, why: Abort) -> bool;
    /// Options the pool reads at submission.
    fn delay(&self) -> Option<Duration>;
    fn deadline(&self) -> Option<Duration>;
    fn key(&self) -> Option<&str>;
    fn name(&self) -> Option<&str>;
    /// Whether resolving it runs a user callback (`on_complete`).
    fn has_callback(&self) -> bool;
    /// Called once, while the cell is still unshared, at submission.
    fn prepare(&mut self, now: Instant, initial: u32);
}

/// A job whose output type is known: what a handle holds.
pub(crate) trait TaskJob<T>: Job {
    fn slot(&self) -> &Slot<T>;
    fn extra_mut(&mut self) -> &mut Extra<T>;
    fn header_mut(&mut self) -> &mut Header;
}

/// The part of a task every lane and handle reads.
pub(crate) struct Header {
    pub(crate) state: Futex,
    pub(crate) id: TaskId,
    pub(crate) priority: Priority,
    /// Runs started. Written only by the owner of the RUNNING state.
    attempts: crate::sync::AtomicU32,
    /// The span current at submission (nothing without the `tracing` feature).
    pub(crate) parent: crate::trace::Parent,
    /// When it last became ready (a stamp, see `stamp`): written before
    /// each push to a lane, read by the worker that starts it (the queue
    /// orders the two). 0: it runs where it was submitted, with no wait.
    pub(crate) ready: crate::sync::stat::AtomicU64,
}

impl Header {
    fn new() -> Header {
        Header {
            state: Futex::new(QUEUED),
            id: TaskId::next(),
            priority: Priority::Normal,
            attempts: crate::sync::AtomicU32::new(0),
            ready: crate::sync::stat::AtomicU64::new(0),
            parent: crate::trace::Parent::current(),
        }
    }

    pub(crate) fn status(&self) -> Status {
        Status::from_word(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) & DONE != 0
    }

    /// Sets CANCEL_REQ on a running task; see [`Handle::cancel`](crate::Handle::cancel).
    /// Returns false (the task runs or ran) or true when the caller should
    /// retry an abort (the task went back to a waiting state meanwhile).
    pub(crate) fn request_cancel(&self) -> bool {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            let code = s & CODE;
            if code != RUNNING {
                return is_waiting(code);
            }
            match self.state.compare_exchange_weak(
                s,
                s | CANCEL_REQ,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return false,
                Err(x) => s = x,
            }
        }
    }
}

/// Options few tasks use, boxed so plain tasks stay small.
pub(crate) struct Extra<T> {
    retry: Quiet<Retry>,
    delay: Option<Duration>,
    deadline: Option<Duration>,
    deadline_at: Option<Instant>,
    key: Option<String>,
    name: Option<String>,
    /// `on_complete` was set (readable without owning the state word).
    has_callback: bool,
    on_complete: Quiet<UnsafeCell<Option<Callback<T>>>>,
    guard: Quiet<UnsafeCell<Option<Guard>>>,
}

type Callback<T> = Box<dyn FnOnce(&Result<T, TaskError>) + Send + 'static>;
type Guard = Box<dyn FnOnce() -> bool + Send + 'static>;

impl<T> Default for Extra<T> {
    fn default() -> Self {
        Extra {
            retry: Quiet::new(Retry::none()),
            delay: None,
            deadline: None,
            deadline_at: None,
            key: None,
            name: None,
            has_callback: false,
            on_complete: Quiet::new(UnsafeCell::new(None)),
            guard: Quiet::new(UnsafeCell::new(None)),
        }
    }
}

/// A task body: called once per attempt.
pub(crate) trait Body<T>: Send + 'static {
    /// Whether the body can run more than once (retries need that).
    const REPEATABLE: bool;
    fn call(&mut self) -> Result<T, BoxError>;
}

/// An `FnOnce` body: runs at most once.
pub(crate) struct Once<F>(pub(crate) Option<F>);

impl<T, F: FnOnce() -> T + Send + 'static> Body<T> for Once<F> {
    const REPEATABLE: bool = false;
    fn call(&mut self) -> Result<T, BoxError> {
        match self.0.take() {
            Some(f) => Ok(f()),
            None => Err("task body already consumed".into()),
        }
    }
}

/// An `FnMut() -> Result` body: may run again after a failure.
pub(crate) struct Fallible<F>(F);

impl<T, E, F> Body<T> for Fallible<F>
where
    F: FnMut() -> Result<T, E> + Send + 'static,
    E: Into<BoxError>,
{
    const REPEATABLE: bool = true;
    fn call(&mut self) -> Result<T, BoxError> {
        (self.0)().map_err(Into::into)
    }
}

/// The one cell of a task: header, options, result slot, closure.
/// Every user value in it is [`Quiet`]: the cell's last owner may be a
/// worker or the timer, and a destructor's panic must not unwind there.
pub(crate) struct TaskCell<T, B> {
    header: Header,
    extra: Option<Box<Extra<T>>>,
    slot: Slot<T>,
    body: Quiet<UnsafeCell<B>>,
}

// SAFETY: [1] the body and the output are only touched by the thread that
// owns the state word (won the CAS into RUNNING or a terminal code), and
// ownership passes between threads through AcqRel operations on that word;
// [2] the handle reads the output only after an Acquire load saw DONE;
// [3] `B: Send` and `T: Send`, so moving them between threads is allowed.
unsafe impl<T: Send, B: Send> Sync for TaskCell<T, B> {}
// SAFETY: as above; every field is `Send` when `T` and `B` are.
unsafe impl<T: Send, B: Send> Send for TaskCell<T, B> {}

impl<T: Send + 'static, B: Body<T>> TaskCell<T, B> {
    pub(crate) fn new(body: B) -> Self {
        Self::with_state(body, QUEUED)
    }

    /// A plain task (no options) whose state word starts as `initial`.
    pub(crate) fn with_state(body: B, initial: u32) -> Self {
        let mut header = Header::new();
        header.state = Futex::new(initial);
        TaskCell {
            header,
            extra: None,
            slot: Slot::new(),
            body: Quiet::new(UnsafeCell::new(body)),
        }
    }

    /// Moves the cell into a recycled block, shared as a task of output `T`.
    #[inline]
    pub(crate) fn into_cell(self) -> CellArc<dyn TaskJob<T>> {
        // SAFETY: the closure only unsizes the pointer.
        unsafe { CellArc::new_job(self).coerce(|p| p as *mut Inner<dyn TaskJob<T>>) }
    }

    fn deadline_at(&self) -> Option<Instant> {
        self.extra.as_ref().and_then(|e| e.deadline_at)
    }

    /// Resolves the task. The caller owns the state word: it won the CAS
    /// into RUNNING (`from_running`) or into the terminal `code`. A dead
    /// letter goes to the pool's hook once the handle is resolved.
    fn finish(
        &self,
        shared: &Shared,
        code: u32,
        result: Result<T, TaskError>,
        from_running: bool,
        dead: Option<DeadLetter>,
    ) {
        // SAFETY: the caller owns the state word and DONE is not set.
        unsafe { self.slot.write(result) };
        let state = &self.header.state;
        // NOTE: after DONE the handle may take the output and drop its
        // reference; our own `Arc` keeps the cell alive until we return.
        let old = match &self.extra {
            // Nothing to run between the terminal code and DONE: publish
            // both with one atomic operation.
            None if from_running => set_code(state, code | DONE),
            None => state.fetch_or(DONE, Ordering::AcqRel),
            Some(extra) => {
                if from_running {
                    set_code(state, code);
                }
                if let Some(key) = &extra.key {
                    shared.release_key(key);
                }
                // SAFETY: the callback cell, like the output, belongs to the
                // owner of the state word.
                let callback = extra.on_complete.with_mut(|p| unsafe { (*p).take() });
                if let Some(cb) = callback {
                    let previous = CURRENT_TASK.with(|c| c.replace(state as *const Futex));
                    // SAFETY: the output was written above and DONE is not set.
                    let outcome =
                        catch_unwind(AssertUnwindSafe(|| unsafe { self.slot.with_output(cb) }));
                    CURRENT_TASK.with(|c| c.set(previous));
                    if let Err(payload) = outcome {
                        shared.stats_here().add(Event::CallbackPanic, 1);
                        drop_payload(payload);
                    }
                    // User code ran after the attempt's end stamp.
                    crate::stamp::forget_boundary();
                }
                state.fetch_or(DONE, Ordering::AcqRel)
            }
        };
        if old & WAITER != 0 {
            self.header.state.wake_all();
        }
        if old & JOIN_WAKER != 0 {
            // SAFETY: JOIN_WAKER was set when DONE went in (see `Slot::wake_waker`).
            let woken = catch_unwind(AssertUnwindSafe(|| unsafe { self.slot.wake_waker() }));
            if let Err(payload) = woken {
                // A user's waker panicked: caught and counted like a callback.
                shared.stats_here().add(Event::CallbackPanic, 1);
                drop_payload(payload);
            }
        }
        if old & HELPER != 0 {
            shared.notify_all();
        }
        match code {
            CANCELLED => crate::trace::cancelled(&self.header.parent, self.header.id, self.name()),
            EXPIRED => crate::trace::expired(&self.header.parent, self.header.id, self.name()),
            _ => {}
        }
        if let Some(letter) = dead {
            shared.dead_letter(&letter);
        }
        shared.task_finished(match code {
            SUCCEEDED => Event::Completed,
            FAILED => Event::Failed,
            CANCELLED => Event::Cancelled,
            _ => Event::Expired,
        });
    }

    /// One attempt ended without a value: retry, or resolve it.
    fn attempt_failed(
        &self,
        me: &CellArc<dyn Job>,
        shared: &crate::sync::Arc<Shared>,
        error: Failure,
    ) {
        let runs = self.header.attempts.load(Ordering::Relaxed);
        let allowed = match &self.extra {
            Some(e) if B::REPEATABLE => e.retry.attempts(),
            _ => 1,
        };
        // A retry_if predicate that refuses ends the task at once.
        let refused = runs < allowed && !self.retry_allowed(&error);
        if runs < allowed && !refused && !shared.stopping_now() {
            let delay = self
                .extra
                .as_ref()
                .map_or(Duration::ZERO, |e| e.retry.delay_after(runs));
            // A retry that waits in the timer counts in its gauge (TIMED).
            let timed = if delay.is_zero() {
                0
            } else {
                shared.timer.hold();
                TIMED
            };
            // RUNNING -> RETRYING only while no cancel is requested, in one
            // CAS: a cancel() that returned false (it saw RUNNING) always
            // stops the retries, and one that comes later sees RETRYING and
            // cancels the task outright.
            let state = &self.header.state;
            let mut s = state.load(Ordering::Acquire);
            while s & CANCEL_REQ == 0 {
                match state.compare_exchange_weak(
                    s,
                    (s & !CODE) | RETRYING | timed,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        shared.stats_here().add(Event::Retried, 1);
                        crate::trace::retry_scheduled(
                            self.header.id,
                            self.name(),
                            &error,
                            runs,
                            delay,
                        );
                        if let Failure::Error(error) = error {
                            // A user error whose destructor may panic.
                            drop_quietly(error);
                        }
                        let priority = self.header.priority;
                        shared.schedule(me.clone(), delay, priority);
                        return;
                    }
                    Err(x) => s = x,
                }
            }
            if timed != 0 {
                shared.timer.release();
            }
        }
        // A run that ended, cancelled or not, resolves with its real
        // outcome; cancellation only stops the retries. Used up or refused
        // attempts make a dead letter; stopped ones (cancel, shutdown_now)
        // do not.
        let dead = (runs >= allowed || refused).then(|| DeadLetter {
            id: self.header.id,
            name: self.name().map(str::to_owned),
            key: self.key().map(str::to_owned),
            attempts: runs,
            error: match &error {
                Failure::Panic(msg) => msg.clone(),
                Failure::Error(e) => e.to_string(),
            },
        });
        crate::trace::failed(self.header.id, self.name(), &error, runs);
        let err = match error {
            Failure::Panic(msg) if allowed == 1 => TaskError::Panicked(msg),
            Failure::Panic(msg) => TaskError::Failed {
                attempts: runs,
                error: msg.into(),
            },
            Failure::Error(error) => TaskError::Failed {
                attempts: runs,
                error,
            },
        };
        self.finish(shared, FAILED, Err(err), true, dead);
    }

    /// Whether the retry policy's predicate lets `error` be retried.
    fn retry_allowed(&self, error: &Failure) -> bool {
        let Some(extra) = &self.extra else {
            return true;
        };
        if !extra.retry.has_predicate() {
            return true;
        }
        match error {
            Failure::Error(e) => extra.retry.allows(&**e),
            Failure::Panic(msg) => {
                let e: BoxError = msg.clone().into();
                extra.retry.allows(&*e)
            }
        }
    }
}

enum Failure {
    Panic(String),
    Error(BoxError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Panic(msg) => f.write_str(msg),
            Failure::Error(e) => fmt::Display::fmt(e, f),
        }
    }
}

/// Replaces the status code of a state word we own (RUNNING) with `bits`,
/// keeping the flags others may set meanwhile. Returns the previous word.
fn set_code(state: &Futex, bits: u32) -> u32 {
    let mut s = state.load(Ordering::Relaxed);
    loop {
        match state.compare_exchange_weak(
            s,
            (s & !CODE) | bits,
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(prev) => return prev,
            Err(x) => s = x,
        }
    }
}

thread_local! {
    /// The state word of the task running on this thread, for `is_cancelled`.
    // loom's `thread_local!` takes no `const` initializer.
    #[allow(clippy::missing_const_for_thread_local)]
    static CURRENT_TASK: std::cell::Cell<*const Futex> = std::cell::Cell::new(std::ptr::null());
}

/// Inside a running task: whether [`Handle::cancel`](crate::Handle::cancel)
/// was called on it. A running task cannot be stopped from outside; a long
/// task can poll this and return early. Outside a task: `false`.
///
/// ```
/// use std::sync::mpsc;
/// let pool = runq::Pool::builder().workers(1).build()?;
/// let (started_tx, started) = mpsc::channel();
/// let h = pool.submit(move || {
///     started_tx.send(()).unwrap();
///     let mut spins = 0u64;
///     while !runq::is_cancelled() { spins += 1; std::hint::spin_loop(); }
///     spins
/// })?;
/// started.recv()?;
/// assert!(!h.cancel()); // running: it cannot be stopped, only asked
/// assert!(h.wait().is_ok()); // it saw the request and returned
/// assert!(!runq::is_cancelled()); // outside a task
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn is_cancelled() -> bool {
    CURRENT_TASK.with(|c| {
        let p = c.get();
        // SAFETY: `p` is set by `run` to the state word of the task it is
        // running, whose `Arc` it holds until it restores the previous
        // value, and only read on this thread.
        !p.is_null() && unsafe { (*p).load(Ordering::Relaxed) } & CANCEL_REQ != 0
    })
}

impl<T: 'static> CellArc<dyn TaskJob<T>> {
    /// The same reference, as the queues carry it.
    #[inline]
    pub(crate) fn into_job(self) -> CellArc<dyn Job> {
        // SAFETY: the closure only unsizes the pointer (an upcast).
        unsafe { self.coerce(|p| p as *mut Inner<dyn Job>) }
    }
}

impl CellArc<dyn Job> {
    /// Runs one attempt of the task (see [`Job::run_attempt`]); this
    /// reference goes when it returns, and outlives every use of the cell
    /// in the attempt (a handle may drop its own reference meanwhile).
    /// `worker`: this thread's index among the pool's workers, if it is one.
    #[inline]
    pub(crate) fn run(self, shared: &crate::sync::Arc<Shared>, worker: Option<usize>) {
        self.run_attempt(&self, shared, worker);
    }
}

/// Runs the body of a fire-and-forget task (see `spawned.rs`) as a task:
/// [`in_task`] is true meanwhile and [`is_cancelled`] false (nothing can
/// cancel a task without a handle). A panic comes back as the error.
pub(crate) fn run_detached<F: FnOnce()>(f: F) -> std::thread::Result<()> {
    let word = Futex::new(RUNNING);
    let previous = CURRENT_TASK.with(|c| c.replace(&word as *const Futex));
    let outcome = catch_unwind(AssertUnwindSafe(f));
    CURRENT_TASK.with(|c| c.set(previous));
    outcome
}

/// True while this thread runs a task body or a completion callback.
pub(crate) fn in_task() -> bool {
    CURRENT_TASK.with(|c| !c.get().is_null())
}

impl<T: Send + 'static, B: Body<T>> Job for TaskCell<T, B> {
    fn header(&self) -> &Header {
        &self.header
    }

    fn run_attempt(
        &self,
        me: &CellArc<dyn Job>,
        shared: &crate::sync::Arc<Shared>,
        worker: Option<usize>,
    ) {
        let first = self.header.attempts.load(Ordering::Relaxed) == 0;
        let expired = first && self.deadline_at().is_some_and(|d| shared.clock.now() >= d);
        let state = &self.header.state;
        let mut s = state.load(Ordering::Acquire);
        let (prev, target) = loop {
            if !is_waiting(s & CODE) {
                return; // a stale entry: resolved elsewhere
            }
            let target = if s & CANCEL_REQ != 0 {
                CANCELLED
            } else if expired {
                EXPIRED
            } else {
                RUNNING
            };
            match state.compare_exchange_weak(
                s,
                (s & !(CODE | ADMITTED | TIMED)) | target,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break (s, target),
                Err(x) => s = x,
            }
        };
        if prev & ADMITTED != 0 {
            shared.admission.release(1);
        }
        if prev & TIMED != 0 {
            shared.timer.release();
        }
        match target {
            CANCELLED => {
                return self.finish(shared, CANCELLED, Err(TaskError::Cancelled), false, None)
            }
            EXPIRED => return self.finish(shared, EXPIRED, Err(TaskError::Expired), false, None),
            _ => {}
        }
        // Only the owner of RUNNING writes the count: no read-modify-write needed.
        let runs = self.header.attempts.load(Ordering::Relaxed) + 1;
        self.header.attempts.store(runs, Ordering::Relaxed);
        let _attempt = crate::trace::attempt(
            &self.header.parent,
            self.header.id,
            self.name(),
            self.header.priority,
            runs,
        );
        if first {
            if let Some(extra) = &self.extra {
                // SAFETY: we own RUNNING; the guard cell is ours.
                if let Some(guard) = extra.guard.with_mut(|p| unsafe { (*p).take() }) {
                    let pass = match catch_unwind(AssertUnwindSafe(guard)) {
                        Ok(pass) => pass,
                        Err(payload) => {
                            drop_payload(payload);
                            false
                        }
                    };
                    // User code ran: the start stamp must be fresh.
                    crate::stamp::forget_boundary();
                    if !pass {
                        return self.finish(
                            shared,
                            CANCELLED,
                            Err(TaskError::Cancelled),
                            true,
                            None,
                        );
                    }
                }
            }
        }
        // Latency: ready -> start (queue wait), start -> end (run time).
        let previous = CURRENT_TASK.with(|c| c.replace(&self.header.state as *const Futex));
        let attempt = shared.stats.start_attempt(
            worker,
            Latency::wait(self.header.priority),
            self.header.ready.load(Ordering::Relaxed),
        );
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: we own RUNNING, so the body is ours until we give it up.
            self.body.with_mut(|b| unsafe { (*b).call() })
        }));
        shared.stats.end_attempt(attempt);
        CURRENT_TASK.with(|c| c.set(previous));
        match outcome {
            Ok(Ok(value)) => self.finish(shared, SUCCEEDED, Ok(value), true, None),
            Ok(Err(error)) => self.attempt_failed(me, shared, Failure::Error(error)),
            Err(payload) => {
                shared.stats_here().add(Event::Panicked, 1);
                let msg = panic_message(&*payload);
                drop_payload(payload);
                crate::trace::panicked(self.header.id, self.name(), &msg, runs);
                self.attempt_failed(me, shared, Failure::Panic(msg));
            }
        }
    }

    fn abort(&self, shared: &Shared, why: Abort) -> bool {
        let state = &self.header.state;
        let (target, error) = match why {
            Abort::Cancelled => (CANCELLED, TaskError::Cancelled),
            Abort::Expired => (EXPIRED, TaskError::Expired),
        };
        let mut s = state.load(Ordering::Acquire);
        let prev = loop {
            let code = s & CODE;
            let allowed = match why {
                Abort::Cancelled => is_waiting(code),
                Abort::Expired => code == QUEUED || code == DELAYED,
            };
            if !allowed {
                return false;
            }
            match state.compare_exchange_weak(
                s,
                (s & !(CODE | ADMITTED | TIMED)) | target,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break s,
                Err(x) => s = x,
            }
        };
        if prev & ADMITTED != 0 {
            shared.admission.release(1);
        }
        if prev & TIMED != 0 {
            shared.timer.release();
        }
        self.finish(shared, target, Err(error), false, None);
        true
    }

    fn delay(&self) -> Option<Duration> {
        self.extra.as_ref().and_then(|e| e.delay)
    }

    fn deadline(&self) -> Option<Duration> {
        self.extra.as_ref().and_then(|e| e.deadline)
    }

    fn key(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.key.as_deref())
    }

    fn name(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.name.as_deref())
    }

    fn has_callback(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| e.has_callback)
    }

    fn prepare(&mut self, now: Instant, initial: u32) {
        if let Some(extra) = &mut self.extra {
            extra.deadline_at = extra.deadline.and_then(|d| now.checked_add(d));
        }
        self.header.state.store(initial, Ordering::Relaxed);
        self.header.parent = crate::trace::Parent::current();
    }
}

impl<T: Send + 'static, B: Body<T>> TaskJob<T> for TaskCell<T, B> {
    fn slot(&self) -> &Slot<T> {
        &self.slot
    }

    fn extra_mut(&mut self) -> &mut Extra<T> {
        self.extra.get_or_insert_with(Default::default)
    }

    fn header_mut(&mut self) -> &mut Header {
        &mut self.header
    }
}

/// A unit of work described by the caller: a closure and its options.
///
/// ```
/// use runq::{Pool, Task, Priority, Retry};
/// use std::time::Duration;
///
/// let pool = Pool::builder().workers(2).build()?;
/// let urgent = pool.submit_task(Task::new(|| 1 + 1).priority(Priority::High))?;
/// let flaky = pool.submit_task(
///     Task::fallible({
///         let mut tries = 0;
///         move || { tries += 1; if tries < 3 { Err("not yet") } else { Ok(tries) } }
///     })
///     .retry(Retry::fixed(5, Duration::from_millis(1))),
/// )?;
/// assert_eq!(urgent.wait()?, 2);
/// assert_eq!(flaky.wait()?, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Task<T> {
    pub(crate) cell: CellArc<dyn TaskJob<T>>,
}

impl<T: Send + 'static> Task<T> {
    /// A task that runs `f` once.
    ///
    /// An `FnOnce` body cannot run twice, so a retry policy on such a task
    /// has no effect: use [`Task::fallible`] for work that may be retried.
    pub fn new<F>(f: F) -> Task<T>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        Task {
            cell: TaskCell::new(Once(Some(f))).into_cell(),
        }
    }

    /// A task that may fail: `Err` (or a panic) triggers the retry policy;
    /// when attempts run out the handle resolves [`TaskError::Failed`].
    pub fn fallible<F, E>(f: F) -> Task<T>
    where
        F: FnMut() -> Result<T, E> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Task {
            cell: TaskCell::new(Fallible(f)).into_cell(),
        }
    }

    fn cell_mut(&mut self) -> &mut dyn TaskJob<T> {
        // The cell stays unshared until submission, which consumes the task.
        self.cell
            .get_mut()
            .expect("a Task's cell is unshared until it is submitted")
    }

    fn extra(&mut self) -> &mut Extra<T> {
        self.cell_mut().extra_mut()
    }

    /// The lane it waits in (default [`Priority::Normal`]).
    pub fn priority(mut self, priority: Priority) -> Self {
        self.cell_mut().header_mut().priority = priority;
        self
    }

    /// Re-run on `Err` and on panic, as `policy` says. Only bodies built
    /// with [`Task::fallible`] are re-run.
    pub fn retry(mut self, policy: Retry) -> Self {
        *self.extra().retry = policy;
        self
    }

    /// Do not start before `d` has passed since submission.
    pub fn delay(mut self, d: Duration) -> Self {
        self.extra().delay = Some(d);
        self
    }

    /// If not started within `d` of submission, resolve
    /// [`TaskError::Expired`] and never run.
    pub fn deadline(mut self, d: Duration) -> Self {
        self.extra().deadline = Some(d);
        self
    }

    /// An idempotency key: while a task with this key is queued, delayed,
    /// running or waiting for a retry, submitting another one with the same
    /// key fails with [`SubmitError::Duplicate`](crate::SubmitError::Duplicate).
    /// The key is released when the task reaches its terminal state, before
    /// its callback runs.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.extra().key = Some(key.into());
        self
    }

    /// A name for logs: it appears in the handle's `Debug`, in dead letters
    /// and (with the `tracing` feature) in the `task.name` field. Never a
    /// metric label: names are unbounded, label values must not be.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.extra().name = Some(name.into());
        self
    }

    /// Runs `cb` exactly once with the outcome, whatever it is, before any
    /// `wait` on the task returns. A panic in `cb` is caught and counted.
    pub fn on_complete<C>(mut self, cb: C) -> Self
    where
        C: FnOnce(&Result<T, TaskError>) + Send + 'static,
    {
        let extra = self.extra();
        extra.has_callback = true;
        *extra.on_complete.get_mut() = Some(Box::new(cb));
        self
    }

    /// Evaluated right before the first run; `false` resolves the task
    /// [`TaskError::Cancelled`] without running it. A guard that panics
    /// counts as `false`.
    ///
    /// ```
    /// use runq::{Pool, Task, TaskError};
    /// let pool = Pool::builder().workers(1).build()?;
    /// let skipped = pool.submit_task(Task::new(|| 1).guard(|| false))?;
    /// assert!(matches!(skipped.wait(), Err(TaskError::Cancelled)));
    /// let ran = pool.submit_task(Task::new(|| 2).guard(|| true))?;
    /// assert_eq!(ran.wait()?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn guard<G>(mut self, check: G) -> Self
    where
        G: FnOnce() -> bool + Send + 'static,
    {
        *self.extra().guard.get_mut() = Some(Box::new(check));
        self
    }

    pub(crate) fn into_job(self) -> CellArc<dyn TaskJob<T>> {
        self.cell
    }
}

impl<T: 'static> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.cell.header().id)
            .field("name", &self.cell.name())
            .field("priority", &self.cell.header().priority)
            .field("key", &self.cell.key())
            .finish_non_exhaustive()
    }
}
