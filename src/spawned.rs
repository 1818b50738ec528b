//! The cell of a fire-and-forget task ([`Pool::spawn`](crate::Pool::spawn)).
//!
//! A spawned task has no handle, key, delay, deadline, retry or callback:
//! nobody but the queue that carries it ever refers to it. So it needs no
//! state word, no result slot and no reference count: its cell is the
//! closure and two words of header in one [`recycle`](crate::recycle)d
//! block, owned by exactly one [`SpawnRef`] at a time. Running it moves the
//! closure out, returns the block to the running thread's free list (where
//! the task's own spawns pick it up again) and calls the closure; the
//! outcome is counted as for any task (`Completed`, or `Panicked`, a dead
//! letter and `Failed`), its queue wait and run time go into the latency
//! histograms, and under `shutdown_now` it is dropped unrun and counted
//! `Cancelled`.
//!
//! Inline and manual pools, and builds with the `tracing` feature (a span
//! per attempt, carrying the task's id), spawn through the general task
//! cell instead.
//!
//! A closure larger than [`MAX_INLINE`] bytes (or aligned to more than
//! [`recycle::ALIGN`]) is boxed and the box goes in the cell: one heap
//! allocation per task for those, as before recycling.

use std::mem::{align_of, size_of};
use std::ptr::NonNull;

use crate::dead_letter::DeadLetter;
use crate::error::panic_message;
use crate::metrics::{Event, Latency};
use crate::recycle;
use crate::scheduler::Shared;
use crate::task::{Priority, TaskId};

/// Closure bytes that fit in a recycled block beside the header (104).
pub(crate) const MAX_INLINE: usize = recycle::BLOCK - size_of::<Header>();

// A closure of MAX_INLINE bytes fills a block exactly.
const _: () = assert!(size_of::<Cell<[u8; MAX_INLINE]>>() == recycle::BLOCK);

/// What a [`SpawnRef`] needs to run or drop its closure without knowing its type.
struct VTable {
    /// Runs the closure and gives the block back.
    run: unsafe fn(NonNull<Header>, &Shared, Option<usize>),
    /// Drops the closure unrun and gives the block back.
    drop: unsafe fn(NonNull<Header>),
}

/// The first field of every cell.
struct Header {
    vtable: &'static VTable,
    /// The task holds an admission permit until it starts (or is dropped).
    admitted: bool,
    /// When it was spawned (a stamp, see `stamp`), for the queue-wait histogram.
    ready: u64,
}

/// A cell: header, then the closure.
#[repr(C)]
struct Cell<F> {
    header: Header,
    f: F,
}

impl<F: FnOnce() + Send + 'static> Cell<F> {
    const VTABLE: VTable = VTable {
        run: Self::run,
        drop: Self::drop_unrun,
    };

    const FITS: bool = size_of::<Self>() <= recycle::BLOCK && align_of::<Self>() <= recycle::ALIGN;

    /// Moves the closure out and gives the block back.
    ///
    /// # Safety
    /// `header` is the header of a live `Cell<F>`, owned by the caller, who
    /// gives it up.
    unsafe fn take(header: NonNull<Header>) -> (Header, F) {
        let cell = header.cast::<Cell<F>>();
        // SAFETY: [1] the caller owns the live cell (it held the only
        // `SpawnRef`); [2] `Cell` is `repr(C)` with the header first, so the
        // header pointer is the cell pointer; [3] the read moves the
        // closure out, and the block is not read again before `give`.
        let Cell { header, f } = unsafe { cell.as_ptr().read() };
        // SAFETY: the block came from `recycle::take` (in `SpawnRef::new`),
        // and its contents were just moved out.
        unsafe { recycle::give(cell.cast()) };
        (header, f)
    }

    /// # Safety
    /// As for [`take`](Self::take).
    unsafe fn run(header: NonNull<Header>, shared: &Shared, worker: Option<usize>) {
        // SAFETY: forwarded from the caller.
        let (header, f) = unsafe { Self::take(header) };
        if header.admitted {
            shared.admission.release(1);
        }
        // Latency, as for any task: ready -> start, start -> end.
        let attempt =
            shared
                .stats
                .start_attempt(worker, Latency::wait(Priority::Normal), header.ready);
        let outcome = crate::task::run_detached(f);
        shared.stats.end_attempt(attempt);
        match outcome {
            Ok(()) => shared.task_finished(Event::Completed),
            Err(payload) => {
                // As a plain task's last failed attempt: counted, a dead
                // letter (under an id drawn now: nobody saw one before),
                // then the terminal count.
                shared.stats_here().add(Event::Panicked, 1);
                let error = panic_message(&*payload);
                crate::unwind::drop_payload(payload);
                shared.dead_letter(&DeadLetter {
                    id: TaskId::next(),
                    name: None,
                    key: None,
                    attempts: 1,
                    error,
                });
                shared.task_finished(Event::Failed);
            }
        }
    }

    /// # Safety
    /// As for [`take`](Self::take).
    unsafe fn drop_unrun(header: NonNull<Header>) {
        // SAFETY: forwarded from the caller.
        let (_, f) = unsafe { Self::take(header) };
        // A destructor's panic is caught and counted (`unwind`).
        crate::unwind::drop_quietly(f);
    }
}

/// The only reference to a spawned task's cell: what the queues carry.
pub(crate) struct SpawnRef(NonNull<Header>);

// SAFETY: the cell holds a `Send` closure, and the `SpawnRef` is its only
// reference, so moving it to another thread moves the closure with it.
unsafe impl Send for SpawnRef {}

impl SpawnRef {
    /// Puts `f` in a recycled block (boxed first if it does not fit).
    #[inline]
    pub(crate) fn new<F: FnOnce() + Send + 'static>(f: F, admitted: bool, ready: u64) -> SpawnRef {
        if Cell::<F>::FITS {
            Self::inline(f, admitted, ready)
        } else {
            Self::inline(Box::new(f), admitted, ready)
        }
    }

    #[inline]
    fn inline<F: FnOnce() + Send + 'static>(f: F, admitted: bool, ready: u64) -> SpawnRef {
        assert!(Cell::<F>::FITS, "a boxed closure fits in a block");
        let block = recycle::take().cast::<Cell<F>>();
        // SAFETY: a block is `recycle::BLOCK` bytes aligned to
        // `recycle::ALIGN`, and `FITS` checked that a `Cell<F>` needs no
        // more; the block is ours, uninitialised.
        unsafe {
            block.as_ptr().write(Cell {
                header: Header {
                    vtable: &Cell::<F>::VTABLE,
                    admitted,
                    ready,
                },
                f,
            })
        };
        SpawnRef(block.cast())
    }

    /// Runs the task on this thread and counts its outcome. `worker`: this
    /// thread's index among the pool's workers, if it is one.
    #[inline]
    pub(crate) fn run(self, shared: &Shared, worker: Option<usize>) {
        let header = self.0;
        std::mem::forget(self);
        // SAFETY: the header is live (a `SpawnRef` owns a live cell), and
        // `run` is the vtable entry of that cell's type.
        unsafe { (header.as_ref().vtable.run)(header, shared, worker) };
    }

    /// Resolves the task without running it (`shutdown_now`): the closure
    /// is dropped, a permit it held released, and it counts as `Cancelled`.
    pub(crate) fn cancel(self, shared: &Shared) {
        // SAFETY: the header is live while `self` exists.
        let admitted = unsafe { self.0.as_ref().admitted };
        drop(self);
        if admitted {
            shared.admission.release(1);
        }
        shared.task_finished(Event::Cancelled);
    }
}

impl Drop for SpawnRef {
    fn drop(&mut self) {
        // SAFETY: the header is live while `self` exists, and this is the
        // last use of it.
        unsafe { (self.0.as_ref().vtable.drop)(self.0) };
    }
}
