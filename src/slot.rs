//! The result slot: a one-shot state word, the output cell and an async
//! waker cell, all inside the task's single allocation.
//!
//! # The state word
//!
//! One `u32` (a [`Futex`]) per task:
//!
//! ```text
//! bits 0..4  status code: QUEUED DELAYED RUNNING RETRYING | SUCCEEDED FAILED CANCELLED EXPIRED
//! bit  4     DONE        the output is written and the callback has run
//! bit  5     WAITER      a thread outside the pool sleeps on this word
//! bit  6     HELPER      a worker waits on it while helping (wake the pool on DONE)
//! bit  7     JOIN_WAKER  an async waker is stored in the waker cell
//! bit  8     CANCEL_REQ  cancel() was called while the task ran
//! bit  9     ADMITTED    the task holds one admission permit (bounded pools)
//! bit 10     TIMED       the task waits in the timer and counts in its gauge
//! ```
//!
//! Who moves it:
//! - **claim** (a worker about to run it): a waiting code (QUEUED, DELAYED,
//!   RETRYING) to RUNNING (or straight to CANCELLED/EXPIRED when cancel was
//!   requested or the deadline passed), by CAS. Exactly one claim succeeds
//!   per queue entry, so a task never runs twice concurrently.
//! - **abort** (cancel, expiry, `shutdown_now`): a waiting code to a terminal
//!   code, by CAS. It races claim; the CAS picks one winner.
//! - **retry**: the owner of RUNNING moves it to RETRYING and hands the task
//!   to the timer or a lane, where the next claim finds it.
//! - **finish**: whoever won the CAS into RUNNING or a terminal code owns the
//!   output cell. It writes the output, sets the terminal code, releases the
//!   key, runs the callback, and only then sets DONE with Release ordering.
//!   The swap returns the flags set so far: a WAITER is woken with one futex
//!   wake, a HELPER with a pool wake-up, a JOIN_WAKER with `wake_by_ref`. No
//!   flag, no syscall.
//!
//! A waiter sets WAITER by CAS and sleeps only while the word still equals
//! what it set: if DONE lands between its load and its sleep, the futex sees
//! a different value and returns at once, so no wake-up is lost. The output
//! is read only after an Acquire load saw DONE, and only by the handle (the
//! only consumer), so the cell's accesses never race.
//!
//! The loom models `slot_*` in `loom-tests/` check complete racing wait,
//! complete racing cancel and handle drop racing completion.

use std::task::Waker;

use crate::error::TaskError;
use crate::sync::{Futex, Ordering, UnsafeCell};
use crate::unwind::{drop_quietly, Quiet};

pub(crate) const CODE: u32 = 0b1111;
pub(crate) const QUEUED: u32 = 0;
pub(crate) const DELAYED: u32 = 1;
pub(crate) const RUNNING: u32 = 2;
pub(crate) const RETRYING: u32 = 3;
pub(crate) const SUCCEEDED: u32 = 4;
pub(crate) const FAILED: u32 = 5;
pub(crate) const CANCELLED: u32 = 6;
pub(crate) const EXPIRED: u32 = 7;

pub(crate) const DONE: u32 = 1 << 4;
pub(crate) const WAITER: u32 = 1 << 5;
pub(crate) const HELPER: u32 = 1 << 6;
pub(crate) const JOIN_WAKER: u32 = 1 << 7;
pub(crate) const CANCEL_REQ: u32 = 1 << 8;
pub(crate) const ADMITTED: u32 = 1 << 9;
/// Set (with the timer's gauge raised) when a task goes to the timer; the
/// RMW that clears it (the timer firing it, a claim or an abort) lowers
/// the gauge, so `Metrics::delayed` is exact without a walk of the heap.
pub(crate) const TIMED: u32 = 1 << 10;

/// Is `code` one a claim or an abort may start from?
#[inline]
pub(crate) fn is_waiting(code: u32) -> bool {
    matches!(code, QUEUED | DELAYED | RETRYING)
}

/// The output and waker cells of one task.
/// Both hold user values (the output, a waker), so both are [`Quiet`].
pub(crate) struct Slot<T> {
    output: Quiet<UnsafeCell<Option<Result<T, TaskError>>>>,
    waker: Quiet<UnsafeCell<Option<Waker>>>,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Self {
        Slot {
            output: Quiet::new(UnsafeCell::new(None)),
            waker: Quiet::new(UnsafeCell::new(None)),
        }
    }

    /// Writes the output.
    ///
    /// # Safety
    /// The caller owns the task's state (it won the CAS into RUNNING or a
    /// terminal code) and DONE is not set yet, so nobody else touches the cell.
    pub(crate) unsafe fn write(&self, value: Result<T, TaskError>) {
        // SAFETY: exclusive by the caller's contract.
        self.output.with_mut(|p| unsafe { *p = Some(value) });
    }

    /// Runs `f` on the written output.
    ///
    /// # Safety
    /// As for [`write`](Self::write), after it.
    pub(crate) unsafe fn with_output<R>(
        &self,
        f: impl FnOnce(&Result<T, TaskError>) -> R,
    ) -> Option<R> {
        // SAFETY: exclusive by the caller's contract.
        self.output.with(|p| unsafe { (*p).as_ref().map(f) })
    }

    /// Takes the output.
    ///
    /// # Safety
    /// The caller saw DONE with Acquire ordering and is the handle: the one
    /// consumer of the output.
    pub(crate) unsafe fn take(&self) -> Option<Result<T, TaskError>> {
        // SAFETY: the writer finished before DONE (Release/Acquire), and the
        // handle is the only reader.
        self.output.with_mut(|p| unsafe { (*p).take() })
    }

    /// Wakes the stored waker.
    ///
    /// # Safety
    /// JOIN_WAKER was set in the state the caller swapped DONE into: the
    /// handle no longer writes the cell (it writes only while JOIN_WAKER is
    /// clear, and can no longer clear it once DONE is set), and both sides
    /// only read it from here on.
    pub(crate) unsafe fn wake_waker(&self) {
        // SAFETY: read-only access, see the contract.
        self.waker.with(|p| unsafe {
            if let Some(w) = &*p {
                w.wake_by_ref();
            }
        });
    }

    /// Does the stored waker wake the same task as `w`?
    ///
    /// # Safety
    /// JOIN_WAKER is set and the caller is the handle (only readers now).
    pub(crate) unsafe fn waker_will_wake(&self, w: &Waker) -> bool {
        // SAFETY: read-only access, see the contract.
        self.waker
            .with(|p| unsafe { (*p).as_ref().is_some_and(|old| old.will_wake(w)) })
    }

    /// Stores a waker.
    ///
    /// # Safety
    /// JOIN_WAKER is clear and the caller is the handle, the only writer.
    pub(crate) unsafe fn set_waker(&self, w: Waker) {
        // SAFETY: exclusive, see the contract.
        let old = self.waker.with_mut(|p| unsafe { (*p).replace(w) });
        drop_quietly(old);
    }
}

/// Sets WAITER on `state` and sleeps until DONE (or `deadline`).
/// Returns whether DONE was seen.
pub(crate) fn wait_done(
    state: &Futex,
    done: u32,
    waiter: u32,
    deadline: Option<std::time::Instant>,
) -> bool {
    loop {
        let s = state.load(Ordering::Acquire);
        if s & done != 0 {
            return true;
        }
        if s & waiter == 0
            && state
                .compare_exchange_weak(s, s | waiter, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            continue;
        }
        match deadline {
            None => state.wait(s | waiter),
            Some(d) => {
                if std::time::Instant::now() >= d {
                    return state.load(Ordering::Acquire) & done != 0;
                }
                state.wait_until(s | waiter, d)
            }
        }
    }
}
