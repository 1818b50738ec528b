//! The C ABI of runq.
//!
//! This crate builds `librunq_ffi.a` and `librunq_ffi.so`; the header
//! `include/runq.h` is generated from this source by cbindgen
//! (`check-header.sh` fails when the two drift apart). Every doc comment on
//! an exported item below is copied into the header, so this is where the C
//! contract is written.
//!
//! # The rules every entry point follows
//!
//! - It returns a [`runq_status`] (the one exception is
//!   [`runq_status_str`], which returns a string).
//! - A null pointer or an out-of-range value is `RUNQ_INVALID_ARGUMENT`,
//!   checked before anything else happens.
//! - No Rust panic crosses into C: each body runs inside
//!   [`std::panic::catch_unwind`] (see `guard`); a caught panic is a bug in
//!   runq and returns `RUNQ_INTERNAL`.
//! - Ownership is written on every pointer parameter: *borrowed* (runq reads
//!   it during the call only), *carried* (runq never dereferences it, only
//!   hands it back to your callbacks), *owned by runq* (create/free pairs).
//!
//! # Threads
//!
//! A pool may be used from any number of threads at once. A task handle may
//! move between threads, but calls on one handle must not overlap: an
//! overlapping call returns `RUNQ_BUSY` instead of waiting (as in Rust,
//! where `Handle::wait` consumes the handle).
//!
//! # Module map
//!
//! - [`status`]: the status codes and [`runq_status_str`];
//! - [`pool`]: configuration, pool life cycle, metrics;
//! - [`task`]: `runq_spawn`, `runq_submit`, `runq_submit_fallible` and
//!   their options;
//! - [`handle`]: waiting on, polling and cancelling a submitted task.
#![deny(unsafe_op_in_unsafe_fn, missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![allow(non_camel_case_types)]

// cbindgen writes the header in declaration order: status codes first,
// then pools, tasks, handles. (One group each, so rustfmt keeps the order.)
pub mod status;

pub mod pool;

pub mod task;

pub mod handle;

mod carry;

pub use handle::*;
pub use pool::*;
pub use status::*;
pub use task::*;

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs the body of an entry point, turning a Rust panic into
/// `RUNQ_INTERNAL` so that no unwinding reaches a C frame.
///
/// `AssertUnwindSafe` is sound here: when a panic is caught the call
/// returns an error and the state it was touching is either local to the
/// call or behind runq's own panic-safe types.
pub(crate) fn guard(body: impl FnOnce() -> runq_status) -> runq_status {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(RUNQ_INTERNAL)
}
