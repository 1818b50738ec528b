//! Fork-join: `join(a, b)` runs `a` here and offers `b` to the pool.
//!
//! On a worker, `b` is pushed onto the worker's own deque (no allocation:
//! the job lives on the joining frame) and `a` runs; then the worker pops
//! `b` back and runs it inline if nobody stole it, or runs other jobs until
//! the thief sets `b`'s latch. Outside any pool, [`join`] simply runs both
//! on the caller. [`Pool::join`](crate::Pool::join) from outside its pool
//! sends the whole join to a worker and sleeps until it is done.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use crate::latch::Latch;
use crate::scheduler::worker::WorkerThread;
use crate::scheduler::{HeapRef, JobRef, Shared};
use crate::sync::{Arc, UnsafeCell};

/// Runs `a` and `b`, potentially in parallel, and returns both results.
///
/// Inside a task this uses the task's pool; outside any pool it runs `a`
/// then `b` on the calling thread. A panic in either closure is re-raised
/// after both have finished.
///
/// ```
/// fn fib(n: u64) -> u64 {
///     if n < 2 { return n; }
///     let (a, b) = runq::join(|| fib(n - 1), || fib(n - 2));
///     a + b
/// }
/// let pool = runq::Pool::builder().workers(2).build()?;
/// assert_eq!(pool.submit(|| fib(20))?.wait()?, 6765);
/// assert_eq!(fib(10), 55); // outside a pool: sequential
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    match WorkerThread::current() {
        Some(worker) => worker.join(a, b),
        None => sequential(a, b),
    }
}

fn sequential<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA,
    B: FnOnce() -> RB,
{
    let ra = catch_unwind(AssertUnwindSafe(a));
    let rb = catch_unwind(AssertUnwindSafe(b));
    match (ra, rb) {
        (Ok(ra), Ok(rb)) => (ra, rb),
        (Err(p), _) | (_, Err(p)) => resume_unwind(p),
    }
}

/// A join sent to a worker from outside: the two closures and, later, the
/// result. The job that runs it captures only an `Arc` of this (no borrow
/// of the caller's frame is a field of the running job), and the closures
/// are taken out and consumed by an inner call that returns before the
/// latch is set: when the caller wakes and touches what `a` and `b`
/// borrowed, no frame of the worker still holds those borrows.
struct Cold<A, B, R> {
    work: UnsafeCell<Option<(A, B)>>,
    result: UnsafeCell<Option<std::thread::Result<R>>>,
    latch: Latch,
}

// SAFETY: `work` is taken once, by the worker that runs the job, before it
// writes `result` and sets the latch (Release); the caller reads `result`
// after it saw the latch (Acquire) and never touches `work`. `A`, `B` and
// `R` are `Send`.
unsafe impl<A: Send, B: Send, R: Send> Sync for Cold<A, B, R> {}
// SAFETY: as above.
unsafe impl<A: Send, B: Send, R: Send> Send for Cold<A, B, R> {}

/// [`Pool::join`](crate::Pool::join).
pub(crate) fn join_in<A, B, RA, RB>(shared: &Arc<Shared>, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    if let Some(worker) = WorkerThread::current_of(shared) {
        return worker.join(a, b);
    }
    // An inline or manual pool has no other thread: both run here.
    if shared.driven.is_some() || shared.enter(1).is_err() {
        return sequential(a, b);
    }
    let cold: Arc<Cold<A, B, (RA, RB)>> = Arc::new(Cold {
        work: UnsafeCell::new(Some((a, b))),
        result: UnsafeCell::new(None),
        latch: Latch::new(),
    });
    let theirs = cold.clone();
    let job = move |shared: &Shared| {
        // SAFETY: only this job, run once, touches `work`; see `Cold`.
        let work = theirs.work.with_mut(|p| unsafe { (*p).take() });
        let r = catch_unwind(AssertUnwindSafe(|| match work {
            Some((a, b)) => join(a, b),
            None => resume_unwind(Box::new("join ran twice")),
        }));
        // SAFETY: written once, before the latch is set; see `Cold`.
        theirs.result.with_mut(|p| unsafe { *p = Some(r) });
        theirs.latch.set(shared);
    };
    // SAFETY: the job borrows from the caller's frame (through `a`, `b` in
    // `cold`). We do not return, and nothing below can unwind, before the
    // latch is set, which the job does after its last use of them.
    let job = unsafe { HeapRef::new(job) };
    shared.lanes.normal.push(JobRef::Heap(job));
    shared.notify_one();
    cold.latch.wait_blocking();
    shared.leave(1);
    // SAFETY: the latch was seen set; the worker no longer touches the cell.
    let r = cold.result.with_mut(|p| unsafe { (*p).take() });
    match r {
        Some(Ok(v)) => v,
        Some(Err(p)) => resume_unwind(p),
        None => resume_unwind(Box::new("join result missing")),
    }
}
