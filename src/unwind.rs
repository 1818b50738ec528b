//! Keeping user panics where they belong.
//!
//! A task's output, its closure, its callback and guard, a stored waker and
//! the panic payloads the engine catches are all user values, and their
//! destructors are user code that may panic. The engine drops such values on
//! its own threads (a worker finishing a task whose handle is gone, the
//! timer dropping a cancelled task's entry), where an unwinding panic would
//! kill the thread or, inside `join`, leave a stack job behind in a deque.
//! So every such value is held in a [`Quiet`], whose destructor runs the
//! inner one inside `catch_unwind`; a caught panic is counted in
//! [`Metrics::drop_panics`](crate::Metrics::drop_panics): in the worker's
//! counter block on a worker, or, inside [`counted`], in the block of the
//! pool the caller names (the timer thread, a handle, a task run in the
//! caller).
//!
//! Where the engine cannot catch (the helping loop of `join` and `scope`,
//! which must never return while a job that points into their frame is
//! still queued or running), an [`AbortOnUnwind`] guard turns an unwinding
//! panic into an abort, as rayon does: unsound memory access is never the
//! outcome.

use std::any::Any;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::metrics::Event;
use crate::scheduler::worker::WorkerThread;
use crate::scheduler::Shared;
use crate::sync::thread_local;

/// A value whose destructor may panic; dropping the `Quiet` never does.
pub(crate) struct Quiet<T>(ManuallyDrop<T>);

impl<T> Quiet<T> {
    #[inline]
    pub(crate) fn new(value: T) -> Self {
        Quiet(ManuallyDrop::new(value))
    }
}

impl<T> Deref for Quiet<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Quiet<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> Drop for Quiet<T> {
    fn drop(&mut self) {
        // SAFETY: the value is dropped exactly once, here, and never used
        // again: `self` is being dropped. If its destructor panics part way,
        // `ManuallyDrop` keeps us from dropping it a second time.
        let outcome = catch_unwind(AssertUnwindSafe(|| unsafe {
            ManuallyDrop::drop(&mut self.0)
        }));
        if let Err(payload) = outcome {
            note_drop_panic();
            drop_payload(payload);
        }
    }
}

/// Drops `value`, catching (and counting) a panic of its destructor.
#[inline]
pub(crate) fn drop_quietly<T>(value: T) {
    drop(Quiet::new(value));
}

/// Drops `value`, catching a panic of its destructor without counting it:
/// for values that go with the pool itself (its dead-letter hook), whose
/// metrics no one can read any more.
pub(crate) fn drop_uncounted<T>(value: T) {
    let outer = TALLY.with(|t| t.replace(Some(0)));
    drop(Quiet::new(value));
    TALLY.with(|t| t.set(outer));
}

/// How many payloads in a row [`drop_payload`] drops before it leaks the
/// next one. A payload whose destructor panics leaves a new payload (in
/// practice the `String` or `&str` of a `panic!` in a `Drop`, which drops
/// cleanly); only a chain of payloads that each panic with another panicking
/// payload reaches this bound, which keeps a pathological chain from looping
/// forever. Four covers every chain seen in `tests/hostile.rs` (length 2).
const PAYLOAD_CHAIN: usize = 4;

/// Drops a caught panic payload, whose own destructor might panic: that
/// panic is caught and counted, and its payload dropped the same way, up to
/// [`PAYLOAD_CHAIN`] in a row; past that the last payload is leaked rather
/// than dropped.
pub(crate) fn drop_payload(payload: Box<dyn Any + Send>) {
    let mut payload = payload;
    for _ in 0..PAYLOAD_CHAIN {
        match catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            Ok(()) => return,
            Err(again) => {
                note_drop_panic();
                payload = again;
            }
        }
    }
    std::mem::forget(payload);
}

thread_local! {
    /// Caught drop panics of the enclosing [`counted`] call (`None`: none).
    // loom's `thread_local!` takes no `const` initializer.
    #[allow(clippy::missing_const_for_thread_local)]
    static TALLY: std::cell::Cell<Option<u64>> = std::cell::Cell::new(None);
}

/// Counts one caught destructor panic: in the enclosing [`counted`] call's
/// tally, else in this worker's block. (A panic caught on some other thread
/// outside `counted`, such as a user thread dropping a task it never
/// submitted, belongs to no pool and is not counted.)
fn note_drop_panic() {
    let scoped = TALLY.with(|t| match t.get() {
        Some(n) => {
            t.set(Some(n + 1));
            true
        }
        None => false,
    });
    if !scoped {
        if let Some(w) = WorkerThread::current() {
            w.shared.stats.block(Some(w.index)).add(Event::DropPanic, 1);
        }
    }
}

/// Runs `f`, counting the destructor panics caught meanwhile on this thread
/// in `shared`'s metrics.
pub(crate) fn counted<R>(shared: &Shared, f: impl FnOnce() -> R) -> R {
    let outer = TALLY.with(|t| t.replace(Some(0)));
    let r = f();
    let n = TALLY.with(|t| t.replace(outer)).unwrap_or(0);
    if n > 0 {
        shared.stats_here().add(Event::DropPanic, n);
    }
    r
}

/// Aborts the process if dropped while unwinding; [`disarm`](Self::disarm)
/// it once the frame it protects may be left.
pub(crate) struct AbortOnUnwind;

impl AbortOnUnwind {
    #[inline]
    pub(crate) fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        // Only reached by unwinding: a job that points into this frame may
        // still be queued or running, so leaving it would be unsound.
        eprintln!("runq: a panic unwound past a live fork-join job; aborting");
        std::process::abort();
    }
}
