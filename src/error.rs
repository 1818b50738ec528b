//! The three error types of the public contract: building a pool, submitting
//! to it, and what a task's handle resolves to when the task did not succeed.

use std::error::Error;
use std::fmt;

use crate::task::Task;

/// The error a boxed task failure carries.
pub(crate) type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// Why [`Builder::build`](crate::Builder::build) refused to make a pool.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// `workers(0)`: a pool needs at least one worker.
    ZeroWorkers,
    /// More workers than [`MAX_WORKERS`](crate::MAX_WORKERS).
    TooManyWorkers {
        /// What was asked for.
        requested: usize,
        /// The largest accepted value.
        max: usize,
    },
    /// `max_workers` below `workers` (with `workers` unset, below the
    /// core count): the ceiling must be at least the floor.
    MaxBelowWorkers {
        /// The floor: `workers`.
        workers: usize,
        /// The ceiling asked for.
        max: usize,
    },
    /// `capacity(0)`: no task could ever be admitted.
    ZeroCapacity,
    /// `thread_name` contains a NUL byte, which no OS thread name may hold.
    InvalidThreadName(String),
    /// The operating system refused to start a worker thread.
    Spawn(std::io::Error),
    /// `inline()` and `build_manual()` together: they are two different
    /// test modes (one runs every task at submission, the other only when
    /// the driver says so); pick one.
    InlineAndManual,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroWorkers => f.write_str("a pool needs at least one worker"),
            BuildError::TooManyWorkers { requested, max } => {
                write!(
                    f,
                    "{requested} workers requested, at most {max} are allowed"
                )
            }
            BuildError::MaxBelowWorkers { workers, max } => write!(
                f,
                "max_workers {max} is below workers {workers}: the ceiling must be at least the floor"
            ),
            BuildError::ZeroCapacity => f.write_str("capacity must be at least 1"),
            BuildError::InvalidThreadName(name) => {
                write!(f, "thread name {name:?} contains a NUL byte")
            }
            BuildError::Spawn(e) => write!(f, "could not start a worker thread: {e}"),
            BuildError::InlineAndManual => {
                f.write_str("inline() and build_manual() are two different test modes")
            }
        }
    }
}

impl Error for BuildError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            BuildError::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a submission was refused. A refused task never runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SubmitError {
    /// The pool was shut down (or is shutting down).
    ShutDown,
    /// The queue is at capacity and the policy is [`WhenFull::Reject`](crate::WhenFull::Reject)
    /// (or the call never blocks, as `try_submit_task` does).
    Full,
    /// A task with this idempotency key is queued, delayed, running or
    /// waiting for a retry.
    Duplicate(String),
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::ShutDown => f.write_str("the pool is shut down"),
            SubmitError::Full => f.write_str("the pool's queue is full"),
            SubmitError::Duplicate(key) => write!(f, "a task with key {key:?} is already pending"),
        }
    }
}

impl Error for SubmitError {}

/// A refused [`try_submit_task`](crate::Pool::try_submit_task): the reason
/// and the task itself, handed back unrun.
pub struct TrySubmitError<T> {
    /// Why the task was refused.
    pub error: SubmitError,
    /// The task, untouched: it can be submitted again.
    pub task: Task<T>,
}

impl<T> TrySubmitError<T> {
    /// Takes the task back.
    pub fn into_task(self) -> Task<T> {
        self.task
    }
}

impl<T: 'static> fmt::Debug for TrySubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrySubmitError")
            .field("error", &self.error)
            .field("task", &self.task)
            .finish()
    }
}

impl<T> fmt::Display for TrySubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<T: 'static> Error for TrySubmitError<T> {}

/// Why a task did not produce a value.
#[derive(Debug)]
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked (and had no retries left); the panic's message.
    Panicked(String),
    /// A fallible task returned `Err` on its last allowed attempt.
    Failed {
        /// How many times the task ran.
        attempts: u32,
        /// The last error (a panic's message when the last attempt panicked).
        error: BoxError,
    },
    /// The task was cancelled (by its handle, a guard, or `shutdown_now`)
    /// before it ran.
    Cancelled,
    /// The task's deadline passed before it started.
    Expired,
    /// The pool went away before the task could be resolved.
    ShutDown,
    /// [`Handle::wait`](crate::Handle::wait) on a manual pool's task that is
    /// not finished, from a thread that is not driving the pool (or, inside
    /// a task, on one that is not ready to run): nothing would run it while
    /// the caller blocks. The task itself is untouched; run it with the
    /// [`ManualDriver`](crate::ManualDriver).
    NotDriven,
}

impl TaskError {
    /// True for [`TaskError::Cancelled`].
    ///
    /// ```
    /// use runq::{Pool, Task};
    /// use std::time::Duration;
    /// let pool = Pool::builder().workers(1).build()?;
    /// let h = pool.submit_task(Task::new(|| ()).delay(Duration::from_secs(3600)))?;
    /// assert!(h.cancel());
    /// assert!(h.wait().unwrap_err().is_cancelled());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self, TaskError::Cancelled)
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(msg) => write!(f, "task panicked: {msg}"),
            TaskError::Failed { attempts, error } => {
                write!(f, "task failed after {attempts} attempt(s): {error}")
            }
            TaskError::Cancelled => f.write_str("task was cancelled"),
            TaskError::Expired => f.write_str("task deadline passed before it started"),
            TaskError::ShutDown => f.write_str("the pool shut down before the task resolved"),
            TaskError::NotDriven => {
                f.write_str("waited on a manual pool's task that nothing is running")
            }
        }
    }
}

impl Error for TaskError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            TaskError::Failed { error, .. } => Some(&**error),
            _ => None,
        }
    }
}

/// The message of a caught panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}
