//! Status codes: what every function returns, and what a task's state reads
//! as from C.

use std::ffi::{c_char, CStr};

use runq::{Status, SubmitError, TaskError};

/// The result of every runq function, and the state of a task.
///
/// `RUNQ_OK` is 0; every other code is positive. Codes from
/// `RUNQ_QUEUED` to `RUNQ_RETRYING` only come back from
/// `runq_handle_status` and `runq_handle_cancel`, describing a task that
/// has not finished yet. New codes may be added at the end; use
/// `runq_status_str` to print one.
pub type runq_status = i32;

/// Success. As a task's state: the task finished and returned a result.
pub const RUNQ_OK: runq_status = 0;
/// `runq_handle_wait`: the timeout passed before the task finished. The
/// handle stays valid; wait on it again later.
pub const RUNQ_TIMEOUT: runq_status = 1;
/// The pool's queue is at capacity and its `when_full` policy is
/// `RUNQ_WHEN_FULL_REJECT`. The task was not accepted.
pub const RUNQ_FULL: runq_status = 2;
/// The pool was shut down: it accepts no more tasks. As a task's state: the
/// task was dropped by a shutdown without running.
pub const RUNQ_SHUT_DOWN: runq_status = 3;
/// Another task with the same key is queued or running. The task was not
/// accepted.
pub const RUNQ_DUPLICATE: runq_status = 4;
/// The task was cancelled (by `runq_handle_cancel` or
/// `runq_pool_shutdown_now`) and never ran.
pub const RUNQ_CANCELLED: runq_status = 5;
/// The task's deadline passed before it started; it never ran.
pub const RUNQ_EXPIRED: runq_status = 6;
/// A fallible task returned nonzero on every attempt it was given.
pub const RUNQ_FAILED: runq_status = 7;
/// The task's body panicked (only Rust code inside runq can panic; a C
/// function cannot).
pub const RUNQ_PANICKED: runq_status = 8;
/// A null pointer where one is required, or a value out of its range. The
/// call did nothing.
pub const RUNQ_INVALID_ARGUMENT: runq_status = 9;
/// Task state: accepted and waiting for a worker.
pub const RUNQ_QUEUED: runq_status = 10;
/// Task state: waiting for its `delay_ns` to pass.
pub const RUNQ_DELAYED: runq_status = 11;
/// Task state: running on a worker now.
pub const RUNQ_RUNNING: runq_status = 12;
/// Task state: a fallible task failed and waits for its next attempt.
pub const RUNQ_RETRYING: runq_status = 13;
/// Another call on the same handle is in progress (for example a
/// `runq_handle_wait` on another thread). The call did nothing.
pub const RUNQ_BUSY: runq_status = 14;
/// `runq_pool_new`: the operating system refused to start a worker thread.
pub const RUNQ_SPAWN_FAILED: runq_status = 15;
/// A bug in runq was caught at the boundary. The call may not have done its
/// work; please report it.
pub const RUNQ_INTERNAL: runq_status = 16;

/// A static, NUL-terminated, English name for `status`, such as
/// `"RUNQ_OK"`; `"RUNQ_UNKNOWN_STATUS"` for a code this version does not
/// know.
///
/// This is the one function that does not return a `runq_status`. The
/// string is owned by runq and lives for the whole program: do not free it.
#[no_mangle]
pub extern "C" fn runq_status_str(status: runq_status) -> *const c_char {
    // Nothing below can panic; the guard is there so that no change ever
    // lets one cross into C.
    std::panic::catch_unwind(|| status_name(status).as_ptr()).unwrap_or(c"RUNQ_INTERNAL".as_ptr())
}

fn status_name(status: runq_status) -> &'static CStr {
    match status {
        RUNQ_OK => c"RUNQ_OK",
        RUNQ_TIMEOUT => c"RUNQ_TIMEOUT",
        RUNQ_FULL => c"RUNQ_FULL",
        RUNQ_SHUT_DOWN => c"RUNQ_SHUT_DOWN",
        RUNQ_DUPLICATE => c"RUNQ_DUPLICATE",
        RUNQ_CANCELLED => c"RUNQ_CANCELLED",
        RUNQ_EXPIRED => c"RUNQ_EXPIRED",
        RUNQ_FAILED => c"RUNQ_FAILED",
        RUNQ_PANICKED => c"RUNQ_PANICKED",
        RUNQ_INVALID_ARGUMENT => c"RUNQ_INVALID_ARGUMENT",
        RUNQ_QUEUED => c"RUNQ_QUEUED",
        RUNQ_DELAYED => c"RUNQ_DELAYED",
        RUNQ_RUNNING => c"RUNQ_RUNNING",
        RUNQ_RETRYING => c"RUNQ_RETRYING",
        RUNQ_BUSY => c"RUNQ_BUSY",
        RUNQ_SPAWN_FAILED => c"RUNQ_SPAWN_FAILED",
        RUNQ_INTERNAL => c"RUNQ_INTERNAL",
        _ => c"RUNQ_UNKNOWN_STATUS",
    }
}

/// The code for a refused submission.
pub(crate) fn submit_error(e: &SubmitError) -> runq_status {
    match e {
        SubmitError::ShutDown => RUNQ_SHUT_DOWN,
        SubmitError::Full => RUNQ_FULL,
        SubmitError::Duplicate(_) => RUNQ_DUPLICATE,
        // A refusal this version of the C interface has no code for.
        _ => RUNQ_INTERNAL,
    }
}

/// The code for a task that ended without a result.
pub(crate) fn task_error(e: &TaskError) -> runq_status {
    match e {
        TaskError::Panicked(_) => RUNQ_PANICKED,
        TaskError::Failed { .. } => RUNQ_FAILED,
        TaskError::Cancelled => RUNQ_CANCELLED,
        TaskError::Expired => RUNQ_EXPIRED,
        TaskError::ShutDown => RUNQ_SHUT_DOWN,
        // An ending this version of the C interface has no code for.
        _ => RUNQ_INTERNAL,
    }
}

/// The code for a task's state as the library reports it.
pub(crate) fn task_state(s: Status) -> runq_status {
    match s {
        Status::Queued => RUNQ_QUEUED,
        Status::Delayed => RUNQ_DELAYED,
        Status::Running => RUNQ_RUNNING,
        Status::Retrying => RUNQ_RETRYING,
        Status::Succeeded => RUNQ_OK,
        Status::Failed => RUNQ_FAILED,
        Status::Cancelled => RUNQ_CANCELLED,
        Status::Expired => RUNQ_EXPIRED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_own_name_and_unknown_codes_get_a_placeholder() {
        let mut seen = std::collections::HashSet::new();
        for code in RUNQ_OK..=RUNQ_INTERNAL {
            // SAFETY: runq_status_str returns a pointer to a static C string.
            let name = unsafe { CStr::from_ptr(runq_status_str(code)) };
            let name = name.to_str().unwrap();
            assert!(name.starts_with("RUNQ_"), "{name}");
            assert_ne!(name, "RUNQ_UNKNOWN_STATUS", "code {code}");
            assert!(seen.insert(name.to_owned()), "duplicate name {name}");
        }
        for code in [-1, RUNQ_INTERNAL + 1, i32::MAX, i32::MIN] {
            // SAFETY: as above.
            let name = unsafe { CStr::from_ptr(runq_status_str(code)) };
            assert_eq!(name.to_str().unwrap(), "RUNQ_UNKNOWN_STATUS");
        }
    }
}
