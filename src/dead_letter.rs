//! Dead letters: what the pool reports about a task that failed for good.
//!
//! A task becomes a dead letter when it ends `Failed` because its attempts
//! are used up (a task without a retry policy has one attempt) or because
//! its policy's [`retry_if`](crate::Retry::retry_if) refused another one.
//! A task whose retries were stopped by a cancel or by `shutdown_now` also
//! ends `Failed`, but its owner asked for that: it is not a dead letter.
//!
//! The hook ([`Builder::on_dead_letter`](crate::Builder::on_dead_letter))
//! runs once per dead letter, on the thread that resolved the task, after
//! its handle is resolved (a `wait` may already have returned) and before
//! the pool counts the task as finished (so `shutdown` waits for it). A
//! panic in the hook is caught and counted in
//! [`Metrics::callback_panics`](crate::Metrics::callback_panics).

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::task::TaskId;

/// A task that failed for good: its last attempt failed and no further one
/// is allowed. See [`Builder::on_dead_letter`](crate::Builder::on_dead_letter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The task's id.
    pub id: TaskId,
    /// Its [`name`](crate::Task::name), if it has one.
    pub name: Option<String>,
    /// Its idempotency [`key`](crate::Task::key), if it has one.
    pub key: Option<String>,
    /// Attempts it ran.
    pub attempts: u32,
    /// The last attempt's error (or panic message), as text.
    pub error: String,
}

/// The user's hook, shared by every clone of the builder and the pool.
#[derive(Clone)]
pub(crate) struct DeadLetterHook(Arc<QuietHook>);

/// The hook's closure, whose captures are user values: their destructor
/// runs inside a catch when the last pool (or builder) clone lets go of
/// it, so a panic there never unwinds out of the pool's drop.
struct QuietHook(Option<Box<HookFn>>);

type HookFn = dyn Fn(&DeadLetter) + Send + Sync + 'static;

impl Drop for QuietHook {
    fn drop(&mut self) {
        crate::unwind::drop_uncounted(self.0.take());
    }
}

impl DeadLetterHook {
    pub(crate) fn new(f: impl Fn(&DeadLetter) + Send + Sync + 'static) -> Self {
        DeadLetterHook(Arc::new(QuietHook(Some(Box::new(f)))))
    }

    /// Calls the hook; false if it panicked (the panic is caught).
    pub(crate) fn call(&self, letter: &DeadLetter) -> bool {
        let Some(f) = &self.0 .0 else {
            return true; // only while it is being dropped, when no one calls
        };
        match catch_unwind(AssertUnwindSafe(|| f(letter))) {
            Ok(()) => true,
            Err(payload) => {
                // A payload whose destructor panics is caught and counted.
                crate::unwind::drop_payload(payload);
                false
            }
        }
    }
}

impl fmt::Debug for DeadLetterHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeadLetterHook(..)")
    }
}
