//! The work queues. The workers' deques are `crossbeam-deque`'s in
//! production; under loom and Miri, a twin with the same interface built
//! on a mutex. (The lanes' FIFO queue is runq's own; see [`Injector`].)
//! Under loom that mutex is loom's, so a job handed from one thread to
//! another through a queue carries a happens-before edge loom can see.
//! Under Miri it is std's:
//! crossbeam-epoch's tagged pointers need exposed provenance, which Miri's
//! strict-provenance mode rejects, so Miri checks runq's own unsafe code
//! around a queue of plain safe code. crossbeam checks its own deques; our
//! models and Miri runs treat each deque operation as one atomic step.

#[cfg(not(any(loom, miri)))]
pub(crate) use crossbeam_deque::{Steal, Stealer, Worker};

#[cfg(any(loom, miri))]
pub(crate) use twin::{Steal, Stealer, Worker};

/// The lanes' FIFO queue: runq's own ring (`sync/injector.rs`),
/// except in the scheduler's loom models, which take its twin (below).
/// With the ring's dozen atomic steps per search, the models of two
/// workers ran for over ten minutes each instead of seconds; the ring is
/// checked by loom models of its own (`injector_*` in `loom-tests`), and
/// Miri runs the scheduler on the ring itself.
#[cfg(not(loom))]
pub(crate) use super::injector::Injector;
#[cfg(loom)]
pub(crate) use twin::Injector;

#[cfg(any(loom, miri))]
mod twin {
    #[cfg(loom)]
    use loom::sync::{Arc, Mutex};
    use std::collections::VecDeque;
    #[cfg(not(loom))]
    use std::sync::{Arc, Mutex};
    // Lengths are kept in std atomics, read without the lock: emptiness
    // checks are hints in runq (a worker re-checks behind a fence before it
    // sleeps), and keeping them out of loom's view keeps the models small.
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// The outcome of a steal, as in crossbeam (the twin never asks to retry).
    #[allow(dead_code)]
    pub(crate) enum Steal<T> {
        Empty,
        Success(T),
        Retry,
    }

    /// Takes the oldest job of a queue, keeping its length hint current.
    fn take_front<T>(q: &Mutex<VecDeque<T>>, n: &AtomicUsize) -> Steal<T> {
        let mut q = q.lock().unwrap();
        let t = q.pop_front();
        n.store(q.len(), SeqCst);
        match t {
            Some(t) => Steal::Success(t),
            None => Steal::Empty,
        }
    }

    /// A global FIFO queue with the interface of the scheduler's injector
    /// (loom only; see the module docs).
    #[cfg(loom)]
    pub(crate) struct Injector<T> {
        q: Mutex<VecDeque<T>>,
        n: AtomicUsize,
    }

    #[cfg(loom)]
    impl<T> Injector<T> {
        pub(crate) fn with_capacity(_: usize) -> Self {
            Injector {
                q: Mutex::new(VecDeque::new()),
                n: AtomicUsize::new(0),
            }
        }
        pub(crate) fn push(&self, t: T) {
            let mut q = self.q.lock().unwrap();
            q.push_back(t);
            self.n.store(q.len(), SeqCst);
        }
        pub(crate) fn pop(&self) -> Option<T> {
            if self.is_empty() {
                return None;
            }
            match take_front(&self.q, &self.n) {
                Steal::Success(t) => Some(t),
                _ => None,
            }
        }
        pub(crate) fn len(&self) -> usize {
            self.n.load(SeqCst)
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.len() == 0
        }
    }

    /// A worker's own LIFO deque: the owner pushes and pops at the back,
    /// thieves take from the front.
    pub(crate) struct Worker<T> {
        q: Arc<Mutex<VecDeque<T>>>,
        n: Arc<AtomicUsize>,
    }

    impl<T> Worker<T> {
        pub(crate) fn new_lifo() -> Self {
            Worker {
                q: Arc::new(Mutex::new(VecDeque::new())),
                n: Arc::new(AtomicUsize::new(0)),
            }
        }
        pub(crate) fn push(&self, t: T) {
            let mut q = self.q.lock().unwrap();
            q.push_back(t);
            self.n.store(q.len(), SeqCst);
        }
        pub(crate) fn pop(&self) -> Option<T> {
            if self.n.load(SeqCst) == 0 {
                return None;
            }
            let mut q = self.q.lock().unwrap();
            let t = q.pop_back();
            self.n.store(q.len(), SeqCst);
            t
        }
        pub(crate) fn stealer(&self) -> Stealer<T> {
            Stealer {
                q: self.q.clone(),
                n: self.n.clone(),
            }
        }
        pub(crate) fn len(&self) -> usize {
            self.n.load(SeqCst)
        }
    }

    /// The thieves' end of a [`Worker`].
    pub(crate) struct Stealer<T> {
        q: Arc<Mutex<VecDeque<T>>>,
        n: Arc<AtomicUsize>,
    }

    impl<T> Stealer<T> {
        pub(crate) fn steal_batch_and_pop(&self, dest: &Worker<T>) -> Steal<T> {
            if Arc::ptr_eq(&self.q, &dest.q) {
                return Steal::Empty;
            }
            take_front(&self.q, &self.n)
        }
        pub(crate) fn len(&self) -> usize {
            self.n.load(SeqCst)
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.len() == 0
        }
    }
}
