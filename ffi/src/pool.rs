//! Pool life cycle from C: configuration, creation, shutdown, metrics.

use std::ffi::{c_char, c_void, CStr, CString};

use runq::{BuildError, Builder, DeadLetter, Metrics, Pool, ShutdownReport, WhenFull};

use crate::guard;
use crate::status::*;

/// What a submission from outside the pool does when the queue is at
/// capacity. One of the `RUNQ_WHEN_FULL_*` values.
pub type runq_when_full = i32;
/// Wait until the queue has room (the default).
pub const RUNQ_WHEN_FULL_BLOCK: runq_when_full = 0;
/// Refuse the task: the call returns `RUNQ_FULL`.
pub const RUNQ_WHEN_FULL_REJECT: runq_when_full = 1;
/// Run the task at once on the submitting thread; its handle is finished
/// when the call returns.
pub const RUNQ_WHEN_FULL_RUN_IN_CALLER: runq_when_full = 2;

/// `runq_config_default`'s keep-alive: the Rust builder's default, 10 s.
const DEFAULT_KEEP_ALIVE_MS: u64 = 10_000;

/// The largest number of workers a pool may have.
pub const RUNQ_MAX_WORKERS: u32 = 512;
const _: () = assert!(RUNQ_MAX_WORKERS as usize == runq::MAX_WORKERS);

/// A task that failed for good, as `runq_dead_letter_fn` sees it. Every
/// pointer is borrowed for the duration of the callback only: copy what you
/// keep.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct runq_dead_letter {
    /// The task's id (unique in the process).
    pub task_id: u64,
    /// The task's name (`runq_task_opts.name`), or NULL.
    pub name: *const c_char,
    /// The task's idempotency key, or NULL.
    pub key: *const c_char,
    /// Attempts it ran.
    pub attempts: u32,
    /// The last attempt's error as text (for a C task function: "task
    /// function returned <code>"). Never NULL.
    pub error: *const c_char,
}

/// Called once for every task that fails for good: it ended `RUNQ_FAILED`
/// or `RUNQ_PANICKED` with its attempts used up (not when a cancel or
/// `runq_pool_shutdown_now` stopped its retries). Runs on the thread that
/// resolved the task, after the task's handle is resolved, possibly on
/// several workers at once; `user` is the config's `dead_letter_user`. Must
/// not block for long, throw, or `longjmp` out.
pub type runq_dead_letter_fn =
    Option<unsafe extern "C" fn(letter: *const runq_dead_letter, user: *mut c_void)>;

/// How to build a pool. Fill it with `runq_config_default`, then change
/// the fields you care about.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct runq_config {
    /// Number of worker threads, 1 to `RUNQ_MAX_WORKERS`; 0 means one per
    /// core (the default).
    pub workers: u32,
    /// 1: pin each worker to a core (best effort; the default on Linux);
    /// 0: do not pin. Any other value is `RUNQ_INVALID_ARGUMENT`.
    pub pin_workers: i32,
    /// The most tasks that may wait in the queue when submitted from
    /// outside the pool; 0 means no limit (the default). Tasks submitted
    /// from inside a task never wait for room.
    pub capacity: u64,
    /// What a submission does when the queue is at capacity: a
    /// `RUNQ_WHEN_FULL_*` value.
    pub when_full: runq_when_full,
    /// Prefix of the worker threads' names (`"<prefix>-<index>"`), or NULL
    /// for `"runq"`. Borrowed: copied by `runq_pool_new`. It is also the
    /// `pool` label of `runq_metrics_prometheus`.
    pub thread_name: *const c_char,
    /// Called for every dead letter; NULL for none (the default).
    pub dead_letter: runq_dead_letter_fn,
    /// Carried to `dead_letter`, never dereferenced by runq. It must stay
    /// valid, and be usable from any thread (also from several at once),
    /// until the pool is shut down.
    pub dead_letter_user: *mut c_void,
    /// The most worker threads the pool may run, `workers` to
    /// `RUNQ_MAX_WORKERS`; 0 means `workers` (a fixed-size pool, the
    /// default). Above `workers` the pool is elastic: it starts threads
    /// when work waits and none is free, and a thread above `workers`
    /// retires after `keep_alive_ms` without work. Below `workers` is
    /// `RUNQ_INVALID_ARGUMENT`.
    pub max_workers: u32,
    /// How long, in milliseconds, a worker above `workers` stays without
    /// work before it retires (default 10000); 0: it retires as soon as it
    /// runs out of work. Ignored by a fixed-size pool.
    pub keep_alive_ms: u64,
}

/// A pool of worker threads. Opaque: create it with `runq_pool_new`, free
/// it with `runq_pool_free`. May be used from many threads at once.
///
/// The Rust library's test modes (inline pools, and manual pools driven by
/// a `ManualDriver` on a virtual clock) are Rust-only: a `runq_pool` always
/// has worker threads and reads the real clock.
#[derive(Debug)]
pub struct runq_pool {
    pub(crate) pool: Pool,
}

/// A snapshot of a pool's counters, filled by `runq_metrics`. Every field
/// counts since the pool was created, except the `queued_*`, `delayed`,
/// `in_flight` and `timer_entries` gauges. (Named apart from the function:
/// C gives a typedef and a function one namespace.)
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct runq_pool_metrics {
    /// Worker threads.
    pub workers: u64,
    /// Workers that were pinned to a core.
    pub pinned_workers: u64,
    /// Tasks accepted.
    pub submitted: u64,
    /// Tasks that finished with a result.
    pub completed: u64,
    /// Tasks that ended `RUNQ_FAILED` or `RUNQ_PANICKED`.
    pub failed: u64,
    /// Panics caught in task bodies (every attempt counts).
    pub panicked: u64,
    /// Re-runs scheduled by retry policies.
    pub retried: u64,
    /// Tasks that ended `RUNQ_CANCELLED`.
    pub cancelled: u64,
    /// Tasks that ended `RUNQ_EXPIRED`.
    pub expired: u64,
    /// Completion callbacks that panicked (only Rust callbacks can).
    pub callback_panics: u64,
    /// Tasks a worker took from another worker's queue.
    pub stolen: u64,
    /// Times a worker went to sleep.
    pub parks: u64,
    /// Times a sleeping worker was woken.
    pub wakes: u64,
    /// Tasks waiting now at high priority.
    pub queued_high: u64,
    /// Tasks waiting now at normal priority.
    pub queued_normal: u64,
    /// Tasks waiting now at low priority.
    pub queued_low: u64,
    /// Tasks waiting now for their delay or their next retry.
    pub delayed: u64,
    /// Tasks accepted and not yet in a final state.
    pub in_flight: u64,
    /// Tasks that failed for good (see `runq_dead_letter_fn`), counted with
    /// or without a callback.
    pub dead_lettered: u64,
    /// Panics caught while the pool dropped a task's values (its output
    /// with no handle left, the closure of a task that never ran, an error
    /// or panic payload); only Rust values can panic when dropped.
    pub drop_panics: u64,
    /// Entries the timer holds now: delays, retry backoffs and deadlines,
    /// including stale ones of tasks that ended, which are cleaned up in
    /// bulk (the heap stays within about twice its live entries).
    pub timer_entries: u64,
    /// Worker threads running now (`workers` on a fixed-size pool, up to
    /// `max_workers` on an elastic one).
    pub live_workers: u64,
    /// The most worker threads that ran at once.
    pub peak_workers: u64,
    /// Worker threads started, the first `workers` included.
    pub workers_started: u64,
    /// Worker threads that retired after `keep_alive_ms` without work.
    pub workers_retired: u64,
}

/// What a shutdown did. After a shutdown,
/// `submitted == completed + failed + cancelled + expired`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct runq_shutdown_report {
    /// Tasks accepted over the pool's life.
    pub submitted: u64,
    /// Tasks that finished with a result.
    pub completed: u64,
    /// Tasks that ended failed or panicked.
    pub failed: u64,
    /// Panics caught in task bodies.
    pub panicked: u64,
    /// Tasks that ended cancelled.
    pub cancelled: u64,
    /// Tasks that ended expired.
    pub expired: u64,
    /// Re-runs scheduled by retry policies.
    pub retried: u64,
    /// Tasks not yet in a final state when the report was taken: 0, unless
    /// the shutdown was called from inside one of the pool's own tasks.
    pub in_flight: u64,
}

impl From<&Metrics> for runq_pool_metrics {
    fn from(m: &Metrics) -> Self {
        runq_pool_metrics {
            workers: m.workers,
            pinned_workers: m.pinned_workers,
            submitted: m.submitted,
            completed: m.completed,
            failed: m.failed,
            panicked: m.panicked,
            retried: m.retried,
            cancelled: m.cancelled,
            expired: m.expired,
            callback_panics: m.callback_panics,
            stolen: m.stolen,
            parks: m.parks,
            wakes: m.wakes,
            queued_high: m.queued_high,
            queued_normal: m.queued_normal,
            queued_low: m.queued_low,
            delayed: m.delayed,
            in_flight: m.in_flight,
            dead_lettered: m.dead_lettered,
            drop_panics: m.drop_panics,
            timer_entries: m.timer_entries,
            live_workers: m.live_workers,
            peak_workers: m.peak_workers,
            workers_started: m.workers_started,
            workers_retired: m.workers_retired,
        }
    }
}

impl From<&ShutdownReport> for runq_shutdown_report {
    fn from(r: &ShutdownReport) -> Self {
        runq_shutdown_report {
            submitted: r.submitted,
            completed: r.completed,
            failed: r.failed,
            panicked: r.panicked,
            cancelled: r.cancelled,
            expired: r.expired,
            retried: r.retried,
            in_flight: r.in_flight,
        }
    }
}

/// Fills `*config` with the defaults: one worker per core, pinned on Linux,
/// no capacity limit, `RUNQ_WHEN_FULL_BLOCK`, thread names `"runq-<i>"`,
/// a fixed size (`max_workers` 0) and a keep-alive of 10 s.
///
/// `config`: borrowed, written only; must not be NULL.
///
/// Returns `RUNQ_OK`, or `RUNQ_INVALID_ARGUMENT` when `config` is NULL.
///
/// # Safety
/// `config` is NULL or points to writable memory for one `runq_config`.
#[no_mangle]
pub unsafe extern "C" fn runq_config_default(config: *mut runq_config) -> runq_status {
    guard(|| {
        if config.is_null() {
            return RUNQ_INVALID_ARGUMENT;
        }
        let defaults = runq_config {
            workers: 0,
            pin_workers: i32::from(cfg!(target_os = "linux")),
            capacity: 0,
            when_full: RUNQ_WHEN_FULL_BLOCK,
            thread_name: std::ptr::null(),
            dead_letter: None,
            dead_letter_user: std::ptr::null_mut(),
            max_workers: 0,
            keep_alive_ms: DEFAULT_KEEP_ALIVE_MS,
        };
        // SAFETY: `config` is not null (checked above) and the caller
        // promises it points to writable memory for a `runq_config`;
        // `write` does not read the old, possibly uninitialised, value.
        unsafe { config.write(defaults) };
        RUNQ_OK
    })
}

/// Turns a C configuration into a Builder, or says which field is bad.
///
/// # Safety
/// `c.thread_name` is NULL or a NUL-terminated string.
unsafe fn builder_from(c: &runq_config) -> Result<Builder, runq_status> {
    let mut b = Pool::builder();
    if c.workers != 0 {
        if c.workers > RUNQ_MAX_WORKERS {
            return Err(RUNQ_INVALID_ARGUMENT);
        }
        b = b.workers(c.workers as usize);
    }
    b = match c.pin_workers {
        0 => b.pin_workers(false),
        1 => b.pin_workers(true),
        _ => return Err(RUNQ_INVALID_ARGUMENT),
    };
    if c.max_workers != 0 {
        if c.max_workers > RUNQ_MAX_WORKERS {
            return Err(RUNQ_INVALID_ARGUMENT);
        }
        // Below `workers`: the build refuses it (MaxBelowWorkers).
        b = b.max_workers(c.max_workers as usize);
    }
    b = b.keep_alive(std::time::Duration::from_millis(c.keep_alive_ms));
    if c.capacity != 0 {
        let cap = usize::try_from(c.capacity).map_err(|_| RUNQ_INVALID_ARGUMENT)?;
        b = b.capacity(cap);
    }
    b = b.when_full(match c.when_full {
        RUNQ_WHEN_FULL_BLOCK => WhenFull::Block,
        RUNQ_WHEN_FULL_REJECT => WhenFull::Reject,
        RUNQ_WHEN_FULL_RUN_IN_CALLER => WhenFull::RunInCaller,
        _ => return Err(RUNQ_INVALID_ARGUMENT),
    });
    if !c.thread_name.is_null() {
        // SAFETY: not null (checked), and the caller promises a
        // NUL-terminated string that lives for this call.
        let name = unsafe { CStr::from_ptr(c.thread_name) };
        let name = name.to_str().map_err(|_| RUNQ_INVALID_ARGUMENT)?;
        b = b.thread_name(name);
    }
    if let Some(f) = c.dead_letter {
        let sink = DeadLetterSink {
            f,
            user: c.dead_letter_user,
        };
        b = b.on_dead_letter(move |d| sink.call(d));
    }
    Ok(b)
}

/// A C dead-letter callback and its `user` pointer.
#[derive(Debug, Clone, Copy)]
struct DeadLetterSink {
    f: unsafe extern "C" fn(*const runq_dead_letter, *mut c_void),
    user: *mut c_void,
}

// SAFETY: This is safe because: [1] runq never dereferences `user`, it
// only passes it back to `f`; [2] the config's contract (in the header)
// requires that `user` may be used from any thread, also from several at
// once, until the pool is shut down, which is as long as the hook can run.
unsafe impl Send for DeadLetterSink {}
// SAFETY: as for `Send`: shared use from several workers is what the C
// program promised for `user`; `f` is a plain function pointer.
unsafe impl Sync for DeadLetterSink {}

impl DeadLetterSink {
    fn call(&self, d: &DeadLetter) {
        let name = d.name.as_deref().map(c_string);
        let key = d.key.as_deref().map(c_string);
        let error = c_string(&d.error);
        let letter = runq_dead_letter {
            task_id: d.id.as_u64(),
            name: name.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            key: key.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            attempts: d.attempts,
            error: error.as_ptr(),
        };
        // SAFETY: the C program promised that `f` is a function of this
        // type and that `user` may be used on this thread; `letter` and
        // the strings it points to live until the call returns.
        unsafe { (self.f)(&letter, self.user) };
    }
}

/// `s` as a C string; a NUL byte inside (C text cannot hold one) is
/// replaced by U+FFFD.
pub(crate) fn c_string(s: &str) -> CString {
    CString::new(s)
        .unwrap_or_else(|_| CString::new(s.replace('\0', "\u{fffd}")).expect("no NUL left"))
}

/// Creates a pool and starts its workers.
///
/// - `config`: borrowed for the call; NULL means `runq_config_default`.
/// - `out`: where the new pool is written; must not be NULL. On success
///   `*out` is owned by the caller, who must release it with
///   `runq_pool_free`. On failure `*out` is set to NULL.
///
/// Returns `RUNQ_OK`; `RUNQ_INVALID_ARGUMENT` for a NULL `out`, a field
/// out of range, or a `thread_name` that is not UTF-8;
/// `RUNQ_SPAWN_FAILED` when a worker thread could not be started.
///
/// # Safety
/// `config` is NULL or points to a valid `runq_config` whose `thread_name`
/// is NULL or a NUL-terminated string; `out` is NULL or points to writable
/// memory for one pointer.
#[no_mangle]
pub unsafe extern "C" fn runq_pool_new(
    config: *const runq_config,
    out: *mut *mut runq_pool,
) -> runq_status {
    guard(|| {
        if out.is_null() {
            return RUNQ_INVALID_ARGUMENT;
        }
        // SAFETY: `out` is not null and the caller promises it is writable.
        unsafe { out.write(std::ptr::null_mut()) };
        let builder = if config.is_null() {
            Ok(Pool::builder())
        } else {
            // SAFETY: not null, and the caller promises a valid
            // `runq_config` (with a valid `thread_name`) for this call.
            unsafe { builder_from(&*config) }
        };
        let builder = match builder {
            Ok(b) => b,
            Err(code) => return code,
        };
        match builder.build() {
            Ok(pool) => {
                let pool = Box::into_raw(Box::new(runq_pool { pool }));
                // SAFETY: as above; the box is now owned by the caller.
                unsafe { out.write(pool) };
                RUNQ_OK
            }
            Err(BuildError::Spawn(_)) => RUNQ_SPAWN_FAILED,
            Err(_) => RUNQ_INVALID_ARGUMENT,
        }
    })
}

/// Borrows the pool behind a C pointer, or `None` for NULL.
///
/// # Safety
/// `pool` is NULL or came from `runq_pool_new` and was not freed yet.
pub(crate) unsafe fn pool_ref<'a>(pool: *const runq_pool) -> Option<&'a Pool> {
    // SAFETY: the caller promises a live pool or NULL; `as_ref` maps NULL
    // to None. Every use is within one runq call, while the C program
    // still owns the pool.
    unsafe { pool.as_ref() }.map(|p| &p.pool)
}

/// Stops taking tasks, runs every task already accepted (delayed ones and
/// pending retries included), then joins the workers. Blocks until done.
/// Later submissions return `RUNQ_SHUT_DOWN`. The pool must still be
/// freed with `runq_pool_free`.
///
/// - `pool`: borrowed; must not be NULL.
/// - `report`: where to write the counts, or NULL if not wanted.
///
/// Returns `RUNQ_OK` or `RUNQ_INVALID_ARGUMENT`.
///
/// # Safety
/// `pool` is NULL or a live pool from `runq_pool_new`; `report` is NULL or
/// points to writable memory for one `runq_shutdown_report`.
#[no_mangle]
pub unsafe extern "C" fn runq_pool_shutdown(
    pool: *const runq_pool,
    report: *mut runq_shutdown_report,
) -> runq_status {
    // SAFETY: the caller's promises are the ones `shutdown_with` needs.
    unsafe { shutdown_with(pool, report, runq::Pool::shutdown) }
}

/// The body of both shutdown calls.
///
/// # Safety
/// As for `runq_pool_shutdown`.
unsafe fn shutdown_with(
    pool: *const runq_pool,
    report: *mut runq_shutdown_report,
    stop: fn(&runq::Pool) -> runq::ShutdownReport,
) -> runq_status {
    guard(|| {
        // SAFETY: the caller's promise on `pool` is the one pool_ref needs.
        let Some(pool) = (unsafe { pool_ref(pool) }) else {
            return RUNQ_INVALID_ARGUMENT;
        };
        let r = stop(pool);
        // SAFETY: `report` is NULL (skipped by `as_mut`) or writable, as
        // the caller promises.
        if let Some(out) = unsafe { report.as_mut() } {
            *out = runq_shutdown_report::from(&r);
        }
        RUNQ_OK
    })
}

/// Like `runq_pool_shutdown`, but tasks that have not started (queued,
/// delayed, waiting to retry) end `RUNQ_CANCELLED` instead of running;
/// running tasks finish. Their completion callbacks still run.
///
/// Arguments and result as for `runq_pool_shutdown`.
///
/// # Safety
/// As for `runq_pool_shutdown`.
#[no_mangle]
pub unsafe extern "C" fn runq_pool_shutdown_now(
    pool: *const runq_pool,
    report: *mut runq_shutdown_report,
) -> runq_status {
    // SAFETY: the caller's promises are the ones `shutdown_with` needs.
    unsafe { shutdown_with(pool, report, runq::Pool::shutdown_now) }
}

/// Releases a pool. If it was not shut down yet this first does what
/// `runq_pool_shutdown` does (every accepted task runs), so it may block.
/// Handles of the pool's tasks stay valid and must still be freed.
///
/// `pool`: owned by runq from this call on; must not be used again. NULL
/// returns `RUNQ_INVALID_ARGUMENT` and does nothing.
///
/// Returns `RUNQ_OK` or `RUNQ_INVALID_ARGUMENT`.
///
/// # Safety
/// `pool` is NULL or a pool from `runq_pool_new` that was not freed yet,
/// and no other thread is using it.
#[no_mangle]
pub unsafe extern "C" fn runq_pool_free(pool: *mut runq_pool) -> runq_status {
    guard(|| {
        if pool.is_null() {
            return RUNQ_INVALID_ARGUMENT;
        }
        // SAFETY: the pointer came from `Box::into_raw` in runq_pool_new
        // and the caller gives it back exactly once.
        drop(unsafe { Box::from_raw(pool) });
        RUNQ_OK
    })
}

/// Writes a snapshot of the pool's counters to `*out`.
///
/// - `pool`: borrowed; must not be NULL.
/// - `out`: borrowed, written only; must not be NULL.
///
/// Returns `RUNQ_OK` or `RUNQ_INVALID_ARGUMENT`.
///
/// # Safety
/// `pool` is NULL or a live pool; `out` is NULL or points to writable
/// memory for one `runq_pool_metrics`.
#[no_mangle]
pub unsafe extern "C" fn runq_metrics(
    pool: *const runq_pool,
    out: *mut runq_pool_metrics,
) -> runq_status {
    guard(|| {
        // SAFETY: the caller's promise on `pool` is the one pool_ref needs.
        let pool = unsafe { pool_ref(pool) };
        let (Some(pool), false) = (pool, out.is_null()) else {
            return RUNQ_INVALID_ARGUMENT;
        };
        let m = runq_pool_metrics::from(&pool.metrics());
        // SAFETY: `out` is not null and the caller promises it is writable.
        unsafe { out.write(m) };
        RUNQ_OK
    })
}

/// Writes the pool's metrics in the Prometheus text exposition format
/// (0.0.4): counters, gauges and the queue-wait and run-time histograms,
/// every sample labelled `pool="<thread_name>"`; serve it as
/// `text/plain; version=0.0.4` on a `/metrics` endpoint.
///
/// - `pool`: borrowed; must not be NULL.
/// - `out`: where the text is written, a NUL-terminated string owned by the
///   caller, who must release it with `runq_string_free` (not `free`); must
///   not be NULL. Set to NULL on failure.
///
/// Returns `RUNQ_OK` or `RUNQ_INVALID_ARGUMENT`.
///
/// # Safety
/// `pool` is NULL or a live pool; `out` is NULL or points to writable
/// memory for one pointer.
#[no_mangle]
pub unsafe extern "C" fn runq_metrics_prometheus(
    pool: *const runq_pool,
    out: *mut *mut c_char,
) -> runq_status {
    guard(|| {
        if out.is_null() {
            return RUNQ_INVALID_ARGUMENT;
        }
        // SAFETY: not null (checked) and writable, as the caller promises.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: the caller's promise on `pool` is the one pool_ref needs.
        let Some(pool) = (unsafe { pool_ref(pool) }) else {
            return RUNQ_INVALID_ARGUMENT;
        };
        let text = c_string(&pool.metrics().to_prometheus());
        // SAFETY: as above; the string is now the caller's, to give back
        // to runq_string_free.
        unsafe { out.write(text.into_raw()) };
        RUNQ_OK
    })
}

/// Releases a string runq allocated (`runq_metrics_prometheus`).
///
/// `s`: owned by runq from this call on; must not be used again. NULL
/// returns `RUNQ_INVALID_ARGUMENT` and does nothing.
///
/// Returns `RUNQ_OK` or `RUNQ_INVALID_ARGUMENT`.
///
/// # Safety
/// `s` is NULL or a string from runq that was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn runq_string_free(s: *mut c_char) -> runq_status {
    guard(|| {
        if s.is_null() {
            return RUNQ_INVALID_ARGUMENT;
        }
        // SAFETY: the pointer came from `CString::into_raw` in runq and
        // the caller gives it back exactly once.
        drop(unsafe { CString::from_raw(s) });
        RUNQ_OK
    })
}
