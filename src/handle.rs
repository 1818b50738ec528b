//! [`Handle`]: the caller's end of a task's result slot.

use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::cell::CellArc;
use crate::error::TaskError;
use crate::scheduler::worker::WorkerThread;
use crate::scheduler::Shared;
use crate::slot::{wait_done, DONE, JOIN_WAKER, WAITER};
use crate::sync::{Arc, Ordering};
use crate::task::{Abort, Status, TaskId, TaskJob};
use crate::unwind::counted;

/// The outcome of a submitted task, to wait on, poll, await or drop.
///
/// Dropping a handle detaches it: the task still runs. A handle is also a
/// [`Future`] resolving to the same `Result`.
///
/// ```
/// use runq::{Pool, Status};
/// let pool = Pool::builder().workers(1).build()?;
/// let h = pool.submit(|| 6 * 7)?;
/// assert_eq!(h.wait()?, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Awaiting it, here with a minimal executor that parks the thread:
///
/// ```
/// use std::future::Future;
/// use std::sync::Arc;
/// use std::task::{Context, Poll, Wake};
/// struct Unpark(std::thread::Thread);
/// impl Wake for Unpark {
///     fn wake(self: Arc<Self>) { self.0.unpark() }
/// }
/// let pool = runq::Pool::builder().workers(1).build()?;
/// let mut h = std::pin::pin!(pool.submit(|| 6 * 7)?);
/// let waker = Arc::new(Unpark(std::thread::current())).into();
/// let mut cx = Context::from_waker(&waker);
/// let out = loop {
///     match h.as_mut().poll(&mut cx) {
///         Poll::Ready(r) => break r,
///         Poll::Pending => std::thread::park(),
///     }
/// };
/// assert_eq!(out?, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Handle<T> {
    /// Dropped in `Drop`, where a panic of the output's destructor is
    /// counted in this pool's metrics.
    cell: ManuallyDrop<CellArc<dyn TaskJob<T>>>,
    shared: Arc<Shared>,
}

impl<T> Drop for Handle<T> {
    fn drop(&mut self) {
        // SAFETY: taken once, here, as the handle goes; never used again.
        let cell = unsafe { ManuallyDrop::take(&mut self.cell) };
        counted(&self.shared, move || drop(cell));
    }
}

impl<T: Send + 'static> Handle<T> {
    pub(crate) fn new(cell: CellArc<dyn TaskJob<T>>, shared: Arc<Shared>) -> Self {
        Handle {
            cell: ManuallyDrop::new(cell),
            shared,
        }
    }

    /// Blocks until the task is resolved and returns its outcome.
    ///
    /// Outside the pool the thread sleeps on the slot's futex. On one of the
    /// pool's own workers it runs other jobs meanwhile, so a task that
    /// submits work and waits for it cannot deadlock the pool, even with
    /// one worker.
    ///
    /// On a manual pool (see [`ManualDriver`](crate::ManualDriver)) it never
    /// blocks: an unfinished task gives [`TaskError::NotDriven`]. On an
    /// inline pool the task is normally finished already.
    pub fn wait(self) -> Result<T, TaskError> {
        match self.wait_deadline(None) {
            Ok(r) => r,
            // Only a manual pool gives up without a deadline.
            Err(_) => Err(TaskError::NotDriven),
        }
    }

    /// Like [`wait`](Self::wait), but gives the handle back if the task is
    /// not resolved within `timeout`.
    ///
    /// On one of the pool's own workers it runs other queued jobs while it
    /// waits, as `wait` does, and looks at the clock before taking each
    /// one: it takes none once `timeout` has passed, but a job it took
    /// before runs to its end, so the call can return late by the run time
    /// of that one job (never by more than one).
    ///
    /// ```
    /// use runq::Pool;
    /// use std::time::Duration;
    /// let pool = Pool::builder().workers(1).build()?;
    /// let (release, gate) = std::sync::mpsc::channel::<()>();
    /// let held = pool.submit(move || gate.recv().is_ok())?;
    /// // It cannot finish before `release`, however fast the machine.
    /// let held = held.wait_timeout(Duration::from_millis(1)).unwrap_err();
    /// release.send(())?;
    /// // A generous timeout: the test is that it resolves, not how soon.
    /// assert!(matches!(held.wait_timeout(Duration::from_secs(3600)), Ok(Ok(true))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_timeout(self, timeout: Duration) -> Result<Result<T, TaskError>, Handle<T>> {
        let deadline = Instant::now().checked_add(timeout);
        self.wait_deadline(deadline)
    }

    fn wait_deadline(self, deadline: Option<Instant>) -> Result<Result<T, TaskError>, Handle<T>> {
        let header = self.cell.header();
        let done = match (WorkerThread::current_of(&self.shared), &self.shared.driven) {
            (Some(worker), _) => worker.wait_until(header, deadline),
            (None, Some(driven)) => driven.wait(&self.shared, header, deadline),
            (None, None) => wait_done(&header.state, DONE, WAITER, deadline),
        };
        if done {
            Ok(self.take_output())
        } else {
            Err(self)
        }
    }

    fn take_output(&self) -> Result<T, TaskError> {
        // SAFETY: only called after DONE was seen with Acquire ordering, and
        // the handle is the one consumer of the output.
        let out = unsafe { self.cell.slot().take() };
        // `None` only if a future is polled again after it returned Ready.
        out.unwrap_or(Err(TaskError::ShutDown))
    }

    /// Where the task is now.
    pub fn status(&self) -> Status {
        self.cell.header().status()
    }

    /// True once the outcome is available (`wait` returns at once).
    pub fn is_finished(&self) -> bool {
        self.cell.header().is_done()
    }

    /// Cancels the task if it has not started (queued, delayed, or waiting
    /// for a retry): returns true, the task never runs (again) and resolves
    /// [`TaskError::Cancelled`]. A running task cannot be stopped: this
    /// returns false and sets the flag that [`runq::is_cancelled`](crate::is_cancelled)
    /// reports inside it (it is then not retried). False too for a task
    /// already resolved.
    pub fn cancel(&self) -> bool {
        loop {
            if self.cell.abort(&self.shared, Abort::Cancelled) {
                return true;
            }
            if !self.cell.header().request_cancel() {
                return false;
            }
        }
    }

    /// The task's id, unique in the process.
    ///
    /// ```
    /// let pool = runq::Pool::builder().workers(1).build()?;
    /// let (a, b) = (pool.submit(|| 1)?, pool.submit(|| 2)?);
    /// assert_ne!(a.id(), b.id());
    /// assert_eq!(format!("{}", a.id()), format!("task#{}", a.id().as_u64()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn id(&self) -> TaskId {
        self.cell.header().id
    }
}

impl<T: Send + 'static> Future for Handle<T> {
    type Output = Result<T, TaskError>;

    /// Registers the waker in the slot (see `slot.rs` for the protocol).
    /// Polling again after `Ready` yields `Err(TaskError::ShutDown)`.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let state = &this.cell.header().state;
        let slot = this.cell.slot();
        let mut s = state.load(Ordering::Acquire);
        if s & DONE != 0 {
            return Poll::Ready(this.take_output());
        }
        if s & JOIN_WAKER != 0 {
            // SAFETY: JOIN_WAKER is set: the cell is only read now.
            if unsafe { slot.waker_will_wake(cx.waker()) } {
                return Poll::Pending;
            }
            // Clear the bit to get the cell back; fails once DONE is in.
            loop {
                if s & DONE != 0 {
                    return Poll::Ready(this.take_output());
                }
                match state.compare_exchange_weak(
                    s,
                    s & !JOIN_WAKER,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break,
                    Err(x) => s = x,
                }
            }
        }
        // SAFETY: JOIN_WAKER is clear and only the handle sets it: the
        // completer does not touch the cell.
        unsafe { slot.set_waker(cx.waker().clone()) };
        let mut s = state.load(Ordering::Acquire);
        loop {
            if s & DONE != 0 {
                return Poll::Ready(this.take_output());
            }
            match state.compare_exchange_weak(
                s,
                s | JOIN_WAKER,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Poll::Pending,
                Err(x) => s = x,
            }
        }
    }
}

impl<T: 'static> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = self.cell.header();
        f.debug_struct("Handle")
            .field("id", &header.id)
            .field("name", &self.cell.name())
            .field("status", &header.status())
            .finish()
    }
}
