//! Handing work to a pool from C: `runq_spawn`, `runq_submit`,
//! `runq_submit_fallible`, and the options they take.

use std::ffi::{c_char, c_void, CStr};
use std::fmt;
use std::time::Duration;

use runq::{Priority, Retry, Task, TaskError};

use crate::carry::Carried;
use crate::guard;
use crate::handle::{runq_handle, Outcome};
use crate::pool::{pool_ref, runq_pool};
use crate::status::*;

/// A task's priority: one of the `RUNQ_PRIORITY_*` values.
pub type runq_priority = i32;
/// Runs after everything else that is waiting.
pub const RUNQ_PRIORITY_LOW: runq_priority = -1;
/// The default.
pub const RUNQ_PRIORITY_NORMAL: runq_priority = 0;
/// Runs before normal and low tasks (after 16 high tasks in a row a waiting
/// normal task gets a turn, so nothing starves).
pub const RUNQ_PRIORITY_HIGH: runq_priority = 1;

/// A fire-and-forget task body: called once, on a worker thread, with the
/// `arg` given to `runq_spawn`. Must not throw a C++ exception (one that
/// escapes aborts the process) nor `longjmp` out.
pub type runq_fn = Option<unsafe extern "C" fn(arg: *mut c_void)>;

/// A task body with a result: called once, on a worker thread, with the
/// `arg` given to `runq_submit`. What it returns is the task's result,
/// carried to the waiter and the completion callback untouched. Must not
/// throw nor `longjmp` out.
pub type runq_task_fn = Option<unsafe extern "C" fn(arg: *mut c_void) -> *mut c_void>;

/// A task body that may fail: returns 0 on success, after storing its
/// result in `*result` (which starts as NULL on every attempt), or a
/// nonzero code on failure. A failed attempt is retried as the task's
/// options say; `*result` is ignored after a failure, so do not hand out
/// memory through it then. Must not throw nor `longjmp` out.
pub type runq_fallible_fn =
    Option<unsafe extern "C" fn(arg: *mut c_void, result: *mut *mut c_void) -> i32>;

/// Called exactly once when a submitted task reaches its final state,
/// before any `runq_handle_wait` on it returns: `status` is what the wait
/// returns (`RUNQ_OK`, `RUNQ_FAILED`, `RUNQ_CANCELLED`, ...), `result` the
/// task's result (NULL unless `status` is `RUNQ_OK`), `user` the options'
/// `user`. It runs on whichever thread finished the task (a worker, or the
/// thread that cancelled it or shut the pool down) and must not block for
/// long, throw, or `longjmp` out.
pub type runq_complete_fn =
    Option<unsafe extern "C" fn(status: runq_status, result: *mut c_void, user: *mut c_void)>;

/// Options of a submitted task. All zeros (`runq_task_opts o = {0};`) is
/// the same as `runq_task_opts_default`: normal priority, no delay, no
/// deadline, no retry, no key, no callback.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct runq_task_opts {
    /// A `RUNQ_PRIORITY_*` value.
    pub priority: runq_priority,
    /// Run no earlier than this many nanoseconds after submission; 0: no
    /// delay.
    pub delay_ns: u64,
    /// If the task has not started this many nanoseconds after submission
    /// it ends `RUNQ_EXPIRED` without running; 0: no deadline.
    pub deadline_ns: u64,
    /// `runq_submit_fallible` only: how many times the function may run in
    /// all, the first run included; 0 and 1 mean no retry. Must be 0 or 1
    /// for `runq_submit`.
    pub retry_attempts: u32,
    /// Backoff before the second run; each later wait doubles it. Every
    /// wait is drawn between half and all of that nominal length (equal
    /// jitter), so retries of many tasks spread out. 0: retry at once.
    pub retry_base_ns: u64,
    /// Longest backoff between two runs; 0: no limit.
    pub retry_max_ns: u64,
    /// An idempotency key, or NULL. While a task with this key is queued or
    /// running, another submission with the same key returns
    /// `RUNQ_DUPLICATE`. Borrowed: copied during the call; must be UTF-8.
    pub key: *const c_char,
    /// Called once when the task ends; NULL for none.
    pub on_complete: runq_complete_fn,
    /// Carried to `on_complete`, never dereferenced by runq. It must stay
    /// valid, and be usable from another thread, until `on_complete` has
    /// run. If the submission fails, `on_complete` is never called.
    pub user: *mut c_void,
    /// A name for logs and dead letters, or NULL. Borrowed: copied during
    /// the call; must be UTF-8. Never a metric label.
    pub name: *const c_char,
}

impl Default for runq_task_opts {
    fn default() -> Self {
        runq_task_opts {
            priority: RUNQ_PRIORITY_NORMAL,
            delay_ns: 0,
            deadline_ns: 0,
            retry_attempts: 0,
            retry_base_ns: 0,
            retry_max_ns: 0,
            key: std::ptr::null(),
            on_complete: None,
            user: std::ptr::null_mut(),
            name: std::ptr::null(),
        }
    }
}

/// Fills `*opts` with the defaults (the same as all zeros).
///
/// `opts`: borrowed, written only; must not be NULL.
///
/// Returns `RUNQ_OK` or `RUNQ_INVALID_ARGUMENT`.
///
/// # Safety
/// `opts` is NULL or points to writable memory for one `runq_task_opts`.
#[no_mangle]
pub unsafe extern "C" fn runq_task_opts_default(opts: *mut runq_task_opts) -> runq_status {
    guard(|| {
        if opts.is_null() {
            return RUNQ_INVALID_ARGUMENT;
        }
        // SAFETY: not null (checked), writable as the caller promises;
        // `write` does not read the old value.
        unsafe { opts.write(runq_task_opts::default()) };
        RUNQ_OK
    })
}

/// The code a fallible C function returned, as the error of a failed run.
#[derive(Debug)]
pub(crate) struct CallFailed(pub(crate) i32);

impl fmt::Display for CallFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task function returned {}", self.0)
    }
}

impl std::error::Error for CallFailed {}

fn priority_from(p: runq_priority) -> Result<Priority, runq_status> {
    match p {
        RUNQ_PRIORITY_LOW => Ok(Priority::Low),
        RUNQ_PRIORITY_NORMAL => Ok(Priority::Normal),
        RUNQ_PRIORITY_HIGH => Ok(Priority::High),
        _ => Err(RUNQ_INVALID_ARGUMENT),
    }
}

/// Applies every option except the retry policy to `task`.
///
/// # Safety
/// `opts.key` and `opts.name` are NULL or NUL-terminated strings.
unsafe fn with_opts(
    mut task: Task<Carried>,
    opts: &runq_task_opts,
) -> Result<Task<Carried>, runq_status> {
    task = task.priority(priority_from(opts.priority)?);
    if opts.delay_ns != 0 {
        task = task.delay(Duration::from_nanos(opts.delay_ns));
    }
    if opts.deadline_ns != 0 {
        task = task.deadline(Duration::from_nanos(opts.deadline_ns));
    }
    if !opts.key.is_null() {
        // SAFETY: not null (checked); the caller promises a NUL-terminated
        // string that lives for this call. It is copied below.
        let key = unsafe { CStr::from_ptr(opts.key) };
        let key = key.to_str().map_err(|_| RUNQ_INVALID_ARGUMENT)?;
        task = task.key(key);
    }
    if !opts.name.is_null() {
        // SAFETY: not null (checked); the caller promises a NUL-terminated
        // string that lives for this call. It is copied below.
        let name = unsafe { CStr::from_ptr(opts.name) };
        let name = name.to_str().map_err(|_| RUNQ_INVALID_ARGUMENT)?;
        task = task.name(name);
    }
    if let Some(callback) = opts.on_complete {
        let user = Carried(opts.user);
        task = task.on_complete(move |r: &Result<Carried, TaskError>| {
            let outcome = Outcome::of(r);
            // SAFETY: the C program promised, when it submitted the task,
            // that `callback` is a function of this signature and that
            // `user` may be used on this thread until the callback ran.
            unsafe { callback(outcome.status, outcome.result.get(), user.get()) };
        });
    }
    Ok(task)
}

/// Submits `task` and hands its handle to `out` (or detaches it).
///
/// # Safety
/// `pool` is NULL or live; `out` is NULL or writable.
unsafe fn submit(
    pool: *const runq_pool,
    task: Task<Carried>,
    out: *mut *mut runq_handle,
) -> runq_status {
    // SAFETY: the caller's promise on `pool` is the one pool_ref needs.
    let Some(pool) = (unsafe { pool_ref(pool) }) else {
        return RUNQ_INVALID_ARGUMENT;
    };
    match pool.submit_task(task) {
        Ok(handle) => {
            if !out.is_null() {
                let handle = Box::into_raw(Box::new(runq_handle::new(handle)));
                // SAFETY: not null (checked) and writable as promised; the
                // box is now the caller's.
                unsafe { out.write(handle) };
            }
            RUNQ_OK
        }
        Err(e) => submit_error(&e),
    }
}

/// Runs `fn(arg)` on a worker, fire and forget.
///
/// - `pool`: borrowed; must not be NULL.
/// - `fn`: must not be NULL.
/// - `arg`: carried to `fn`, never dereferenced by runq; it must stay
///   valid, and be usable from another thread, until `fn` has run. If the
///   call fails, `fn` never runs and `arg` is untouched.
/// - `priority`: a `RUNQ_PRIORITY_*` value.
///
/// Returns `RUNQ_OK` (the task was accepted and will run, unless
/// `runq_pool_shutdown_now` cancels it first), `RUNQ_FULL`,
/// `RUNQ_SHUT_DOWN`, or `RUNQ_INVALID_ARGUMENT`.
///
/// # Safety
/// `pool` is NULL or a live pool; `fn` is NULL or a function of this type;
/// `arg` is as described above.
#[no_mangle]
pub unsafe extern "C" fn runq_spawn(
    pool: *const runq_pool,
    r#fn: runq_fn,
    arg: *mut c_void,
    priority: runq_priority,
) -> runq_status {
    guard(|| {
        // SAFETY: the caller's promise on `pool` is the one pool_ref needs.
        let pool = unsafe { pool_ref(pool) };
        let (Some(pool), Some(f)) = (pool, r#fn) else {
            return RUNQ_INVALID_ARGUMENT;
        };
        let priority = match priority_from(priority) {
            Ok(p) => p,
            Err(code) => return code,
        };
        let arg = Carried(arg);
        let body = move || {
            // SAFETY: the caller promised that `f` is a function of this
            // type and that `arg` may be used on the worker until `f` ran.
            unsafe { f(arg.get()) }
        };
        let accepted = if matches!(priority, Priority::Normal) {
            pool.spawn(body)
        } else {
            pool.submit_task(Task::new(body).priority(priority))
                .map(drop)
        };
        match accepted {
            Ok(()) => RUNQ_OK,
            Err(e) => submit_error(&e),
        }
    })
}

/// Runs `fn(arg)` on a worker and keeps its result for a handle.
///
/// - `pool`: borrowed; must not be NULL.
/// - `fn`: must not be NULL.
/// - `arg`: carried to `fn`, as for `runq_spawn`.
/// - `opts`: borrowed for the call; NULL means the defaults.
///   `opts->retry_attempts` must be 0 or 1 (a `runq_task_fn` cannot fail;
///   use `runq_submit_fallible` for retries).
/// - `out`: where the new handle is written, or NULL to detach the task
///   (it still runs and its callback is still called). A handle written
///   here is owned by the caller, who must release it with
///   `runq_handle_free`. On failure `*out` is left unchanged.
///
/// Returns `RUNQ_OK`, `RUNQ_FULL`, `RUNQ_SHUT_DOWN`, `RUNQ_DUPLICATE`, or
/// `RUNQ_INVALID_ARGUMENT`. When it returns anything but `RUNQ_OK`
/// neither `fn` nor `opts->on_complete` will be called.
///
/// # Safety
/// `pool` is NULL or a live pool; `fn` is NULL or a function of this type;
/// `opts` is NULL or a valid `runq_task_opts` (see its fields); `out` is
/// NULL or points to writable memory for one pointer.
#[no_mangle]
pub unsafe extern "C" fn runq_submit(
    pool: *const runq_pool,
    r#fn: runq_task_fn,
    arg: *mut c_void,
    opts: *const runq_task_opts,
    out: *mut *mut runq_handle,
) -> runq_status {
    guard(|| {
        // SAFETY: `opts` is NULL or valid for this call, as promised.
        let opts = unsafe { opts.as_ref() }.copied().unwrap_or_default();
        let Some(f) = r#fn else {
            return RUNQ_INVALID_ARGUMENT;
        };
        if opts.retry_attempts > 1 {
            return RUNQ_INVALID_ARGUMENT;
        }
        let arg = Carried(arg);
        let task = Task::new(move || {
            // SAFETY: the caller promised that `f` is a function of this
            // type and that `arg` may be used on the worker until `f` ran.
            Carried(unsafe { f(arg.get()) })
        });
        // SAFETY: `opts.key` and `opts.name` are NULL or strings, as promised.
        match unsafe { with_opts(task, &opts) } {
            // SAFETY: `pool` and `out` as the caller promised.
            Ok(task) => unsafe { submit(pool, task, out) },
            Err(code) => code,
        }
    })
}

/// Like `runq_submit`, for a function that may fail: each nonzero return
/// is a failed attempt, retried with backoff until
/// `opts->retry_attempts` runs were made; then the task ends
/// `RUNQ_FAILED` (see `runq_handle_failure` for the last code). Between
/// attempts the task's state is `RUNQ_RETRYING` and no worker is held.
/// `fn` runs once per attempt, with the same `arg`.
///
/// Arguments, results and ownership as for `runq_submit`, except that any
/// `retry_attempts` is allowed.
///
/// # Safety
/// As for `runq_submit`.
#[no_mangle]
pub unsafe extern "C" fn runq_submit_fallible(
    pool: *const runq_pool,
    r#fn: runq_fallible_fn,
    arg: *mut c_void,
    opts: *const runq_task_opts,
    out: *mut *mut runq_handle,
) -> runq_status {
    guard(|| {
        // SAFETY: `opts` is NULL or valid for this call, as promised.
        let opts = unsafe { opts.as_ref() }.copied().unwrap_or_default();
        let Some(f) = r#fn else {
            return RUNQ_INVALID_ARGUMENT;
        };
        let arg = Carried(arg);
        let mut task = Task::fallible(move || {
            let mut result = std::ptr::null_mut();
            // SAFETY: the caller promised that `f` is a function of this
            // type and that `arg` may be used on the worker until the task
            // ended; `result` is a valid place for one pointer.
            match unsafe { f(arg.get(), &mut result) } {
                0 => Ok(Carried(result)),
                code => Err(CallFailed(code)),
            }
        });
        if opts.retry_attempts > 1 {
            let mut retry = Retry::exponential(
                opts.retry_attempts,
                Duration::from_nanos(opts.retry_base_ns),
            );
            if opts.retry_max_ns != 0 {
                retry = retry.max_delay(Duration::from_nanos(opts.retry_max_ns));
            }
            task = task.retry(retry);
        }
        // SAFETY: `opts.key` and `opts.name` are NULL or strings, as promised.
        match unsafe { with_opts(task, &opts) } {
            // SAFETY: `pool` and `out` as the caller promised.
            Ok(task) => unsafe { submit(pool, task, out) },
            Err(code) => code,
        }
    })
}

/// Called from inside a task body: returns `RUNQ_CANCELLED` if
/// `runq_handle_cancel` was called on the running task (it may then stop
/// early), `RUNQ_OK` otherwise (also outside any task).
#[no_mangle]
pub extern "C" fn runq_cancel_requested() -> runq_status {
    guard(|| {
        if runq::is_cancelled() {
            RUNQ_CANCELLED
        } else {
            RUNQ_OK
        }
    })
}
