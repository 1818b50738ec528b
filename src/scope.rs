//! Scoped spawns: closures that may borrow from the caller's stack.
//!
//! A [`Scope`] counts its pending closures in a [`CountLatch`] (starting at
//! one for the scope's own body). Each spawned closure is boxed, its
//! lifetime erased, and queued; when it finishes it records a panic, if any,
//! and counts itself out. `scope` returns only after the count reaches zero,
//! which is what makes the erased lifetimes sound: every borrow outlives
//! every closure that uses it.
//!
//! Subtle: a finishing closure clones the latch's `Arc` *before* counting
//! itself out, because once the count is zero the owner may return and free
//! the `Scope`.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use crate::latch::CountLatch;
use crate::scheduler::worker::WorkerThread;
use crate::scheduler::{HeapRef, JobRef, Shared};
use crate::sync::{Arc, Mutex};
use crate::unwind::AbortOnUnwind;

/// A scope for spawning closures that borrow from the enclosing stack frame;
/// see [`Pool::scope`](crate::Pool::scope).
pub struct Scope<'scope> {
    shared: Arc<Shared>,
    latch: Arc<CountLatch>,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// The pool is shut down, or has no threads (inline and manual pools):
    /// spawns run on the calling thread.
    inline: bool,
    _marker: PhantomData<fn(&'scope ()) -> &'scope ()>,
}

struct ScopePtr<'scope>(*const Scope<'scope>);

// SAFETY: `Scope` is `Sync` (all its fields are), and the pointer is only
// dereferenced while the scope is alive (see the module docs).
unsafe impl Send for ScopePtr<'_> {}

impl<'scope> Scope<'scope> {
    /// Spawns `f` into the pool. It may borrow anything that outlives the
    /// scope, and receives the scope to spawn more.
    pub fn spawn<F>(&self, f: F)
    where
        F: FnOnce(&Scope<'scope>) + Send + 'scope,
    {
        if self.inline {
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(self))) {
                self.record_panic(p);
            }
            return;
        }
        self.latch.add(1);
        let ptr = ScopePtr(self as *const Scope<'scope>);
        // Boxed, so that the borrows `f` holds are not fields of the running
        // job: they live only in `f`'s own call, which has returned by the
        // time the count goes down and the owner may touch what they borrowed.
        let f = Box::new(f);
        let job = move |shared: &Shared| {
            let ptr = ptr;
            // SAFETY: the scope waits for this closure before it returns.
            let scope = unsafe { &*ptr.0 };
            if let Err(p) = catch_unwind(AssertUnwindSafe(move || (*f)(scope))) {
                scope.record_panic(p);
            }
            // NOTE: after `done_one` the scope may be gone; keep the latch.
            let latch = scope.latch.clone();
            latch.done_one(shared);
        };
        // SAFETY: the scope outlives every spawned closure (module docs), so
        // what `job` borrows for `'scope` never dangles.
        let job = JobRef::Heap(unsafe { HeapRef::new(job) });
        match WorkerThread::current_of(&self.shared) {
            Some(worker) => worker.push_local(job),
            None => self.shared.lanes.normal.push(job),
        }
        self.shared.notify_one();
    }

    fn record_panic(&self, p: Box<dyn Any + Send>) {
        let mut slot = self.panic.lock();
        if slot.is_none() {
            *slot = Some(p);
        }
    }
}

impl fmt::Debug for Scope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("inline", &self.inline)
            .finish_non_exhaustive()
    }
}

/// [`Pool::scope`](crate::Pool::scope).
pub(crate) fn scope_in<'scope, OP, R>(shared: &Arc<Shared>, op: OP) -> R
where
    OP: FnOnce(&Scope<'scope>) -> R + Send,
    R: Send,
{
    let worker = WorkerThread::current_of(shared);
    let entered = worker.is_some() || shared.enter(1).is_ok();
    let scope = Scope {
        shared: shared.clone(),
        latch: Arc::new(CountLatch::new(1)),
        panic: Mutex::new(None),
        // An inline or manual pool has no other thread: spawns run here.
        inline: !entered || shared.driven.is_some(),
        _marker: PhantomData,
    };
    // Spawned jobs point into this frame until the count reaches zero:
    // should anything unwind before then, abort rather than leave it.
    let guard = AbortOnUnwind;
    let result = catch_unwind(AssertUnwindSafe(|| op(&scope)));
    scope.latch.done_one(shared);
    match worker {
        Some(w) => {
            w.wait_until(&scope.latch.latch, None);
        }
        None => scope.latch.latch.wait_blocking(),
    }
    guard.disarm();
    if entered && worker.is_none() {
        shared.leave(1);
    }
    if let Some(p) = scope.panic.lock().take() {
        resume_unwind(p);
    }
    match result {
        Ok(r) => r,
        Err(p) => resume_unwind(p),
    }
}
