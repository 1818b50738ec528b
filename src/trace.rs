//! The `tracing` feature: a span per attempt and events at the turning
//! points of a task's life. Off by default; without the feature every
//! function here is an empty inline function and `tracing` is not a
//! dependency at all.
//!
//! - Each attempt runs inside a span named `task` (level INFO, target
//!   `runq`) with fields `task.id`, `task.name` (when the task has one),
//!   `priority` and `attempt`. Its parent is the span that was current when
//!   the task was submitted, on whatever thread that was, not the span
//!   current on the worker.
//! - Events, target `runq`, each with `task.id` (and `task.name` when set):
//!   a retry scheduled (WARN: `error`, `attempt`, `backoff`), a task failed
//!   (ERROR: `error`, `attempts`), a dead letter (ERROR: `error`,
//!   `attempts`, `key`), a panic (ERROR: its `message` is the panic's
//!   message; `attempt`), a task
//!   expired (WARN), cancelled (DEBUG). Those raised during an attempt lie
//!   inside its span; expiry and cancellation of a task that never started
//!   have the submitting span as their parent.

#[cfg(feature = "tracing")]
pub(crate) use on::*;

#[cfg(not(feature = "tracing"))]
pub(crate) use off::*;

#[cfg(feature = "tracing")]
mod on {
    use std::time::Duration;

    use crate::dead_letter::DeadLetter;
    use crate::task::{Priority, TaskId};

    /// The span current at submission: the parent of every attempt.
    #[derive(Debug)]
    pub(crate) struct Parent(tracing::Span);

    impl Default for Parent {
        fn default() -> Parent {
            Parent(tracing::Span::none())
        }
    }

    impl Parent {
        pub(crate) fn current() -> Parent {
            Parent(tracing::Span::current())
        }
    }

    /// Enters the span of one attempt until dropped.
    pub(crate) type Attempt = tracing::span::EnteredSpan;

    pub(crate) fn attempt(
        parent: &Parent,
        id: TaskId,
        name: Option<&str>,
        priority: Priority,
        attempt: u32,
    ) -> Attempt {
        let span = tracing::info_span!(
            target: "runq",
            parent: &parent.0,
            "task",
            task.id = id.as_u64(),
            task.name = tracing::field::Empty,
            priority = ?priority,
            attempt,
        );
        if let Some(name) = name {
            span.record("task.name", name);
        }
        span.entered()
    }

    pub(crate) fn retry_scheduled(
        id: TaskId,
        name: Option<&str>,
        error: &dyn std::fmt::Display,
        attempt: u32,
        backoff: Duration,
    ) {
        tracing::event!(
            target: "runq",
            tracing::Level::WARN,
            task.id = id.as_u64(),
            task.name = name,
            error = %error,
            attempt,
            backoff = ?backoff,
            "retry scheduled"
        );
    }

    pub(crate) fn failed(
        id: TaskId,
        name: Option<&str>,
        error: &dyn std::fmt::Display,
        attempts: u32,
    ) {
        tracing::event!(
            target: "runq",
            tracing::Level::ERROR,
            task.id = id.as_u64(),
            task.name = name,
            error = %error,
            attempts,
            "task failed"
        );
    }

    pub(crate) fn dead_letter(d: &DeadLetter) {
        tracing::event!(
            target: "runq",
            tracing::Level::ERROR,
            task.id = d.id.as_u64(),
            task.name = d.name.as_deref(),
            key = d.key.as_deref(),
            error = %d.error,
            attempts = d.attempts,
            "dead letter"
        );
    }

    pub(crate) fn panicked(id: TaskId, name: Option<&str>, message: &str, attempt: u32) {
        tracing::event!(
            target: "runq",
            tracing::Level::ERROR,
            task.id = id.as_u64(),
            task.name = name,
            attempt,
            message = %message,
        );
    }

    pub(crate) fn expired(parent: &Parent, id: TaskId, name: Option<&str>) {
        tracing::event!(
            target: "runq",
            parent: &parent.0,
            tracing::Level::WARN,
            task.id = id.as_u64(),
            task.name = name,
            "task expired"
        );
    }

    pub(crate) fn cancelled(parent: &Parent, id: TaskId, name: Option<&str>) {
        tracing::event!(
            target: "runq",
            parent: &parent.0,
            tracing::Level::DEBUG,
            task.id = id.as_u64(),
            task.name = name,
            "task cancelled"
        );
    }
}

#[cfg(not(feature = "tracing"))]
mod off {
    use std::time::Duration;

    use crate::dead_letter::DeadLetter;
    use crate::task::{Priority, TaskId};

    /// Nothing: without the feature no span is kept.
    #[derive(Debug, Default)]
    pub(crate) struct Parent;

    impl Parent {
        #[inline(always)]
        pub(crate) fn current() -> Parent {
            Parent
        }
    }

    /// Nothing to enter.
    #[derive(Debug)]
    pub(crate) struct Attempt;

    #[inline(always)]
    pub(crate) fn attempt(_: &Parent, _: TaskId, _: Option<&str>, _: Priority, _: u32) -> Attempt {
        Attempt
    }

    #[inline(always)]
    pub(crate) fn retry_scheduled(
        _: TaskId,
        _: Option<&str>,
        _: &dyn std::fmt::Display,
        _: u32,
        _: Duration,
    ) {
    }

    #[inline(always)]
    pub(crate) fn failed(_: TaskId, _: Option<&str>, _: &dyn std::fmt::Display, _: u32) {}

    #[inline(always)]
    pub(crate) fn dead_letter(_: &DeadLetter) {}

    #[inline(always)]
    pub(crate) fn panicked(_: TaskId, _: Option<&str>, _: &str, _: u32) {}

    #[inline(always)]
    pub(crate) fn expired(_: &Parent, _: TaskId, _: Option<&str>) {}

    #[inline(always)]
    pub(crate) fn cancelled(_: &Parent, _: TaskId, _: Option<&str>) {}
}
