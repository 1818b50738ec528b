//! Task handles from C: wait (with a timeout that loses nothing), status,
//! cancel, failure details, free.
//!
//! A `runq_handle` owns the Rust [`Handle`] until the task's outcome has
//! been collected, and the outcome after that, so a handle can be waited
//! on any number of times and always reports the same result.
//! `Handle::wait_timeout` gives the handle back on a time-out; it goes
//! straight back into the slot, so a `RUNQ_TIMEOUT` leaves the handle as
//! it was.
//!
//! The slot sits behind a mutex that is only ever *tried*: calls on one
//! handle that overlap (which the header forbids) get `RUNQ_BUSY` rather
//! than racing on the Rust handle or blocking behind a long wait.

use std::ffi::c_void;
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use runq::{Handle, TaskError};

use crate::carry::Carried;
use crate::guard;
use crate::status::*;
use crate::task::CallFailed;

/// `runq_handle_wait`'s `timeout_ns` for "no time limit".
pub const RUNQ_WAIT_FOREVER: u64 = u64::MAX;

/// How a task ended, in C terms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    /// `RUNQ_OK` or the code of the task's error.
    pub(crate) status: runq_status,
    /// The task's result; NULL unless `status` is `RUNQ_OK`.
    pub(crate) result: Carried,
    /// For `RUNQ_FAILED`: the last nonzero code and how many runs were made.
    pub(crate) failure: Option<(i32, u32)>,
}

impl Outcome {
    pub(crate) fn of(r: &Result<Carried, TaskError>) -> Outcome {
        match r {
            Ok(result) => Outcome {
                status: RUNQ_OK,
                result: *result,
                failure: None,
            },
            Err(e) => Outcome {
                status: task_error(e),
                result: Carried::NULL,
                failure: match e {
                    TaskError::Failed { attempts, error } => {
                        // A panic on the last attempt also ends Failed; it
                        // has no C code, so it reads as 0.
                        let code = error.downcast_ref::<CallFailed>().map_or(0, |c| c.0);
                        Some((code, *attempts))
                    }
                    _ => None,
                },
            },
        }
    }
}

#[derive(Debug)]
enum Slot {
    /// Not collected yet.
    Pending(Handle<Carried>),
    /// Collected by a wait.
    Done(Outcome),
    /// Only seen if a call panicked while the Rust handle was out of the
    /// slot; every later call then returns `RUNQ_INTERNAL`.
    Lost,
}

/// A submitted task. Opaque: written by `runq_submit` or
/// `runq_submit_fallible`, released by `runq_handle_free`. It may move
/// between threads, but calls on one handle must not overlap (an
/// overlapping call returns `RUNQ_BUSY`). It stays valid after its pool
/// was shut down or freed.
#[derive(Debug)]
pub struct runq_handle {
    slot: Mutex<Slot>,
}

impl runq_handle {
    pub(crate) fn new(handle: Handle<Carried>) -> Self {
        runq_handle {
            slot: Mutex::new(Slot::Pending(handle)),
        }
    }
}

/// Locks the handle's slot without waiting.
///
/// # Safety
/// `handle` is NULL or a live handle.
unsafe fn lock<'a>(handle: *const runq_handle) -> Result<MutexGuard<'a, Slot>, runq_status> {
    // SAFETY: the caller promises a live handle or NULL; the reference is
    // only used during the current call.
    let handle = unsafe { handle.as_ref() }.ok_or(RUNQ_INVALID_ARGUMENT)?;
    match handle.slot.try_lock() {
        Ok(slot) => Ok(slot),
        Err(TryLockError::WouldBlock) => Err(RUNQ_BUSY),
        // A poisoned lock only means a caught panic inside a call; the slot
        // itself is then `Lost` or still consistent.
        Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
    }
}

/// Waits for the task to end, at most `timeout_ns` nanoseconds
/// (`RUNQ_WAIT_FOREVER`: no limit; 0: just look). Called on a worker
/// thread (from inside a task) it runs other tasks while it waits, so a
/// task may wait on a task it submitted.
///
/// - `handle`: borrowed; must not be NULL.
/// - `result`: where the task's result is written, or NULL if not wanted.
///   `*result` is the pointer the task function returned when the call
///   returns `RUNQ_OK`, NULL otherwise. runq does not own that pointer and
///   never frees it; every later wait reports the same pointer again.
///
/// Returns `RUNQ_TIMEOUT` if the task has not ended in time (the handle
/// stays valid and nothing is lost: wait again, or cancel, or free it).
/// Otherwise the task's final state, the same on every later call:
/// `RUNQ_OK`, `RUNQ_FAILED`, `RUNQ_PANICKED`, `RUNQ_CANCELLED`,
/// `RUNQ_EXPIRED` or `RUNQ_SHUT_DOWN`. Also `RUNQ_INVALID_ARGUMENT` or
/// `RUNQ_BUSY`.
///
/// # Safety
/// `handle` is NULL or a live handle; `result` is NULL or points to
/// writable memory for one pointer.
#[no_mangle]
pub unsafe extern "C" fn runq_handle_wait(
    handle: *const runq_handle,
    timeout_ns: u64,
    result: *mut *mut c_void,
) -> runq_status {
    guard(|| {
        // SAFETY: as the caller promises for `handle`.
        let mut slot = match unsafe { lock(handle) } {
            Ok(slot) => slot,
            Err(code) => return code,
        };
        let outcome = match std::mem::replace(&mut *slot, Slot::Lost) {
            Slot::Done(outcome) => Some(outcome),
            Slot::Lost => return RUNQ_INTERNAL,
            Slot::Pending(h) if timeout_ns == RUNQ_WAIT_FOREVER => Some(Outcome::of(&h.wait())),
            Slot::Pending(h) => match h.wait_timeout(Duration::from_nanos(timeout_ns)) {
                Ok(r) => Some(Outcome::of(&r)),
                Err(h) => {
                    *slot = Slot::Pending(h);
                    None
                }
            },
        };
        if let Some(outcome) = outcome {
            *slot = Slot::Done(outcome);
        }
        if !result.is_null() {
            let value = outcome.map_or(std::ptr::null_mut(), |o| o.result.get());
            // SAFETY: not null (checked), writable as the caller promises.
            unsafe { result.write(value) };
        }
        outcome.map_or(RUNQ_TIMEOUT, |o| o.status)
    })
}

/// The task's state now, without waiting: `RUNQ_QUEUED`, `RUNQ_DELAYED`,
/// `RUNQ_RUNNING`, `RUNQ_RETRYING`, or a final state (`RUNQ_OK`,
/// `RUNQ_FAILED`, `RUNQ_CANCELLED`, `RUNQ_EXPIRED`; after a wait also
/// `RUNQ_PANICKED` or `RUNQ_SHUT_DOWN`, exactly as the wait returned). Also
/// `RUNQ_INVALID_ARGUMENT` or `RUNQ_BUSY`.
///
/// `handle`: borrowed; must not be NULL.
///
/// # Safety
/// `handle` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn runq_handle_status(handle: *const runq_handle) -> runq_status {
    guard(|| {
        // SAFETY: as the caller promises for `handle`.
        match unsafe { lock(handle) }.as_deref() {
            Ok(Slot::Pending(h)) => task_state(h.status()),
            Ok(Slot::Done(outcome)) => outcome.status,
            Ok(Slot::Lost) => RUNQ_INTERNAL,
            Err(code) => *code,
        }
    })
}

/// Asks for the task to be cancelled, and returns its state afterwards:
///
/// - `RUNQ_CANCELLED`: the task will never run (it was queued, delayed or
///   waiting to retry, or was cancelled before); it ends `RUNQ_CANCELLED`
///   and its callback runs with that status.
/// - `RUNQ_RUNNING`: too late to stop it from outside; it runs to its end,
///   and `runq_cancel_requested` returns `RUNQ_CANCELLED` inside it.
/// - another final state (`RUNQ_OK`, `RUNQ_FAILED`, ...): it had already
///   ended; nothing changes.
///
/// Also `RUNQ_INVALID_ARGUMENT` or `RUNQ_BUSY`. The handle stays valid
/// and must still be freed.
///
/// `handle`: borrowed; must not be NULL.
///
/// # Safety
/// `handle` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn runq_handle_cancel(handle: *const runq_handle) -> runq_status {
    guard(|| {
        // SAFETY: as the caller promises for `handle`.
        match unsafe { lock(handle) }.as_deref() {
            Ok(Slot::Pending(h)) => {
                if h.cancel() {
                    RUNQ_CANCELLED
                } else {
                    match task_state(h.status()) {
                        // The task got past the point where it could be
                        // stopped, but its state has not caught up yet.
                        RUNQ_QUEUED | RUNQ_DELAYED | RUNQ_RETRYING => RUNQ_RUNNING,
                        state => state,
                    }
                }
            }
            Ok(Slot::Done(outcome)) => outcome.status,
            Ok(Slot::Lost) => RUNQ_INTERNAL,
            Err(code) => *code,
        }
    })
}

/// After `runq_handle_wait` returned `RUNQ_FAILED`: writes the last
/// nonzero code the fallible function returned (0 if the last attempt
/// failed by a panic inside runq) and how many times it ran.
///
/// - `handle`: borrowed; must not be NULL.
/// - `code`, `attempts`: written only; each may be NULL if not wanted.
///
/// Returns `RUNQ_OK`; `RUNQ_INVALID_ARGUMENT` for a NULL handle or when no
/// wait has returned `RUNQ_FAILED` on it; `RUNQ_BUSY`.
///
/// # Safety
/// `handle` is NULL or a live handle; `code` and `attempts` are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn runq_handle_failure(
    handle: *const runq_handle,
    code: *mut i32,
    attempts: *mut u32,
) -> runq_status {
    guard(|| {
        // SAFETY: as the caller promises for `handle`.
        let failure = match unsafe { lock(handle) }.as_deref() {
            Ok(Slot::Done(outcome)) => outcome.failure,
            Ok(_) => None,
            Err(code) => return *code,
        };
        let Some((last_code, runs)) = failure else {
            return RUNQ_INVALID_ARGUMENT;
        };
        // SAFETY: each pointer is NULL (skipped by `as_mut`) or writable,
        // as the caller promises.
        unsafe {
            if let Some(out) = code.as_mut() {
                *out = last_code;
            }
            if let Some(out) = attempts.as_mut() {
                *out = runs;
            }
        }
        RUNQ_OK
    })
}

/// Releases a handle. A task that has not ended yet is detached: it still
/// runs and its callback is still called, but its result can no longer be
/// collected here.
///
/// `handle`: owned by runq from this call on; must not be used again. NULL
/// returns `RUNQ_INVALID_ARGUMENT` and does nothing.
///
/// Returns `RUNQ_OK` or `RUNQ_INVALID_ARGUMENT`.
///
/// # Safety
/// `handle` is NULL or a handle from `runq_submit*` that was not freed
/// yet, and no other thread is using it.
#[no_mangle]
pub unsafe extern "C" fn runq_handle_free(handle: *mut runq_handle) -> runq_status {
    guard(|| {
        if handle.is_null() {
            return RUNQ_INVALID_ARGUMENT;
        }
        // SAFETY: the pointer came from `Box::into_raw` in `submit` and the
        // caller gives it back exactly once, with no call in flight.
        drop(unsafe { Box::from_raw(handle) });
        RUNQ_OK
    })
}
