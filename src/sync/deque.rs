//! The work queues: `crossbeam-deque` in production; under loom, a twin
//! with the same interface built on a loom mutex, so that a job handed from
//! one thread to another through a queue carries a happens-before edge loom
//! can see. crossbeam checks its own deques; the models check what runq
//! builds on top of them, treating each queue operation as one atomic step.

#[cfg(not(loom))]
pub(crate) use crossbeam_deque::{Injector, Steal, Stealer, Worker};

#[cfg(loom)]
pub(crate) use twin::{Injector, Steal, Stealer, Worker};

#[cfg(loom)]
mod twin {
    use loom::sync::{Arc, Mutex};
    use std::collections::VecDeque;

    /// The outcome of a steal, as in crossbeam (the twin never asks to retry).
    #[allow(dead_code)]
    pub(crate) enum Steal<T> {
        Empty,
        Success(T),
        Retry,
    }

    /// A global FIFO queue.
    pub(crate) struct Injector<T> {
        q: Mutex<VecDeque<T>>,
    }

    impl<T> Injector<T> {
        pub(crate) fn new() -> Self {
            Injector {
                q: Mutex::new(VecDeque::new()),
            }
        }
        pub(crate) fn push(&self, t: T) {
            self.q.lock().unwrap().push_back(t);
        }
        pub(crate) fn steal(&self) -> Steal<T> {
            match self.q.lock().unwrap().pop_front() {
                Some(t) => Steal::Success(t),
                None => Steal::Empty,
            }
        }
        /// Moves up to half the queue (at most 4 jobs) into `dest`, returning one more.
        pub(crate) fn steal_batch_and_pop(&self, dest: &Worker<T>) -> Steal<T> {
            let mut q = self.q.lock().unwrap();
            let Some(first) = q.pop_front() else {
                return Steal::Empty;
            };
            let n = (q.len() / 2).min(4);
            let mut d = dest.q.lock().unwrap();
            for _ in 0..n {
                if let Some(t) = q.pop_front() {
                    // LIFO destination: keep FIFO order for its pops.
                    d.push_front(t);
                }
            }
            Steal::Success(first)
        }
        pub(crate) fn len(&self) -> usize {
            self.q.lock().unwrap().len()
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.len() == 0
        }
    }

    /// A worker's own LIFO deque: the owner pushes and pops at the back,
    /// thieves take from the front.
    pub(crate) struct Worker<T> {
        q: Arc<Mutex<VecDeque<T>>>,
    }

    impl<T> Worker<T> {
        pub(crate) fn new_lifo() -> Self {
            Worker {
                q: Arc::new(Mutex::new(VecDeque::new())),
            }
        }
        pub(crate) fn push(&self, t: T) {
            self.q.lock().unwrap().push_back(t);
        }
        pub(crate) fn pop(&self) -> Option<T> {
            self.q.lock().unwrap().pop_back()
        }
        pub(crate) fn stealer(&self) -> Stealer<T> {
            Stealer { q: self.q.clone() }
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.q.lock().unwrap().is_empty()
        }
        pub(crate) fn len(&self) -> usize {
            self.q.lock().unwrap().len()
        }
    }

    /// The thieves' end of a [`Worker`].
    pub(crate) struct Stealer<T> {
        q: Arc<Mutex<VecDeque<T>>>,
    }

    impl<T> Stealer<T> {
        pub(crate) fn steal_batch_and_pop(&self, dest: &Worker<T>) -> Steal<T> {
            if Arc::ptr_eq(&self.q, &dest.q) {
                return Steal::Empty;
            }
            match self.q.lock().unwrap().pop_front() {
                Some(t) => Steal::Success(t),
                None => Steal::Empty,
            }
        }
        pub(crate) fn len(&self) -> usize {
            self.q.lock().unwrap().len()
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.len() == 0
        }
    }
}
